"""The converter on three architectures built in the tests: pruning hits the MAC target, the
pruned models run and export; int8 ONNX agrees with float; the pipeline writes bundles the
runtime loads; bad inputs are refused with errors that say what to do."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converter_models import DSCNN, ConformerCTC, DSConvCTC, seeded

from edge_speech import Recognizer, converters, features
from edge_speech.bundle import Bundle
from edge_speech.converters.verification import onnx_runner, torch_runner

pytestmark = pytest.mark.torch

FBANK = features.FeatureConfig.preset("kaldi-fbank")
TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]


@pytest.fixture(scope="module")
def speech_features(speech):
    samples = speech(16000)
    return [features.compute(samples[i : i + 24000], 16000, FBANK) for i in range(0, len(samples) - 8000, 12000)]


# The Conformer's attention widths are pruned by head dims (converters.pruning); its GLU-fed
# convolution module stays whole.
@pytest.mark.parametrize("model_class, target", [(DSConvCTC, 0.5), (ConformerCTC, 0.5), (DSCNN, 0.5)])
def test_pruning_hits_the_mac_target_and_the_model_still_runs_and_exports(model_class, target):
    model = seeded(model_class)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    example = torch.randn(1, 120, 80)
    pruned, report = converters.prune(model, example, target_macs_ratio=target)
    assert abs(report.mac_reduction - target) <= 0.05, report
    assert report.params_after < report.params_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # caller's model untouched
    if model_class is ConformerCTC:
        assert any("feeds a GLU" in note for note in report.notes)
    with torch.no_grad():
        assert pruned(example).shape == model(example).shape
    onnx_bytes = converters.export_onnx(pruned, example)
    np.testing.assert_allclose(
        onnx_runner(onnx_bytes)(example[0].numpy()), torch_runner(pruned)(example[0].numpy()), rtol=1e-3, atol=1e-4
    )


def test_ratio_pruning_and_taylor_importance():
    model = seeded(DSConvCTC)
    example = torch.randn(1, 100, 80)
    pruned, report = converters.prune(model, example, ratio=0.25, round_to=8)
    assert 0.2 < report.mac_reduction < 0.6
    assert all(
        m.out_channels % 8 == 0
        for m in pruned.modules()
        if isinstance(m, torch.nn.Conv1d) and m.out_channels != len(TOKENS)
    )
    calibration = [torch.randn(2, 100, 80) for _ in range(2)]
    pruned, report = converters.prune(
        model, example, target_macs_ratio=0.3, importance="taylor", calibration=calibration
    )
    assert abs(report.mac_reduction - 0.3) <= 0.05
    with pytest.raises(ValueError, match="Taylor importance needs calibration"):
        converters.prune(model, example, ratio=0.3, importance="taylor")
    with pytest.raises(ValueError, match="exactly one of"):
        converters.prune(model, example)


def test_glu_feeders_are_found_exactly_whatever_the_allocator_does():
    """Regression: tensor ids were remembered without the tensors, so a freed output's id, reused
    by a later tensor, blamed the GLU's input on an unrelated layer (seen with some inputs)."""
    from edge_speech.converters.pruning import _glu_feeders

    model = seeded(ConformerCTC)
    names = {m: n for n, m in model.named_modules()}
    for seed in range(8):
        torch.manual_seed(seed)
        found = {names[m] for m in _glu_feeders(model, torch.randn(1, 100, 80))}
        assert found == {"blocks.0.pw1", "blocks.1.pw1"}, seed


def test_per_layer_ratios_override_the_global_ratio():
    model = seeded(ConformerCTC)
    example = torch.randn(1, 100, 80)

    def hidden_widths(m) -> dict:
        return {n: mod.out_features for n, mod in m.named_modules() if n.endswith((".ff1.1", ".ff2.1"))}

    assert set(hidden_widths(model).values()) == {128}
    pruned, report = converters.prune(
        model, example, ratio=0.5, layer_ratios={"blocks.0.ff1.1": 0.0, "blocks.1.ff2.1": 0.25}
    )
    assert hidden_widths(pruned) == {
        "blocks.0.ff1.1": 128,
        "blocks.0.ff2.1": 64,
        "blocks.1.ff1.1": 64,
        "blocks.1.ff2.1": 96,
    }
    assert "layer_ratios" in report.requested
    with pytest.raises(ValueError, match="names no module 'blocks.9'"):
        converters.prune(model, example, ratio=0.5, layer_ratios={"blocks.9": 0.1})
    with pytest.raises(ValueError, match=r"must be in \[0, 0.95\)"):
        converters.prune(model, example, ratio=0.5, layer_ratios={"blocks.0.ff1.1": 1.0})
    with pytest.raises(ValueError, match="refines ratio="):
        converters.prune(model, example, target_macs_ratio=0.3, layer_ratios={"blocks.0.ff1.1": 0.0})


@pytest.mark.parametrize("model_class", [DSConvCTC, ConformerCTC])
def test_onnx_export_keeps_the_time_axis_dynamic(model_class):
    model = seeded(model_class)
    onnx_bytes = converters.export_onnx(model, torch.randn(1, 64, 80))
    run = onnx_runner(onnx_bytes)
    for frames in (33, 200):
        x = np.random.default_rng(frames).standard_normal((frames, 80)).astype(np.float32)
        np.testing.assert_allclose(run(x), torch_runner(model)(x), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("model_class", [DSConvCTC, ConformerCTC])
def test_int8_onnx_agrees_with_float_and_is_about_four_times_smaller(model_class, speech_features):
    model = seeded(model_class, channels=192, blocks=4) if model_class is DSConvCTC else seeded(model_class, d=128)
    fp32 = converters.export_onnx(model, torch.from_numpy(speech_features[0])[None])
    int8 = converters.quantize(fp32, speech_features[:6])
    report = converters.verify(onnx_runner(fp32), onnx_runner(int8), speech_features)
    assert report.cosine >= 0.99, report
    assert len(fp32) / len(int8) >= 3.0
    dynamic = converters.quantize(fp32, scheme="dynamic")
    assert converters.verify(onnx_runner(fp32), onnx_runner(dynamic), speech_features[:2]).cosine >= 0.99


def test_static_quantization_without_calibration_is_refused():
    fp32 = converters.export_onnx(seeded(DSConvCTC), torch.randn(1, 50, 80))
    with pytest.raises(ValueError, match="needs calibration data"):
        converters.quantize(fp32, [])
    with pytest.raises(ValueError, match="scheme must be one of"):
        converters.quantize(fp32, scheme="int4")


def test_convert_pipeline_writes_bundles_the_runtime_loads(tmp_path, speech):
    model = seeded(DSConvCTC, vocab=len(TOKENS))
    samples = speech(16000)
    calib = [samples[i : i + 16000] for i in range(0, len(samples) - 16000, 8000)]
    report = converters.convert(
        model,
        torch.randn(1, 100, 80),
        FBANK,
        TOKENS,
        calib=calib,
        eval=[((samples, 16000), "turn on the kitchen light")],
        prune=0.3,
        quantize="int8",
        out=tmp_path / "bundle",
        name="tiny-ds",
    )
    steps = [s["step"] for s in report.steps]
    assert steps == ["source", "prune", "export_onnx", "quantize"]
    assert abs(report.step("prune")["mac_reduction"] - 0.3) <= 0.05
    assert report.step("export_onnx")["vs_torch"]["cosine"] > 0.9999
    assert report.step("quantize")["vs_fp32"]["cosine"] >= 0.98
    bundle = Bundle.load(tmp_path / "bundle")
    assert bundle.manifest.quantization["scheme"] == "int8" and bundle.manifest.subsampling_factor == 2
    assert bundle.manifest.verification["steps"][-1]["step"] == "quantize"
    fp32 = Bundle.load(tmp_path / "bundle-fp32")
    assert len(fp32.model_bytes["onnx"]) > len(bundle.model_bytes["onnx"])
    result = Recognizer.from_bundle(tmp_path / "bundle").transcribe((samples, 16000))
    assert isinstance(result.text, str)
    report_dir = tmp_path / "bundle" / "report"
    assert json.loads((report_dir / "report.json").read_text())["steps"] == json.loads(json.dumps(list(report.steps)))
    markdown = (report_dir / "report.md").read_text()
    for name in ("size.png", "latency.png", "accuracy.png"):
        assert_valid_png(report_dir / name)
        assert f"]({name})" in markdown
    assert "| quantize |" in markdown


def assert_valid_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 200 and height >= 150 and len(data) > 3000, (path, width, height, len(data))


STEPS = [
    {"step": "source", "macs": 2_000_000, "params": 9000, "cer": 0.20},
    {"step": "prune", "macs_after": 1_000_000, "params_after": 5000, "cer": 0.30},
    {"step": "quantize", "bytes": 6000, "vs_fp32": {"candidate_latency_ms": 1.5}, "cer": 0.31},
]


def test_report_plots_a_pruning_sweep_and_says_why_when_matplotlib_is_missing(tmp_path, monkeypatch):
    from edge_speech.converters.report import write_report

    sweep = [{"macs": 2e6, "cer": 0.2}, {"macs": 1.5e6, "cer": 0.22}, {"macs": 1e6, "cer": 0.3}]
    markdown = write_report(STEPS, tmp_path / "with", sweep=sweep).read_text()
    assert_valid_png(tmp_path / "with" / "accuracy_vs_macs.png")
    assert "](accuracy_vs_macs.png)" in markdown and "| prune | 5,000 | 1,000,000 |" in markdown
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    markdown = write_report(STEPS, tmp_path / "without", sweep=sweep).read_text()
    assert "Plots: not drawn: matplotlib is not installed" in markdown
    assert not list((tmp_path / "without").glob("*.png")) and (tmp_path / "without" / "report.json").is_file()


def test_float_tflite_in_chunks_equals_the_whole_utterance_torch_model(speech_features):
    from edge_speech.backends import LiteRTBackend

    model = seeded(DSConvCTC)  # receptive field 63 input frames: 32 frames of context cover it
    tflite, spec = converters.export_tflite(model, 80, chunk_frames=64, left_context_frames=32, right_context_frames=32)
    backend = LiteRTBackend(tflite, spec, 80, subsampling=2, threads=1)
    for feats in speech_features[:3]:
        np.testing.assert_allclose(backend.run(feats), torch_runner(model)(feats), rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("model_class", [DSConvCTC, ConformerCTC])
def test_int8_tflite_and_onnx_in_one_bundle_run_on_both_backends(tmp_path, speech, model_class):
    # The Conformer's attention sees only its window in TFLite chunks: measured cosine 0.9998 to torch.
    model = seeded(model_class, vocab=len(TOKENS))
    samples = speech(16000)
    calib = [samples[i : i + 16000] for i in range(0, len(samples) - 16000, 8000)]
    report = converters.convert(
        model,
        torch.randn(1, 100, 80),
        FBANK,
        TOKENS,
        calib=calib,
        quantize="int8",
        formats=("onnx", "tflite"),
        tflite_context_frames=32,
        out=tmp_path / "b",
    )
    tfl = report.step("export_tflite")
    assert tfl["scheme"] == "int8" and tfl["vs_torch"]["cosine"] >= 0.98, tfl
    bundle = Bundle.load(tmp_path / "b")
    assert set(bundle.model_bytes) == {"onnx", "tflite"}
    assert (
        bundle.manifest.input_for("tflite").chunk_frames == 64
        and bundle.manifest.input_for("onnx").chunk_frames is None
    )
    on_onnx = Recognizer.from_bundle(tmp_path / "b", backend="onnx")
    on_tflite = Recognizer.from_bundle(tmp_path / "b", backend="tflite")
    assert on_tflite.backend.name == "tflite"
    lp_onnx = on_onnx.log_probs(samples)
    lp_tflite = on_tflite.log_probs(samples)
    assert lp_onnx.shape == lp_tflite.shape
    cosine = float((lp_onnx * lp_tflite).sum() / np.linalg.norm(lp_onnx) / np.linalg.norm(lp_tflite))
    assert cosine >= 0.98
    lone = Bundle.from_model_file(tmp_path / "b" / "model.tflite")  # the manifest travels inside the file
    assert lone.manifest.tokens == tuple(TOKENS) and lone.manifest.input.chunk_frames == 64
    np.testing.assert_array_equal(Recognizer.from_bundle(lone).log_probs(samples), lp_tflite)
    stream = on_tflite.create_stream()
    for start in range(0, len(samples), 4000):
        stream.accept_waveform(samples[start : start + 4000], 16000)
    final = stream.finish().text
    # The conv model's receptive field fits the context, so streaming equals offline; the Conformer's
    # attention windows sit elsewhere in a stream than offline (whose last window ends at the end).
    if model_class is DSConvCTC:
        assert final == on_tflite.transcribe((samples, 16000)).text


def test_convert_validates_its_inputs(tmp_path):
    model = seeded(DSConvCTC, vocab=len(TOKENS))
    with pytest.raises(ValueError, match="29 classes but 3 tokens"):
        converters.convert(model, torch.randn(1, 50, 80), FBANK, ["a", "b", "c"], quantize=None, out=tmp_path / "x")
    with pytest.raises(ValueError, match="no .wav files"):
        converters.convert(model, torch.randn(1, 50, 80), FBANK, TOKENS, calib=tmp_path, out=tmp_path / "y")
    with pytest.raises(ValueError, match="formats must be"):
        converters.convert(model, torch.randn(1, 50, 80), FBANK, TOKENS, formats=("coreml",), out=tmp_path / "z")


def test_finetuning_never_trains_on_the_evaluation_audio(tmp_path, speech, monkeypatch):
    """convert(finetune_epochs=...) trains on finetune_data (or the calibration audio), never on
    eval=; an utterance in both is refused before any work."""
    import importlib

    finetune_module = importlib.import_module("edge_speech.converters.finetune")  # the package exports the function

    model = seeded(DSConvCTC, vocab=len(TOKENS))
    samples = speech(16000)
    clips = [samples[i : i + 8000] for i in range(0, len(samples) - 8000, 4000)]
    assert len(clips) >= 7
    calib, tune, held_out = clips[:3], clips[3:6], clips[6]
    seen = []

    def recording_finetune(student, teacher, data, labels=None, **options):
        seen.append(([np.asarray(d) for d in data], labels))
        return finetune_module.FinetuneReport(steps=1, first_loss=1.0, last_loss=0.5, seconds=0.0)

    monkeypatch.setattr(finetune_module, "finetune", recording_finetune)
    evaluation = [(held_out, "turn on the light")]

    def fingerprints(arrays):
        return {np.asarray(a, np.float32).tobytes() for a in arrays}

    def model_inputs(audio_clips):
        return fingerprints(features.compute(c, 16000, FBANK) for c in audio_clips)

    common = dict(calib=calib, eval=evaluation, prune=0.3, quantize=None, finetune_epochs=1)
    converters.convert(model, torch.randn(1, 100, 80), FBANK, TOKENS, out=tmp_path / "a", **common)
    data, labels = seen.pop()
    assert fingerprints(data) == model_inputs(calib) and labels is None  # distillation on calib only

    pairs = [(c, "hello world") for c in tune]
    converters.convert(model, torch.randn(1, 100, 80), FBANK, TOKENS, out=tmp_path / "b", finetune_data=pairs, **common)
    data, labels = seen.pop()
    assert fingerprints(data) == model_inputs(tune)
    hello = [TOKENS.index(c) for c in "hello world"]
    assert labels == [hello] * len(tune)

    with pytest.raises(ValueError, match="finetune_data item 1 is eval item 0"):
        converters.convert(
            model,
            torch.randn(1, 100, 80),
            FBANK,
            TOKENS,
            out=tmp_path / "c",
            finetune_data=[tune[0], held_out],
            **common,
        )
    with pytest.raises(ValueError, match="mixes"):
        converters.convert(
            model,
            torch.randn(1, 100, 80),
            FBANK,
            TOKENS,
            out=tmp_path / "d",
            finetune_data=[tune[0], (tune[1], "hi")],
            **common,
        )
    assert not seen and not (tmp_path / "c").exists()


def test_convert_ships_decoder_defaults_and_a_word_lm(tmp_path, speech):
    model = seeded(DSConvCTC, vocab=len(TOKENS))
    samples = speech(16000)
    lm = Path(__file__).resolve().parents[1] / "edge_speech" / "models" / "default" / "lm.arpa.gz"
    decoder = {"beam": 12, "lm_weight": 0.4, "word_bonus": 1.5, "grammar_threshold": 0.3}
    converters.convert(
        model,
        torch.randn(1, 100, 80),
        FBANK,
        TOKENS,
        calib=[samples[:16000]],
        quantize="int8",
        out=tmp_path / "bundle",
        decoder=decoder,
        lm=lm,
    )
    for name in ("bundle", "bundle-fp32"):
        bundle = Bundle.load(tmp_path / name)
        assert dict(bundle.manifest.decoder) == {**decoder, "lm": "lm.arpa.gz"}
        assert (tmp_path / name / "lm.arpa.gz").read_bytes() == lm.read_bytes()
    rec = Recognizer.from_bundle(tmp_path / "bundle")
    assert (
        rec.transcribe((samples, 16000)).text
        == rec.transcribe((samples, 16000), lm=lm, lm_weight=0.4, word_bonus=1.5, beam=12).text
    )

    broken = tmp_path / "broken.arpa"
    broken.write_text("not an arpa file\n")
    with pytest.raises(ValueError, match="ARPA|arpa|data"):
        converters.convert(model, torch.randn(1, 100, 80), FBANK, TOKENS, quantize=None, out=tmp_path / "x", lm=broken)
    with pytest.raises(ValueError, match="beam"):
        converters.convert(
            model, torch.randn(1, 100, 80), FBANK, TOKENS, quantize=None, out=tmp_path / "y", decoder={"beam": 0}
        )
    with pytest.raises(ValueError, match="no lm= file"):
        converters.convert(
            model,
            torch.randn(1, 100, 80),
            FBANK,
            TOKENS,
            quantize=None,
            out=tmp_path / "z",
            decoder={"lm": "words.arpa"},
        )
    assert not any((tmp_path / n).exists() for n in "xyz")


def test_checkpoints_load_safely(tmp_path):
    model = seeded(DSConvCTC)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.ckpt")
    for name in ("weights.pt", "wrapped.ckpt"):
        loaded = converters.load_checkpoint(tmp_path / name, lambda: DSConvCTC())
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    converters.load_checkpoint(tmp_path / "w.safetensors", lambda: DSConvCTC())
    torch.save({"model": model, "note": object()}, tmp_path / "pickled.pt")  # a whole pickled module
    with pytest.raises(ValueError, match="pickled Python objects"):
        converters.load_checkpoint(tmp_path / "pickled.pt", lambda: DSConvCTC())
    with pytest.raises(ValueError, match="do not fit"):
        converters.load_checkpoint(tmp_path / "weights.pt", lambda: DSConvCTC(channels=32))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        converters.load_checkpoint(tmp_path / "junk.pt", lambda: DSConvCTC())


class Unexportable(torch.nn.Module):
    def forward(self, features):
        return torch.special.zeta(features, features + 2.0)  # no ONNX symbolic exists for zeta


def test_export_failure_names_the_problem():
    with pytest.raises(RuntimeError, match="(?s)ONNX export failed.*zeta"):
        converters.export_onnx(Unexportable(), torch.randn(1, 10, 4))


def test_finetune_after_pruning_recovers_agreement_and_resumes(tmp_path, speech_features):
    teacher = seeded(DSConvCTC)
    example = torch.from_numpy(speech_features[0])[None]
    student, _ = converters.prune(teacher, example, target_macs_ratio=0.5)
    before = converters.verify(torch_runner(teacher), torch_runner(student), speech_features)
    report = converters.finetune(
        student,
        teacher,
        speech_features,
        epochs=3,
        batch_size=2,
        lr=3e-3,
        spec_augment=False,
        checkpoint=tmp_path / "ft.pt",
    )
    after = converters.verify(torch_runner(teacher), torch_runner(student), speech_features)
    assert report.last_loss < report.first_loss
    assert after.frame_agreement > before.frame_agreement + 0.2
    assert after.greedy_token_agreement > before.greedy_token_agreement
    resumed = converters.finetune(student, teacher, speech_features, epochs=3, checkpoint=tmp_path / "ft.pt")
    assert resumed.steps == 0  # all epochs were already done


def test_sensitivity_ranks_layers_and_budget_keeps_the_worst_in_float(tmp_path, speech_features):
    model = seeded(DSConvCTC)
    fp32 = converters.export_onnx(model, torch.from_numpy(speech_features[0])[None])
    ranking = converters.sensitivity(fp32, speech_features[:3], speech_features[:2])
    assert len(ranking) >= 5 and ranking[0][1] <= ranking[-1][1]
    report = converters.convert(
        model,
        torch.from_numpy(speech_features[0])[None],
        FBANK,
        TOKENS,
        calib=[],
        quantize=None,
        out=tmp_path / "float",
    )
    assert report.step("export_onnx")["bytes"] > 0


def test_cli_convert_writes_a_bundle(tmp_path, speech_wav):
    import subprocess

    (tmp_path / "mymodels.py").write_text(
        "from converter_models import DSConvCTC, seeded\ndef make():\n    return seeded(DSConvCTC, vocab=29)\n"
    )
    (tmp_path / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    calib = tmp_path / "calib"
    calib.mkdir()
    for rate in (16000, 22050):
        (calib / f"{rate}.wav").write_bytes(speech_wav(rate).read_bytes())
    (tmp_path / "tune.tsv").write_text(f"{speech_wav(16000, 'open the door')}\topen the door\n")
    lm = Path(__file__).resolve().parents[1] / "edge_speech" / "models" / "default" / "lm.arpa.gz"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}  # mymodels.py imports converter_models
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "convert",
            "--factory",
            "mymodels:make",
            "--tokens",
            "tokens.txt",
            "--calib",
            "calib",
            "--prune",
            "0.3",
            "-o",
            "out",
            "--finetune-epochs",
            "1",
            "--finetune-data",
            "tune.tsv",
            "--lm",
            str(lm),
            "--decoder",
            "beam=12",
            "--decoder",
            "lm_weight=0.3",
            "--decoder",
            "lexicon=true",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert [s["step"] for s in report["steps"]] == ["source", "prune", "finetune", "export_onnx", "quantize"]
    manifest = Bundle.load(tmp_path / "out").manifest
    assert manifest.quantization["scheme"] == "int8"
    assert dict(manifest.decoder) == {"beam": 12, "lm_weight": 0.3, "lexicon": True, "lm": "lm.arpa.gz"}
    bad_decoder = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "convert",
            "--factory",
            "mymodels:make",
            "--tokens",
            "tokens.txt",
            "-o",
            "y",
            "--quantize",
            "float",
            "--decoder",
            "beam",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad_decoder.returncode == 2 and "KEY=VALUE" in bad_decoder.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "convert",
            "--factory",
            "nomodule",
            "--tokens",
            "tokens.txt",
            "-o",
            "x",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "module:function" in bad.stderr


def test_existing_nemo_style_onnx_is_quantized_verified_and_bundled(tmp_path, speech):
    """A channel-major model with a frame-count input, as NeMo exports them."""
    from edge_speech.bundle import InputSpec

    class NemoStyle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = seeded(DSConvCTC, channels=128, vocab=len(TOKENS))

        def forward(self, audio_signal, length):
            return self.inner(audio_signal.transpose(1, 2)) + 0 * length.sum()

    model = NemoStyle().eval()
    path = tmp_path / "nemo.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(1, 80, 100), torch.tensor([100])),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["audio_signal", "length"],
        output_names=["logprobs"],
        dynamic_axes={"audio_signal": {2: "T"}, "logprobs": {1: "T2"}},
    )
    samples = speech(16000)
    spec = InputSpec(name="audio_signal", layout="channel_major", length_name="length")
    report = converters.convert_onnx(
        path,
        FBANK,
        TOKENS,
        input_spec=spec,
        subsampling_factor=2,
        calib=[samples[:16000], samples[16000:32000]],
        eval=[((samples, 16000), "turn on the kitchen light")],
        out=tmp_path / "b",
    )
    assert report.step("quantize")["vs_fp32"]["cosine"] >= 0.98
    rec = Recognizer.from_bundle(tmp_path / "b")
    assert rec.manifest.input.length_name == "length"
    reference = converters.verification.onnx_runner(path.read_bytes(), input_spec=spec)
    lp = rec.log_probs(samples)
    ref = reference(features.compute(samples, 16000, FBANK))
    cosine = float((lp * ref).sum() / np.linalg.norm(lp) / np.linalg.norm(ref))
    assert lp.shape == ref.shape and cosine >= 0.98


def test_compacted_int8_model_computes_exactly_what_onnxruntime_quantized(tmp_path, speech_features):
    """compact_qdq drops zero zero-points, derives bias scales, shortens names: same outputs, fewer bytes."""
    import onnx
    from onnxruntime import quantization as q

    from edge_speech.converters.onnx_size import compact_qdq, size_breakdown

    model = seeded(DSConvCTC, channels=192, blocks=4)
    (tmp_path / "fp32.onnx").write_bytes(converters.export_onnx(model, torch.from_numpy(speech_features[0])[None]))

    class Reader:  # onnxruntime's own quantizer, outside our wrapper: the reference
        items = iter([{"features": f[None]} for f in speech_features[:6]])

        def get_next(self):
            return next(self.items, None)

    q.quantize_static(
        str(tmp_path / "fp32.onnx"),
        str(tmp_path / "int8.onnx"),
        Reader(),
        quant_format=q.QuantFormat.QDQ,
        activation_type=q.QuantType.QInt8,
        weight_type=q.QuantType.QInt8,
        per_channel=True,
        extra_options={"WeightSymmetric": True},
    )
    plain = (tmp_path / "int8.onnx").read_bytes()
    compact = compact_qdq(plain)
    for feats in speech_features:
        np.testing.assert_array_equal(onnx_runner(compact)(feats), onnx_runner(plain)(feats))
    before, after = size_breakdown(plain), size_breakdown(compact)
    assert sum(before.values()) == len(plain) and sum(after.values()) == len(compact)
    assert after["zero_points"] < before["zero_points"] / 10 and after["scales"] < 0.6 * before["scales"]
    assert after["quantized_int8"] >= 0.99 * before["quantized_int8"]  # the weights stay; only names got shorter
    graph = onnx.load_from_string(compact).graph
    assert sum(n.op_type == "Mul" for n in graph.node) > sum(
        n.op_type == "Mul" for n in onnx.load_from_string(plain).graph.node
    )
    fp32 = (tmp_path / "fp32.onnx").read_bytes()
    assert len(fp32) / len(compact) >= 3.7 > len(fp32) / len(plain)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_takes_utterances_of_different_lengths(method, speech_features):
    """onnxruntime's histogram calibrators stack every batch: utterances of different lengths
    failed with "inhomogeneous shape"."""
    model = seeded(DSConvCTC)
    fp32 = converters.export_onnx(model, torch.randn(1, 100, 80))
    calibration = [f[:n] for f, n in zip(speech_features, (90, 130, 150))]
    assert len({len(c) for c in calibration}) == 3
    int8 = converters.quantize(fp32, calibration, method=method)
    reference, candidate = onnx_runner(fp32)(speech_features[0]), onnx_runner(int8)(speech_features[0])
    cosine = float((reference * candidate).sum() / np.linalg.norm(reference) / np.linalg.norm(candidate))
    assert cosine > 0.99 and len(int8) < len(fp32) / 3.5
