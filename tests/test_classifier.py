"""Keyword classifiers end to end: the DS-CNN built in the tests is pruned, quantized and
exported by the converter as a classifier bundle, and the runtime's KeywordClassifier runs it on
both backends; clips are fitted to the trained length the same way in the converter and the
runtime."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converter_models import DSCNN, seeded

from edge_speech import KeywordClassifier, Recognizer, converters, features
from edge_speech.bundle import Bundle, BundleError, InputSpec, Manifest
from edge_speech.classifier import clip_features, clip_samples, fit_clip

pytestmark = pytest.mark.torch

FBANK = features.FeatureConfig.preset("kaldi-fbank")
LABELS = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_short_audio_is_centred_in_silence_and_long_audio_gives_its_loudest_clip():
    short = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_clip(short, 9, 2), [0, 0, 1, 2, 3, 4, 5, 0, 0])
    x = np.full(1000, 0.01, dtype=np.float32)
    x[613:700] = 1.0  # the "keyword"
    clip = fit_clip(x, 200, 10)
    assert len(clip) == 200 and clip.sum() >= 87  # all of the loud part
    energies = [float((x[s : s + 200] ** 2).sum()) for s in range(0, 801, 10)]
    assert float((clip**2).sum()) == pytest.approx(max(energies))
    np.testing.assert_array_equal(fit_clip(x[:200], 200, 10), x[:200])


@pytest.mark.parametrize("preset", sorted(features.PRESETS))
@pytest.mark.parametrize("frames", [1, 49, 98, 101])
def test_clip_samples_is_the_shortest_signal_with_that_many_frames(preset, frames):
    config = features.FeatureConfig.preset(preset)
    n = clip_samples(frames, config, 16000)
    assert config.num_frames(n, 16000) == frames and config.num_frames(n - 1, 16000) < frames
    rng = np.random.default_rng(frames)
    assert clip_features(rng.standard_normal(3 * n).astype(np.float32) * 0.1, config, 16000, frames).shape == (
        frames,
        config.dim,
    )


@pytest.fixture(scope="module")
def kws_bundles(tmp_path_factory, speech):
    samples = speech(16000)
    clips = [samples[i : i + 16000] for i in range(0, len(samples) - 16000, 4000)]
    rng = np.random.default_rng(0)
    evaluation = [((clip, 16000), LABELS[int(rng.integers(len(LABELS)))]) for clip in clips]
    out = tmp_path_factory.mktemp("kws") / "kws"
    frames = FBANK.num_frames(16000, 16000)
    report = converters.convert(
        seeded(DSCNN, classes=len(LABELS)),
        torch.randn(1, frames, FBANK.dim),
        FBANK,
        LABELS,
        calib=clips,
        eval=evaluation,
        prune=0.5,
        quantize="int8",
        formats=("onnx", "tflite"),
        out=out,
        name="ds-cnn",
    )
    return report, out, clips, frames


def test_the_converter_writes_a_classifier_bundle(kws_bundles):
    report, out, clips, frames = kws_bundles
    assert [s["step"] for s in report.steps] == ["source", "prune", "export_onnx", "quantize", "export_tflite"]
    assert abs(report.step("prune")["mac_reduction"] - 0.5) <= 0.05
    for step in report.steps:
        assert 0.0 <= step["accuracy"] <= 1.0 and "cer" not in step
    assert report.step("export_onnx")["vs_torch"]["cosine"] > 0.9999
    assert report.step("export_onnx")["vs_torch"]["frame_agreement"] == 1.0  # same decision on every clip
    assert report.step("export_tflite")["clip_frames"] == frames
    manifest = Bundle.load(out).manifest
    assert manifest.kind == "classifier" and list(manifest.tokens) == LABELS
    assert manifest.input.clip_frames == frames and manifest.input_for("tflite").clip_frames == frames
    assert Bundle.load(out.with_name("kws-fp32")).manifest.kind == "classifier"


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_int8_classifier_agrees_with_the_float_model_on_both_backends(kws_bundles, backend):
    _, out, clips, frames = kws_bundles
    reference = KeywordClassifier.from_bundle(out.with_name("kws-fp32"))
    quantized = KeywordClassifier.from_bundle(out, backend=backend)
    assert quantized.backend.name == backend and quantized.clip_frames == frames
    for clip in clips:
        a, b = reference.logits(clip), quantized.logits(clip)
        assert a.shape == (len(LABELS),) and _cosine(a, b) >= 0.99
    result = quantized.classify((clips[0], 16000))
    assert result.label in LABELS and result.scores[result.label] == result.confidence
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.to_dict()["label"] == result.label


def test_any_length_and_rate_is_fitted_to_the_clip(kws_bundles):
    _, out, clips, _ = kws_bundles
    clf = KeywordClassifier.from_bundle(out.with_name("kws-fp32"))
    word = clips[2][4000:12000]
    inside_silence = np.concatenate([np.zeros(20000, np.float32), word, np.zeros(9000, np.float32)])
    # The loudest clip of a long recording holds the whole word, as a 1 s clip centred on it does.
    assert clf.classify((inside_silence, 16000)).label == clf.classify((word, 16000)).label
    import soxr

    at_8k = soxr.resample(clips[1], 16000, 8000).astype(np.float32)
    assert clf.classify((at_8k, 8000)).label in LABELS
    with pytest.raises(ValueError):
        clf.classify((np.zeros(0, np.float32), 16000))
    with pytest.raises(ValueError):
        clf.classify((np.full(16000, np.nan, np.float32), 16000))


def test_classifier_and_ctc_bundles_are_not_mixed_up(kws_bundles, tmp_path):
    _, out, clips, frames = kws_bundles
    with pytest.raises(BundleError, match="needs a CTC bundle"):
        Recognizer.from_bundle(out)
    manifest = Bundle.load(out).manifest
    with pytest.raises(BundleError, match="needs input.clip_frames"):
        Manifest(kind="classifier", sample_rate=16000, features=FBANK, tokens=tuple(LABELS), models={"onnx": "m.onnx"})
    with pytest.raises(BundleError, match="clip_frames is for classifiers"):
        Manifest(
            kind="ctc",
            sample_rate=16000,
            features=FBANK,
            tokens=("<b>", "a"),
            models={"onnx": "m.onnx"},
            input=InputSpec(clip_frames=98),
        )
    with pytest.raises(BundleError, match="without chunk_frames"):
        InputSpec(clip_frames=98, chunk_frames=64)
    assert manifest.to_dict()["input"]["clip_frames"] == frames
    with pytest.raises(ValueError, match=r"labels \['maybe'\] are not among"):
        converters.convert(
            seeded(DSCNN, classes=len(LABELS)),
            torch.randn(1, frames, FBANK.dim),
            FBANK,
            LABELS,
            eval=[((clips[0], 16000), "maybe")],
            quantize=None,
            out=tmp_path / "x",
        )


def test_cli_classify_prints_labels_and_names_bad_files(kws_bundles, tmp_path):
    import json
    import subprocess
    import sys

    from conftest import write_pcm16_wav

    _, out, clips, _ = kws_bundles
    wav = write_pcm16_wav(tmp_path / "clip.wav", clips[0], 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "classify",
            str(wav),
            str(tmp_path / "bad.wav"),
            "--bundle",
            str(out),
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "bad.wav" in run.stderr
    line = json.loads(run.stdout.splitlines()[0])
    expected = KeywordClassifier.from_bundle(out).classify(wav)
    assert line["label"] == expected.label and set(line["scores"]) == set(LABELS)


def test_cli_converts_a_classifier_with_a_jsonl_manifest(tmp_path, speech):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import write_pcm16_wav

    (tmp_path / "kws.py").write_text(
        "from converter_models import DSCNN, seeded\ndef make():\n    return seeded(DSCNN, classes=%d)\n" % len(LABELS)
    )
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")
    samples = speech(16000)
    (tmp_path / "audio").mkdir()
    for i in range(3):
        write_pcm16_wav(tmp_path / "audio" / f"{i}.wav", samples[8000 * i : 8000 * i + 12000], 16000)
    (tmp_path / "eval.jsonl").write_text(
        "".join(
            json.dumps({"audio": f"audio/{i}.wav", "label": label}) + "\n"
            for i, label in enumerate(["yes", "no", "stop"])
        )
    )
    command = [
        sys.executable,
        "-m",
        "edge_speech.cli",
        "convert",
        "--factory",
        "kws:make",
        "--tokens",
        "labels.txt",
        "--calib",
        "audio",
        "--eval",
        "eval.jsonl",
        "--formats",
        "onnx,tflite",
        "-o",
        "out",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}  # converter_models
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert all("accuracy" in step for step in report["steps"])
    manifest = Bundle.load(tmp_path / "out").manifest
    assert manifest.kind == "classifier" and manifest.input.clip_frames == FBANK.num_frames(16000, 16000)
    (tmp_path / "bad.jsonl").write_text('{"audio": "audio/0.wav"}\n')
    bad = subprocess.run(
        command[:-4] + ["--eval", "bad.jsonl", "-o", "x"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "bad.jsonl:1" in bad.stderr and '"label"' in bad.stderr


def test_a_pruned_classifier_fine_tunes_on_labels(speech):
    """The classifier branch of converters.finetune: cross-entropy on class ids (a random-weight
    teacher's distillation signal is nearly flat, so the labels are what is learnt here)."""
    from edge_speech.converters.finetune import finetune

    samples = speech(16000)
    frames = FBANK.num_frames(16000, 16000)
    clips = [clip_features(samples[i : i + 16000], FBANK, 16000, frames) for i in range(0, len(samples) - 8000, 2000)]
    teacher = seeded(DSCNN, classes=len(LABELS))
    student, _ = converters.prune(teacher, torch.from_numpy(clips[0])[None], target_macs_ratio=0.5)
    batch = torch.from_numpy(np.stack(clips))
    labels = [3 * i // len(clips) for i in range(len(clips))]  # which third of the sentence

    def accuracy() -> float:
        with torch.no_grad():
            return float(np.mean([p == t for p, t in zip(student(batch).argmax(-1).tolist(), labels)]))

    before = accuracy()
    report = finetune(
        student,
        teacher,
        clips,
        labels,
        epochs=12,
        batch_size=4,
        lr=3e-3,
        kd_weight=0.0,
        spec_augment=False,
        progress=False,
    )
    # Measured: cross-entropy 2.53 -> 1.40, accuracy 0.0 -> 0.44 (chance 1/3; raw fbank into a random
    # DS-CNN learns slowly in 84 steps). A classifier branch that ignored the labels would not move.
    assert report.steps == 12 * -(-len(clips) // 4) and report.last_loss < 0.7 * report.first_loss
    assert accuracy() > max(before, 1 / 3), (before, accuracy())
