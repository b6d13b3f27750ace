"""Smoke run of the real-voices recipe's chain (recipes/whisper_model) on a tiny random Whisper:
cache the frozen encoder's states, train the top layer + CTC head, build the bundle through
convert(), run it in the runtime, then fine-tune the whole encoder from that checkpoint. The scripts run as a user runs them: python -m from the
repository root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ctranslate2")

from edge_speech import Recognizer, audio, features  # noqa: E402
from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder  # noqa: E402
from recipes.whisper_model.build_bundle import load_model  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.recipe, pytest.mark.slow]

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "whisper_model"
TEXTS = ["turn on the light", "what time is it", "play some music", "set a timer", "open the door", "stop"]


def run(script: str, *args) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    module = "recipes.whisper_model." + Path(script).stem
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=RECIPE.parent.parent,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_recipe_chain_caches_trains_and_builds_a_working_bundle(tiny_whisper, speech_wav, tmp_path):
    _, whisper = tiny_whisper
    manifest = tmp_path / "train.jsonl"
    voices = ["en-us", "en-gb"]
    rows = [{"path": str(speech_wav(16000, text, voices[i % 2])), "text": text} for i, text in enumerate(TEXTS)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))

    cache = tmp_path / "cache"
    run(
        "cache_encoder.py",
        "--whisper",
        whisper,
        "--manifest",
        manifest,
        "--out",
        cache,
        "--frozen-layers",
        1,
        "--threads",
        1,
    )
    index = [json.loads(line) for line in (cache / "index.jsonl").read_text().splitlines()]
    assert [r["text"] for r in index] == TEXTS
    frames = [
        len(features.compute(audio.read_wav(r["path"])[0], 16000, features.FeatureConfig.preset("whisper")))
        for r in rows
    ]
    assert [r["frames"] for r in index] == [(n - 1) // 2 + 1 for n in frames]
    assert (cache / "states.f16").stat().st_size == sum(r["frames"] for r in index) * 64 * 2
    # resumable: a second run adds nothing
    run("cache_encoder.py", "--whisper", whisper, "--manifest", manifest, "--out", cache, "--frozen-layers", 1)
    assert len((cache / "index.jsonl").read_text().splitlines()) == len(TEXTS)

    runs = tmp_path / "run"
    run(
        "train_head.py",
        "--whisper",
        whisper,
        "--train",
        cache,
        "--dev",
        cache,
        "--out",
        runs,
        "--epochs",
        2,
        "--frozen-layers",
        1,
        "--head-hidden",
        32,
        "--threads",
        1,
        "--max-frames",
        400,
    )
    log = (runs / "log.txt").read_text()
    assert "epoch 1 done" in log and (runs / "best.pt").exists()

    bundle = tmp_path / "bundle"
    run(
        "build_bundle.py",
        "--whisper",
        whisper,
        "--checkpoint",
        runs / "best.pt",
        "--calib",
        manifest,
        "--eval",
        manifest,
        "--out",
        bundle,
        "--calibration",
        4,
        "--eval-count",
        4,
        "--quantize",
        "dynamic",
    )
    recognizer = Recognizer.from_bundle(bundle, threads=1)
    m = recognizer.manifest
    assert m.features.output_clamp == "fixed" and m.input.max_frames == 1000 and m.subsampling_factor == 2
    steps = {s["step"]: s for s in m.verification["steps"]}
    assert steps["export_onnx"]["vs_torch"]["cosine"] >= 0.9999
    assert steps["quantize"]["size_ratio"] >= 1.4  # a 64-wide toy: biases, norms and positions weigh more than in base
    samples = audio.read_wav(rows[0]["path"])[0]
    log_probs = recognizer.log_probs(samples)
    assert log_probs.shape == ((len(samples) // 160 - 1) // 2 + 1, 29)
    assert np.allclose(np.exp(log_probs).sum(-1), 1, atol=1e-3)

    # The whole encoder, stem included, fine-tuned on waveforms from that checkpoint.
    full = tmp_path / "full"
    run(
        "finetune_encoder.py",
        "--whisper",
        whisper,
        "--init",
        runs / "best.pt",
        "--train",
        f"{manifest}:2",
        "--dev",
        manifest,
        "--dev-count",
        2,
        "--asterisk",
        0,
        "--out",
        full,
        "--epochs",
        1,
        "--max-frames",
        1200,
        "--threads",
        1,
    )
    log = (full / "log.txt").read_text()
    assert "start step 0:" in log and "epoch 0 done" in log, log
    state = torch.load(full / "last.pt")
    assert state["frozen_layers"] == 0 and state["epoch"] == 1
    assert {"encoder.conv1.weight", "encoder.layers.0.attention.query.weight"} <= set(state["trainable"])
    tuned, original = load_model(whisper, full / "last.pt"), load_ctranslate2_encoder(whisper)
    for name in ("conv1.weight", "layers.0.feed_forward.up.weight"):
        moved = (dict(tuned.encoder.named_parameters())[name] - dict(original.named_parameters())[name]).abs().max()
        assert moved > 0, f"{name} did not train"
