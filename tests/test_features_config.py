"""FeatureConfig: presets, replace, dict round trips, and bad configs or inputs that must raise
an error naming the problem."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import noise

from edge_speech import features


def test_presets_have_the_documented_shapes():
    assert features.FeatureConfig.preset("kaldi-mfcc").dim == 13
    assert features.FeatureConfig.preset("kaldi-fbank").dim == 80
    assert features.FeatureConfig.preset("librosa-mel").dim == 80
    assert features.FeatureConfig.preset("librosa-mfcc").dim == 13
    assert features.FeatureConfig.preset("kaldi-fbank").replace(use_energy=True).dim == 81
    with pytest.raises(ValueError, match="unknown feature preset"):
        features.FeatureConfig.preset("htk")


def test_replace_validates_and_keeps_the_original():
    base = features.FeatureConfig.preset("kaldi-mfcc")
    changed = base.replace(num_mel_bins=80)
    assert changed.num_mel_bins == 80 and base.num_mel_bins == 23
    with pytest.raises(ValueError, match="unknown FeatureConfig field"):
        base.replace(num_mels=80)
    with pytest.raises(ValueError, match="num_ceps"):
        base.replace(num_mel_bins=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.num_ceps = 3  # frozen


@pytest.mark.parametrize("preset", sorted(features.PRESETS))
def test_dict_round_trip_through_json(preset):
    config = features.FeatureConfig.preset(preset)
    again = features.FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


def test_global_cmvn_round_trips():
    config = features.FeatureConfig.preset("kaldi-mfcc").with_global_cmvn(np.arange(13.0), np.ones(13) * 2)
    again = features.FeatureConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.cmvn_mean == tuple(np.arange(13.0))


def test_from_dict_rejects_unknown_keys_and_non_mappings():
    with pytest.raises(ValueError, match="unknown feature config key"):
        features.FeatureConfig.from_dict({"kind": "fbank", "bogus": 1})
    with pytest.raises(TypeError):
        features.FeatureConfig.from_dict(["kind"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"kind": "plp"}, "kind must be one of"),
        ({"window": "kaiser"}, "window must be one of"),
        ({"frame_length_ms": 0.0}, "frame_length_ms"),
        ({"frame_shift_ms": -1.0}, "frame_shift_ms"),
        ({"fft_size": 400}, "power of two"),
        ({"num_mel_bins": 0}, "num_mel_bins"),
        ({"preemphasis": 1.5}, "preemphasis"),
        ({"log_floor": 0.0}, "log_floor"),
        ({"dither": float("nan")}, "dither must be finite"),
        ({"use_energy": 1}, "use_energy must be a bool"),
        ({"num_mel_bins": 40.0}, "num_mel_bins must be an int"),
        ({"cmvn": "global"}, "cmvn_mean"),
    ],
)
def test_invalid_configs_name_the_problem(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        features.FeatureConfig.preset("kaldi-fbank").replace(**changes)


@pytest.mark.parametrize(
    "changes, rate, message",
    [
        ({"num_mel_bins": 300}, 16000, "exceeds the 257 FFT bins"),
        ({"high_freq_hz": 9000.0}, 16000, "above the Nyquist"),
        ({"low_freq_hz": 5000.0, "high_freq_hz": 4000.0}, 16000, "band is empty"),
        ({"num_mel_bins": 200}, 16000, "covers no FFT bin"),
        ({"fft_size": 256}, 16000, "shorter than the 400-sample frame"),
        ({"frame_length_ms": 0.1}, 8000, "need at least 2"),
    ],
)
def test_configs_that_cannot_work_at_a_rate_name_the_problem(changes, rate, message):
    config = features.FeatureConfig.preset("kaldi-fbank").replace(**changes)
    with pytest.raises(ValueError, match=message):
        config.check(rate)
    with pytest.raises(ValueError, match=message):
        features.compute(noise(rate), rate, config)
    with pytest.raises(ValueError, match=message):
        features.FeatureStream(config, rate)


@pytest.mark.parametrize("rate", [0, -16000, float("nan"), float("inf")])
def test_bad_sample_rates_raise_value_error(rate):
    with pytest.raises(ValueError, match="sample_rate"):
        features.compute(noise(16000), rate)


@pytest.mark.parametrize("rate", ["16000", None, True])
def test_non_numeric_sample_rates_raise_type_error(rate):
    with pytest.raises(TypeError, match="sample_rate"):
        features.compute(noise(16000), rate)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_samples_raise_value_error(bad, dtype):
    samples = noise(16000).astype(dtype)
    samples[1234] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        features.compute(samples, 16000)
    stream = features.FeatureStream(features.FeatureConfig(), 16000)
    with pytest.raises(ValueError, match="NaN or Inf"):
        stream.accept(samples)
    assert stream.frames_done == 0  # nothing of the bad chunk was consumed
    stream.accept(samples[:1000])  # the stream is still usable
    assert stream.frames_done == 1 + (1000 - 400) // 160


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(100, dtype=np.int32),
        np.zeros(100, dtype=np.complex64),
        np.array(["a", "b"]),
        np.zeros(100, dtype=np.uint8),
    ],
)
def test_unsupported_dtypes_raise_type_error(samples):
    with pytest.raises(TypeError, match="float32, float64 or int16"):
        features.compute(samples, 16000)


def test_two_dimensional_input_raises_value_error():
    with pytest.raises(ValueError, match="1-D mono"):
        features.compute(np.zeros((2, 16000), dtype=np.float32), 16000)


def test_empty_input_gives_zero_frames():
    for preset in features.PRESETS:
        config = features.FeatureConfig.preset(preset)
        out = features.compute(np.zeros(0, dtype=np.float32), 16000, config)
        assert out.shape == (0, config.dim) and out.dtype == np.float32
    assert features.compute([], 16000).shape == (0, 80)


def test_config_type_is_checked():
    with pytest.raises(TypeError, match="FeatureConfig"):
        features.compute(noise(16000), 16000, {"kind": "fbank"})
