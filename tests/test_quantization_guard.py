"""The int8 agreement guard (``convert(min_agreement=...)``, ``quantization.quantize_within_agreement``):
an int8 ONNX model whose greedy tokens agree with the float model's on the calibration audio less
than the bound gets its costliest activations left in float, on unchanged int8 weights; and what
a float activation means in the graph: its layers run in float on int8 weights rounded over the
full [-127, 127] range, with a ReLU that the quantizer had folded into the rounding put back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from converter_models import DSConvCTC, confident, seeded

from edge_speech import Recognizer, converters, features
from edge_speech.converters.export import export_onnx
from edge_speech.converters.quantization import quantized_activations, static_qdq
from edge_speech.converters.verification import edit_distance, greedy_tokens, onnx_runner

pytestmark = [pytest.mark.torch]

FBANK = features.FeatureConfig.preset("kaldi-fbank")
TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]


class ConvReluConv(torch.nn.Module):
    """features [1, frames, 8] -> [1, frames, 4]: conv, ReLU, 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.first = torch.nn.Conv1d(8, 16, 3, padding=1)
        self.second = torch.nn.Conv1d(16, 4, 1)

    def forward(self, x):
        return self.second(torch.relu(self.first(x.transpose(1, 2)))).transpose(1, 2)


def _rounded_full_range(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel over [-127, 127], dequantized."""
    scale = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True) / 127
    return torch.round(weight / scale).clamp(-127, 127) * scale


def test_float_activations_run_in_float_on_full_range_int8_weights_with_the_folded_relu_back():
    model = seeded(ConvReluConv)
    with torch.no_grad():
        model.first.bias.sub_(1.0)  # a third or so of the conv's outputs negative: the ReLU matters
    example = torch.randn(1, 50, 8, generator=torch.Generator().manual_seed(0))
    fp32 = export_onnx(model, example)
    calibration = [np.random.default_rng(i).standard_normal((60, 8)).astype(np.float32) for i in range(4)]
    qdq = static_qdq(fp32, calibration)
    activations = quantized_activations(qdq.model)
    assert activations  # the input and the conv's (ReLU-folded) output
    weights_only = converters.quantize(fp32, calibration, float_activations=activations)

    reference = seeded(ConvReluConv)  # the same model with its weights rounded as int8 and nothing else
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        for conv in (reference.first, reference.second):
            conv.weight.copy_(_rounded_full_range(conv.weight))
        x = torch.randn(1, 70, 8, generator=torch.Generator().manual_seed(1))
        expected = reference(x)[0].numpy()
        unrounded = model(x)[0].numpy()
    got = onnx_runner(weights_only)(x[0].numpy())
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 1e-4 * scale  # the bias is stored in int32 at the products scale
    # the check can tell: unrounded weights are 30x further off than it allows
    assert np.abs(unrounded - expected).max() > 3e-3 * scale
    assert len(weights_only) <= len(converters.quantize(fp32, calibration)) * 1.02
    with pytest.raises(ValueError, match="not quantized activations"):
        converters.quantize(fp32, calibration, float_activations=["no such tensor"])


def _agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref, got = greedy_tokens(reference), greedy_tokens(candidate)
    assert len(ref) >= 10
    return 1.0 - edit_distance(ref, got) / len(ref)


def test_convert_leaves_the_costliest_activations_float_until_int8_agrees_with_float(tmp_path, speech):
    samples = speech(16000)
    calib = [samples[i : i + 16000] for i in range(0, len(samples) - 8000, 16000)]
    model = seeded(DSConvCTC, channels=128)
    model = confident(model, torch.from_numpy(features.compute(samples, 16000, FBANK))[None])
    example = torch.randn(1, 101, 80, generator=torch.Generator().manual_seed(1))

    def convert(out, bound):
        return converters.convert(model, example, FBANK, TOKENS, calib=calib, min_agreement=bound, out=tmp_path / out)

    def calibration_agreement(out) -> float:  # measured in the runtime, not by the converter
        fp32, int8 = Recognizer.from_bundle(tmp_path / f"{out}-fp32"), Recognizer.from_bundle(tmp_path / out)
        ref = np.concatenate([greedy_tokens(fp32.log_probs(c)) for c in calib[:8]])
        got = np.concatenate([greedy_tokens(int8.log_probs(c)) for c in calib[:8]])
        return 1.0 - edit_distance(list(ref), list(got)) / len(ref)

    unguarded = convert("plain", None)
    assert "agreement_guard" not in unguarded.step("quantize")
    before = calibration_agreement("plain")
    bound = min(0.99, before + 0.02)
    assert before < bound  # the guard has work to do
    guarded = convert("guarded", bound)
    record = guarded.step("quantize")["agreement_guard"]
    assert record["met"] and record["float_activations"]
    assert record["after"]["agreement"] >= bound > record["agreement"]
    assert calibration_agreement("guarded") >= bound - 0.02  # per-utterance mean (converter) vs pooled (here)
    size = lambda out: (tmp_path / out / "model.onnx").stat().st_size  # noqa: E731
    assert size("guarded") <= size("plain") * 1.02  # int8 weights kept: the file keeps its size
    # a model already within the bound costs one comparison and stays as quantized
    relaxed = convert("relaxed", 0.0).step("quantize")["agreement_guard"]
    assert set(relaxed) == {"min_agreement", "agreement", "snr_db"}
    graph = lambda out: onnx.load(str(tmp_path / out / "model.onnx")).graph.SerializeToString()  # noqa: E731
    assert graph("relaxed") == graph("plain")  # the manifest embedded beside it has other latencies
