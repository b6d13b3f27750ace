"""Manifest validation covers waveform bundles too: their decoder defaults are checked like a
feature model's (they once skipped the check)."""

import json

import pytest

from edge_speech.bundle import Bundle
from edge_speech.manifest import BundleError, InputSpec, Manifest

TOKENS = ("<blk>", " ", "a", "b")


def waveform_manifest(**decoder) -> Manifest:
    return Manifest(
        kind="ctc",
        sample_rate=16000,
        features=None,
        tokens=TOKENS,
        models={"onnx": "model.onnx"},
        subsampling_factor=320,
        input=InputSpec(name="input_values", kind="waveform", normalize=True),
        decoder=decoder,
    )


@pytest.mark.parametrize(
    "decoder, message",
    [
        ({"beam": 0}, "decoder beam must be an int in 1..65536"),
        ({"lm_weight": float("nan")}, r"decoder lm_weight must be a number within \+-1000"),
        ({"grammar_token_bonus": 1e30}, r"decoder grammar_token_bonus must be a number within \+-1000"),
        ({"grammar_threshold": 2}, r"decoder grammar_threshold must be a number in \[0, 1\]"),
        ({"lexicon": True}, "decoder lexicon needs an lm"),
        ({"beem": 4}, r"decoder has unknown key\(s\) \['beem'\]"),
    ],
)
def test_waveform_manifest_with_a_bad_decoder_default_is_refused(decoder, message):
    with pytest.raises(BundleError, match=message):
        waveform_manifest(**decoder)


def test_waveform_manifest_with_good_decoder_defaults_is_accepted_and_round_trips():
    manifest = waveform_manifest(beam=8, word_bonus=1.5, grammar_threshold=0.3)
    again = Manifest.from_dict(json.loads(manifest.to_json()))
    assert again.decoder == {"beam": 8, "word_bonus": 1.5, "grammar_threshold": 0.3}
    assert again.waveform_input and again.features is None


def test_waveform_bundle_with_a_bad_decoder_default_fails_to_load_naming_it(tmp_path):
    data = waveform_manifest().to_dict()
    data["decoder"] = {"beam": -3}
    data["files"] = {"model.onnx": {"sha256": "0" * 64, "size": 1}}
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(
        BundleError, match=r"manifest\.json: manifest decoder beam must be an int in 1\.\.65536, got -3"
    ):
        Bundle.load(tmp_path)
