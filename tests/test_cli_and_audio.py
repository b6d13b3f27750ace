"""The WAV reader over every PCM width and float, bad files, and the edge-speech CLI."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from edge_speech import audio


def write_wav(path, payload: bytes, *, tag=1, channels=1, rate=16000, bits=16):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize(
    "encoding, bits",
    [
        ("signed-integer", 8),
        ("signed-integer", 16),
        ("signed-integer", 24),
        ("signed-integer", 32),
        ("floating-point", 32),
        ("floating-point", 64),
    ],
)
def test_read_wav_decodes_every_sox_encoding_like_sox(tmp_path, speech_wav, encoding, bits):
    src = speech_wav(16000)
    out = tmp_path / f"x_{bits}.wav"
    enc = "unsigned-integer" if bits == 8 else encoding
    subprocess.run(["sox", "-D", str(src), "-e", enc, "-b", str(bits), str(out)], check=True)
    ours, rate = audio.read_wav(out)
    ref, _ = audio.read_wav(src)  # 16-bit PCM
    assert rate == 16000 and ours.dtype == np.float32 and len(ours) == len(ref)
    tolerance = 1 / 256 if bits == 8 else 1e-4  # sox -D: rounding only, no dither
    assert np.max(np.abs(ours - ref)) <= tolerance


def test_read_wav_mixes_stereo_down(tmp_path):
    left = np.full(100, 1000, dtype="<i2")
    right = np.full(100, 3000, dtype="<i2")
    write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1).tobytes(), channels=2)
    samples, rate = audio.read_wav(tmp_path / "s.wav")
    assert rate == 16000 and samples.shape == (100,)
    np.testing.assert_allclose(samples, 2000 / 32768, rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not audio at all"), "not a RIFF/WAVE"),
        (lambda p: p.write_bytes(b""), "not a RIFF/WAVE"),
        (lambda p: write_wav(p, b"\x00\x01" * 10, tag=2), "unsupported WAV encoding"),
        (lambda p: write_wav(p, struct.pack("<ff", 0.1, float("nan")), tag=3, bits=32), "NaN or Inf"),
    ],
)
def test_bad_wav_files_name_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(ValueError, match=message):
        audio.read_wav(path)


def test_truncated_wav_is_reported(tmp_path, speech_wav):
    data = speech_wav(16000).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        audio.read_wav(path)
    path.write_bytes(data[:30])
    with pytest.raises(ValueError, match="fmt"):
        audio.read_wav(path)


def run_cli(*args):
    # Outside the checkout, so the installed package (with its extension) is the one imported.
    return subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", *args], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )


def test_cli_features_summarises_a_wav(speech_wav):
    result = run_cli("features", str(speech_wav(16000)), "--preset", "kaldi-mfcc", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dim"] == 13 and summary["sample_rate"] == 16000
    assert summary["frames"] == 1 + (int(summary["duration_s"] * 16000) - 400) // 160


def test_cli_reports_bad_files_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF")
    result = run_cli("features", str(bad))
    assert result.returncode == 2
    assert "not a RIFF/WAVE" in result.stderr and "Traceback" not in result.stderr
    missing = run_cli("features", str(tmp_path / "missing.wav"))
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_convert_factory_loads_from_a_module_a_script_beside_the_user_or_a_file(tmp_path, monkeypatch):
    import sys

    from edge_speech import cli

    (tmp_path / "beside_me.py").write_text("def make():\n    return 'made beside'\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "elsewhere.py").write_text("def build():\n    return 'made elsewhere'\n")
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    assert cli._load_factory("beside_me:make")() == "made beside"
    assert cli._load_factory("sub/elsewhere.py:build")() == "made elsewhere"
    assert cli._load_factory("json:dumps") is __import__("json").dumps
    assert sys.path == path_before  # found without touching the import path
    for spec, message in (
        ("nomodule", "module:function"),
        ("missing_module:make", "no missing_module.py"),
        ("beside_me:absent", "no function 'absent'"),
        ("nofile.py:make", "is not a file"),
    ):
        with pytest.raises(ValueError, match=message):
            cli._load_factory(spec)
