"""Grammar compilation stays bounded on hostile grammars (issue #16, items 2 and 10): slot
references and alternatives are linear in arcs, runs of optional items are stopped by the
``max_grammar_arcs`` limit while compiling, and JSGF weights get clear errors."""

import math
import time
import tracemalloc

import pytest

from edge_speech import limits
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


def test_2000_optional_words_are_refused_at_the_arc_limit():
    # was 2.0 M arcs, 28 s, 1.7 GB; without epsilons a run of n optional words needs n^2/2 arcs,
    # so the arcs are counted as they are made and compiling stops at the limit
    text = _optional_chain(2000)
    start = time.perf_counter()
    with pytest.raises(limits.ResourceLimitError, match=r"max_grammar_arcs=2000000 .*override\(max_grammar_arcs="):
        Grammar.from_jsgf(text)
    assert time.perf_counter() - start < 60


def test_compiling_to_the_limit_takes_memory_in_proportion_to_the_limit():
    text = _optional_chain(2000)
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
    assert peak < 100 << 20  # about 15 MB; the old builder held 1.7 GB


def test_override_raises_and_lowers_the_arc_limit():
    text = _optional_chain(100)  # (101 * 102) / 2 arcs: from each state, every later word and "end"
    grammar = Grammar.from_jsgf(text)
    assert len(grammar.arcs) == 101 * 102 // 2
    with limits.override(max_grammar_arcs=len(grammar.arcs)):
        assert len(Grammar.from_jsgf(text).arcs) == len(grammar.arcs)
    with limits.override(max_grammar_arcs=len(grammar.arcs) - 1):
        with pytest.raises(limits.ResourceLimitError, match="max_grammar_arcs"):
            Grammar.from_jsgf(text)
    with limits.override(max_grammar_arcs=2999), pytest.raises(limits.ResourceLimitError, match="max_grammar_arcs"):
        Grammar.from_yaml(_slot_references(10, 300))


def test_the_state_limit_is_a_resource_limit():
    with limits.override(max_grammar_states=50), pytest.raises(limits.ResourceLimitError, match="max_grammar_states"):
        Grammar.from_jsgf(_optional_chain(100))


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
