"""Each preset against its reference library, on synthesised speech and on noise, at 8, 16 and
44.1 kHz: relative error ||ours - ref|| / ||ref|| <= 1e-4."""

from __future__ import annotations

import kaldi_native_fbank as knf
import librosa
import numpy as np
import pytest
from conftest import noise, relative_error

from edge_speech import features

RATES = [8000, 16000, 44100]
TOLERANCE = 1e-4


def kaldi_reference(samples: np.ndarray, rate: int, config: features.FeatureConfig) -> np.ndarray:
    if config.kind == "mfcc":
        opts = knf.MfccOptions()
        opts.num_ceps = config.num_ceps
        opts.cepstral_lifter = config.cepstral_lifter
        opts.use_energy = config.use_energy
    else:
        opts = knf.FbankOptions()
        opts.use_energy = config.use_energy
    opts.frame_opts.samp_freq = rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = config.num_mel_bins
    computer = knf.OnlineMfcc(opts) if config.kind == "mfcc" else knf.OnlineFbank(opts)
    computer.accept_waveform(rate, samples.tolist())
    computer.input_finished()
    return np.array([computer.get_frame(i) for i in range(computer.num_frames_ready)])


def librosa_mel_power(samples: np.ndarray, rate: int, config: features.FeatureConfig) -> np.ndarray:
    win, hop = config.frame_length(rate), config.frame_shift(rate)
    n_fft = 1 << (win - 1).bit_length()
    return librosa.feature.melspectrogram(
        y=samples,
        sr=rate,
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=config.num_mel_bins,
        fmin=0.0,
        fmax=rate / 2,
        htk=False,
        norm="slaney",
    )


def librosa_reference(samples: np.ndarray, rate: int, config: features.FeatureConfig) -> np.ndarray:
    mel = librosa_mel_power(samples, rate, config)
    if config.kind == "fbank":
        return np.log(mel + config.log_floor).T
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    return librosa.feature.mfcc(S=db, n_mfcc=config.num_ceps, dct_type=2, norm="ortho", lifter=0).T


REFERENCES = {
    "kaldi-fbank": kaldi_reference,
    "kaldi-mfcc": kaldi_reference,
    "librosa-mel": librosa_reference,
    "librosa-mfcc": librosa_reference,
}


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("preset", sorted(REFERENCES))
@pytest.mark.parametrize("signal", ["speech", "noise"])
def test_preset_matches_reference_library(preset, rate, signal, speech):
    samples = speech(rate) if signal == "speech" else noise(rate)
    config = features.FeatureConfig.preset(preset)
    ours = features.compute(samples, rate, config)
    ref = REFERENCES[preset](samples, rate, config)
    assert ours.dtype == np.float32 and ours.shape == (config.num_frames(len(samples), rate), config.dim)
    assert relative_error(ours, ref) <= TOLERANCE


@pytest.mark.parametrize("num_mel_bins", [40, 64])
def test_kaldi_fbank_with_energy_and_other_bin_counts(num_mel_bins, speech):
    config = features.FeatureConfig.preset("kaldi-fbank").replace(num_mel_bins=num_mel_bins, use_energy=True)
    samples = speech(16000)
    assert (
        relative_error(features.compute(samples, 16000, config), kaldi_reference(samples, 16000, config)) <= TOLERANCE
    )


def test_librosa_constant_padding_matches_librosa_default_pad_mode(speech):
    samples = speech(16000)
    config = features.FeatureConfig.preset("librosa-mel").replace(padding="constant")
    mel = librosa.feature.melspectrogram(
        y=samples,
        sr=16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        center=True,
        pad_mode="constant",
        n_mels=80,
        norm="slaney",
    )
    assert relative_error(features.compute(samples, 16000, config), np.log(mel + 1e-6).T) <= TOLERANCE


def test_int16_input_equals_scaled_float_input(speech):
    samples = speech(16000)
    pcm = np.round(samples * 32767).astype(np.int16)
    config = features.FeatureConfig.preset("kaldi-mfcc")
    from_int = features.compute(pcm, 16000, config)
    from_float = features.compute(pcm.astype(np.float32) / 32768.0, 16000, config)
    np.testing.assert_array_equal(from_int, from_float)


def test_float64_and_strided_input_equal_contiguous_float32(speech):
    samples = speech(16000)
    config = features.FeatureConfig.preset("librosa-mfcc")
    ref = features.compute(samples, 16000, config)
    np.testing.assert_array_equal(features.compute(samples.astype(np.float64), 16000, config), ref)
    interleaved = np.stack([samples, -samples], axis=1)  # a stereo buffer; take the left channel as a view
    np.testing.assert_array_equal(features.compute(interleaved[:, 0], 16000, config), ref)
    reversed_view = samples[::-1].copy()[::-1]  # negative stride over a copy
    np.testing.assert_array_equal(features.compute(reversed_view, 16000, config), ref)
