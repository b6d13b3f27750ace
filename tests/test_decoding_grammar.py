"""Grammars: JSGF and intent templates accept exactly the sentences they define (enumeration of
small grammars against hand-written sets), constrained decoding finds the best in-grammar
alignment (against enumeration of every alignment), malformed grammars name line and column, and
rejection rates on synthesized in- and out-of-grammar logits."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from decoding_reference import log_softmax
from decoding_texts import INTENTS, JSGF

from edge_speech import decoding
from edge_speech.decoding import Grammar


def _sentences(grammar, max_words=12):
    return set(grammar.sentences(max_words))


def test_intent_yaml_accepts_exactly_its_sentences():
    rooms, minutes = ["kitchen", "bedroom", "garage"], ["two", "five", "ten"]
    expected = {("LightOn", f"turn on the {r} light") for r in rooms}
    expected |= {
        ("LightOn", f"{p}switch {v} the {r} light") for p in ("", "please ") for v in ("on", "up") for r in rooms
    }
    expected |= {("Timer", f"set a timer for {m} minutes") for m in minutes}
    assert _sentences(Grammar.from_yaml(INTENTS)) == expected


def test_jsgf_nested_rules_and_optional_words():
    expected = {("command", "stop")}
    expected |= {
        ("command", f"{a} {t}{o} light")
        for a in ("turn on", "switch off")
        for t in ("", "the ")
        for o in ("kitchen", "bedroom")
    }
    assert _sentences(Grammar.from_jsgf(JSGF)) == expected


def test_jsgf_repetition_and_several_public_rules():
    g = Grammar.from_jsgf("""
        public <digits> = <digit>+ ;
        public <call> = call [<digit>*] now;
        <digit> = one | two;
    """)
    got = _sentences(g, max_words=3)
    digits = lambda n: {" ".join(p) for p in itertools.product(["one", "two"], repeat=n)}
    expected = {("digits", s) for n in (1, 2, 3) for s in digits(n)}
    expected |= {("call", "call now")} | {("call", f"call {s} now") for s in digits(1)}
    assert got == expected
    g = Grammar.from_jsgf("public <x> = (a | b)* c;")
    assert {s for _, s in g.sentences(3)} == {"c"} | {f"{x} c" for x in "ab"} | {
        f"{x} {y} c" for x in "ab" for y in "ab"
    }


def test_slot_values_with_several_words_and_block_lists():
    g = Grammar.from_yaml("""
intents:
  Go:
    - go to the {place}
slots:
  place:
    - living room
    - 'hall'
""")
    assert _sentences(g) == {("Go", "go to the living room"), ("Go", "go to the hall")}


@pytest.mark.parametrize(
    "text, message",
    [
        ("public <a> = b", "JSGF: line 1, column 15: expected ';'"),
        ("public <a> = (b | c;", "line 1, column 20: expected ')'"),
        ("public <a> = b;\npublic <a> = c;", "line 2, column 8: rule <a> is defined twice"),
        ("public <a> = <b>;", "line 1, column 14: unknown rule <b>"),
        ("public <a> = x <a>;", "line 1, column 16: rule <a> refers to itself"),
        ("<a> = b;", "no public rule"),
        ("public <a> = ;", "line 1, column 14: empty expansion"),
        ("public <a> = b;\n  import <x.y>;", "line 2, column 3: import is not supported"),
        ("public <a> = /2/ b | c;", "line 1, column 22: give weights to all"),
        ("public <a> = b };", "line 1, column 16: unexpected character '}'"),
    ],
)
def test_malformed_jsgf_names_line_and_column(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Grammar.from_jsgf(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("intents:\n  A:\n    - turn (on | off\n", "line 3, column 21: expected ')'"),
        ("intents:\n  A:\n    - set {nope}\n", "line 3, column 11: unknown slot {nope}"),
        ("intents:\n  A: hello\n", "line 2, column 6: list the templates"),
        ("intent:\n  A:\n    - x\n", "line 1, column 1: expected 'intents:' or 'slots:'"),
        ('intents:\n  A:\n    - x\nslots:\n  s: [a, "b]\n', "line 5, column 6: unterminated quote"),
        ("intents:\n  A:\n", "intent 'A' has no templates"),
        ("slots:\n  s: [a]\n", "no 'intents:' section"),
        ("intents:\n  A:\n    - x\n  A:\n    - y\n", "line 4, column 3: 'A' is defined twice"),
    ],
)
def test_malformed_intent_yaml_names_line_and_column(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Grammar.from_yaml(text)


# -- constrained decoding against enumeration of alignments --------------------------------------

TOKENS = ["_", "a", "b", " "]


def _best_in_language(lp, pattern, weights=None):
    """The best alignment whose collapsed labels match the regex (spaces = separator token)."""
    T, V = lp.shape
    paths = np.array(list(itertools.product(range(V), repeat=T)))
    scores = lp[np.arange(T), paths].sum(axis=1)
    best, best_text = -np.inf, None
    for path, score in zip(paths, scores):
        labels = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        text = "".join(TOKENS[k] for k in labels)
        m = re.fullmatch(pattern, text)
        if m:
            score = score + (weights(m) if weights else 0.0)
            if score > best:
                best, best_text = score, text
    return best, best_text


@pytest.mark.parametrize("seed", range(6))
def test_constrained_search_finds_the_best_in_grammar_alignment(seed):
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.normal(size=(6, 4)) * 2.0).astype(np.float32)
    g = Grammar.from_intents({"X": ["a b", "ab", "b [a] a"]})
    dec = decoding.CTCDecoder(TOKENS, grammar=g, grammar_threshold=0.0)
    res = dec.decode(lp)
    # separators may appear any number of times between, before and after words
    pattern = r" *(?:a *b|ab|b *(?:a *)?a) *"
    best, text = _best_in_language(lp.astype(np.float64), pattern)
    assert res.score == pytest.approx(best, abs=1e-4)
    assert res.intent == "X"
    assert res.text.replace(" ", "") == text.replace(" ", "")


@pytest.mark.parametrize("seed", range(4))
def test_a_token_bonus_ranks_by_score_plus_bonus_per_spelled_token_and_reports_the_plain_score(seed):
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.normal(size=(6, 4)) * 2.0).astype(np.float32)
    g = Grammar.from_intents({"X": ["a", "a b a", "b"]})
    bonus = 1.5
    res = decoding.CTCDecoder(TOKENS, grammar=g, grammar_threshold=0.0, grammar_token_bonus=bonus).decode(lp)
    pattern = r" *(a|a *b *a|b) *"
    best, text = _best_in_language(
        lp.astype(np.float64), pattern, weights=lambda m: bonus * len(m.group(1).replace(" ", ""))
    )
    assert res.text.replace(" ", "") == text.replace(" ", "")
    assert res.score == pytest.approx(best - bonus * len(text.replace(" ", "")), abs=1e-4)
    plain = decoding.CTCDecoder(TOKENS, grammar=g, grammar_threshold=0.0).decode(lp)
    if plain.text == res.text:  # same sentence: the same confidence, the bonus left out
        assert res.confidence == pytest.approx(plain.confidence, abs=1e-6)
    for bad in (float("nan"), 1e7):  # the C search bounds arc weights: sums stay finite
        with pytest.raises(ValueError, match="grammar_token_bonus"):
            decoding.CTCDecoder(TOKENS, grammar=g, grammar_token_bonus=bad)


def test_jsgf_weights_enter_the_score():
    rng = np.random.default_rng(7)
    lp = log_softmax(rng.normal(size=(5, 4))).astype(np.float32)
    g = Grammar.from_jsgf("public <x> = /3/ a | /1/ b;")
    res = decoding.CTCDecoder(TOKENS, grammar=g, grammar_threshold=0.0).decode(lp)
    best, text = _best_in_language(
        lp.astype(np.float64), r" *(a|b) *", weights=lambda m: np.log(0.75) if m.group(1) == "a" else np.log(0.25)
    )
    assert res.score == pytest.approx(best, abs=1e-4)
    assert res.text == text.strip()


# -- rejection on synthesized logits --------------------------------------------------------------

CHARS = ["<blk>", "|"] + list("abcdefghijklmnopqrstuvwxyz'")

OUT_OF_GRAMMAR = [
    "turn off the kitchen light",
    "switch off the garage light",
    "turn on the hallway light",
    "set an alarm for ten minutes",
    "set a timer for twenty minutes",
    "what is the weather today",
    "play some music",
    "open the garage door",
    "call mom",
    "turn on the radio",
    "please stop",
    "how long is the timer",
    "switch on the kitchen fan",
    "dim the bedroom light",
    "cancel the timer",
    "good morning",
    "turn the kitchen light on",
    "set a reminder for five minutes",
    "lights off",
    "the kitchen light is broken",
]


def _synthesize(text, rng, frames_per_char=2, noise=0.6):
    """Peaky CTC-like posteriors for a sentence: each char held for a few frames, blanks between,
    noisy logits for everything else."""
    path = [0, 0]
    prev = None
    for ch in text.replace(" ", "|"):
        k = CHARS.index(ch)
        if k == prev:
            path.append(0)
        path += [k] * frames_per_char + [0] * int(rng.integers(0, 2))
        prev = k
    path += [0, 0]
    logits = rng.normal(size=(len(path), len(CHARS))) * noise
    logits[np.arange(len(path)), path] += float(rng.uniform(4.0, 7.0))
    return log_softmax(logits).astype(np.float32)


def test_rejection_rates_at_the_default_threshold(record_property):
    g = Grammar.from_yaml(INTENTS)
    dec = decoding.CTCDecoder(CHARS, grammar=g)
    rng = np.random.default_rng(2024)
    inside = sorted(s for _, s in g.sentences())
    accepted = correct = 0
    for text in inside:
        for _ in range(3):
            res = dec.decode(_synthesize(text, rng))
            accepted += res.intent is not None
            correct += res.text == text
    false_accepts = 0
    for text in OUT_OF_GRAMMAR:
        for _ in range(3):
            res = dec.decode(_synthesize(text, rng))
            false_accepts += res.intent is not None
            assert 0.0 <= res.confidence <= 1.0
    accept_rate = accepted / (3 * len(inside))
    false_accept_rate = false_accepts / (3 * len(OUT_OF_GRAMMAR))
    record_property("accept_rate", accept_rate)
    record_property("false_accept_rate", false_accept_rate)
    print(
        f"\nin-grammar accept rate {accept_rate:.3f} (exact text {correct / (3 * len(inside)):.3f}), "
        f"out-of-grammar false-accept rate {false_accept_rate:.3f} at threshold {dec.grammar_threshold}"
    )
    assert accept_rate >= 0.95
    assert correct == accepted
    assert false_accept_rate <= 0.10


def test_grammar_results_carry_intent_slots_and_times_and_stream_identically():
    g = Grammar.from_yaml(INTENTS)
    dec = decoding.CTCDecoder(CHARS, grammar=g, frame_shift_s=0.04)
    lp = _synthesize("please switch up the garage light", np.random.default_rng(1))
    res = dec.decode(lp)
    assert (res.intent, res.slots, res.text) == ("LightOn", {"room": "garage"}, "please switch up the garage light")
    assert [w.text for w in res.words] == res.text.split()
    assert all(a.end <= b.start for a, b in zip(res.words, res.words[1:]))
    assert res.words[0].start == pytest.approx(res.words[0].start_frame * 0.04)
    stream = dec.create_stream()
    for start in range(0, len(lp), 7):
        stream.accept(lp[start : start + 7])
        assert type(stream.partial) is type(res)  # a partial result is available mid-stream
    assert stream.finish() == res
    # below the threshold: no intent, but the best in-grammar guess stays inspectable
    rejected = dec.decode(_synthesize("what is the weather today", np.random.default_rng(2)))
    assert rejected.intent is None and rejected.slots is None and rejected.text == ""
    assert rejected.confidence < dec.grammar_threshold and rejected.nbest[0].text


def test_grammar_errors():
    g = Grammar.from_intents({"A": ["héllo"]})
    with pytest.raises(ValueError, match="cannot spell"):
        decoding.CTCDecoder(CHARS, grammar=g)
    with pytest.raises(ValueError, match="grammar_threshold"):
        decoding.CTCDecoder(CHARS, grammar=Grammar.from_intents({"A": ["hi"]}), grammar_threshold=2)
    with pytest.raises(ValueError, match="cannot be combined"):
        decoding.CTCDecoder(CHARS, grammar=Grammar.from_intents({"A": ["hi"]}), hotwords=["hi"])


def test_sentencepiece_grammar():
    tokens = ["<blk>", "▁turn", "▁on", "▁off", "▁the", "▁l", "ight", "▁lamp", "▁"]
    g = Grammar.from_jsgf("public <c> = turn (on | off) the (light | lamp);")
    dec = decoding.CTCDecoder(tokens, grammar=g)
    ids = [1, 3, 4, 5, 6]  # turn off the l ight
    path = []
    for k in ids:
        path += [k, k, 0]
    lp = np.log(np.full((len(path), len(tokens)), 0.01, np.float32))
    lp[np.arange(len(path)), path] = np.log(0.9)
    res = dec.decode(log_softmax(lp).astype(np.float32))
    assert res.text == "turn off the light" and res.intent == "c"


def test_the_beam_pruned_search_equals_the_exact_search_on_commands_and_never_beats_it():
    """The native search keeps only paths within its beam of the best. On real model output (en-small
    on the example commands) under grammars that hold them it finds exactly what the exhaustive
    search (an infinite beam) finds: the same steps, score and free score. On speech and noise
    outside a grammar it may miss the best in-grammar path, so its score is never higher: the
    confidence of out-of-grammar audio can only fall."""
    from pathlib import Path

    from edge_speech import Recognizer, _native, audio

    examples = Path(__file__).resolve().parents[1] / "recipes" / "default_model" / "examples"
    recognizer = Recognizer.default(threads=1)
    vocab = decoding.Vocabulary(recognizer.manifest.tokens)
    timer, light = (
        audio.load_audio(examples / f"{n}.wav", 16000)
        for n in ("set_a_timer_for_ten_minutes", "turn_on_the_kitchen_light")
    )
    noise = 0.05 * np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    commands = Grammar.from_yaml((examples / "commands.yaml").read_text())
    digits = Grammar.from_jsgf("public <digits> = (one | two | three | four | five | six | seven)* ;")
    cases = [  # (grammar, audio, whether the audio is in the grammar)
        (commands, timer, True),
        (commands, light, True),
        (Grammar.from_jsgf(JSGF), light, True),
        (commands, noise, False),
        (Grammar.from_jsgf(JSGF), timer, False),
        (digits, timer, False),
        (digits, np.concatenate([timer, light]), False),
    ]
    for grammar, samples, in_grammar in cases:
        graph = grammar.compile_tokens(vocab, 3.0)
        lp = recognizer.log_probs(samples)
        results = []
        for extra in ({"beam": float("inf")}, {}):
            search = _native.GrammarDecoder(
                graph.arcs.tobytes(), graph.num_states, 0, graph.finals.tobytes(), len(vocab), vocab.blank_id, **extra
            )
            search.accept(lp[:37])  # in two chunks, as streams feed it
            search.accept(lp[37:])
            steps, score, free = search.result()
            results.append((bytes(steps), score, free))
        (exact_steps, exact_score, exact_free), (steps, score, free) = results
        assert free == exact_free and score <= exact_score
        if in_grammar:
            assert (steps, score) == (exact_steps, exact_score)
    with pytest.raises(ValueError, match="beam must be > 0"):
        _native.GrammarDecoder(
            graph.arcs.tobytes(), graph.num_states, 0, graph.finals.tobytes(), len(vocab), 0, beam=0.0
        )
