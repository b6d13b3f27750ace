"""convert() keeps what worked and says what did not: a pruning shortfall is a warning (an
error with strict=True), a TFLite failure leaves a working ONNX bundle with the full error in
its report; ignored_layers= and layer_ratios= reach the pruner; the CLI reads tokens.txt's space."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converter_models import DSConvCTC, GRUStack, seeded

from edge_speech import Recognizer, converters, features
from edge_speech.bundle import Bundle

pytestmark = pytest.mark.torch

FBANK = features.FeatureConfig.preset("kaldi-fbank")
TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def _calibration():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(2)]


def test_a_pruning_shortfall_warns_and_strict_makes_it_an_error(tmp_path):
    model = seeded(GRUStack)
    example = torch.randn(1, 80, 80)
    with pytest.warns(UserWarning, match=r"pruning removed 0\.0% of the MACs, short of the 50% asked"):
        report = converters.convert(
            model,
            example,
            FBANK,
            TOKENS,
            prune=0.5,
            quantize=None,
            out=tmp_path / "b",
            ignored_layers=["rnn", model.subsample],
        )
    step = report.step("prune")
    assert step["mac_reduction"] == 0.0 and "short of the 50% asked" in step["warnings"][0]
    assert {"rnn", "subsample"} <= set(step["ignored_layers"])
    with pytest.raises(RuntimeError, match="strict=True"):
        converters.convert(
            model,
            example,
            FBANK,
            TOKENS,
            prune=0.5,
            quantize=None,
            out=tmp_path / "c",
            ignored_layers=["rnn", "subsample"],
            strict=True,
        )
    with pytest.raises(ValueError, match="ignored_layers names no module 'nope'"):
        converters.convert(
            model, example, FBANK, TOKENS, prune=0.5, quantize=None, out=tmp_path / "d", ignored_layers=["nope"]
        )


def test_layer_ratios_pass_through_convert_and_the_target_still_holds(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = seeded(GRUStack)
    example = torch.randn(1, 80, 80)
    report = converters.convert(
        model, example, FBANK, TOKENS, prune=0.5, quantize=None, out=tmp_path / "b", layer_ratios={"subsample": 0.1}
    )
    step = report.step("prune")
    assert "layer_ratios={'subsample': 0.1}" in step["requested"]
    assert abs(step["mac_reduction"] - 0.5) <= 0.05
    graph = onnx.load(str(tmp_path / "b" / "model.onnx")).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    conv = next(n for n in graph.node if n.op_type == "Conv")
    assert constants[conv.input[1]].shape[0] in (43, 44)  # 48 channels less 10% (4.8, rounded either way)
    rnn = next(n for n in graph.node if n.op_type == "GRU")
    assert rnn.attribute[[a.name for a in rnn.attribute].index("hidden_size")].i < 48 * 0.6  # the rest made up for it


def test_a_failed_tflite_export_keeps_the_onnx_bundle_and_reports_the_full_error(tmp_path, monkeypatch):
    from edge_speech.converters import pipeline

    def broken_tflite(*args, **kwargs):
        raise IndexError("list index out of range\nwhile annotating aten.gru.input: the cause is on this line")

    monkeypatch.setattr(pipeline, "export_tflite", broken_tflite)
    model = seeded(DSConvCTC)  # (a GRU would be refused before: see the preflight)
    with pytest.warns(UserWarning, match="TFLite export failed"):
        report = converters.convert(
            model,
            torch.randn(1, 80, 80),
            FBANK,
            TOKENS,
            calib=_calibration(),
            formats=("onnx", "tflite"),
            out=tmp_path / "b",
        )
    failed = report.step("export_tflite")
    assert "the cause is on this line" in failed["error"]  # the whole text, not its first line
    bundle = Bundle.load(tmp_path / "b")
    assert set(bundle.manifest.models) == {"onnx"}
    recorded = [s["step"] for s in bundle.manifest.verification["steps"]]
    assert recorded[-1] == "export_tflite"
    samples = _calibration()[0]
    assert Recognizer.from_bundle(tmp_path / "b").transcribe((samples, 16000)) is not None
    with pytest.raises(RuntimeError, match="(?s)strict=True; the ONNX bundle is kept.*"):
        converters.convert(
            model,
            torch.randn(1, 80, 80),
            FBANK,
            TOKENS,
            calib=_calibration(),
            formats=("onnx", "tflite"),
            out=tmp_path / "c",
            strict=True,
        )
    assert Bundle.load(tmp_path / "c").manifest.models == {"onnx": "model.onnx"}


def test_cli_reads_the_space_token_and_info_prints_the_verification_table(tmp_path):
    import subprocess
    import sys

    from edge_speech.cli import _read_tokens

    (tmp_path / "plain.txt").write_text("<blk>\n \na\nb\n", encoding="utf-8")
    assert _read_tokens(str(tmp_path / "plain.txt")) == ["<blk>", " ", "a", "b"]
    (tmp_path / "sherpa.txt").write_text("<blk> 0\n  1\nb 3\na 2\n", encoding="utf-8")
    assert _read_tokens(str(tmp_path / "sherpa.txt")) == ["<blk>", " ", "a", "b"]
    (tmp_path / "gap.txt").write_text("<blk> 0\na 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="number the tokens 0..1"):
        _read_tokens(str(tmp_path / "gap.txt"))

    model = seeded(GRUStack)
    report = converters.convert(
        model, torch.randn(1, 80, 80), FBANK, TOKENS, calib=_calibration(), prune=0.3, out=tmp_path / "b"
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "info", str(tmp_path / "b")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["step", "size", "vs"])
    rows = {line.split()[0]: line for line in lines[header + 2 : header + 2 + len(report.steps)]}
    assert list(rows) == [s["step"] for s in report.steps]
    quantize = report.step("quantize")
    assert f"{quantize['bytes'] / 1e6:.2f} MB, {quantize['size_ratio']:.2f}x smaller" in rows["quantize"]
    assert f"-{report.step('prune')['mac_reduction']:.1%}" in rows["prune"]


def test_transformer_encoder_exports_with_a_dynamic_time_axis():
    from converter_models import TransformerCTC

    from edge_speech.converters.verification import onnx_runner, torch_runner

    model = seeded(TransformerCTC)
    onnx_bytes = converters.export_onnx(model, torch.randn(1, 101, 80))
    for frames in (23, 101, 240):  # other lengths than the traced one, against torch itself
        x = np.random.default_rng(frames).standard_normal((frames, 80)).astype(np.float32)
        np.testing.assert_allclose(onnx_runner(onnx_bytes)(x), torch_runner(model)(x), rtol=1e-4, atol=1e-5)


class BakedLength(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(80, 29)

    def forward(self, features):
        frames = int(features.shape[1])  # a Python int: the tracer records the example's length
        return self.linear(features).reshape(1, frames, 29).log_softmax(-1)


def test_an_export_that_only_runs_at_the_traced_length_is_refused_naming_it():
    with pytest.raises(RuntimeError, match=r"(?s)does not run at \d+ frames \(it was traced at 50\).*Reshape"):
        converters.export_onnx(BakedLength(), torch.randn(1, 50, 80))


class UnpaddedSubsampling(torch.nn.Module):
    """ESPnet's Conv2dSubsampling alone with a CTC head: T frames give (T - 3) // 4."""

    def __init__(self):
        super().__init__()
        from converter_models import Conv2dSubsampling

        self.subsample = Conv2dSubsampling(80, 32)
        self.head = torch.nn.Linear(32, len(TOKENS))

    def forward(self, features):
        return self.head(self.subsample(features)).log_softmax(-1)


def test_the_preflight_measures_a_frame_mapping_and_pads_it_to_what_the_runtime_cuts(tmp_path):
    torch.manual_seed(0)
    model = UnpaddedSubsampling().eval()
    report = converters.convert(
        model,
        torch.randn(1, 101, 80),
        FBANK,
        TOKENS,
        calib=_calibration(),
        quantize=None,
        formats=("onnx", "tflite"),
        out=tmp_path / "b",
    )
    checked = report.step("source")["preflight"]
    assert checked["frame_mapping"]["33"] == 7 and checked["frame_mapping"]["131"] == 32  # (T - 3) // 4
    assert checked["subsampling"] == 4 and checked["pad_frames"] == 6
    samples = _calibration()[0]
    feats = features.compute(samples, 16000, FBANK)
    with torch.no_grad():
        original = model(torch.from_numpy(feats)[None])[0].numpy()
    onnx_out = Recognizer.from_bundle(tmp_path / "b", backend="onnx").log_probs(samples)
    tflite_out = Recognizer.from_bundle(tmp_path / "b", backend="tflite").log_probs(samples)
    assert len(onnx_out) == len(tflite_out) == -(-len(feats) // 4)
    # The frames the model had are unchanged; the added ones see the trailing zeros.
    np.testing.assert_allclose(onnx_out[: len(original)], original, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tflite_out[: len(original)], original, rtol=1e-3, atol=1e-3)


class FixedFrames(torch.nn.Module):
    """Always the first 12 frames, whatever the input length: no padding makes that ceil(T / s)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(80, len(TOKENS))

    def forward(self, features):
        return self.head(features[:, :12]).log_softmax(-1)


def test_a_frame_mapping_no_padding_fixes_is_refused_for_tflite_in_seconds(tmp_path):
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"not a fixed function ceil\(T / 8\).*33 -> 12.*formats=\('onnx',\)"):
        converters.convert(
            FixedFrames().eval(),
            torch.randn(1, 96, 80),
            FBANK,
            TOKENS,
            calib=_calibration(),
            prune=0.5,
            formats=("onnx", "tflite"),
            out=tmp_path / "b",
        )
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "b").exists()  # nothing was pruned, quantized or written
