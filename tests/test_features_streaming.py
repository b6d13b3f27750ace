"""FeatureStream over any chunking gives exactly what compute() gives for the whole signal."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import noise

from edge_speech import features

CHUNKS = [1, 17, 160, 509, None]  # None: the whole signal in one accept


def stream_in_chunks(config, rate, samples, chunk):
    stream = features.FeatureStream(config, rate)
    out = []
    step = len(samples) if chunk is None else chunk
    for start in range(0, len(samples), step):
        stream.accept(samples[start : start + step])
        out.append(stream.read())
    stream.finish()
    out.append(stream.read())
    return np.concatenate(out)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("preset", sorted(features.PRESETS))
def test_streaming_equals_one_shot(preset, chunk, speech):
    samples = speech(16000)[:24000]
    config = features.FeatureConfig.preset(preset)
    np.testing.assert_array_equal(
        stream_in_chunks(config, 16000, samples, chunk), features.compute(samples, 16000, config)
    )


@pytest.mark.parametrize("chunk", [1, 17, 509])
def test_streaming_equals_one_shot_with_dither_and_sliding_cmvn(chunk):
    samples = noise(16000, seconds=2.0)
    config = features.FeatureConfig.preset("kaldi-fbank").replace(
        dither=0.01, dither_seed=1234, cmvn="sliding", cmvn_window_frames=50, cmvn_normalize_variance=True
    )
    np.testing.assert_array_equal(
        stream_in_chunks(config, 16000, samples, chunk), features.compute(samples, 16000, config)
    )


def test_dither_is_seeded_and_deterministic():
    samples = noise(16000)
    config = features.FeatureConfig().replace(dither=1e-3, dither_seed=7)
    a = features.compute(samples, 16000, config)
    np.testing.assert_array_equal(a, features.compute(samples, 16000, config))
    b = features.compute(samples, 16000, config.replace(dither_seed=8))
    assert not np.array_equal(a, b)
    assert np.abs(a - features.compute(samples, 16000, config.replace(dither=0.0))).max() > 0


def test_stream_reports_progress_and_refuses_input_after_finish():
    samples = noise(16000)
    stream = features.FeatureStream(features.FeatureConfig.preset("librosa-mel"), 16000)
    stream.accept(samples[:1000])
    assert stream.frames_ready == stream.frames_done
    first = stream.read()
    assert stream.frames_ready == 0 and len(first) == stream.frames_done
    stream.accept(samples[1000:])
    stream.finish()
    assert stream.finished
    total = len(first) + len(stream.read())
    assert total == features.FeatureConfig.preset("librosa-mel").num_frames(len(samples), 16000)
    with pytest.raises(ValueError, match="finished"):
        stream.accept(samples)
    stream.reset()
    stream.accept(samples)
    stream.finish()
    np.testing.assert_array_equal(
        stream.read(), features.compute(samples, 16000, features.FeatureConfig.preset("librosa-mel"))
    )


@pytest.mark.parametrize("preset", ["kaldi-fbank", "librosa-mel"])
@pytest.mark.parametrize("length", [0, 1, 2, 5, 199, 200, 201, 399, 400, 401, 560])
def test_short_signals_frame_counts_and_streaming(preset, length):
    config = features.FeatureConfig.preset(preset)
    samples = noise(16000, seconds=0.05)[:length]
    feats = features.compute(samples, 16000, config)
    assert feats.shape == (config.num_frames(length, 16000), config.dim)
    assert np.all(np.isfinite(feats))
    np.testing.assert_array_equal(stream_in_chunks(config, 16000, samples, 3) if length else feats, feats)


def test_short_signal_reflect_padding_matches_numpy_reflect():
    """Signals shorter than half a frame are mirrored repeatedly, as np.pad(mode='reflect') does."""
    import librosa

    samples = noise(16000, seconds=0.01)[:150]
    config = features.FeatureConfig.preset("librosa-mel")
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        center=True,
        pad_mode="reflect",
        n_mels=80,
        norm="slaney",
    )
    ours = features.compute(samples, 16000, config)
    ref = np.log(mel + 1e-6).T
    assert ours.shape == ref.shape
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-4


def test_reused_extractor_equals_compute_on_every_call(speech):
    config = features.FeatureConfig.preset("kaldi-mfcc").replace(cmvn="sliding", cmvn_window_frames=40)
    extractor = features.FeatureExtractor(config, 16000)
    samples = speech(16000)
    for piece in (samples[:5000], samples[3000:20000], samples[:5000], samples[:10]):
        np.testing.assert_array_equal(extractor(piece), features.compute(piece, 16000, config))
