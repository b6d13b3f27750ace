"""GPU execution providers without a GPU: onnxruntime's provider list and InferenceSession are
faked (the fake records what the backend asked for and runs the model on CPU), proving the
TensorRT and CUDA options a Jetson profile passes, the TensorRT shape profiles derived from the
manifest, the per-user engine cache, the fallback order with a warning naming each provider and
why, and `edge-speech bench --providers` / `targets --detect` on top of them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tiny_models
from tiny_bundles import FEATURES, make_bundle

from edge_speech import backends, cli
from edge_speech.bundle import Bundle
from edge_speech.manifest import InputSpec
from edge_speech.recognizer import Recognizer

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
REAL_SESSION = onnxruntime.InferenceSession
FRAMES_PER_SECOND = 16000 // 160  # the tiny bundles' 10 ms frame shift at 16 kHz


class FakeOrt:
    """Fakes onnxruntime's available providers and sessions. ``broken``: providers whose session
    start raises; ``silent``: providers the session leaves out without raising (a missing CUDA
    library). Every session start is recorded as (providers, provider_options)."""

    def __init__(self, monkeypatch, available=(TRT, CUDA, CPU), broken=(), silent=()):
        self.calls: list = []
        self.available, self.broken, self.silent = list(available), set(broken), set(silent)
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(self.available))
        monkeypatch.setattr(onnxruntime, "InferenceSession", self.session)

    def session(self, model, sess_options=None, providers=None, provider_options=None):
        self.calls.append((list(providers), [dict(o) for o in provider_options or [{}] * len(providers)]))
        failing = self.broken & set(providers)
        if failing:
            raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : {sorted(failing)[0]} could not start: no libnvinfer")
        real = REAL_SESSION(model, sess_options=sess_options, providers=[CPU])
        loaded = [p for p in providers if p not in self.silent]
        return _Session(real, loaded)


class _Session:
    def __init__(self, real, loaded):
        self._real, self._loaded = real, loaded

    def get_providers(self):
        return list(self._loaded)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _shape(name, *dims):
    return f"{name}:{'x'.join(str(d) for d in dims)}"


def test_a_jetson_profile_passes_tensorrt_and_cuda_options_and_shape_profiles(tmp_path, monkeypatch, cache_home):
    fake = FakeOrt(monkeypatch)
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    recognizer = Recognizer.from_bundle(bundle, target="jetson-orin")
    providers, options = fake.calls[-1]
    assert providers == [TRT, CUDA, CPU] and recognizer.backend.providers == (TRT, CUDA, CPU)
    trt, cuda, cpu = options
    assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
    assert trt["trt_timing_cache_enable"] is True and trt["trt_max_workspace_size"] == 2 << 30
    assert cuda == {
        "device_id": 0,
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": True,
    }
    assert cpu == {}
    # Dynamic time axis: one output frame (subsampling 2) .. the profile's 10 s .. 30 s, [1, T, 40].
    assert trt["trt_profile_min_shapes"] == _shape("features", 1, 2, FEATURES.dim)
    assert trt["trt_profile_opt_shapes"] == _shape("features", 1, 10 * FRAMES_PER_SECOND, FEATURES.dim)
    assert trt["trt_profile_max_shapes"] == _shape("features", 1, 30 * FRAMES_PER_SECOND, FEATURES.dim)
    # The engine cache: a per-user folder named after the model's sha256, made before the session.
    model_sha = hashlib.sha256(bundle.model_bytes["onnx"]).hexdigest()[:16]
    cache = Path(trt["trt_engine_cache_path"])
    assert cache.parent == cache_home / "edge_speech" / "trt" and cache.name.startswith(model_sha + "-")
    assert cache.is_dir() and trt["trt_timing_cache_path"] == str(cache)
    # The session behind the fake runs on CPU: the recognizer works as usual.
    samples = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    assert (
        recognizer.transcribe((samples, 16000)).text == Recognizer.from_bundle(bundle).transcribe((samples, 16000)).text
    )


def test_the_same_bundle_reuses_its_engine_cache_and_another_model_gets_its_own(tmp_path, monkeypatch, cache_home):
    fake = FakeOrt(monkeypatch)
    first = Bundle.load(make_bundle(tmp_path / "a"))
    for _ in range(2):
        backends.create_backend_for_target(first, "jetson-nano")
    other = Bundle.load(make_bundle(tmp_path / "c", tiny_models.build(FEATURES.dim, seed=1)))
    backends.create_backend_for_target(other, "jetson-nano")
    paths = [options[0]["trt_engine_cache_path"] for _, options in fake.calls]
    assert paths[0] == paths[1] != paths[2]
    assert fake.calls[0][1][0]["trt_max_workspace_size"] == 1 << 30  # the Nano's smaller workspace
    assert fake.calls[0][1][0]["trt_profile_opt_shapes"] == _shape("features", 1, 8 * FRAMES_PER_SECOND, 40)


def test_shape_profiles_follow_chunking_layout_and_the_extra_inputs(tmp_path):
    chunked = Bundle.load(
        make_bundle(
            tmp_path / "chunked",
            tiny_models.build(FEATURES.dim, frames=48),
            input=InputSpec(chunk_frames=32, left_context_frames=8, right_context_frames=8),
        )
    )
    shapes = backends.tensorrt_profile_shapes(chunked.manifest, chunked.manifest.input)
    window = _shape("features", 1, 8 + 32 + 8, 40)
    assert shapes == {f"trt_profile_{k}_shapes": window for k in ("min", "opt", "max")}
    manifest = chunked.manifest
    spec = InputSpec(layout="channel_major", length_name="lengths", max_frames=1500)
    shapes = backends.tensorrt_profile_shapes(manifest, spec, opt_seconds=4, max_seconds=60)
    assert shapes["trt_profile_min_shapes"] == "features:1x40x2,lengths:1"
    assert shapes["trt_profile_opt_shapes"] == f"features:1x40x{4 * FRAMES_PER_SECOND},lengths:1"
    assert shapes["trt_profile_max_shapes"] == "features:1x40x1500,lengths:1"  # max_frames caps 60 s
    spec = InputSpec(name="input_values", kind="waveform", mask_name="attention_mask")
    waveform = dataclasses.replace(manifest, features=None, subsampling_factor=320, input=spec, schema_version=2)
    shapes = backends.tensorrt_profile_shapes(waveform, spec, opt_seconds=5, max_seconds=20)
    assert shapes["trt_profile_min_shapes"] == "input_values:1x320,attention_mask:1x320"
    assert shapes["trt_profile_opt_shapes"] == "input_values:1x80000,attention_mask:1x80000"
    assert shapes["trt_profile_max_shapes"] == "input_values:1x320000,attention_mask:1x320000"
    with pytest.raises(ValueError, match="opt_seconds <= max_seconds"):
        backends.tensorrt_profile_shapes(manifest, manifest.input, opt_seconds=40, max_seconds=30)


def test_a_provider_that_fails_to_start_falls_to_the_next_with_a_warning_naming_it(
    tmp_path, monkeypatch, cache_home, caplog
):
    fake = FakeOrt(monkeypatch, broken={TRT})
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    with (
        caplog.at_level(logging.WARNING, logger="edge_speech"),
        pytest.warns(RuntimeWarning, match="falls back to CUDA"),
    ):
        backend = backends.create_backend_for_target(bundle, "jetson-orin")
    assert [providers for providers, _ in fake.calls] == [[TRT, CUDA, CPU], [CUDA, CPU]]
    assert fake.calls[1][1][0]["cudnn_conv_algo_search"] == "HEURISTIC"  # options follow their provider
    assert backend.providers == (CUDA, CPU)
    assert f"{TRT}: failed to start" in backend.fallback and "no libnvinfer" in backend.fallback
    assert any(TRT in r.getMessage() and "no libnvinfer" in r.getMessage() for r in caplog.records)


def test_unavailable_and_silently_dropped_providers_end_on_cpu_with_the_reasons(tmp_path, monkeypatch, cache_home):
    fake = FakeOrt(monkeypatch, available=(CUDA, CPU), silent={CUDA})
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    with pytest.warns(RuntimeWarning, match="falls back to CPU"):
        backend = backends.create_backend_for_target(bundle, "jetson-orin")
    assert fake.calls[0][0] == [CUDA, CPU]  # TensorRT was never asked for
    assert backend.providers == (CPU,)
    assert f"{TRT}: not available in this onnxruntime" in backend.fallback
    assert f"{CUDA}: ONNX Runtime did not load it" in backend.fallback
    assert not (cache_home / "edge_speech").exists()  # no engine cache folder without TensorRT


def test_only_cpu_failing_is_an_error(tmp_path, monkeypatch):
    FakeOrt(monkeypatch, available=(CPU,), broken={CPU})
    bundle = Bundle.load(make_bundle(tmp_path / "b"))
    with pytest.raises(Exception, match="ONNX Runtime cannot load the model"):
        backends.create_backend_for_target(bundle, "jetson-orin")


def test_bench_providers_times_a_fresh_then_a_cached_load_per_provider(tmp_path, monkeypatch, capsys, cache_home):
    fake = FakeOrt(monkeypatch)
    bundle = make_bundle(tmp_path / "b")
    argv = ["bench", str(bundle), "--seconds", "1", "--repeats", "1", "--target", "jetson-orin", "--providers"]
    assert cli.main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["provider"] for row in report["rows"]] == [TRT, CUDA, CPU]
    for row in report["rows"]:
        assert row["loaded"][0] == row["provider"] and row["note"] == ""
        assert row["first_load_s"] > 0 and row["cached_load_s"] > 0 and row["rtf"] > 0
    trt_loads = [options[0] for providers, options in fake.calls if providers[0] == TRT]
    assert len(trt_loads) == 2  # both loads share one fresh cache folder (not the user's)
    assert trt_loads[0]["trt_engine_cache_path"] == trt_loads[1]["trt_engine_cache_path"]
    assert not trt_loads[0]["trt_engine_cache_path"].startswith(str(cache_home))
    assert cli.main([*argv, TRT, CPU]) == 0
    table = capsys.readouterr().out
    assert "| provider | loaded | first load s | cached load s | RTF | note |" in table
    assert f"| {TRT} |" in table and f"| {CPU} |" in table and f"| {CUDA} |" not in table


def test_bench_providers_on_this_cpu_reports_the_cpu_row(tmp_path, capsys):
    assert cli.main(["bench", str(make_bundle(tmp_path / "b")), "--providers", "--seconds", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[-1]["provider"] == CPU and rows[-1]["loaded"] == [CPU]
    assert all(row["provider"] in onnxruntime.get_available_providers() for row in rows)


def test_targets_detect_reports_loaded_providers_and_falls_back_to_cpu(monkeypatch, capsys):
    orin = str(Path(__file__).parent / "data/boards/jetson-orin")
    FakeOrt(monkeypatch)
    assert cli.main(["targets", "--detect", "--root", orin, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loaded_providers"] == [TRT, CUDA, CPU]
    FakeOrt(monkeypatch, broken={TRT}, silent={CUDA})
    assert cli.main(["targets", "--detect", "--root", orin, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "jetson-orin" and report["loaded_providers"] == [CPU]
    assert [note.split(":")[0] for note in report["provider_notes"]] == [TRT, CUDA]
