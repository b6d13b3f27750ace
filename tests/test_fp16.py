"""quantize="fp16": weights and compute in float16 with float32 inputs and outputs, verified
against fp32 like int8 (the report's agreement), and usable on CPU onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tiny_models
from onnx import TensorProto
from tiny_bundles import FEATURES

from edge_speech import Recognizer, converters
from edge_speech.bundle import Bundle
from edge_speech.converters.quantization import SCHEMES, to_float16


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    tone = np.sin(2 * np.pi * (200 + 150 * np.sin(2 * np.pi * 2 * t)) * t)
    return (0.3 * tone * (rng.random(t.size) > 0.3) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _tensor_types(model: onnx.ModelProto) -> dict:
    graph = model.graph
    return {
        "inputs": {i.type.tensor_type.elem_type for i in graph.input},
        "outputs": {o.type.tensor_type.elem_type for o in graph.output},
        "initializers": {t.data_type for t in graph.initializer},
    }


def test_fp16_is_a_scheme_and_keeps_float32_io_with_float16_weights():
    assert "fp16" in SCHEMES
    fp32 = tiny_models.build(FEATURES.dim)
    fp16 = onnx.load_from_string(to_float16(fp32))
    types = _tensor_types(fp16)
    assert types["inputs"] == {TensorProto.FLOAT} and types["outputs"] == {TensorProto.FLOAT}
    assert types["initializers"] == {TensorProto.FLOAT16}
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in fp16.graph.initializer}
    reference = tiny_models.weights(FEATURES.dim, 16, len(tiny_models.TOKENS))
    for name, value in reference.items():  # the same weights, rounded to float16
        np.testing.assert_array_equal(weights[name], value.astype(np.float16))


def test_nodes_and_op_types_asked_for_stay_float32():
    fp32 = tiny_models.build(FEATURES.dim)
    ops = [n.op_type for n in onnx.load_from_string(fp32).graph.node]
    matmul = f"MatMul_{ops.index('MatMul')}"  # the names the converter gives unnamed nodes (name_nodes)
    for converted in (to_float16(fp32, keep_float=[matmul]), to_float16(fp32, blocked_ops=["MatMul"])):
        model = onnx.load_from_string(converted)
        types = {t.name: t.data_type for t in model.graph.initializer}
        node = next(n for n in model.graph.node if n.op_type == "MatMul")
        assert types[node.input[1]] == TensorProto.FLOAT and types["conv_w"] == TensorProto.FLOAT16


def test_an_fp16_bundle_agrees_with_fp32_and_runs_on_cpu(tmp_path):
    model = tiny_models.build(FEATURES.dim)
    calib = [_speechlike(1.0, seed) for seed in range(3)]
    evaluation = [(_speechlike(1.5, 10 + seed), "take a kite") for seed in range(2)]
    report = converters.convert_onnx(
        model, FEATURES, tiny_models.TOKENS, calib=calib, eval=evaluation, quantize="fp16", out=tmp_path / "fp16"
    )
    step = report.step("quantize")
    assert step["scheme"] == "fp16" and step["size_ratio"] > 1.5
    assert step["vs_fp32"]["greedy_token_agreement"] >= 0.99
    bundle = Bundle.load(tmp_path / "fp16")
    assert bundle.manifest.quantization == {"scheme": "float", "precision": "float16"}
    types = _tensor_types(onnx.load_from_string(bundle.model_bytes["onnx"]))
    assert types["inputs"] == {TensorProto.FLOAT} and types["outputs"] == {TensorProto.FLOAT}
    # Independently of the converter's own check: the numpy float64 model, and fp32's greedy tokens.
    recognizer = Recognizer.from_bundle(bundle, beam=1)
    converters.convert_onnx(model, FEATURES, tiny_models.TOKENS, calib=calib, quantize=None, out=tmp_path / "fp32")
    fp32 = Recognizer.from_bundle(tmp_path / "fp32", beam=1)
    for seed in range(4):
        samples = _speechlike(2.0, 100 + seed)
        log_probs = recognizer.log_probs(samples)
        assert log_probs.dtype == np.float32
        expected = tiny_models.reference(fp32._front_end(samples))
        np.testing.assert_allclose(log_probs, expected, atol=0.05)
        assert recognizer.transcribe((samples, 16000)).tokens == fp32.transcribe((samples, 16000)).tokens


@pytest.mark.torch
def test_convert_emits_an_fp16_bundle_from_a_torch_model(tmp_path):
    torch = pytest.importorskip("torch")
    from converter_models import DSConvCTC, seeded

    fbank = FEATURES.replace(num_mel_bins=80)
    tokens = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    calib = [_speechlike(1.0, seed) for seed in range(2)]
    report = converters.convert(
        seeded(DSConvCTC), torch.randn(1, 80, 80), fbank, tokens, calib=calib, quantize="fp16", out=tmp_path / "b"
    )
    step = report.step("quantize")
    assert step["scheme"] == "fp16" and step["vs_fp32"]["greedy_token_agreement"] >= 0.95
    assert step["vs_fp32"]["snr_db"] > 30  # fp16 rounding only: far closer than int8
    fp16 = Recognizer.from_bundle(tmp_path / "b", beam=1)
    fp32 = Recognizer.from_bundle(report.fp32_bundle, beam=1)
    samples = _speechlike(2.0, 7)
    assert fp16.transcribe((samples, 16000)).tokens == fp32.transcribe((samples, 16000)).tokens
