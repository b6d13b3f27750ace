"""Training-time augmentation in numpy: waveform (noise, babble, reverb, gain, 8 kHz / telephone
band round trips) and SpecAugment on feature frames. Every function takes a ``numpy.random.Generator``."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from edge_speech.converters.finetune import spec_augment as converter_spec_augment

RATE = 16000


def coloured_noise(rng: np.random.Generator, n: int, exponent: Optional[float] = None) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown, -1 blue), unit RMS."""
    if exponent is None:
        exponent = rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, -1.0])
    size = 1 << max(1, int(n - 1).bit_length())  # power-of-two FFT, cropped to n
    spectrum = rng.standard_normal(size // 2 + 1) + 1j * rng.standard_normal(size // 2 + 1)
    freqs = np.fft.rfftfreq(size, 1 / RATE)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    noise = np.fft.irfft(spectrum, size)[:n]
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    power = np.mean(signal**2) + 1e-10
    noise_power = np.mean(noise**2) + 1e-10
    return signal + noise * np.sqrt(power / (noise_power * 10 ** (snr_db / 10)))


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Exponentially decaying noise with a direct path: a crude room impulse response."""
    length = int(RATE * min(1.0, rt60))
    t = np.arange(length) / RATE
    rir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    rir[: int(0.002 * RATE)] = 0
    rir[0] = 1.0 / max(0.1, rng.uniform(0.2, 1.0))  # direct-to-reverberant ratio
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def band_limit_round_trip(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """16 kHz -> 8 kHz -> 16 kHz, optionally with a 300 Hz high-pass (telephone band)."""
    import soxr

    low = soxr.resample(signal, RATE, 8000)
    if rng.random() < 0.5:
        spec = np.fft.rfft(low)
        spec[np.fft.rfftfreq(len(low), 1 / 8000) < 300] = 0
        low = np.fft.irfft(spec, len(low)).astype(np.float32)
    return soxr.resample(low, 8000, RATE)[: len(signal)].astype(np.float32)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster: shorter, with pitch and formants scaled by
    ``factor`` (Kaldi-style speed perturbation; > 1 moves a voice towards a shorter vocal tract)."""
    import soxr

    return np.asarray(soxr.resample(x, RATE, RATE / factor), dtype=np.float32)


def augment_waveform(
    x: np.ndarray, rng: np.random.Generator, babble_source: Optional[Callable[[], np.ndarray]] = None
) -> np.ndarray:
    """One random augmented copy of float32 ``x`` (16 kHz, [-1, 1])."""
    x = x.astype(np.float32)
    if rng.random() < 0.3:
        from scipy.signal import fftconvolve

        x = fftconvolve(x, synthetic_rir(rng, rng.uniform(0.15, 0.8)))[: len(x)].astype(np.float32)
    if rng.random() < 0.15:
        x = band_limit_round_trip(x, rng)
    r = rng.random()
    if r < 0.5:
        x = add_at_snr(x, coloured_noise(rng, len(x)), rng.uniform(5, 30))
    elif r < 0.65 and babble_source is not None:
        babble = np.zeros_like(x)
        for _ in range(rng.integers(2, 6)):
            other = babble_source()
            if len(other) < len(x):
                other = np.pad(other, (0, len(x) - len(other)))
            start = rng.integers(0, len(other) - len(x) + 1)
            babble += other[start : start + len(x)]
        x = add_at_snr(x, babble, rng.uniform(8, 25))
    peak = np.max(np.abs(x)) + 1e-9
    x = x / peak * 10 ** (rng.uniform(-35, -1) / 20)  # gain: peak at -35 .. -1 dBFS
    return x.astype(np.float32)


def _hz_to_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def frequency_warp(f: np.ndarray, alpha: float, low_hz: float = 20.0, high_hz: float = RATE / 2) -> np.ndarray:
    """Vocal tract length perturbation on [T, D] log-mel frames (HTK mel bins, ``low_hz`` ..
    ``high_hz``, as the "kaldi-fbank" preset): bin ``k`` takes the energy the input had at
    ``center_k / alpha``, so alpha > 1 moves formants up (a shorter vocal tract), without the
    tempo change of speed perturbation. The map is piecewise linear, as in Kaldi's VTLN, so the band
    edge stays where it is; between bins the log energies are interpolated linearly."""
    d = f.shape[1]
    edges = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), d + 2)
    centers = _mel_to_hz(edges[1:-1])
    knee = 0.8 * high_hz * min(1.0, alpha)
    source = np.where(
        centers <= knee, centers / alpha, knee / alpha + (centers - knee) * (high_hz - knee / alpha) / (high_hz - knee)
    )
    position = np.clip((_hz_to_mel(source) - edges[1]) / (edges[2] - edges[1]), 0, d - 1)
    below = np.minimum(np.floor(position).astype(np.int64), d - 2)
    weight = (position - below).astype(f.dtype)
    return f[:, below] * (1 - weight) + f[:, below + 1] * weight


def spec_augment(
    f: np.ndarray,
    rng: np.random.Generator,
    freq_masks: int = 2,
    freq_width: int = 12,
    time_mask_fraction: float = 0.04,
    max_time_masks: int = 6,
) -> np.ndarray:
    """Frequency and time masks (set to the utterance mean) on a [T, D] feature array: one time
    mask per second of speech up to ``max_time_masks``, each up to ``time_mask_fraction`` of it."""
    frames = len(f)
    return converter_spec_augment(
        f,
        rng,
        freq_masks=freq_masks,
        freq_width=freq_width,
        time_masks=min(max_time_masks, max(1, frames // 100)),
        time_width=min(20, max(1, int(time_mask_fraction * frames))),
        fill=None,
    )
