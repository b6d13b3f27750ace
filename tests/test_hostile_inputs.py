"""Hostile inputs (issue 16): audio and LM files; each test reproduces an input that once crashed, hung or
allocated without bound, and checks it now gets a clear error within the limits policy
(:mod:`edge_speech.limits`) or the right result."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_speech import audio, limits
from edge_speech.limits import ResourceLimitError


def wav_bytes(rate: int, samples: np.ndarray, channels: int = 1) -> bytes:
    data = np.asarray(samples, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def test_a_wav_declaring_1_hz_is_refused_before_resampling(tmp_path):
    """4 KB at 1 Hz once became 828 MB and 25 s of resampling to 16 kHz."""
    path = tmp_path / "one_hz.wav"
    path.write_bytes(wav_bytes(1, np.zeros(2000)))
    with pytest.raises(ResourceLimitError, match="sample rate: 1 Hz is over the limit min_sample_rate=1000"):
        audio.load_audio(path, 16000)


@pytest.mark.parametrize("rate", [2**31 - 1, 2**50])
def test_absurd_sample_rates_are_refused_not_hung(tmp_path, rate):
    with pytest.raises(ResourceLimitError, match="max_sample_rate"):
        audio.load_audio((np.zeros(100, np.float32), rate), 16000)
    if rate < 2**32:
        path = tmp_path / "fast.wav"
        path.write_bytes(wav_bytes(rate, np.zeros(100)))
        with pytest.raises(ResourceLimitError, match="max_sample_rate"):
            audio.read_wav(path)


def test_dev_zero_and_a_fifo_are_refused_at_once(tmp_path):
    """read_wav on /dev/zero read without end; on a FIFO with no writer it hung."""
    with pytest.raises(ValueError, match="a device, not a regular audio file"):
        audio.read_wav("/dev/zero")
    with pytest.raises(ValueError, match="a device, not a regular audio file"):
        audio.load_audio("/dev/zero", 16000)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    result = []
    worker = threading.Thread(target=lambda: result.append(_error_of(audio.load_audio, fifo, 16000)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "load_audio blocked on a FIFO"
    assert "a FIFO, not a regular audio file" in str(result[0])


def _error_of(function, *args):
    try:
        function(*args)
    except Exception as err:  # the test inspects which error it was
        return err
    return None


def test_duration_and_file_size_limits_apply_and_can_be_raised(tmp_path):
    path = tmp_path / "ten_seconds.wav"
    path.write_bytes(wav_bytes(16000, np.zeros(160000)))
    with limits.override(max_audio_seconds=5):
        with pytest.raises(ResourceLimitError, match="duration: 10 s is over the limit max_audio_seconds=5"):
            audio.load_audio(path, 16000)
        with pytest.raises(ResourceLimitError, match="max_audio_seconds"):
            audio.load_audio((np.zeros(160000, np.float32), 16000), 16000)
        with pytest.raises(ResourceLimitError, match="max_audio_seconds"):  # 1 s at 8 kHz -> fine; 6 s -> not
            audio.resample(np.zeros(48000, np.float32), 8000, 16000)
    with limits.override(max_audio_file_bytes=1000):
        with pytest.raises(ResourceLimitError, match="file size: 320044 bytes is over the limit max_audio_file_bytes"):
            audio.read_wav(path)
    assert len(audio.load_audio(path, 16000)) == 160000  # outside the blocks the defaults hold again
    with pytest.raises(TypeError, match="unknown limit"):
        with limits.override(max_audio_minutes=1):
            pass
    with pytest.raises(ValueError, match="positive"):
        limits.configure(max_audio_seconds=-1)


def test_overrides_are_per_thread():
    seen = {}

    def other():
        seen["other"] = limits.current().max_audio_seconds

    with limits.override(max_audio_seconds=7):
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        seen["this"] = limits.current().max_audio_seconds
    assert seen == {"this": 7, "other": limits.Limits().max_audio_seconds}


def test_channels_first_arrays_are_read_as_channels():
    """A (2, N) array was taken as N channels of 2 frames and gave empty text."""
    t = np.arange(16000) / 16000
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)
    frames_first = np.stack([left, right], axis=1).astype(np.float32)
    channels_first = np.ascontiguousarray(frames_first.T)
    np.testing.assert_array_equal(
        audio.load_audio((channels_first, 16000), 16000), audio.load_audio((frames_first, 16000), 16000)
    )
    with pytest.raises(ValueError, match="at most 32 channels, got shape \\(100, 200\\)"):
        audio.load_audio((np.zeros((100, 200), np.float32), 16000), 16000)


def test_big_endian_float_arrays_are_read():
    samples = (0.5 * np.sin(np.arange(8000) / 10)).astype(">f4")
    np.testing.assert_array_equal(audio.load_audio((samples, 16000), 16000), samples.astype(np.float32))


def test_lm_gzip_bombs_and_lying_headers_are_refused_before_allocating(tmp_path):
    """A 204 KB gzip LM inflated to 449 MB with no cap; a 48-byte ARPA whose header claims 10^8
    words allocated 563 MB before failing."""
    import gzip
    import resource

    from edge_speech.decoding import ArpaLM

    bomb = tmp_path / "bomb.arpa.gz"
    bomb.write_bytes(gzip.compress(b"\\data\\\nngram 1=1\n" + b"\n" * (64 << 20), compresslevel=9))
    assert bomb.stat().st_size < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with limits.override(max_lm_bytes=8 << 20):
        with pytest.raises(
            ResourceLimitError, match="decompressed size: over 8388608 bytes is over the limit max_lm_bytes"
        ):
            ArpaLM.from_file(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 40 << 10  # KiB: no 64 MB inflate
    liar = tmp_path / "liar.arpa"
    liar.write_bytes(b"\\data\\\nngram 1=100000000\n\n\\1-grams:\n-1 a\n\\end\\\n")
    with pytest.raises(ValueError, match="need at least 400000000 bytes, but the text has 47"):
        ArpaLM.from_file(liar)
    truncated = tmp_path / "cut.arpa.gz"
    truncated.write_bytes(gzip.compress(b"\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n\\end\\\n")[:-12])
    with pytest.raises(ValueError, match="not a valid gzip file: the data ends"):
        ArpaLM.from_file(truncated)
    good = tmp_path / "good.arpa.gz"
    good.write_bytes(gzip.compress(b"\\data\\\nngram 1=1\n\n\\1-grams:\n-1 a\n\n\\end\\\n"))
    assert ArpaLM.from_file(good).words == ("a",)


def test_absurd_numbers_in_configs_are_refused_with_their_bounds():
    """A hotword boost of 3e38 made the beam return garbage; cmvn_std 1e-30 gave Inf features."""
    from edge_speech import Recognizer, features

    rec = Recognizer.default()
    speech = (np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match=r"boosts must be in \(0, 100\]"):
        rec.transcribe(speech, hotwords={"kitchen light": 3e38})
    assert isinstance(rec.transcribe(speech, hotwords={"kitchen light": 100.0}).text, str)
    base = features.FeatureConfig.preset("kaldi-fbank")
    with pytest.raises(ValueError, match="cmvn_std values must be finite and >= 1e-06"):
        base.with_global_cmvn([0.0] * base.dim, [1e-30] * base.dim)
    scaled = base.with_global_cmvn([0.0] * base.dim, [1e-6] * base.dim)
    out = features.compute(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000, scaled)
    assert np.all(np.isfinite(out))
    huge_frames = base.replace(frame_length_ms=1e30)  # float->int overflow in C before the fix
    with pytest.raises(ValueError, match="frame_length_ms 1e\\+30 .* give more than 1048576 samples"):
        features.compute(speech[0], 16000, huge_frames)


def test_zip_bundles_are_bounded_and_corrupt_members_named(tmp_path):
    """A 6 MB zip made `edge-speech info` take 661 MB; a corrupt member raised a bare zlib.error."""
    import zipfile

    from edge_speech.bundle import Bundle, BundleError

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr("model.onnx", b"\0" * (64 << 20))
    assert bomb.stat().st_size < 1 << 20
    with limits.override(max_bundle_bytes=32 << 20):
        with pytest.raises(
            ResourceLimitError,
            match="uncompressed size of the members: 67108866 bytes is over the limit max_bundle_bytes",
        ):
            Bundle.load(bomb)
    corrupt = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", "{" + '"x": 1,' * 2000 + '"y": 2}')
    data = bytearray(corrupt.read_bytes())
    start = data.index(b"manifest.json") + len("manifest.json") + 2  # inside the deflated stream
    data[start : start + 8] = b"\xff" * 8
    corrupt.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="corrupt zip member 'manifest.json'"):
        Bundle.load(corrupt)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("output", None, "'output' must be a JSON object, got null"),
        ("input", "features", "'input' must be a JSON object, got \"features\""),
        ("decoder", "x", "'decoder' must be a JSON object"),
        ("models", None, "'models' must be a JSON object"),
    ],
)
def test_manifest_values_of_the_wrong_json_type_are_named(tmp_path, key, value, message):
    """`"output": null` once raised AttributeError, a string for an object a TypeError."""
    import json
    import shutil

    from edge_speech.bundle import Bundle, BundleError

    bundle = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "edge_speech" / "models" / "default", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest[key] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        Bundle.load(bundle)


def test_deep_json_and_symlinks_out_of_a_bundle_are_refused(tmp_path):
    """A manifest nested 100k levels raised RecursionError; model.onnx -> /etc/hostname was read."""
    import shutil

    from edge_speech.bundle import Bundle, BundleError

    bundle = tmp_path / "b"
    shutil.copytree(Path(__file__).resolve().parents[1] / "edge_speech" / "models" / "default", bundle)
    manifest = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="nested too deeply"):
        Bundle.load(bundle)
    (bundle / "manifest.json").write_text(manifest)
    outside = tmp_path / "outside.onnx"
    shutil.move(bundle / "model.onnx", outside)
    os.symlink(outside, bundle / "model.onnx")  # the right bytes, but outside the bundle
    with pytest.raises(BundleError, match="'model.onnx' resolves to .*outside.onnx, outside the bundle"):
        Bundle.load(bundle)


def test_streams_threads_and_grammar_paths_fail_clearly_and_recover():
    """A rejected chunk (rate 0) poisoned the stream for every later call; threads=100000 hung;
    `--grammar x.wav` was parsed as grammar text ("expected 'intents:'")."""
    from edge_speech import Recognizer

    rec = Recognizer.default(threads=1)
    stream = rec.create_stream()
    with pytest.raises(ValueError, match="sample rate must be a positive int, got 0"):
        stream.accept_waveform(np.zeros(1600, np.float32), 0)
    stream.accept_waveform(np.zeros(1600, np.float32), 16000)  # the stream is still usable
    assert stream.finish().text == ""
    with pytest.raises(ValueError, match=r"threads must be an int in 1\.\.256, got 100000"):
        Recognizer.default(threads=100000)
    with pytest.raises(ValueError, match="grammar 'x.wav': no such file; a grammar is"):
        rec.transcribe((np.zeros(1600, np.float32), 16000), grammar="x.wav")


def test_deeply_nested_grammars_get_a_clear_error_not_a_recursion_error():
    """JSGF with 500 nested groups, a 2,000-rule chain and YAML templates nested 1,000 deep
    raised RecursionError with a traceback."""
    from edge_speech import decoding

    tokens = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    header = "#JSGF V1.0;\ngrammar g;\n"
    chain = "".join(f"<r{i}> = <r{i + 1}>;\n" for i in range(1, 2000))
    cases = [
        (header + "public <c> = " + "(" * 500 + "on" + ")" * 500 + ";", "groups nested more than 100 deep"),
        (header + "public <r0> = <r1>;\n" + chain + "<r2000> = on;", "nested more than 300 deep"),
        ("intents:\n  A:\n    - " + "(" * 1000 + "on" + ")" * 1000 + "\n", "groups nested more than 100 deep"),
    ]
    for text, message in cases:
        with pytest.raises(ValueError, match=message):
            decoding.CTCDecoder(tokens, grammar=text)
    fine = header + "public <c> = " + "[(" * 50 + "on" + ")]" * 50 + " | off;"  # 100 deep is allowed
    assert decoding.CTCDecoder(tokens, grammar=fine).decode(np.log(np.full((20, 29), 1 / 29, np.float32))) is not None


def test_a_gzip_trailer_that_lies_about_its_length_costs_nothing(tmp_path):
    """The trailer's ISIZE is not trusted for allocation: 1 GiB stated, 30 bytes real."""
    import gzip
    import subprocess
    import sys

    real = gzip.compress(b"\\data\\\nngram 1=1\n")
    path = tmp_path / "liar.arpa.gz"
    path.write_bytes(real[:-4] + ((1 << 30) - 1).to_bytes(4, "little"))
    script = (
        "import resource, sys\nfrom edge_speech import limits\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    limits.gunzip(open(sys.argv[1], 'rb').read(), 'lm', 'max_lm_bytes')\nexcept ValueError:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    grown_kb = int(
        subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True).stdout
    )
    assert grown_kb < 64 * 1024, f"{grown_kb} kB for a 30-byte input"
