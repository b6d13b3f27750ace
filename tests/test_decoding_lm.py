"""ARPA n-gram LM held in C: scores against an independent Python scorer (every order, backoff,
<unk>, sentence ends), malformed files, and shallow fusion against exhaustive search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from decoding_reference import LN10, ArpaReference, all_label_scores, log_softmax
from decoding_texts import TRIGRAM

from edge_speech import decoding


def _random_arpa(rng: np.random.Generator, order: int, words: int) -> str:
    vocab = ["<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(words)]
    grams = {1: [(w,) for w in vocab]}
    for n in range(2, order + 1):
        pool = set()
        for _ in range(4 * words):
            pool.add(tuple(rng.choice(vocab[:1] + vocab[2:], size=n - 1)) + (str(rng.choice(vocab[1:])),))
        grams[n] = sorted(pool)
    lines = ["\\data\\"] + [f"ngram {n}={len(g)}" for n, g in grams.items()] + [""]
    for n, g in grams.items():
        lines.append(f"\\{n}-grams:")
        for gram in g:
            lp = -99.0 if gram == ("<s>",) else round(float(-rng.uniform(0.05, 3.0)), 4)
            fields = [f"{lp}", *gram]
            if n < order and rng.random() < 0.8:
                fields.append(f"{round(float(-rng.uniform(0, 1.5)), 4)}")
            lines.append("\t".join(fields) if rng.random() < 0.5 else " ".join(fields))
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"


def test_trigram_scores_match_the_reference_on_every_order():
    lm = decoding.ArpaLM(TRIGRAM)
    ref = ArpaReference(TRIGRAM)
    assert lm.order == 3 and lm.counts == (7, 6, 3)
    sentences = [
        [],
        ["a"],
        ["a", "b"],
        ["a", "b", "a"],
        ["ab", "a", "b"],
        ["b", "b", "b"],
        ["zzz", "a"],
        ["a", "zzz", "b", "a"],
        ["ba", "ab", "a", "b", "a", "</s>"],
    ]
    for words in sentences:
        for bos, eos in itertools.product([True, False], repeat=2):
            assert lm.score(words, bos, eos) == pytest.approx(ref.score(words, bos, eos), abs=1e-6), (words, bos, eos)
    # spot checks written out by hand: trigram hit, bigram backoff, unigram double backoff
    assert lm.score(["a", "b"], eos=False) == pytest.approx([-0.3, -0.1])
    assert lm.score(["b", "a"], eos=False)[1] == pytest.approx(-0.2)
    assert lm.score(["b", "b"], bos=False, eos=False)[1] == pytest.approx(-0.2 + -0.8)
    assert lm.score(["a", "b", "b"], eos=False)[2] == pytest.approx(-0.05 + -0.2 + -0.8)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_random_lms_match_the_reference(order):
    rng = np.random.default_rng(order)
    text = _random_arpa(rng, order, 6)
    lm, ref = decoding.ArpaLM(text), ArpaReference(text)
    vocab = [f"w{i}" for i in range(6)] + ["oov"]
    for _ in range(200):
        words = list(rng.choice(vocab, size=int(rng.integers(0, 9))))
        assert lm.score(words) == pytest.approx(ref.score(words), abs=1e-5), words


def test_without_unk_an_oov_word_scores_minus_100_and_clears_the_history():
    text = TRIGRAM.replace("-1.0\t<unk>\t-0.3\n", "").replace("ngram 1=7", "ngram 1=6")
    lm, ref = decoding.ArpaLM(text), ArpaReference(text)
    assert lm.score(["a", "nope", "a", "b"]) == pytest.approx(ref.score(["a", "nope", "a", "b"]))
    assert lm.score(["nope"], eos=False) == [-100.0]


def test_from_file_and_crlf(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_bytes(TRIGRAM.replace("\n", "\r\n").encode())
    assert decoding.ArpaLM.from_file(path).score(["a", "b"]) == pytest.approx(ArpaReference(TRIGRAM).score(["a", "b"]))


def test_from_file_reads_gzipped_arpa_and_names_a_corrupt_one(tmp_path):
    import gzip

    path = tmp_path / "lm.arpa.gz"
    path.write_bytes(gzip.compress(TRIGRAM.encode()))
    assert decoding.ArpaLM.from_file(path).score(["a", "b"]) == pytest.approx(ArpaReference(TRIGRAM).score(["a", "b"]))
    path.write_bytes(gzip.compress(TRIGRAM.encode())[:-12])  # truncated download
    with pytest.raises(ValueError, match="lm.arpa.gz: not a valid gzip file"):
        decoding.ArpaLM.from_file(path)


MALFORMED = [
    ("", "no \\\\data\\\\"),
    ("just text\n", "no \\\\data\\\\"),
    ("\\data\\\nngram 1=2\n", "ends inside"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n", "before \\\\end"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 a\n\\end\\\n", "line 6: the 1-grams section has 1 entries"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n-1 b\n\\end\\\n", "line 6: more 1-grams"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nx a\n\\end\\\n", "line 5: bad log10 probability 'x'"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a nan\n\\end\\\n", "line 5: bad backoff"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a -0.5 extra\n\\end\\\n", "line 5: a 1-gram line"),
    ("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1 a\n\n\\2-grams:\n-1 a b\n\\end\\\n", "line 9: word 'b'"),
    ("\\data\\\nngram 1=1\nngram x\n", "line 3: expected 'ngram N=count'"),
    ("\\data\\\nngram 2=1\n", "line 2: expected 'ngram 1=count', found ngram 2"),
    ("\\data\\\nngram 1=1\n\n\\2-grams:\n", "line 4: expected the \\\\1-grams"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n-1 a\n\\end\\\n", "line 6: more"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1 a\n-1 a\n\\end\\\n", "line 6: duplicate unigram 'a'"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n0.5 a\n\\end\\\n", "line 5: log10 probability 0.5 is above 0"),
    ("\\data\\\nngram 7=1\n", "line 2: n-gram order 7 is above"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n\\3-grams:\n\\end\\\n", "line 6: expected the \\\\2-grams"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_malformed_arpa_raises_value_error_with_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        decoding.ArpaLM(text)


def test_truncated_files_never_parse_silently():
    # every prefix of a valid file that cuts into it must be rejected (or be a complete file)
    for cut in range(0, len(TRIGRAM) - 12, 7):
        with pytest.raises(ValueError):
            decoding.ArpaLM(TRIGRAM[:cut])


# -- shallow fusion ----------------------------------------------------------------------------

FUSION_LM = """\\data\\
ngram 1=6
ngram 2=4

\\1-grams:
-1.5 <unk> -0.2
-99 <s> -0.4
-0.6 </s> -0.1
-0.5 a -0.3
-0.9 b -0.2
-0.4 ab -0.1

\\2-grams:
-0.2 <s> ab
-0.3 ab a
-0.7 a b
-0.1 b </s>

\\end\\
"""


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("alpha, beta, oov", [(0.5, 0.0, 0.0), (1.5, 1.0, 0.0), (0.8, -0.5, -3.0)])
def test_fusion_with_a_full_beam_finds_the_exact_best_fused_score(seed, alpha, beta, oov):
    rng = np.random.default_rng(seed)
    tokens = ["_", "a", "b", " "]
    T = 6
    lp = log_softmax(rng.normal(size=(T, 4)) * 1.5).astype(np.float32)
    ref, vocab = ArpaReference(FUSION_LM), decoding.Vocabulary(tuple(tokens))
    exact = {}
    for seq, acoustic in all_label_scores(lp, 0).items():
        words = vocab.text(seq).split()
        lm_ln = LN10 * sum(ref.score(words))
        unknown = sum(w not in ref.vocab for w in words)
        exact[seq] = (acoustic + alpha * lm_ln + beta * len(words) + oov * unknown, acoustic, lm_ln)
    dec = decoding.CTCDecoder(
        tokens,
        beam_width=sum(3**n for n in range(T + 1)),
        lm=decoding.ArpaLM(FUSION_LM),
        lm_weight=alpha,
        word_bonus=beta,
        oov_penalty=oov,
        token_min_prob=0.0,
        blank_skip_prob=None,
        nbest=6,
    )
    res = dec.decode(lp)
    ranked = sorted(exact.values(), key=lambda v: -v[0])
    assert res.score == pytest.approx(ranked[0][0], abs=1e-3)
    assert exact[res.tokens][0] == pytest.approx(ranked[0][0], abs=1e-3)
    for hyp in res.nbest:
        total, acoustic, lm_ln = exact[hyp.tokens]
        assert hyp.score == pytest.approx(total, abs=1e-3)
        assert hyp.acoustic_score == pytest.approx(acoustic, abs=1e-4)
        assert hyp.lm_score == pytest.approx(lm_ln, abs=1e-3)


def test_lm_steers_an_ambiguous_utterance_and_streams_identically():
    # acoustically "b a" and "ab a" are close; the LM prefers "ab a"
    tokens = ["_", "a", "b", " "]
    frames = [
        [0.1, 0.7, 0.1, 0.1],
        [0.3, 0.05, 0.05, 0.6],
        [0.1, 0.1, 0.7, 0.1],
        [0.3, 0.05, 0.05, 0.6],
        [0.1, 0.8, 0.05, 0.05],
        [0.9, 0.04, 0.03, 0.03],
    ]
    lp = np.log(np.array(frames, dtype=np.float32))
    plain = decoding.CTCDecoder(tokens, beam_width=8).decode(lp)
    lm = decoding.ArpaLM(FUSION_LM)
    dec = decoding.CTCDecoder(tokens, beam_width=8, lm=lm, lm_weight=1.0)
    fused = dec.decode(lp)
    assert plain.text == "a b a"
    assert fused.text == "ab a"
    stream = dec.create_stream()
    for t in range(len(lp)):
        stream.accept(lp[t : t + 1])
    assert stream.finish() == fused


def test_an_empty_higher_order_section_is_allowed():
    text = "\\data\\\nngram 1=2\nngram 2=0\n\n\\1-grams:\n-0.5 a -0.1\n-0.4 b\n\n\\2-grams:\n\n\\end\\\n"
    lm = decoding.ArpaLM(text)
    assert lm.counts == (2, 0)
    assert lm.score(["a", "b"], eos=False) == pytest.approx(ArpaReference(text).score(["a", "b"], eos=False))
    with pytest.raises(ValueError, match="no words"):
        decoding.ArpaLM("\\data\\\nngram 1=0\n\n\\1-grams:\n\\end\\\n")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("oov_penalty", [0.0, -2.0])
def test_lexicon_with_a_full_beam_finds_the_exact_best(seed, oov_penalty):
    # oov_penalty 0: only lexicon words; < 0: other words allowed at that price each
    rng = np.random.default_rng(100 + seed)
    tokens = ["_", "a", "b", " "]
    T = 6
    lp = log_softmax(rng.normal(size=(T, 4)) * 1.5).astype(np.float32)
    ref, vocab = ArpaReference(FUSION_LM), decoding.Vocabulary(tuple(tokens))
    known = {"a", "ab", "bab"}  # "ba" is a prefix of a word but not a word
    exact = {}
    for seq, acoustic in all_label_scores(lp, 0).items():
        words = vocab.text(seq).split()
        unknown = sum(w not in known for w in words)
        if oov_penalty < 0 or not unknown:
            exact[seq] = acoustic + 0.7 * LN10 * sum(ref.score(words)) + oov_penalty * unknown
    dec = decoding.CTCDecoder(
        tokens,
        beam_width=sum(3**n for n in range(T + 1)),
        lm=decoding.ArpaLM(FUSION_LM),
        lm_weight=0.7,
        lexicon=sorted(known),
        oov_penalty=oov_penalty,
        token_min_prob=0.0,
        blank_skip_prob=None,
        nbest=50,
    )
    res = dec.decode(lp)
    assert res.score == pytest.approx(max(exact.values()), abs=1e-3)
    for hyp in res.nbest:
        assert oov_penalty < 0 or set(hyp.text.split()) <= known
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-3)
    assert len(res.nbest) == min(50, len(exact))


def test_lexicon_true_takes_the_lm_words():
    lm = decoding.ArpaLM(FUSION_LM)
    assert set(lm.words) == {"<unk>", "<s>", "</s>", "a", "b", "ab"}
    tokens = ["_", "a", "b", " "]
    path = [2, 0, 2, 3, 1]  # "bb a": "bb" is not a word
    lp = np.full((5, 4), np.log(0.05), dtype=np.float32)
    lp[np.arange(5), path] = np.log(0.85)
    plain = decoding.CTCDecoder(tokens, beam_width=8, lm=lm).decode(lp)
    assert plain.text == "bb a"
    constrained = decoding.CTCDecoder(tokens, beam_width=8, lm=lm, lexicon=True).decode(lp)
    assert set(constrained.text.split()) <= {"a", "b", "ab"}
    with pytest.raises(ValueError, match="lexicon=True"):
        decoding.CTCDecoder(tokens, lexicon=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam, top_k", [(3, 0), (5, 2)])
def test_pruned_fusion_equals_a_textbook_beam_search_with_the_reference_lm(seed, beam, top_k):
    # a narrow beam: the decoder's shortcuts must give what a plain prefix beam search gives
    # when every prefix is ranked by acoustic + alpha * LM(completed words) + beta * words
    rng = np.random.default_rng(200 + seed)
    tokens = ["_", "a", "b", " "]
    alpha, beta = 0.8, 0.3
    lp = log_softmax(rng.normal(size=(30, 4)) * 2.0).astype(np.float32).astype(np.float64)
    ref = ArpaReference(FUSION_LM)

    def words_of(p):
        text = "".join(tokens[t] for t in p)
        done = text.split(" ")
        return [w for w in done[:-1] if w], done[-1]

    def ext(p):
        done, _ = words_of(p)
        return alpha * LN10 * sum(ref.score(done, eos=False)) + beta * len(done)

    def final(p):
        done, last = words_of(p)
        words = done + ([last] if last else [])
        return alpha * LN10 * sum(ref.score(words)) + beta * len(words)

    hyps = {(): (0.0, -np.inf)}
    for row in lp:
        cand = sorted(range(1, 4), key=lambda v: (-row[v], v))[:top_k] if top_k else [1, 2, 3]
        nxt = {}
        for p, (pb, pnb) in hyps.items():
            total = np.logaddexp(pb, pnb)
            b, n = nxt.get(p, (-np.inf, -np.inf))
            nxt[p] = (np.logaddexp(b, total + row[0]), np.logaddexp(n, pnb + row[p[-1]]) if p else n)
            for c in cand:
                q = p + (c,)
                b, n = nxt.get(q, (-np.inf, -np.inf))
                nxt[q] = (b, np.logaddexp(n, (pb if p and c == p[-1] else total) + row[c]))
        hyps = dict(sorted(nxt.items(), key=lambda kv: -(np.logaddexp(*kv[1]) + ext(kv[0])))[:beam])
    expected = sorted(((p, float(np.logaddexp(*s)) + final(p)) for p, s in hyps.items()), key=lambda x: -x[1])
    dec = decoding.CTCDecoder(
        tokens,
        beam_width=beam,
        top_k=top_k,
        lm=decoding.ArpaLM(FUSION_LM),
        lm_weight=alpha,
        word_bonus=beta,
        token_min_prob=0.0,
        blank_skip_prob=None,
        nbest=beam,
    )
    res = dec.decode(lp.astype(np.float32))
    assert [h.tokens for h in res.nbest] == [p for p, _ in expected]
    assert [h.score for h in res.nbest] == pytest.approx([s for _, s in expected], abs=2e-3)
