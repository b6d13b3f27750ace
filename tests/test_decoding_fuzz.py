"""Robustness of the text parsers: random mutations of valid ARPA, JSGF and intent-YAML text either
parse or raise ValueError (never another exception, never a crash); the C-level ARPA fuzzer runs
in the C tests under AddressSanitizer."""

from __future__ import annotations

from decoding_texts import INTENTS, JSGF, TRIGRAM
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_speech import decoding
from edge_speech.decoding import Grammar

PIECES = [
    "\\data\\",
    "\\end\\",
    "\\2-grams:",
    "ngram 2=",
    "-inf",
    "nan",
    "|",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "{",
    "}",
    "*",
    "+",
    ";",
    "=",
    "/2/",
    "public",
    "\n",
    "  ",
    "- ",
    ":",
    '"',
    "'",
    "#",
    "\t",
    "\x00",
    "é",
    "▁",
]


def _mutate(text: str, data) -> str:
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.integers(0, 3))
        if op == 0:
            text = text[:pos] + data.draw(st.sampled_from(PIECES)) + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + data.draw(st.integers(1, 8)) :]
        elif op == 2:
            text = text[:pos]
        else:
            text = text[:pos] + chr(data.draw(st.integers(0, 0x24F))) + text[pos + 1 :]
    return text


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_arpa_parses_or_raises_value_error(data):
    text = _mutate(TRIGRAM, data)
    try:
        lm = decoding.ArpaLM(text)
    except ValueError:
        return
    lm.score(["a", "b", "zzz"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_jsgf_parses_or_raises_value_error(data):
    try:
        g = Grammar.from_jsgf(_mutate(JSGF, data))
    except ValueError:
        return
    for _ in zip(range(50), g.sentences(6)):
        pass


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_intent_yaml_parses_or_raises_value_error(data):
    try:
        g = Grammar.from_yaml(_mutate(INTENTS, data))
    except ValueError:
        return
    for _ in zip(range(50), g.sentences(8)):
        pass
