"""The "whisper" preset against independent references: transformers' WhisperFeatureExtractor
(its numpy path, and its torch path, which is openai-whisper's log_mel_spectrogram), librosa's
mel filterbank and numpy's FFT; the causal fixed clamp streams exactly; the utterance clamp
refuses to stream."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import noise

from edge_speech import _native, features
from edge_speech.bundle import Manifest

RATE = 16000
WHISPER = features.FeatureConfig.preset("whisper")
FIXED = WHISPER.replace(output_clamp="fixed")
SCHEMA = Path(features.__file__).parent / "schema" / "manifest.schema.json"
# Measured max abs error about 1e-6 (float32 arithmetic); features span about 2 units.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80, sampling_rate=RATE, hop_length=160, n_fft=400)


def reference_numpy(extractor, samples: np.ndarray) -> np.ndarray:
    """transformers' numpy implementation on the unpadded signal, as [frames, 80]."""
    return extractor._np_extract_fbank_features(samples[None, :].astype(np.float32), "cpu")[0].T


def reference_torch(extractor, samples: np.ndarray) -> np.ndarray:
    """The public call with padding="longest" (no 30-s padding for one signal): the torch path."""
    out = extractor(samples, sampling_rate=RATE, padding="longest", return_tensors="np").input_features
    return out[0].T


def signal(kind: str, length: int, speech) -> np.ndarray:
    if kind == "speech":
        samples = speech(RATE)
        assert len(samples) >= length
        return samples[:length]
    return noise(RATE, seconds=length / RATE + 0.01, seed=3)[:length]


@pytest.mark.parametrize("length", [401, 4000, 16000, 16037, 40000])
@pytest.mark.parametrize("kind", ["speech", "noise"])
def test_whisper_preset_matches_transformers(kind, length, speech, extractor):
    samples = signal(kind, length, speech)
    ours = features.compute(samples, RATE, WHISPER)
    assert ours.shape == (length // 160, 80)
    for reference in (reference_numpy(extractor, samples), reference_torch(extractor, samples)):
        assert reference.shape == ours.shape
        assert np.abs(ours - reference).max() <= TOLERANCE


def test_utterance_clamp_is_engaged_and_exact(speech):
    """Speech with pauses reaches the clamp; the clamp is max(x, max - 2) of the unclamped output."""
    samples = speech(RATE)
    ours = features.compute(samples, RATE, WHISPER)
    unclamped = features.compute(samples, RATE, WHISPER.replace(output_clamp="none"))
    expected = np.maximum(unclamped, unclamped.max() - np.float32(WHISPER.output_clamp_range))
    np.testing.assert_array_equal(ours, expected)
    assert (ours == ours.min()).mean() > 0.01  # a real share of values sits on the floor


def test_mel_filterbank_matches_librosa():
    import librosa

    ours = np.frombuffer(_native.mel_weights(WHISPER._native(RATE), 400), dtype=np.float32).reshape(80, 201)
    ref = librosa.filters.mel(sr=RATE, n_fft=400, n_mels=80)
    assert ref.shape == ours.shape
    assert np.abs(ours - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("size", [6, 10, 14, 30, 96, 200, 400, 480, 600, 840, 1200, 48000])
def test_mixed_radix_rfft_matches_numpy(size):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    ours = np.frombuffer(_native.rfft_mixed_radix(x), dtype=np.float32).view(np.complex64)
    ref = np.fft.rfft(x.astype(np.float64))
    assert ours.shape == ref.shape
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-6
    # an impulse at 1 gives e^{-2 pi i k / N}: bins in the right places, not only the energy
    impulse = np.zeros(size, dtype=np.float32)
    impulse[1] = 1
    ours = np.frombuffer(_native.rfft_mixed_radix(impulse), dtype=np.float32).view(np.complex64)
    np.testing.assert_allclose(ours, np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size), atol=1e-6)


@pytest.mark.parametrize("size", [256, 512, 1024])
def test_mixed_radix_plan_keeps_the_power_of_two_path(size):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    assert _native.rfft_mixed_radix(x) == _native.rfft(x)


@pytest.mark.parametrize("size", [2, 22, 402, 1102, 401, 65538])
def test_mixed_radix_rfft_rejects_unsupported_sizes(size):
    with pytest.raises(ValueError, match="prime factor above 7"):
        _native.rfft_mixed_radix(np.zeros(size, dtype=np.float32))


def stream_in_chunks(config, samples, sizes):
    stream = features.FeatureStream(config, RATE)
    out, start = [], 0
    for size in sizes:
        stream.accept(samples[start : start + size])
        out.append(stream.read())
        start += size
    assert start >= len(samples)
    stream.finish()
    out.append(stream.read())
    return np.concatenate(out)


@pytest.mark.parametrize("seed", range(6))
def test_fixed_clamp_streams_exactly(seed, speech):
    samples = speech(RATE)[: 24000 + 37 * seed]
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 17, 159, 160, 161, 509, 4000], size=len(samples)).tolist()
    expected = features.compute(samples, RATE, FIXED)
    np.testing.assert_array_equal(stream_in_chunks(FIXED, samples, sizes), expected)


def test_fixed_clamp_floors_each_value(speech):
    samples = speech(RATE)
    floor = np.float32(0.3)  # high enough to engage on speech
    clamped = features.compute(samples, RATE, FIXED.replace(output_clamp_floor=float(floor)))
    unclamped = features.compute(samples, RATE, WHISPER.replace(output_clamp="none"))
    np.testing.assert_array_equal(clamped, np.maximum(unclamped, floor))
    assert (clamped == floor).mean() > 0.01


@pytest.mark.parametrize("length", [0, 1, 2, 159, 160, 161, 199, 200, 201, 319, 320, 399, 400, 401, 16000, 16159])
def test_frame_count_is_samples_over_hop_offline_and_streaming(length):
    samples = noise(RATE, seconds=1.1, seed=5)[:length]
    ours = features.compute(samples, RATE, WHISPER)
    assert ours.shape == (length // 160, 80) == (WHISPER.num_frames(length, RATE), 80)
    assert np.all(np.isfinite(ours))
    fixed = features.compute(samples, RATE, FIXED)
    assert FIXED.num_frames(length, RATE) == length // 160
    np.testing.assert_array_equal(stream_in_chunks(FIXED, samples, [3] * (length // 3 + 1)), fixed)


def test_streaming_never_emits_the_dropped_frame():
    stream = features.FeatureStream(FIXED, RATE)
    samples = noise(RATE, seconds=0.2, seed=2)[:3000]
    emitted = 0
    for n in range(0, 3000, 7):
        stream.accept(samples[n : n + 7])
        emitted += len(stream.read())
        assert emitted <= min(n + 7, 3000) // 160
    stream.finish()
    assert emitted + len(stream.read()) == 3000 // 160


def test_utterance_clamp_refuses_to_stream():
    with pytest.raises(ValueError, match="utterance.*output_clamp='fixed'"):
        features.FeatureStream(WHISPER, RATE)
    # the binding's own guard, for callers that skip FeatureStream
    front_end = _native.FrontEnd(WHISPER._native(RATE))
    with pytest.raises(ValueError, match="whole signal"):
        front_end.accept(np.zeros(1000, dtype=np.float32))
    with pytest.raises(ValueError, match="whole signal"):
        front_end.finish()


def test_utterance_clamp_with_cmvn_is_refused():
    with pytest.raises(ValueError, match="CMVN"):
        WHISPER.replace(cmvn="sliding")
    WHISPER.replace(output_clamp="fixed", cmvn="sliding")  # causal: allowed


@pytest.mark.parametrize(
    "rate, message", [(8000, "Nyquist"), (44100, "prime factor above 7"), (22050, "prime factor above 7")]
)
def test_rates_whisper_cannot_use_are_refused(rate, message):
    with pytest.raises(ValueError, match=message):
        WHISPER.check(rate)
    with pytest.raises(ValueError, match=message):
        features.compute(noise(rate), rate, WHISPER)


def test_explicit_fft_sizes_must_still_be_powers_of_two():
    with pytest.raises(ValueError, match="round_to_power_of_two=False"):
        WHISPER.replace(fft_size=400)
    assert (
        features.FeatureConfig.preset("kaldi-fbank").replace(round_to_power_of_two=False).num_frames(16000, RATE) == 98
    )


def test_preset_round_trips_and_validates_in_a_manifest():
    for config in (WHISPER, FIXED):
        again = features.FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config
    data = {
        "schema_version": 1,
        "kind": "ctc",
        "sample_rate": RATE,
        "tokens": ["<blk>", "a"],
        "blank_id": 0,
        "models": {"onnx": "model.onnx"},
        "features": FIXED.to_dict(),
    }
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert Manifest.from_dict(data).features == FIXED
    assert "whisper" in features.OFFLINE_PRESETS and "whisper" not in features.PRESETS
    with pytest.raises(ValueError, match="whisper"):
        features.FeatureConfig.preset("whisper-large")
