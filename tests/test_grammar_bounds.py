"""Grammar compilation stays bounded on hostile grammars (issue #16, items 2 and 10): slot
references and alternatives are linear in arcs, long runs of optional or repeated items O(n log n),
what still grows quadratically (runs of items that end optionally) is stopped by the
``max_grammar_arcs`` limit while compiling, and JSGF weights get clear errors."""

import math
import random
import string
import time
import tracemalloc

import numpy as np
import pytest
from decoding_reference import log_softmax

from edge_speech import decoding, grammars, limits
from edge_speech.grammars import Grammar


def _optional_chain(n: int) -> str:
    return "#JSGF V1.0;\ngrammar g;\npublic <r> = " + " ".join(f"[w{i}]" for i in range(n)) + " end;\n"


def _slot_references(references: int, values: int) -> str:
    listed = ", ".join(f"v{i}" for i in range(values))
    return 'intents:\n  Pick:\n    - "' + " ".join(["{s}"] * references) + f'"\nslots:\n  s: [{listed}]\n'


def test_ten_references_to_a_300_value_slot_are_linear_in_arcs():
    # was 810,300 arcs, 476 MB, 7 s: every value's arcs were copied onto every value's end
    start = time.perf_counter()
    grammar = Grammar.from_yaml(_slot_references(10, 300))
    assert len(grammar.arcs) == 10 * 300
    assert grammar.num_states == 11
    assert time.perf_counter() - start < 10
    assert grammar.match(" ".join(f"v{i}" for i in range(10))) == ("Pick", {"s": " ".join(f"v{i}" for i in range(10))})
    assert grammar.match("v1 v2") is None


def test_multi_word_slot_values_and_alternatives_share_their_end():
    grammar = Grammar.from_intents(
        {"Go": ["go (to | towards) {place} [now]"]}, {"place": ["the living room", "kitchen", "the hall"]}
    )
    # go, to/towards, 3 + 1 + 2 value words, then "now" or the end
    assert len(grammar.arcs) == 1 + 2 + 6 + 1
    assert grammar.match("go towards the living room now") == ("Go", {"place": "the living room"})
    assert grammar.match("go to kitchen") == ("Go", {"place": "kitchen"})


def test_2000_optional_words_compile_to_n_log_n_arcs():
    # was 2,003,001 arcs, 28 s, 1.7 GB: chained by epsilons, removing them gave every word's state
    # the arcs of every later word; a long run of optional items is now built through hub states
    start = time.perf_counter()
    grammar = Grammar.from_jsgf(_optional_chain(2000))
    assert time.perf_counter() - start < 20  # 0.4 s alone
    assert len(grammar.arcs) <= 4 * 2000 * math.log2(2000)  # 65,889
    words = [f"w{i}" for i in range(2000)]
    assert grammar.match("end") == ("r", {})
    assert grammar.match("w0 w1999 end") == ("r", {})
    assert grammar.match(" ".join(words[::7] + ["end"])) == ("r", {})
    assert grammar.match(" ".join(words) + " end") == ("r", {})
    assert grammar.match("w5 w4 end") is None and grammar.match("w5 w5 end") is None
    assert grammar.match("w5") is None


def test_the_issue_input_builds_a_decoder_quickly():
    # issue #16's 8 KB rule: 2,000 optional three-letter words (some repeated), decoder included
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(3)) for _ in range(2000)]
    text = "#JSGF V1.0;\ngrammar g;\npublic <c> = " + " ".join(f"[{w}]" for w in words) + ";"
    tokens = ["<blk>", " ", *string.ascii_lowercase, "'"]
    start = time.perf_counter()
    decoder = decoding.CTCDecoder(tokens, grammar=text, grammar_threshold=0.0)
    assert time.perf_counter() - start < 30  # 0.7 s alone, was 28 s and 1.7 GB
    spoken = f"{words[3]} {words[1500]}"
    frames = [k for ch in spoken for k in (tokens.index(ch), 0)]  # each token, then a blank
    lp = np.full((len(frames), len(tokens)), -10.0, np.float32)
    lp[np.arange(len(frames)), frames] = 0.0
    result = decoder.decode(lp)
    assert (result.text, result.intent) == (spoken, "c")


_RUNS = [
    "public <r> = [a] [b] [c] [d];",
    "public <r> = x [a] [b] [c] [d] y;",
    "public <r> = [a] [b | c d] [e*] [<s>] [[f] g] z; <s> = s1 | s2 s3;",
    "public <r> = (/1/ [a] [b] | /3/ c) [d] [e]; public <q> = [a] [q1] [q2]+;",
    "public <r> = ([a] [b] [c])* end;",
    "public <r> = [a] [b]; public <t> = [c] [a] [b];",
    "public <r> = a* [b] (c | d e)* [f]* ([g] h)* x;",
    "public <r> = x ([a] b*)* [(/1/ c | /2/ d)*] <s>* y; <s> = s1 | [s2] s3;",
]


@pytest.mark.parametrize("text", _RUNS)
def test_runs_built_through_hubs_accept_what_the_epsilon_chain_accepts(monkeypatch, text):
    monkeypatch.setattr(grammars, "_OPTIONAL_RUN_FOR_HUBS", 10**9)
    chained = Grammar.from_jsgf(text)
    monkeypatch.setattr(grammars, "_OPTIONAL_RUN_FOR_HUBS", 1)
    hubs = Grammar.from_jsgf(text)
    sentences = set(chained.sentences(max_words=8))
    assert set(hubs.sentences(max_words=8)) == sentences
    for _, sentence in sentences:  # same intent and best weight
        assert hubs.match(sentence) == chained.match(sentence)


def test_runs_built_through_hubs_keep_slots(monkeypatch):
    intents = {"A": ["[please] [{x}] [the] {x} [now] [ok]"], "B": ["[{x}] [{x}]"]}
    slots = {"x": ["one", "two three"]}
    monkeypatch.setattr(grammars, "_OPTIONAL_RUN_FOR_HUBS", 10**9)
    chained = Grammar.from_intents(intents, slots)
    monkeypatch.setattr(grammars, "_OPTIONAL_RUN_FOR_HUBS", 1)
    hubs = Grammar.from_intents(intents, slots)
    assert set(hubs.sentences()) == set(chained.sentences())
    for _, sentence in chained.sentences():
        assert hubs.match(sentence) == chained.match(sentence)


@pytest.mark.parametrize("seed", range(4))
def test_decoding_a_long_optional_run_is_unchanged_by_hubs(monkeypatch, seed):
    tokens = ["_", "a", "b", " "]
    words = ["a", "b", "ab", "ba", "aab", "bb"] * 4  # 24 optional words, then "b"
    text = "public <r> = " + " ".join(f"[{w}]" for w in words) + " b;"
    lp = log_softmax(np.random.default_rng(seed).normal(size=(14, 4)) * 2.0).astype(np.float32)
    results = []
    for run_for_hubs in (10**9, 16):
        monkeypatch.setattr(grammars, "_OPTIONAL_RUN_FOR_HUBS", run_for_hubs)
        grammar = Grammar.from_jsgf(text)
        results.append(
            (len(grammar.arcs), decoding.CTCDecoder(tokens, grammar=grammar, grammar_threshold=0.0).decode(lp))
        )
    (chained_arcs, chained), (hub_arcs, hubs) = results
    assert hub_arcs < chained_arcs
    # the same tokens; words that spell them alike ("bb a b", "b ba b") tie
    assert (hubs.text.replace(" ", ""), hubs.intent) == (chained.text.replace(" ", ""), chained.intent)
    assert hubs.score == pytest.approx(chained.score, abs=1e-4)


def test_2000_repeated_words_compile_to_n_log_n_arcs():
    # "w0* w1* ... w1999* end": 2,001,000 arcs chained by epsilons, in a run like [w0] [w1] ...
    grammar = Grammar.from_jsgf("public <r> = " + " ".join(f"w{i}*" for i in range(2000)) + " end;")
    assert len(grammar.arcs) <= 5 * 2000 * math.log2(2000)  # 91,842
    assert grammar.match("w3 w3 w3 w1500 w1999 w1999 end") == ("r", {})
    assert grammar.match("w3 w2 end") is None


def _optional_pairs(n: int) -> str:
    # items that end optionally: the epsilon out of each item's middle still reaches every later item
    return "public <r> = " + " ".join(f"[w{i} [v{i}]]" for i in range(n)) + " end;"


def test_2000_optional_pairs_are_refused_at_the_arc_limit():
    start = time.perf_counter()
    with pytest.raises(
        limits.ResourceLimitError,
        match=rf"max_grammar_arcs={limits.Limits().max_grammar_arcs} .*override\(max_grammar_arcs=",
    ):
        Grammar.from_jsgf(_optional_pairs(2000))
    assert time.perf_counter() - start < 60  # 3.5 s alone


def test_compiling_to_the_limit_takes_memory_in_proportion_to_the_limit():
    text = _optional_pairs(2000)
    tracemalloc.start()
    try:
        with (
            limits.override(max_grammar_arcs=100_000),
            pytest.raises(limits.ResourceLimitError, match="JSGF: word arcs"),
        ):
            Grammar.from_jsgf(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20  # the old builder held 1.7 GB for 2 M arcs


def test_override_raises_and_lowers_the_arc_limit():
    text = _optional_pairs(100)
    grammar = Grammar.from_jsgf(text)
    with limits.override(max_grammar_arcs=len(grammar.arcs)):
        assert len(Grammar.from_jsgf(text).arcs) == len(grammar.arcs)
    with limits.override(max_grammar_arcs=len(grammar.arcs) - 1):
        with pytest.raises(limits.ResourceLimitError, match="max_grammar_arcs"):
            Grammar.from_jsgf(text)
    with limits.override(max_grammar_arcs=2999), pytest.raises(limits.ResourceLimitError, match="max_grammar_arcs"):
        Grammar.from_yaml(_slot_references(10, 300))


def test_the_state_limit_is_a_resource_limit():
    with limits.override(max_grammar_states=50), pytest.raises(limits.ResourceLimitError, match="max_grammar_states"):
        Grammar.from_jsgf(_optional_chain(100))  # 2 hub states per item


@pytest.mark.parametrize("weight", ["/inf/", "/nan/", "/0/", "/-1/", "/-0.5/", "/1e999/", "/two/", "/ /"])
def test_bad_jsgf_weights_name_the_weight_and_its_place(weight):
    text = "#JSGF V1.0;\npublic <r> = /1/ a |\n   " + weight + " b;\n"
    with pytest.raises(ValueError) as caught:
        Grammar.from_jsgf(text)
    message = str(caught.value)
    assert "line 3, column 4" in message and repr(weight) in message
    assert "math domain" not in message


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (("1e308", "1e308"), (math.log(0.5), math.log(0.5))),  # the sum overflowed: "math domain error"
        (("5e-324", "1e308"), (math.log(5e-324) - math.log(1e308), 0.0)),  # the ratio underflowed
        (("1", "3"), (math.log(0.25), math.log(0.75))),
    ],
)
def test_extreme_jsgf_weights_are_normalised_in_the_log_domain(weights, expected):
    grammar = Grammar.from_jsgf(f"public <r> = /{weights[0]}/ a | /{weights[1]}/ b;")
    by_word = {arc.word: arc.weight for arc in grammar.arcs}
    assert by_word["a"] == pytest.approx(expected[0]) and by_word["b"] == pytest.approx(expected[1])
    assert all(math.isfinite(w) for w in by_word.values())
