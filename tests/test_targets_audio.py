"""Target profiles and detection; audio loading with resampling (soxr) and its errors."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest

from edge_speech import audio, targets

EXPECTED = {"rpi3", "rpi4", "rpi5", "jetson-nano", "jetson-orin", "x86_64", "generic-aarch64"}


def test_every_documented_target_loads():
    profiles = targets.load_targets()
    assert EXPECTED <= set(profiles)
    for target in profiles.values():
        assert target.backend in ("onnx", "tflite") and target.quantization in ("int8", "int16x8", "float", "dynamic")
        assert target.onnx_providers[-1] == "CPUExecutionProvider"
    assert "TensorrtExecutionProvider" in targets.get_target("jetson-orin").onnx_providers
    with pytest.raises(ValueError, match="unknown target 'pi9'"):
        targets.get_target("pi9")


@pytest.mark.parametrize(
    "model, cpuinfo, machine, expected",
    [
        ("Raspberry Pi 4 Model B Rev 1.4\x00", "", "aarch64", "rpi4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "", "aarch64", "rpi5"),
        ("", "processor\t: 0\nCPU part\t: 0xd03\n", "aarch64", "rpi3"),
        ("NVIDIA Jetson Orin Nano Developer Kit", "", "aarch64", "jetson-orin"),
        ("NVIDIA Jetson Nano Developer Kit", "CPU part\t: 0xd07", "aarch64", "jetson-nano"),
        ("", "model name : Intel(R) Xeon", "x86_64", "x86_64"),
        ("Some Other Board", "CPU part : 0xfff", "aarch64", "generic-aarch64"),
    ],
)
def test_detection_from_device_tree_cpuinfo_and_arch(model, cpuinfo, machine, expected):
    name, reason = targets.detect_target(cpuinfo=cpuinfo, device_tree_model=model, machine=machine)
    assert name == expected and reason


def test_cli_lists_targets_and_detects_this_machine():
    listing = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "targets"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=True,
    ).stdout
    assert all(name in listing for name in EXPECTED)
    detected = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "targets", "--detect"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=True,
    ).stdout
    assert detected.split()[0] in EXPECTED


def test_load_audio_resamples_with_soxr_and_keeps_a_tone(speech_wav):
    rate = 22050
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = audio.load_audio((tone, rate), 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over one second
    from_file = audio.load_audio(speech_wav(44100), 16000)
    reference = audio.load_audio(speech_wav(16000), 16000)
    assert abs(len(from_file) - len(reference)) <= 2


def test_load_audio_accepts_int16_and_stereo_arrays():
    pcm = np.array([0, 16384, -16384, 32767], dtype=np.int16)
    np.testing.assert_allclose(audio.load_audio((pcm, 16000), 16000), pcm / 32768.0)
    stereo = np.stack([np.ones(10), -np.ones(10)], axis=1).astype(np.float32)
    np.testing.assert_array_equal(audio.load_audio((stereo, 16000), 16000), np.zeros(10))


@pytest.mark.parametrize(
    "source, error, message",
    [
        ((np.zeros(0, dtype=np.float32), 16000), ValueError, "no samples"),
        ((np.array([0.1, np.nan], dtype=np.float32), 16000), ValueError, "NaN or Inf"),
        ((np.zeros(10, dtype=np.float32), 0), ValueError, "sample rate"),
        ((np.zeros(10, dtype=np.int32), 16000), TypeError, "float or int16"),
        (42, TypeError, "file path or a"),
    ],
)
def test_load_audio_rejects_bad_input(source, error, message):
    with pytest.raises(error, match=message):
        audio.load_audio(source, 16000)


def test_load_audio_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such audio file"):
        audio.load_audio(tmp_path / "missing.wav", 16000)
    odd = tmp_path / "clip.xyz"
    odd.write_bytes(b"\x01\x02\x03\x04" * 100)
    with pytest.raises(ValueError, match="clip.xyz"):
        audio.load_audio(odd, 16000)


def test_read_raw_pcm(tmp_path):
    pcm = np.array([0, 1000, -1000, 32767, -32768, 5], dtype="<i2")
    (tmp_path / "a.raw").write_bytes(pcm.tobytes())
    samples, rate = audio.read_raw(tmp_path / "a.raw", 8000, "s16le", channels=2)
    assert rate == 8000
    np.testing.assert_allclose(samples, pcm.reshape(-1, 2).mean(axis=1) / 32768.0, rtol=1e-6)
    (tmp_path / "odd.raw").write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="not a whole number"):
        audio.read_raw(tmp_path / "odd.raw", 8000, "s16le")
    with pytest.raises(ValueError, match="raw sample format"):
        audio.read_raw(tmp_path / "a.raw", 8000, "mp3")
