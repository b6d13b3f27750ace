"""Phrase biasing: the credit a hypothesis ends with is exactly the boost of each phrase it
completes (partial matches earn credit during the search and lose it when abandoned), checked
against exhaustive search; hotwords flip close calls, also for SentencePiece vocabularies."""

from __future__ import annotations

import numpy as np
import pytest
from decoding_reference import all_label_scores, log_softmax

from edge_speech import decoding

TOKENS = ["_", "a", "b", " "]


def _completed(text: str, phrase: str) -> int:
    # occurrences that start at a word start (non-overlapping, left to right)
    return (" " + text).count(" " + phrase)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("phrase, boost", [("ab", 3.0), ("a b", 2.0), ("ba", 1.5)])
def test_final_credit_is_the_boost_of_completed_phrases_only(seed, phrase, boost):
    rng = np.random.default_rng(seed)
    T = 6
    lp = log_softmax(rng.normal(size=(T, 4)) * 1.5).astype(np.float32)
    vocab = decoding.Vocabulary(tuple(TOKENS))
    exact = {seq: ac + boost * _completed(vocab.text(seq), phrase) for seq, ac in all_label_scores(lp, 0).items()}
    dec = decoding.CTCDecoder(
        TOKENS,
        beam_width=sum(3**n for n in range(T + 1)),
        hotwords={phrase: boost},
        token_min_prob=0.0,
        blank_skip_prob=None,
        nbest=20,
    )
    res = dec.decode(lp)
    best = max(exact.values())
    assert res.score == pytest.approx(best, abs=1e-4)
    assert exact[res.tokens] == pytest.approx(best, abs=1e-4)
    for hyp in res.nbest:
        credit = hyp.score - hyp.acoustic_score
        assert credit == pytest.approx(boost * _completed(hyp.text, phrase), abs=1e-4), hyp.text


def test_a_hotword_flips_a_close_call_and_partial_credit_is_withdrawn():
    # acoustically "ab" narrowly beats "bb"; a boost on "bb" flips it
    frames = [[0.1, 0.46, 0.44, 0.0], [0.9, 0.05, 0.05, 0.0], [0.1, 0.05, 0.85, 0.0]]
    lp = np.log(np.array(frames, dtype=np.float32) + 1e-9).astype(np.float32)
    plain = decoding.CTCDecoder(TOKENS, beam_width=8).decode(lp)
    assert plain.text == "ab"
    biased = decoding.CTCDecoder(TOKENS, beam_width=8, hotwords={"bb": 1.0}).decode(lp)
    assert biased.text == "bb"
    assert biased.score - biased.acoustic_score == pytest.approx(1.0, abs=1e-5)
    # a phrase that is only started ("bba") gives nothing at the end
    started = decoding.CTCDecoder(TOKENS, beam_width=8, hotwords=["bba"], hotword_boost=5.0).decode(lp)
    for hyp in started.nbest:
        assert hyp.score == pytest.approx(hyp.acoustic_score, abs=1e-5)


def test_hotwords_with_sentencepiece_tokens_and_streaming():
    tokens = ["<blk>", "▁the", "▁c", "at", "ap", "▁"]
    # "the c?" where "at" narrowly beats "ap"
    frames = np.full((6, 6), 0.01, dtype=np.float32)
    frames[0, 1] = 0.9
    frames[1, 0] = 0.9
    frames[2, 2] = 0.9
    frames[3, 0] = 0.9
    frames[4, 3], frames[4, 4] = 0.48, 0.45
    frames[5, 0] = 0.9
    lp = np.log(frames / frames.sum(1, keepdims=True)).astype(np.float32)
    assert decoding.CTCDecoder(tokens, beam_width=8).decode(lp).text == "the cat"
    dec = decoding.CTCDecoder(tokens, beam_width=8, hotwords={"the cap": 1.0})
    res = dec.decode(lp)
    assert res.text == "the cap"
    assert [w.text for w in res.words] == ["the", "cap"]
    stream = dec.create_stream()
    for t in range(len(lp)):
        stream.accept(lp[t : t + 1])
    assert stream.finish() == res


def test_hotword_validation():
    with pytest.raises(ValueError, match="boost"):
        decoding.CTCDecoder(TOKENS, hotwords={"ab": -1.0})
    with pytest.raises(ValueError, match="empty"):
        decoding.CTCDecoder(TOKENS, hotwords={"  ": 1.0})
    with pytest.raises(TypeError):
        decoding.CTCDecoder(TOKENS, hotwords="ab")
    with pytest.raises(ValueError, match="greedy"):
        decoding.CTCDecoder(TOKENS, beam_width=1, hotwords=["ab"])
