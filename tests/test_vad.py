"""Silero VAD through ONNX Runtime: it hears synthesised speech and not silence or noise, its
streaming decisions equal a plain loop over the ONNX model, it never imports torch, and a missing
model file says what to install."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest
import soxr
from conftest import run_cli, write_pcm16_wav

from edge_speech import audio, vad

WINDOW, CONTEXT = {16000: 512, 8000: 256}, {16000: 64, 8000: 32}


def reference_probabilities(samples: np.ndarray, rate: int) -> np.ndarray:
    """Silero's documented usage, written out: each window preceded by the previous window's last
    context samples (zeros at the start), the state carried from call to call."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(vad.find_silero_model()), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros(CONTEXT[rate], dtype=np.float32)
    out = []
    for start in range(0, len(samples) - WINDOW[rate] + 1, WINDOW[rate]):
        window = samples[start : start + WINDOW[rate]]
        prob, state = session.run(
            None,
            {"input": np.concatenate([context, window])[None], "state": state, "sr": np.array(rate, dtype=np.int64)},
        )
        context = window[-CONTEXT[rate] :]
        out.append(float(prob[0, 0]))
    return np.array(out)


def hysteresis(probabilities, threshold=0.5, release=0.35) -> list:
    speaking, out = False, []
    for p in probabilities:
        speaking = p >= release if speaking else p >= threshold
        out.append(int(speaking))
    return out


def quiet(seconds: float, rate: int, level: float = 0.0005, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 8000])
@pytest.mark.parametrize("chunk", [1, 17, 509, 4000, None])
def test_streaming_decisions_equal_a_plain_onnxruntime_loop(speech, rate, chunk):
    samples = np.concatenate([quiet(0.5, rate), speech(rate), quiet(0.7, rate)])
    expected = reference_probabilities(samples, rate)
    detector = vad.SileroVad(sample_rate_hz=rate)
    step = chunk or len(samples)
    pieces = [samples[i : i + step] for i in range(0, len(samples), step)]
    decisions = b"".join(detector.accept(p) for p in pieces)
    detector.reset()
    probabilities = np.concatenate([detector.accept_probabilities(p) for p in pieces])
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert list(decisions) == hysteresis(expected)
    assert 0 < sum(decisions) < len(decisions)


def test_other_rates_are_resampled_to_16k(speech):
    samples = np.concatenate([quiet(0.5, 16000), speech(16000), quiet(0.7, 16000)])
    at_48k = soxr.resample(samples, 16000, 48000, quality="HQ").astype(np.float32)
    expected = reference_probabilities(soxr.resample(at_48k, 48000, 16000, quality="HQ").astype(np.float32), 16000)
    detector = vad.SileroVad(sample_rate_hz=48000)
    got = np.concatenate([detector.accept_probabilities(at_48k[i : i + 960]) for i in range(0, len(at_48k), 960)])
    assert detector.frame_seconds == 0.032
    assert len(expected) - 2 <= len(got) <= len(expected)  # the streaming resampler holds back its delay
    np.testing.assert_allclose(got, expected[: len(got)], atol=1e-5)


def test_speech_is_speech_and_silence_or_noise_is_not(speech_wav):
    rate = 16000
    talk = {}
    for voice in ("en-us", "en-gb-x-rp+f3"):  # a voice and a held-out one for the default model
        raw = audio.read_wav(speech_wav(rate, voice=voice))[0]
        loud = np.flatnonzero(np.abs(raw) > 0.02)
        talk[voice] = raw[loud[0] : loud[-1]]  # the spoken part, without espeak's own lead-in and tail
    for voice, words in talk.items():
        detector = vad.SileroVad()
        lead, tail = quiet(1.0, rate, seed=1), quiet(1.5, rate, seed=2)
        decisions = np.frombuffer(detector.accept(np.concatenate([lead, words, tail])), dtype=np.uint8)
        per_s = 1 / detector.frame_seconds
        before = decisions[: int(1.0 * per_s) - 1]
        during = decisions[int(1.0 * per_s) + 1 : int((1.0 + len(words) / rate) * per_s) - 1]
        after = decisions[int((1.0 + len(words) / rate) * per_s) + 10 :]  # 10 windows for the release
        assert before.sum() == 0 and after.sum() == 0, voice
        assert during.mean() >= 0.8, (voice, during.mean())
    for level in (0.0, 0.0005, 0.01, 0.05):  # digital silence, room noise, steady hiss
        detector = vad.SileroVad()
        assert sum(detector.accept(quiet(5.0, rate, level, seed=3))) == 0, level


def test_the_runtime_never_imports_torch_or_the_silero_package():
    code = (
        "import sys, numpy as np\n"
        "from edge_speech import vad\n"
        "v = vad.SileroVad()\n"
        "v.accept(np.zeros(16000, dtype=np.float32))\n"
        "print([m for m in ('torch', 'silero_vad') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_missing_model_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    with pytest.raises(FileNotFoundError, match="pip install --no-deps silero-vad"):
        vad.SileroVad(model_path=tmp_path / "nowhere.onnx")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "silero_vad" else real_find_spec(name, *a)
    )
    with pytest.raises(FileNotFoundError, match="silero_vad.onnx from the silero-vad package: pip install"):
        vad.SileroVad()


def test_a_missing_model_fails_the_cli_with_the_hint(tmp_path):
    wav = write_pcm16_wav(tmp_path / "quiet.wav", quiet(1.0, 16000), 16000)
    result = run_cli("listen", "--wav", str(wav), "--vad", "silero", "--silero-model", str(tmp_path / "gone.onnx"))
    assert result.returncode == 2
    assert "gone.onnx does not exist" in result.stderr and "pip install --no-deps silero-vad" in result.stderr


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        vad.SileroVad(threshold=1.5)
    with pytest.raises(ValueError, match="release_threshold"):
        vad.SileroVad(threshold=0.5, release_threshold=0.7)
    with pytest.raises(ValueError, match="unknown VAD 'webrtc'; choose one of energy, silero"):
        vad.create_vad("webrtc", 16000)
    not_silero = tmp_path / "other.onnx"
    not_silero.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        vad.SileroVad(model_path=not_silero)
    detector = vad.SileroVad()
    with pytest.raises(ValueError, match="NaN"):
        detector.accept(np.array([0.0, np.nan] * 300, dtype=np.float32))
    with pytest.raises(TypeError, match="1-D float"):
        detector.accept(np.zeros((2, 512), dtype=np.float32))
