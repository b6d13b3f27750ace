"""Property-based fuzzing of the parsers that read untrusted files: WAV bytes, a bundle's manifest,
JSGF grammars and intent YAML. Each input either gives a result or raises a clean error (ValueError,
which ResourceLimitError and BundleError are, TypeError or OSError), never another exception, and
each finishes quickly. Inputs are generated from the formats' structure (valid headers with lying
fields, JSON documents with wrong types, grammars nested deep); test_decoding_fuzz.py mutates sample
texts byte by byte instead. The C parsers are fuzzed with libFuzzer (native/fuzz). The example counts
are fixed and derandomized: this module is the Python side of the test suite's fuzz budget."""

from __future__ import annotations

import json
import random
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_bundles import make_bundle

from edge_speech import audio
from edge_speech.bundle import Bundle
from edge_speech.decoding import Grammar

CLEAN_ERRORS = (ValueError, TypeError, OSError)
SECONDS_PER_INPUT = 5.0  # generous on a loaded CI machine; a hang or blow-up takes far longer
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def parses_cleanly(parse, *args):
    """parse(*args)'s result, or None when it raised a clean error; fails on any other exception
    or when it took too long."""
    start = time.monotonic()
    try:
        return parse(*args)
    except CLEAN_ERRORS:
        return None
    finally:
        assert time.monotonic() - start < SECONDS_PER_INPUT


# -- WAV --------------------------------------------------------------------------------------

U32 = st.one_of(
    st.sampled_from([0, 1, 2, 3, 15, 16, 17, 18, 40, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF]), st.integers(0, 2**32 - 1)
)
U16 = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 8, 16, 24, 32, 64, 0xFFFE, 0xFFFF]), st.integers(0, 2**16 - 1))


def usual_or_any(usual: list, anything: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    """One of the usual values, or now and then any value at all."""
    return st.integers(0, len(usual)).flatmap(lambda i: st.just(usual[i]) if i < len(usual) else anything)


@st.composite
def wav_files(draw) -> bytes:
    """A RIFF/WAVE file built chunk by chunk, each field valid or a lie, then perhaps damaged."""
    tag = draw(usual_or_any([1, 1, 3, 0xFFFE, 2, 0], U16))
    channels = draw(usual_or_any([1, 1, 2, 6], U16))
    rate = draw(usual_or_any([8000, 16000, 16000, 44100, 1000, 999, 768000, 768001], U32))
    bits = draw(usual_or_any([8, 16, 16, 24, 32, 64], U16))
    block = max(1, channels * ((bits + 7) // 8)) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the real tag 24 bytes in
        fmt += struct.pack("<HHIH", 22, bits, 0, draw(st.sampled_from([1, 3]) | U16)) + bytes(14)
    if draw(st.integers(0, 9)) == 9:  # (hypothesis favours small integers: the rare case is the large one)
        fmt = fmt[: draw(st.integers(0, len(fmt)))]
    data = draw(st.binary(max_size=512))
    chunks = []
    for chunk_id, body in draw(
        st.sampled_from(
            [
                [(b"fmt ", fmt), (b"data", data)],
                [(b"fmt ", fmt), (b"data", data)],
                [(b"fmt ", fmt), (b"LIST", b"INFOjunk!"), (b"data", data)],
                [(b"data", data), (b"fmt ", fmt)],
                [(b"fmt ", fmt)],
                [(b"fmt ", fmt), (b"fmt ", fmt[:4]), (b"data", data)],
            ]
        )
    ):
        size = draw(U32) if draw(st.integers(0, 3)) == 3 else len(body)  # the size field may lie
        chunks.append(chunk_id + struct.pack("<I", size) + body + (b"\0" if len(body) % 2 else b""))
    payload = b"WAVE" + b"".join(chunks)
    riff_size = len(payload) if draw(st.booleans()) else draw(U32)
    wav = draw(st.sampled_from([b"RIFF"] * 6 + [b"RIFX", b"FORM"])) + struct.pack("<I", riff_size) + payload
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):  # damage: flip, truncate or drop bytes
        at = draw(st.integers(12, max(12, len(wav))))  # after the RIFF header, mostly
        how = draw(st.integers(0, 2))
        if how == 0 and at < len(wav):
            wav = wav[:at] + bytes([draw(st.integers(0, 255))]) + wav[at + 1 :]
        elif how == 1:
            wav = wav[:at]
        else:
            wav = wav[:at] + wav[at + draw(st.integers(1, 16)) :]
    return wav


@settings(FUZZ, max_examples=600)
@given(wav=wav_files())
def test_a_damaged_or_lying_wav_file_reads_or_raises_a_clean_error(tmp_path_factory, wav):
    path = tmp_path_factory.mktemp("wav") / "input.wav"
    path.write_bytes(wav)
    result = parses_cleanly(audio.read_wav, path)
    if result is not None:
        samples, rate = result
        assert samples.dtype == np.float32 and samples.ndim == 1
        assert np.all(np.isfinite(samples)) and np.all(np.abs(samples) <= 1.0 + 1e-6)
        assert isinstance(rate, int) and rate > 0


# -- bundle manifest --------------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["onnx", "ctc", "model.onnx", "../model.onnx", "/etc/hostname", "", "fbank", "sliding"]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_manifests(draw, manifest: dict) -> str:
    """The tiny bundle's manifest with a few values replaced by other JSON (wrong types, missing
    keys, nesting), or its text cut, or nested very deep."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        text = json.dumps(manifest)
        return text[: draw(st.integers(0, len(text)))]
    if kind == 1:
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        return json.dumps({**manifest, "decoder": "@"}).replace('"@"', "[" * depth + "]" * depth)
    doc = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        # walk down to a random dict or list, then replace, add or delete one of its entries
        for _ in range(draw(st.integers(0, 3))):
            children = list(node.values()) if isinstance(node, dict) else node
            containers = [c for c in children if isinstance(c, (dict, list)) and c]
            if not containers:
                break
            node = draw(st.sampled_from(containers))
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)) | st.text(max_size=8))
            if draw(st.booleans()) or key not in node:
                node[key] = draw(JSON_VALUES)
            else:
                del node[key]
        elif node:
            node[draw(st.integers(0, len(node) - 1))] = draw(JSON_VALUES)
    return json.dumps(doc)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle"), embed=False)


def test_the_unmutated_tiny_bundle_loads(tiny_bundle):
    assert Bundle.load(tiny_bundle).manifest.name == "tiny"


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_a_manifest_of_wrong_types_loads_or_raises_a_clean_error(tiny_bundle, tmp_path_factory, data):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    directory = tmp_path_factory.mktemp("mutated")
    for member in tiny_bundle.iterdir():
        if member.name != "manifest.json":
            shutil.copyfile(member, directory / member.name)
    (directory / "manifest.json").write_text(data.draw(mutated_manifests(manifest)))
    parses_cleanly(Bundle.load, directory)


# -- JSGF -------------------------------------------------------------------------------------

WORD_LIST = ["turn", "on", "off", "the", "light", "kitchen", "two"]
ODD_WORDS = ["é", "ok-go", "42", "<NULL>", "<VOID>", "<undefined>", ";", "=", "/", "*"]
WORDS = st.sampled_from(WORD_LIST)
WEIGHTS = ["1", "0.5", "2", "10"]
ODD_WEIGHTS = ["0", "-1", "1e308", "nan", "x", ""]


def sometimes_odd(rng: random.Random, usual: list, odd: list) -> str:
    return rng.choice(odd if rng.random() < 0.05 else usual)


def jsgf_expression(rng: random.Random, rules: list, depth: int = 0) -> str:
    """A random JSGF expression over WORD_LIST and the rules (built from a seeded generator:
    hypothesis's recursive strategies cost far more than the parser does)."""
    if depth > 4 or rng.random() < 0.3:
        return sometimes_odd(rng, WORD_LIST + [f"<{r}>" for r in rules], ODD_WORDS)
    parts = [jsgf_expression(rng, rules, depth + 1) for _ in range(rng.randint(1, 4))]
    form = rng.randrange(8)
    if form == 0:
        return " ".join(parts)
    if form == 1:
        return " | ".join(parts)
    if form == 2:
        return "(" + " | ".join(f"/{sometimes_odd(rng, WEIGHTS, ODD_WEIGHTS)}/ {p}" for p in parts) + ")"
    inner = " ".join(parts)
    return ["[{}]", "({})", "({})*", "({})+", "{} {{tag}}"][form - 3].format(inner)


@st.composite
def jsgf_grammars(draw) -> str:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    if rng.randrange(8) == 0:  # nesting deeper than any recursion limit
        depth = rng.choice([200, 600, 5000])
        opener, closer = rng.choice([("(", ")"), ("[", "]"), ("(", ")+")])
        return f"public <r> = {opener * depth}word{closer * depth};"
    names = rng.sample(["a", "b", "c", "d", "cmd"], rng.randint(1, 4))
    lines = ["#JSGF V1.0;", "grammar fuzz;"] if rng.random() < 0.5 else []
    for i, name in enumerate(names):
        public = "public " if i == 0 or rng.random() < 0.5 else ""
        end = ";" if rng.random() < 0.97 else ""
        lines.append(f"{public}<{name}> = {jsgf_expression(rng, names)}{end}")
    return "\n".join(lines)


@settings(FUZZ, max_examples=300)
@given(text=jsgf_grammars())
def test_a_generated_jsgf_grammar_compiles_or_raises_a_clean_error(text):
    grammar = parses_cleanly(Grammar.from_jsgf, text)
    if grammar is not None:
        for _ in zip(range(20), grammar.sentences(6)):
            pass


# -- intent YAML ------------------------------------------------------------------------------

TEMPLATE_PARTS = WORD_LIST + ["{room}", "[please]", "(on | up)", "[the] {minutes}"]
ODD_PARTS = ["{missing}", "[", ")", "{", "|", '"', "#", "[]", "()", "{room"]
YAML_SCALARS = [None, 0, -1, True, "", "~", "[]", "{}", "&a", "*a", "- x", "a: b"]


def quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def odd_yaml_value(rng: random.Random, depth: int = 0):
    if depth > 2 or rng.random() < 0.5:
        return rng.choice(YAML_SCALARS)
    return [odd_yaml_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


@st.composite
def intent_yaml(draw) -> str:
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    kind = rng.randrange(10)
    if kind == 0:  # nesting deeper than any recursion limit
        depth = rng.choice([300, 2000])
        return "intents:\n  A:\n    - " + "[" * depth + "x" + "]" * depth + "\n"
    if kind == 1:  # a YAML document of the wrong shape
        return f"intents: {json.dumps(odd_yaml_value(rng))}\nslots: {json.dumps(odd_yaml_value(rng))}\n"
    lines = ["intents:"]
    for name in rng.sample(["LightOn", "Timer", "x", "123", "a b"], rng.randint(1, 3)):
        lines.append(f"  {name}:")
        for _ in range(rng.randint(1, 3)):
            template = " ".join(sometimes_odd(rng, TEMPLATE_PARTS, ODD_PARTS) for _ in range(rng.randint(1, 6)))
            lines.append(f"    - {quoted(template)}")
    lines.append("slots:")
    for slot in ["room", "minutes"] + (["unused"] if rng.random() < 0.2 else []):
        values = [sometimes_odd(rng, WORD_LIST, ["", "two words", "a, b", "{room}"]) for _ in range(rng.randint(1, 4))]
        lines.append(
            f"  {slot}: [{', '.join(map(quoted, values))}]"
            if rng.random() < 0.9
            else f"  {slot}: {quoted(str(values))}"
        )
    return "\n".join(lines) + "\n"


@settings(FUZZ, max_examples=300)
@given(text=intent_yaml())
def test_generated_intent_yaml_compiles_or_raises_a_clean_error(text):
    grammar = parses_cleanly(Grammar.from_yaml, text)
    if grammar is not None:
        for _ in zip(range(20), grammar.sentences(8)):
            pass
