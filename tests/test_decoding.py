"""CTC greedy and prefix beam search against exact references (forward algorithm, enumeration)."""

from __future__ import annotations

import concurrent.futures
import itertools

import numpy as np
import pytest
from decoding_reference import all_label_scores, ctc_log_prob, greedy_reference, log_softmax
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_speech import decoding

CHARS = ["_", "a", "b", " "]  # blank, two letters, a word separator


# the exhaustive search needs a beam that holds every prefix: (V-1)^0 + ... + (V-1)^T
def _full_beam(T: int, V: int) -> int:
    return sum((V - 1) ** n for n in range(T + 1))


def _exact_decoder(V: int, T: int) -> decoding.CTCDecoder:
    tokens = ["_"] + [chr(ord("a") + i) for i in range(V - 1)]
    return decoding.CTCDecoder(
        tokens, blank_id=0, beam_width=max(2, _full_beam(T, V)), token_min_prob=0.0, blank_skip_prob=None, nbest=10
    )


def _random_log_probs(rng: np.random.Generator, T: int, V: int, sharpness: float = 2.0) -> np.ndarray:
    return log_softmax(rng.normal(size=(T, V)) * sharpness).astype(np.float32)


def _check_exact(log_probs: np.ndarray) -> None:
    T, V = log_probs.shape
    exact = all_label_scores(log_probs, blank=0)
    ranked = sorted(exact.items(), key=lambda kv: -kv[1])
    result = _exact_decoder(V, T).decode(log_probs)
    best_seq, best_score = ranked[0]
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < 1e-4:
        assert result.tokens in {s for s, v in ranked if best_score - v < 1e-4}
    else:
        assert result.tokens == best_seq
    assert result.score == pytest.approx(best_score, abs=1e-4)
    assert result.acoustic_score == pytest.approx(best_score, abs=1e-4)
    # every n-best entry carries its sequence's exact probability, and they come in order
    for hyp in result.nbest:
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-4)
    scores = [h.score for h in result.nbest]
    assert scores == sorted(scores, reverse=True)
    assert len({h.tokens for h in result.nbest}) == len(result.nbest) == min(10, len(exact))
    assert [h.score for h in result.nbest] == pytest.approx([v for _, v in ranked[: len(result.nbest)]], abs=1e-4)


def test_forward_reference_sums_to_one_over_all_sequences():
    # the reference itself: the probabilities of all label sequences of a T-frame input sum to 1
    rng = np.random.default_rng(1)
    lp = _random_log_probs(rng, 5, 3).astype(np.float64)
    exact = all_label_scores(lp, blank=0)
    assert np.logaddexp.reduce(list(exact.values())) == pytest.approx(0.0, abs=1e-6)  # float32 input
    # and agrees with an explicit sum over alignments for one sequence
    T, labels = 4, (1, 1)
    total = -np.inf
    for path in itertools.product(range(3), repeat=T):
        collapsed = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        if tuple(collapsed) == labels:
            total = np.logaddexp(total, sum(lp[t, k] for t, k in enumerate(path)))
    assert ctc_log_prob(lp[:T], np.array([labels]), 0)[0] == pytest.approx(total, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_wide_beam_finds_the_exact_most_probable_sequence(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 9))
    V = int(rng.integers(2, 5)) if T <= 6 else 3
    _check_exact(_random_log_probs(rng, T, V, sharpness=float(rng.uniform(0.5, 4.0))))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(T=st.integers(1, 6), V=st.integers(2, 4), seed=st.integers(0, 2**32 - 1), sharpness=st.floats(0.1, 6.0))
def test_property_beam_is_exact_on_tiny_problems(T, V, seed, sharpness):
    _check_exact(_random_log_probs(np.random.default_rng(seed), T, V, sharpness))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(T=st.integers(0, 40), V=st.integers(1, 7), seed=st.integers(0, 2**32 - 1), blank=st.integers(0, 6))
def test_property_greedy_equals_argmax_collapse(T, V, seed, blank):
    blank = blank % V
    rng = np.random.default_rng(seed)
    lp = _random_log_probs(rng, T, V)
    tokens = [f"t{i}" for i in range(V)]
    dec = decoding.CTCDecoder(tokens, blank_id=blank, beam_width=1)
    res = dec.decode(lp)
    assert list(res.tokens) == greedy_reference(lp, blank)
    assert res.score == pytest.approx(float(lp.max(axis=1).sum(dtype=np.float64)), abs=1e-3)
    # timestamps: each token is emitted at the first frame of its run, and is the argmax there
    best = np.argmax(lp, axis=1)
    for tok, frame in zip(res.tokens, res.token_frames):
        assert best[frame] == tok and (frame == 0 or best[frame - 1] != tok)
    assert dec.decode_greedy(lp) == res


def test_greedy_timestamps_and_words():
    tokens = ["<blk>", "h", "i", "|", "y", "o"]
    path = [1, 1, 0, 2, 3, 0, 0, 4, 0, 5, 5, 0]  # "hi yo"
    lp = np.full((len(path), len(tokens)), np.log(0.02), dtype=np.float32)
    lp[np.arange(len(path)), path] = np.log(0.9)
    res = decoding.CTCDecoder(tokens, beam_width=1, frame_shift_s=0.04).decode(lp)
    assert res.text == "hi yo"
    assert res.token_frames == (0, 3, 4, 7, 9)
    assert [(w.text, w.start_frame, w.end_frame) for w in res.words] == [("hi", 0, 4), ("yo", 7, 10)]
    assert res.words[1].start == pytest.approx(0.28) and res.words[1].end == pytest.approx(0.40)
    assert res.words[0].confidence == pytest.approx(0.9, rel=1e-5)


def test_sentencepiece_vocabulary_words():
    vocab = decoding.Vocabulary(("<blk>", "▁the", "▁c", "at", "s", "▁"), blank_id=0)
    assert vocab.kind == "sentencepiece"
    assert vocab.text([1, 2, 3, 4]) == "the cats"
    assert vocab.text([5, 1, 5, 2, 3]) == "the cat"
    assert decoding.Vocabulary(("_", "a", " ", "|")).kind == "chars"
    assert decoding.Vocabulary(("_", "a", " ", "b", "|", "c")).text([1, 2, 2, 3, 4, 5]) == "a b c"


def test_beam_on_a_clear_utterance_matches_greedy():
    rng = np.random.default_rng(5)
    tokens = ["_"] + list("abcdefgh ")
    path = rng.integers(0, len(tokens), size=200)
    lp = np.full((200, len(tokens)), -6.0, dtype=np.float32)
    lp[np.arange(200), path] = -0.05
    lp = log_softmax(lp).astype(np.float32)
    dec = decoding.CTCDecoder(tokens, beam_width=8)
    assert dec.decode(lp).tokens == dec.decode_greedy(lp).tokens


@pytest.mark.parametrize(
    "options",
    [
        dict(beam_width=4),
        dict(beam_width=16, top_k=2),
        dict(beam_width=8, token_min_prob=0.05, blank_skip_prob=0.9),
        dict(beam_width=1),
    ],
)
def test_streaming_equals_one_shot(options):
    rng = np.random.default_rng(11)
    tokens = ["_", "a", "b", "c", " "]
    lp = _random_log_probs(rng, 301, len(tokens), 3.0)
    dec = decoding.CTCDecoder(tokens, **options)
    whole = dec.decode(lp)
    for chunk in (1, 2, 17, 509):
        stream = dec.create_stream()
        for start in range(0, len(lp), chunk):
            stream.accept(lp[start : start + chunk])
            assert stream.partial.text is not None
        stream.accept(lp[:0])
        assert stream.finish() == whole
        assert stream.frames_done == len(lp)
        stream.reset()
        stream.accept(lp)
        assert stream.finish() == whole


def test_partial_results_grow_with_the_input():
    tokens = ["_", "a", "b", " "]
    path = [1, 0, 2, 3, 1, 1, 0, 2]
    lp = np.full((len(path), 4), np.log(0.05), dtype=np.float32)
    lp[np.arange(len(path)), path] = np.log(0.85)
    stream = decoding.CTCDecoder(tokens, beam_width=4).create_stream()
    seen = []
    for t in range(len(path)):
        stream.accept(lp[t : t + 1])
        seen.append(stream.partial.text)
    assert seen[-1] == "ab ab"
    assert seen[0] == "a"
    assert stream.finish().text == "ab ab"
    with pytest.raises(ValueError, match="finished"):
        stream.accept(lp)


def test_empty_input_gives_an_empty_result():
    dec = decoding.CTCDecoder(CHARS)
    res = dec.decode(np.zeros((0, 4), np.float32))
    assert res.text == "" and res.tokens == () and res.words == () and res.score == 0.0
    assert dec.decode_greedy(np.zeros((0, 4), np.float32)).text == ""


def test_bad_inputs_raise_clear_errors():
    dec = decoding.CTCDecoder(CHARS)
    lp = np.log(np.full((3, 4), 0.25, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        bad = lp.copy()
        bad[1, 2] = np.nan
        dec.decode(bad)
    with pytest.raises(ValueError, match="columns"):
        dec.decode(lp[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        dec.decode(lp[0])
    with pytest.raises(ValueError, match="blank_id"):
        decoding.CTCDecoder(CHARS, blank_id=4)
    with pytest.raises(ValueError, match="beam_width"):
        decoding.CTCDecoder(CHARS, beam_width=0)
    with pytest.raises(ValueError, match="empty"):
        decoding.CTCDecoder([])
    with pytest.raises(ValueError, match="unknown BeamConfig"):
        decoding.CTCDecoder(CHARS, beam_size=3)
    with pytest.raises(ValueError, match="no public rule|intents"):
        decoding.CTCDecoder(CHARS, grammar="#JSGF V1.0;")
    # -inf (a zero probability) is valid input
    lp[:, 1] = -np.inf
    assert "a" not in dec.decode(lp).text


def test_config_round_trip_and_validation():
    cfg = decoding.BeamConfig(beam_width=32, top_k=5, blank_skip_prob=None)
    assert decoding.BeamConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        decoding.BeamConfig(token_min_prob=1.5)
    with pytest.raises(TypeError):
        decoding.BeamConfig(beam_width=2.5)


def test_parallel_threads_give_the_serial_results():
    rng = np.random.default_rng(3)
    tokens = ["_"] + list("abcdefghijklmnopqrstuvwxyz ")
    inputs = [_random_log_probs(rng, 400, len(tokens), 4.0) for _ in range(8)]
    dec = decoding.CTCDecoder(tokens, beam_width=16)
    serial = [dec.decode(x) for x in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(dec.decode, inputs))
    assert parallel == serial


def test_threads_share_one_lm_and_hotword_table():
    lm_text = """\\data\\
ngram 1=4

\\1-grams:
-0.5 <s>
-0.5 </s>
-0.3 ab
-0.4 ba

\\end\\
"""
    lm = decoding.ArpaLM(lm_text)
    rng = np.random.default_rng(9)
    inputs = [_random_log_probs(rng, 300, 4, 3.0) for _ in range(8)]
    dec = decoding.CTCDecoder(CHARS, beam_width=12, lm=lm, lm_weight=0.8, word_bonus=0.5, hotwords={"ab ba": 2.0})
    serial = [dec.decode(x) for x in inputs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(dec.decode, inputs)) == serial


def _completed_words(prefix, separator):
    words, current = 0, 0
    for t in prefix:
        if t == separator:
            words, current = words + (current > 0), 0
        else:
            current += 1
    return words, current > 0


def _reference_prefix_beam(
    lp, blank, beam, top_k=0, token_min_prob=0.0, blank_skip_prob=None, word_bonus=0.0, separator=4
):
    """Textbook CTC prefix beam search (dicts, no shortcuts), with the same pruning rules and a
    bonus per word (counted when the word ends; the last one at the end)."""
    lp = lp.astype(np.float64)
    ext = lambda p: word_bonus * _completed_words(p, separator)[0]
    hyps = {(): (0.0, -np.inf)}
    thr = np.log(token_min_prob) if token_min_prob > 0 else -np.inf
    for row in lp:
        if blank_skip_prob is not None and row[blank] > np.log(np.float32(blank_skip_prob)):
            hyps = {
                p: (np.logaddexp(pb, pnb) + row[blank], pnb + row[p[-1]] if p else -np.inf)
                for p, (pb, pnb) in hyps.items()
            }
            continue
        tokens = [v for v in range(len(row)) if v != blank and row[v] >= thr and row[v] > -np.inf]
        if top_k and len(tokens) > top_k:
            tokens = sorted(tokens, key=lambda v: (-row[v], v))[:top_k]
        nxt = {}
        for p, (pb, pnb) in hyps.items():
            total = np.logaddexp(pb, pnb)
            b, n = nxt.get(p, (-np.inf, -np.inf))
            nxt[p] = (np.logaddexp(b, total + row[blank]), np.logaddexp(n, pnb + row[p[-1]]) if p else n)
            for c in tokens:
                q = p + (c,)
                b, n = nxt.get(q, (-np.inf, -np.inf))
                nxt[q] = (b, np.logaddexp(n, (pb if p and c == p[-1] else total) + row[c]))
        ranked = sorted(nxt.items(), key=lambda kv: -(np.logaddexp(*kv[1]) + ext(kv[0])))
        hyps = dict(kv for kv in ranked[:beam] if np.logaddexp(*kv[1]) > -np.inf)
    final = lambda p: word_bonus * sum(_completed_words(p, separator))
    return sorted(((p, float(np.logaddexp(pb, pnb)) + final(p)) for p, (pb, pnb) in hyps.items()), key=lambda x: -x[1])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "options",
    [
        dict(beam_width=3),
        dict(beam_width=5, top_k=2),
        dict(beam_width=4, token_min_prob=0.05),
        dict(beam_width=6, blank_skip_prob=0.6),
        dict(beam_width=4, top_k=3, word_bonus=1.5),
        dict(beam_width=4, word_bonus=-1.0),
    ],
)
def test_pruned_search_equals_a_textbook_prefix_beam_search(seed, options):
    # the decoder's shortcuts (cut floors, skipped hypotheses, lazy nodes) must not change the result
    rng = np.random.default_rng(seed)
    V, T = 5, 40
    lp = _random_log_probs(rng, T, V, 2.5)
    full = dict(token_min_prob=0.0, blank_skip_prob=None, top_k=0, word_bonus=0.0) | options
    ref = _reference_prefix_beam(
        lp, 0, full["beam_width"], full["top_k"], full["token_min_prob"], full["blank_skip_prob"], full["word_bonus"]
    )
    res = decoding.CTCDecoder(["_", "a", "b", "c", " "], nbest=full["beam_width"], **full).decode(lp)
    assert [h.tokens for h in res.nbest] == [p for p, _ in ref]
    assert [h.score for h in res.nbest] == pytest.approx([s for _, s in ref], abs=1e-3)
