"""The manifest against its JSON schema (issue 16): the schema and the runtime's hand-written
checks refuse the same bad manifests, errors name the JSON path and the schema's complaint, and
every integer that sizes work or memory is bounded (a ``stream_context_frames`` of 1e9 once
made streaming quadratic)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import time
from pathlib import Path

import jsonschema
import pytest
from tiny_bundles import make_bundle

from edge_speech import limits, manifest
from edge_speech.bundle import Bundle
from edge_speech.limits import ResourceLimitError
from edge_speech.manifest import SCHEMA, BundleError, Manifest

DEFAULT_MANIFEST = json.loads(
    (Path(manifest.__file__).parent / "models" / "default" / "manifest.json").read_text(encoding="utf-8")
)
HUGE = 10**9


def stateful(data: dict) -> None:
    data["schema_version"] = 3
    data["format_inputs"] = {}
    data["input"] = {
        "name": "features",
        "chunk_frames": 32,
        "chunk_range_name": "range",
        "state": [{"input": "h_in", "output": "h_out", "shape": [2, 1, 64]}],
    }


def state_shape(shape):
    def edit(data):
        stateful(data)
        data["input"]["state"][0]["shape"] = shape

    return edit


def many_states(data):
    stateful(data)
    data["input"]["state"] = [{"input": f"in{i}", "output": f"out{i}", "shape": [1]} for i in range(65)]


BAD_MANIFESTS = {
    "stream_context_frames 1e9": lambda d: d["input"].update(stream_context_frames=HUGE),
    "stream_context_frames -1": lambda d: d["input"].update(stream_context_frames=-1),
    "stream_context_frames 1.5": lambda d: d["input"].update(stream_context_frames=1.5),
    "chunk_frames 1e9": lambda d: d["input"].update(chunk_frames=HUGE),
    "chunk_frames 0": lambda d: d["input"].update(chunk_frames=0),
    "chunk_frames a string": lambda d: d["input"].update(chunk_frames="32"),
    "left_context_frames 1e6": lambda d: d["input"].update(left_context_frames=10**6),
    "right_context_frames 1e6": lambda d: d["input"].update(right_context_frames=10**6),
    "max_frames 1e9": lambda d: d["input"].update(max_frames=HUGE),
    "clip_frames 1e9": lambda d: d["input"].update(clip_frames=HUGE),
    "tflite chunk_frames 1e9": lambda d: d["format_inputs"]["tflite"].update(chunk_frames=HUGE),
    "sample_rate 2**50": lambda d: d.update(sample_rate=2**50),
    "sample_rate 0": lambda d: d.update(sample_rate=0),
    "subsampling_factor 1e9": lambda d: d.update(subsampling_factor=HUGE),
    "blank_id -1": lambda d: d.update(blank_id=-1),
    "no tokens": lambda d: d.update(tokens=[]),
    "tokens not a list": lambda d: d.update(tokens="abc"),
    "output null": lambda d: d.update(output=None),
    "input a string": lambda d: d.update(input="features"),
    "models null": lambda d: d.update(models=None),
    "decoder a string": lambda d: d.update(decoder="x"),
    "decoder beam 0": lambda d: d["decoder"].update(beam=0),
    "decoder unknown key": lambda d: d["decoder"].update(beem=4),
    "kind unknown": lambda d: d.update(kind="seq2seq"),
    "layout unknown": lambda d: d["input"].update(layout="diagonal"),
    "state dimension 70000": state_shape([70000, 1, 1]),
    "state dimension 0": state_shape([2, 0, 64]),
    "state of 9 dimensions": state_shape([1] * 9),
    "65 state tensors": many_states,
    "waveform input with features": lambda d: d.update(schema_version=2, format_inputs={}, input={"kind": "waveform"}),
}


def edited(edit) -> dict:
    data = copy.deepcopy(DEFAULT_MANIFEST)
    edit(data)
    return data


def test_the_shipped_manifests_and_a_stateful_one_pass_both():
    jsonschema.validate(DEFAULT_MANIFEST, SCHEMA)
    assert Manifest.from_dict(DEFAULT_MANIFEST).input.stream_context_frames == 328
    good = edited(stateful)
    jsonschema.validate(good, SCHEMA)
    assert Manifest.from_dict(good).input.state[0].shape == (2, 1, 64)


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_the_schema_and_the_hand_written_checks_refuse_the_same_manifests(case, monkeypatch):
    data = edited(BAD_MANIFESTS[case])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)
    with pytest.raises(BundleError) as with_schema:
        Manifest.from_dict(data, "manifest.json")
    assert manifest.schema_complaint(data) in str(with_schema.value)  # the schema's words, with the path
    monkeypatch.setattr(manifest, "_schema_validator", lambda: None)
    with pytest.raises(BundleError, match="^manifest.json: "):
        Manifest.from_dict(data, "manifest.json")


@pytest.mark.parametrize("schema", ["jsonschema", "hand-written"])
def test_stream_context_frames_of_1e9_is_refused_at_once_naming_the_path_and_bound(tmp_path, schema, monkeypatch):
    if schema == "hand-written":
        monkeypatch.setattr(manifest, "_schema_validator", lambda: None)
    directory = make_bundle(tmp_path / "b")
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    data["input"]["stream_context_frames"] = HUGE
    path.write_text(json.dumps(data))
    start = time.perf_counter()
    with pytest.raises(BundleError) as refused:
        Bundle.load(directory)
    assert time.perf_counter() - start < 1.0
    assert str(refused.value) == (
        f"{directory}/manifest.json: input.stream_context_frames: 1000000000 is greater than the maximum of 4096"
    )


def test_errors_quote_a_huge_offending_value_briefly():
    data = edited(lambda d: d.update(output=["x" * 100] * 10_000))
    with pytest.raises(BundleError, match=r"output: \[.*…") as refused:
        Manifest.from_dict(data, "manifest.json")
    assert len(str(refused.value)) < 600


def test_a_state_tensor_too_big_in_all_is_refused_though_each_dimension_is_allowed():
    data = edited(state_shape([4096, 4096, 2]))
    jsonschema.validate(data, SCHEMA)  # a product is beyond JSON Schema; the runtime checks it
    with pytest.raises(BundleError, match=r"shape \[4096, 4096, 2\] has 33554432 elements, more than the maximum"):
        Manifest.from_dict(data)


def test_bounds_hold_for_manifests_built_in_python_too():
    with pytest.raises(
        BundleError, match="input.stream_context_frames: 1000000000 is greater than the maximum of 4096"
    ):
        manifest.InputSpec(stream_context_frames=HUGE)
    with pytest.raises(BundleError, match="input.chunk_frames: 1.5 is not of type 'integer'"):
        manifest.InputSpec(chunk_frames=1.5)  # type: ignore[arg-type]


def test_an_oversized_manifest_file_is_refused_unread(tmp_path):
    directory = make_bundle(tmp_path / "b")
    with open(directory / "manifest.json", "r+b") as file:
        file.truncate(64 << 20)  # sparse: nothing is written
    with pytest.raises(BundleError, match="manifest.json: 67108864 bytes; a manifest is at most 16777216"):
        Bundle.load(directory)


def test_a_gzip_bomb_lm_inside_a_bundle_is_inflated_no_further_than_the_limit(tmp_path):
    directory = make_bundle(tmp_path / "b")
    bomb = gzip.compress(b"\\data\\\nngram 1=1\n" + b"\n" * (32 << 20), compresslevel=9)
    (directory / "lm.arpa.gz").write_bytes(bomb)
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    data["decoder"] = {"lm": "lm.arpa.gz"}
    data["files"]["lm.arpa.gz"] = {"sha256": hashlib.sha256(bomb).hexdigest(), "size": len(bomb)}
    path.write_text(json.dumps(data))
    with limits.override(max_lm_bytes=4 << 20):
        with pytest.raises(ResourceLimitError, match="lm.arpa.gz: decompressed size: over 4194304 bytes"):
            Bundle.load(directory)
    assert len(Bundle.load(directory).lm_text or b"") > 32 << 20  # under the default limit it loads
