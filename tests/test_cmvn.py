"""CMVN: the causal sliding window against a direct numpy computation, global statistics, and
the statistics file formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import noise

from edge_speech import features


def sliding_reference(raw: np.ndarray, window: int, normalize_variance: bool) -> np.ndarray:
    out = np.empty_like(raw, dtype=np.float64)
    for t in range(len(raw)):
        block = raw[max(0, t - window + 1) : t + 1].astype(np.float64)
        centred = raw[t] - block.mean(axis=0)
        if normalize_variance:
            std = block.std(axis=0)
            centred = np.where(std**2 > 1e-20, centred / np.where(std > 0, std, 1), centred)
        out[t] = centred
    return out


@pytest.mark.parametrize("window, normalize_variance", [(1, False), (25, False), (25, True), (600, True)])
def test_sliding_cmvn_matches_direct_window_statistics(window, normalize_variance, speech):
    samples = speech(16000)
    base = features.FeatureConfig.preset("kaldi-mfcc")
    raw = features.compute(samples, 16000, base)
    ours = features.compute(
        samples,
        16000,
        base.replace(cmvn="sliding", cmvn_window_frames=window, cmvn_normalize_variance=normalize_variance),
    )
    ref = sliding_reference(raw, window, normalize_variance)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_global_cmvn_applies_the_given_statistics(speech):
    samples = speech(16000)
    base = features.FeatureConfig.preset("kaldi-fbank")
    raw = features.compute(samples, 16000, base)
    mean, std = features.compute_cmvn_stats([raw])
    normalised = features.compute(samples, 16000, base.with_global_cmvn(mean, std))
    np.testing.assert_allclose(normalised, (raw - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(normalised.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(normalised.std(axis=0), 1, atol=1e-3)


def test_cmvn_stats_files_json_and_kaldi_text(tmp_path):
    feats = np.random.default_rng(3).normal(2.0, 3.0, size=(500, 4))
    mean, std = features.compute_cmvn_stats([feats[:200], feats[200:]])
    np.testing.assert_allclose(mean, feats.mean(axis=0))
    np.testing.assert_allclose(std, feats.std(axis=0))
    (tmp_path / "stats.json").write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}))
    loaded = features.load_cmvn_stats(tmp_path / "stats.json")
    np.testing.assert_allclose(loaded[0], mean)
    np.testing.assert_allclose(loaded[1], std)
    sums, squares = feats.sum(axis=0), (feats**2).sum(axis=0)
    kaldi = (
        "utt1  [\n  "
        + " ".join(map(repr, sums.tolist()))
        + f" {len(feats)}\n  "
        + " ".join(map(repr, squares.tolist()))
        + " 0 ]\n"
    )
    (tmp_path / "cmvn.ark").write_text(kaldi)
    k_mean, k_std = features.load_cmvn_stats(tmp_path / "cmvn.ark")
    np.testing.assert_allclose(k_mean, mean)
    np.testing.assert_allclose(k_std, std)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"mean": [1, 2], "std": [1]}', "equal-length"),
        ('{"mean": [1, 2], "std": [1, 0]}', "std >= 1e-06"),
        ('{"mean": [1, 2], "std": [1, 1e-30]}', "std >= 1e-06"),  # passed "> 0" and gave Inf features
        ('{"means": [1]}', "malformed CMVN JSON"),
        ('{"mean": [1, 2', "malformed CMVN JSON"),
        ("[ 1 2 3 \n 4 5 ]", "malformed Kaldi CMVN"),
        ("[ 1 2 0 \n 4 5 0 ]", "frame count"),
        ("garbage", "malformed Kaldi CMVN"),
    ],
)
def test_malformed_stats_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        features.load_cmvn_stats(path)


def test_binary_stats_file_is_rejected_clearly(tmp_path):
    path = tmp_path / "bin.ark"
    path.write_bytes(b"\x00B\xff\xfe" * 10)
    with pytest.raises(ValueError, match="JSON or Kaldi text"):
        features.load_cmvn_stats(path)


def test_wrong_sized_global_stats_are_rejected():
    with pytest.raises(ValueError, match="cmvn_mean has 3 values"):
        features.FeatureConfig.preset("kaldi-mfcc").with_global_cmvn([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="cmvn_std values must be finite and >= 1e-06"):
        features.FeatureConfig.preset("kaldi-mfcc").with_global_cmvn(np.zeros(13), np.zeros(13))
    assert (
        features.compute(
            noise(16000), 16000, features.FeatureConfig.preset("kaldi-mfcc").with_global_cmvn(np.zeros(13))
        ).shape[1]
        == 13
    )
