"""Bundles (directory, zip, lone ONNX) and the ONNX Runtime backend, on tiny CTC models built in
the test; every way a bundle can be wrong gives a BundleError saying what."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import tiny_models
from conftest import noise
from tiny_bundles import FEATURES, make_bundle

from edge_speech import backends, features
from edge_speech.bundle import Bundle, BundleError, InputSpec, pack_bundle

SCHEMA = Path(features.__file__).parent / "schema" / "manifest.schema.json"


def edit_manifest(directory: Path, edit) -> None:
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_directory_bundle_round_trips_and_matches_the_json_schema(tmp_path):
    directory = make_bundle(tmp_path / "b")
    bundle = Bundle.load(directory)
    assert bundle.manifest.tokens == tuple(tiny_models.TOKENS) and bundle.manifest.features == FEATURES
    assert bundle.manifest.frame_shift_s == pytest.approx(0.02)
    data = json.loads((directory / "manifest.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert set(data["files"]) == {"model.onnx"} and len(data["files"]["model.onnx"]["sha256"]) == 64


def test_zip_bundles_load_flat_or_with_a_top_folder(tmp_path):
    directory = make_bundle(tmp_path / "b")
    flat = pack_bundle(directory, tmp_path / "flat.zip")
    assert Bundle.load(flat).manifest == Bundle.load(directory).manifest
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as zf:
        for path in directory.iterdir():
            zf.write(path, f"tiny-bundle/{path.name}")
    assert Bundle.load(nested).model_bytes == Bundle.load(directory).model_bytes


def test_lone_onnx_file_carries_its_manifest(tmp_path):
    directory = make_bundle(tmp_path / "b")
    lone = Bundle.from_model_file(directory / "model.onnx")
    assert lone.manifest.tokens == tuple(tiny_models.TOKENS)
    assert lone.manifest.features == FEATURES and lone.manifest.subsampling_factor == 2
    assert Bundle.load(directory / "model.onnx").manifest == lone.manifest


def test_onnx_without_manifest_metadata_is_explained(tmp_path):
    path = tmp_path / "plain.onnx"
    path.write_bytes(tiny_models.build(40))
    with pytest.raises(BundleError, match="no 'edge_speech.manifest' metadata"):
        Bundle.from_model_file(path)


def test_corrupted_model_fails_its_checksum(tmp_path):
    directory = make_bundle(tmp_path / "b")
    data = bytearray((directory / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        Bundle.load(directory)


def test_truncated_and_missing_files_are_named(tmp_path):
    directory = make_bundle(tmp_path / "b")
    data = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(data[:100])
    with pytest.raises(BundleError, match="model.onnx: size 100 bytes"):
        Bundle.load(directory)
    (directory / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing file 'model.onnx'"):
        Bundle.load(directory)
    with pytest.raises(BundleError, match="no such bundle"):
        Bundle.load(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema_version=4), "schema_version 4 is newer"),
        (lambda d: d.pop("tokens"), "missing required key 'tokens'"),
        (lambda d: d.update(kind="seq2seq"), "kind must be one of"),
        (lambda d: d.update(blank_id=99), "blank_id 99"),
        (lambda d: d["features"].update(num_mel_bins=500), "does not work at 16000 Hz"),
        (lambda d: d["features"].update(nonsense=1), "unknown feature config key"),
        (lambda d: d.update(models={"onnx": "other.onnx"}), "'other.onnx' has no checksum"),
        (lambda d: d["files"].update({"../escape.onnx": {"sha256": "0" * 64, "size": 1}}), "unsafe file name"),
        (lambda d: d.update(input={"layout": "diagonal"}), "input layout"),
    ],
)
def test_bad_manifests_say_what_is_wrong(tmp_path, edit, message):
    directory = make_bundle(tmp_path / "b")
    edit_manifest(directory, edit)
    with pytest.raises(BundleError, match=message):
        Bundle.load(directory)


def test_manifest_that_is_not_json(tmp_path):
    directory = make_bundle(tmp_path / "b")
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(directory)


def test_zip_with_escaping_member_is_refused(tmp_path):
    directory = make_bundle(tmp_path / "b")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        for path in directory.iterdir():
            zf.write(path, path.name)
        zf.writestr("../../etc/evil", "x")
    with pytest.raises(BundleError, match="unsafe file name '../../etc/evil'"):
        Bundle.load(evil)


def test_non_bundle_files_are_refused(tmp_path):
    path = tmp_path / "thing.bin"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(BundleError, match="not a bundle directory"):
        Bundle.load(path)


def test_backend_output_matches_independent_numpy_model(tmp_path):
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    backend = backends.create_backend(bundle, threads=1)
    feats = features.compute(noise(16000, seconds=1.0), 16000, FEATURES)
    out = backend.run(feats)
    ref = tiny_models.reference(feats)
    assert out.shape == ref.shape == (-(-len(feats) // 2), len(tiny_models.TOKENS))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert backend.providers[-1] == "CPUExecutionProvider"


def test_channel_major_models_get_transposed_input(tmp_path):
    model = tiny_models.build(FEATURES.dim, layout="channel_major")
    bundle = Bundle.load(make_bundle(tmp_path / "b", model, input=InputSpec(layout="channel_major")))
    feats = features.compute(noise(16000, seconds=0.5), 16000, FEATURES)
    np.testing.assert_allclose(
        backends.create_backend(bundle).run(feats), tiny_models.reference(feats), rtol=1e-4, atol=1e-4
    )


def test_fixed_shape_model_in_chunks_equals_whole_utterance(tmp_path):
    spec = InputSpec(chunk_frames=16, left_context_frames=2, right_context_frames=2)
    fixed = tiny_models.build(FEATURES.dim, frames=20)
    bundle = Bundle.load(make_bundle(tmp_path / "b", fixed, input=spec))
    for seconds in (0.3, 1.0, 1.37):
        feats = features.compute(noise(16000, seconds=seconds), 16000, FEATURES)
        out = backends.create_backend(bundle).run(feats)
        np.testing.assert_allclose(out, tiny_models.reference(feats), rtol=1e-4, atol=1e-4)


def test_models_with_a_length_input_get_the_frame_count(tmp_path):
    model = tiny_models.build(FEATURES.dim, length_input=True)
    bundle = Bundle.load(make_bundle(tmp_path / "b", model, input=InputSpec(length_name="length")))
    feats = features.compute(noise(16000, seconds=0.5), 16000, FEATURES)
    np.testing.assert_allclose(
        backends.create_backend(bundle).run(feats), tiny_models.reference(feats), rtol=1e-4, atol=1e-4
    )
    undescribed = Bundle.load(make_bundle(tmp_path / "c", model))
    with pytest.raises(BundleError, match=r"inputs \['length'\] the manifest does not describe"):
        backends.create_backend(undescribed)


def test_fixed_shape_model_without_matching_chunking_is_refused(tmp_path):
    fixed = tiny_models.build(FEATURES.dim, frames=20)
    bundle = Bundle.load(make_bundle(tmp_path / "b", fixed))
    with pytest.raises(BundleError, match="fixed 20 frames"):
        backends.create_backend(bundle)


def test_model_input_that_contradicts_the_manifest_is_refused(tmp_path):
    bundle = Bundle.load(make_bundle(tmp_path / "b", tiny_models.build(80)))
    with pytest.raises(BundleError, match="takes 80 features per frame; the manifest's feature config gives 40"):
        backends.create_backend(bundle)
    renamed = Bundle.load(make_bundle(tmp_path / "c", input=InputSpec(name="audio_signal")))
    with pytest.raises(BundleError, match="no input 'audio_signal'"):
        backends.create_backend(renamed)


def test_corrupt_onnx_with_valid_checksum_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not a valid ONNX model"):
        make_bundle(tmp_path / "a", b"this is not an onnx model")
    bundle = Bundle.load(make_bundle(tmp_path / "b", b"this is not an onnx model", embed=False))
    with pytest.raises(BundleError, match="cannot load the model"):
        backends.create_backend(bundle)


def test_missing_provider_falls_back_to_cpu_and_says_so(tmp_path):
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    with pytest.warns(RuntimeWarning, match="falls back to CPU"):
        backend = backends.create_backend(bundle, providers=("NoSuchExecutionProvider", "CPUExecutionProvider"))
    assert "NoSuchExecutionProvider" in backend.fallback and backend.providers == ("CPUExecutionProvider",)


def test_backend_selection_errors_name_the_fix(tmp_path):
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    with pytest.raises(ValueError, match="backend must be"):
        backends.create_backend(bundle, backend="tensorrt")
    with pytest.raises(BundleError, match=r"has no tflite model \(it has \['onnx'\]\)"):
        backends.create_backend(bundle, backend="tflite")


def test_lone_tflite_files_without_a_manifest_or_corrupt_are_refused(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(BundleError, match="not a TFLite flatbuffer"):
        Bundle.from_model_file(junk)
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 20)
    with pytest.raises(BundleError, match="corrupt TFLite model|no 'edge_speech.manifest'"):
        Bundle.from_model_file(truncated)
