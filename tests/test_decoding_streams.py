"""The decoder facade hands out one stream class per search, all with the same life cycle; a grammar
is spelled with the vocabulary's tokens on the grammars side."""

import numpy as np
import pytest

from edge_speech import decoding
from edge_speech.decoding import BeamStream, DecoderStream, GrammarStream, GreedyStream, Vocabulary
from edge_speech.grammar_tokens import compile_tokens, spell
from edge_speech.grammars import Grammar

CHARS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
COMMANDS = "intents:\n  Light:\n    - turn (on | off) the light\n"


def _log_probs(seed: int, frames: int = 60) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(frames, len(CHARS))) * 3.0
    return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)


DECODERS = {
    "greedy": (lambda: decoding.CTCDecoder(CHARS, beam_width=1), GreedyStream),
    "beam": (lambda: decoding.CTCDecoder(CHARS, beam_width=8), BeamStream),
    "grammar": (lambda: decoding.CTCDecoder(CHARS, grammar=COMMANDS, grammar_threshold=0.0), GrammarStream),
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_each_search_has_its_stream_and_the_shared_life_cycle(name):
    make, stream_class = DECODERS[name]
    dec = make()
    stream = dec.create_stream()
    assert type(stream) is stream_class and isinstance(stream, DecoderStream)
    lp = _log_probs(1)
    for start in range(0, len(lp), 17):
        stream.accept(lp[start : start + 17])
    assert stream.frames_done == len(lp) and not stream.finished
    result = stream.finish()
    assert stream.finished and stream.partial == result and stream.finish() == result
    assert result == dec.decode(lp)
    with pytest.raises(ValueError, match="already finished"):
        stream.accept(lp)
    stream.reset()  # the same stream decodes the next utterance as a fresh one would
    assert stream.frames_done == 0 and not stream.finished
    other = _log_probs(2)
    stream.accept(other)
    assert stream.finish() == dec.decode(other)


def test_decode_greedy_is_greedy_whatever_the_search():
    lp = _log_probs(3)
    greedy = decoding.CTCDecoder(CHARS, beam_width=1).decode(lp)
    for make, _ in DECODERS.values():
        assert make().decode_greedy(lp) == greedy


def test_grammar_is_spelled_on_the_grammars_side():
    vocab = Vocabulary(tuple(CHARS))
    grammar = Grammar.from_yaml(COMMANDS)
    graph = grammar.compile_tokens(vocab)
    again = compile_tokens(grammar, vocab)
    assert np.array_equal(graph.arcs, again.arcs) and graph.labels == again.labels
    assert {label[1] for label in graph.labels} == {"turn", "on", "off", "the", "light"}
    assert spell("Light", vocab) == [CHARS.index(c) for c in "light"]
    with pytest.raises(ValueError, match="cannot spell"):
        spell("café", vocab)
    pieces = Vocabulary(("<blk>", "▁", "▁the", "▁li", "ght", "t"), kind="sentencepiece")
    assert spell("the", pieces) == [2] and spell("light", pieces) == [3, 4]
    assert spell("t", pieces) == [1, 5]  # a lone word marker, then a plain piece


def test_vocabulary_says_what_each_token_is():
    vocab = Vocabulary(("<blk>", "▁the", "re", "▁"), kind="auto")
    assert vocab.kind == "sentencepiece" and vocab.pieces == ("", "the", "re", "")
    assert [vocab.is_blank(i) for i in range(4)] == [True, False, False, False]
    assert [vocab.is_separator(i) for i in range(4)] == [False, False, False, True]
    assert [vocab.starts_word(i) for i in range(4)] == [False, True, False, True]
    assert vocab.spelling_mask.tolist() == [False, True, True, False] and not vocab.spelling_mask.flags.writeable
    assert vocab.group_words([(1, 0, 0.0), (2, 1, 0.0), (1, 3, 0.0)]) == [
        ("there", [(1, 0, 0.0), (2, 1, 0.0)]),
        ("the", [(1, 3, 0.0)]),
    ]
