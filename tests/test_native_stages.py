"""Single native stages against independent references: the FFT against numpy, windows against
scipy, the mel filterbank against librosa.filters.mel."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal

from edge_speech import _native, features


@pytest.mark.parametrize("size", [4, 8, 16, 64, 256, 512, 1024, 2048, 4096])
def test_rfft_matches_numpy(size):
    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    ours = np.frombuffer(_native.rfft(x), dtype=np.float32).view(np.complex64)
    ref = np.fft.rfft(x.astype(np.float64))
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 2e-6


def test_rfft_rejects_unsupported_sizes():
    with pytest.raises(ValueError, match="power of two"):
        _native.rfft(np.zeros(400, dtype=np.float32))


@pytest.mark.parametrize("name, code", [("hann", 1), ("hamming", 2), ("blackman", 4)])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_match_scipy(name, code, periodic):
    ours = np.frombuffer(_native.window(code, int(periodic), 400), dtype=np.float32)
    ref = scipy.signal.get_window(name, 400, fftbins=periodic)
    np.testing.assert_allclose(ours, ref, atol=2e-7)


@pytest.mark.parametrize("rate, n_fft, n_mels", [(16000, 512, 80), (8000, 256, 40), (44100, 2048, 128)])
@pytest.mark.parametrize("htk", [False, True])
def test_hz_triangle_filterbank_matches_librosa(rate, n_fft, n_mels, htk):
    config = features.FeatureConfig.preset("librosa-mel").replace(
        num_mel_bins=n_mels, mel_scale="htk" if htk else "slaney", low_freq_hz=0.0
    )
    ours = np.frombuffer(_native.mel_weights(config._native(rate), n_fft), dtype=np.float32).reshape(n_mels, -1)
    ref = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=rate / 2, htk=htk, norm="slaney")
    # librosa's HTK scale is 2595 log10(1 + f/700); ours is Kaldi's 1127 ln(1 + f/700): 4e-6 apart.
    np.testing.assert_allclose(ours, ref, rtol=1e-4 if htk else 1e-5, atol=1e-6 * ref.max())
