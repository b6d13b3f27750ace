"""Speech features (log-mel filterbank, MFCC) computed by the native C front end.

The same code computes features for training, conversion and the runtime, so a model always
sees the features it was trained on. Presets reproduce the usual references::

    from edge_speech import features
    cfg = features.FeatureConfig.preset("kaldi-mfcc")   # "kaldi-fbank", "librosa-mel", "librosa-mfcc", "whisper"
    cfg = cfg.replace(num_mel_bins=80)
    feats = features.compute(samples, 16000, cfg)       # float32 [num_frames, cfg.dim]

    stream = features.FeatureStream(cfg, 16000)         # the same frames, chunk by chunk
    stream.accept(chunk); stream.finish(); new_frames = stream.read()

A config holds no sample rate: times are in ms and frequencies in Hz, so one config serves every
rate; problems that depend on the rate (a band above Nyquist, more mel bins than FFT bins) are
reported by :meth:`FeatureConfig.check` and by ``compute``/``FeatureStream``.

Whisper (preset ``"whisper"``, in :data:`OFFLINE_PRESETS`) reproduces openai-whisper's
``log_mel_spectrogram`` without its 30-s padding: 400-point FFT of a periodic Hann window (no
zero padding to 512), 160-sample hop, centred reflect-padded frames with the last one dropped
(``n // 160`` frames), 80 Slaney mel bands to 8 kHz, ``log10(max(mel, 1e-10))``, then
``(x + 4) / 4`` and ``max(x, x.max() - 8 / 4)`` over the utterance. That clamp needs the whole
utterance, so a stream needs the causal one instead::

    cfg = features.FeatureConfig.preset("whisper")                      # exact; compute() only
    live = cfg.replace(output_clamp="fixed")                            # causal: max(x, output_clamp_floor)
    live = cfg.replace(output_clamp="fixed", output_clamp_floor=-0.5)   # the floor in output units

Whisper's models take 16 kHz audio: resample first (``edge_speech.audio``, or the Recognizer,
does it with soxr). The preset is in ms and Hz like every config, so at other rates it is not
what Whisper computes: below 16 kHz the 8 kHz band edge is above Nyquist and ``check`` refuses;
at 24, 32 or 48 kHz it runs (25 ms is a 600/800/1200-point FFT) but the model would see
features unlike its training; at 22.05 or 44.1 kHz (551 or 1102 samples) ``check`` refuses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge_speech import _native
from edge_speech._config_tables import native_fields

__all__ = [
    "FeatureConfig",
    "FeatureExtractor",
    "FeatureStream",
    "OFFLINE_PRESETS",
    "PRESETS",
    "compute",
    "compute_cmvn_stats",
    "load_cmvn_stats",
    "normalize_waveform",
]

# The C front end's description (es_frontend_config_table): defaults, enum names and the range of
# every field but the sample rate, which a FeatureConfig does not hold.
_FIELDS = native_fields("frontend")


def _default(name: str) -> Any:
    return _FIELDS[name].default


# The C check's bounds (es_cmvn.h), checked here first for a message naming the field: 1e-30 passed
# the old "> 0" check and gave non-finite features, and so did a mean near FLT_MAX.
MIN_CMVN_STD = 1e-6
MAX_ABS_CMVN_MEAN = 1e9


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the features, in user units. Defaults: Kaldi's 80-bin fbank.
    Defaults, choices and ranges come from the C front end's config table
    (``_native.config_fields("frontend")``), so ``FeatureConfig()`` is ``es_frontend_config_default()``.

    Framing: ``padding="none"`` cuts only whole frames starting at sample 0 (Kaldi's
    snip_edges); ``"reflect"``/``"constant"`` centre frame t on sample t * shift and pad the
    signal's ends (librosa's ``center=True``), giving ``1 + n // shift`` frames;
    ``drop_last_frame`` gives one fewer (Whisper: ``n // shift``), streaming too.
    Per frame, in Kaldi's order: ``input_scale``, dither, DC removal, energy, pre-emphasis,
    window, FFT, power or magnitude spectrum, mel filterbank, log with floor, then DCT-II with
    liftering (``kind="mfcc"``), ``output_scale * y + output_offset``, the output clamp, and CMVN.
    FFT size: ``fft_size``, a power of two; 0 picks the next power of two above the frame, or
    with ``round_to_power_of_two=False`` exactly the frame length (Kaldi's option; an even
    length whose half has no prime factor above 7, e.g. Whisper's 400).
    ``output_clamp``: ``"utterance"`` floors every value at the utterance's maximum minus
    ``output_clamp_range`` (Whisper's dynamic range clamp; :func:`compute` only, not with CMVN),
    ``"fixed"`` floors it at ``output_clamp_floor`` frame by frame (streams); both in output units.
    ``mel_triangles="mel"`` makes filters linear in mel (Kaldi), ``"hz"`` linear in Hz
    (librosa). With ``use_energy``, fbank gets the log energy as its first column and MFCC
    replaces c0 with it.
    """

    kind: str = _default("kind")
    frame_length_ms: float = _default("frame_length_ms")
    frame_shift_ms: float = _default("frame_shift_ms")
    fft_size: int = _default("fft_size")
    round_to_power_of_two: bool = _default("round_to_power_of_two")
    padding: str = _default("padding")
    drop_last_frame: bool = _default("drop_last_frame")
    input_scale: float = _default("input_scale")
    dither: float = _default("dither")
    dither_seed: int = _default("dither_seed")
    remove_dc_offset: bool = _default("remove_dc_offset")
    preemphasis: float = _default("preemphasis")
    window: str = _default("window")
    periodic_window: bool = _default("periodic_window")
    spectrum: str = _default("spectrum")
    num_mel_bins: int = _default("num_mel_bins")
    low_freq_hz: float = _default("low_freq_hz")
    high_freq_hz: float = _default("high_freq_hz")
    mel_scale: str = _default("mel_scale")
    mel_triangles: str = _default("mel_triangles")
    mel_norm: str = _default("mel_norm")
    log_scale: str = _default("log_scale")
    log_floor_mode: str = _default("log_floor_mode")
    log_floor: float = _default("log_floor")
    num_ceps: int = _default("num_ceps")
    cepstral_lifter: float = _default("cepstral_lifter")
    use_energy: bool = _default("use_energy")
    raw_energy: bool = _default("raw_energy")
    energy_floor: float = _default("energy_floor")
    output_scale: float = _default("output_scale")
    output_offset: float = _default("output_offset")
    output_clamp: str = _default("output_clamp")
    output_clamp_range: float = _default("output_clamp_range")
    output_clamp_floor: float = _default("output_clamp_floor")
    cmvn: str = _default("cmvn")
    cmvn_window_frames: int = _default("cmvn_window_frames")
    cmvn_normalize_variance: bool = _default("cmvn_normalize_variance")
    cmvn_mean: Optional[Tuple[float, ...]] = None
    cmvn_std: Optional[Tuple[float, ...]] = None

    def __post_init__(self) -> None:
        for name in ("cmvn_mean", "cmvn_std"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel()))
        self._validate()

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str) -> "FeatureConfig":
        """A named preset: one of :data:`PRESETS` or :data:`OFFLINE_PRESETS`."""
        settings = PRESETS.get(name, OFFLINE_PRESETS.get(name))
        if settings is None:
            raise ValueError(f"unknown feature preset {name!r}; choose one of {sorted([*PRESETS, *OFFLINE_PRESETS])}")
        return cls(**settings)

    def replace(self, **changes: Any) -> "FeatureConfig":
        """A copy with some fields changed (validated like the constructor)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown FeatureConfig field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def with_global_cmvn(self, mean: Sequence[float], std: Optional[Sequence[float]] = None) -> "FeatureConfig":
        """A copy that normalises every frame with fixed statistics (see :func:`load_cmvn_stats`)."""
        return self.replace(cmvn="global", cmvn_mean=tuple(mean), cmvn_std=None if std is None else tuple(std))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; :meth:`from_dict` rebuilds an equal config."""
        out = dataclasses.asdict(self)
        for name in ("cmvn_mean", "cmvn_std"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        if not isinstance(data, Mapping):
            raise TypeError(f"feature config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown feature config key(s): {sorted(unknown)}")
        return cls(**dict(data))

    # -- derived --------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Values per frame."""
        if self.kind == "mfcc":
            return self.num_ceps
        return self.num_mel_bins + (1 if self.use_energy else 0)

    def frame_length(self, sample_rate: float) -> int:
        """Samples per frame at this rate (Kaldi's truncation of rate * ms / 1000)."""
        return int(float(sample_rate) * 0.001 * self.frame_length_ms + 1e-6)

    def frame_shift(self, sample_rate: float) -> int:
        return int(float(sample_rate) * 0.001 * self.frame_shift_ms + 1e-6)

    def num_frames(self, num_samples: int, sample_rate: float) -> int:
        """How many frames ``compute`` returns for a signal of this length."""
        length, shift = self.frame_length(sample_rate), self.frame_shift(sample_rate)
        if self.padding == "none":
            frames = 0 if num_samples < length else 1 + (num_samples - length) // shift
        elif num_samples == 0:
            frames = 0
        else:
            fft = self.fft_size or (_next_power_of_two(length) if self.round_to_power_of_two else length)
            frames = 1 + (num_samples + 2 * (fft // 2) - fft) // shift
        return max(frames - 1, 0) if self.drop_last_frame else frames

    def check(self, sample_rate: float) -> None:
        """Raises ValueError naming the first problem this config has at ``sample_rate``."""
        _native.check_config(self._native(sample_rate))

    # -- internals ------------------------------------------------------------------------
    def _native(self, sample_rate: float) -> dict:
        d = {
            name: _native_value(field.type, getattr(self, name))
            for name, field in _FIELDS.items()
            if name != "sample_rate_hz"
        }
        d["sample_rate_hz"] = _check_sample_rate(sample_rate)
        if self.cmvn == "global":
            d["cmvn_mean"] = np.asarray(self.cmvn_mean, dtype=np.float32)
            if self.cmvn_std is not None:
                d["cmvn_std"] = np.asarray(self.cmvn_std, dtype=np.float32)
        return d

    def _validate(self) -> None:
        for name, field in _FIELDS.items():
            if name != "sample_rate_hz":
                field.check(getattr(self, name))
        _require(
            self.fft_size == 0 or (self.fft_size >= 4 and self.fft_size & (self.fft_size - 1) == 0),
            f"fft_size must be 0 (automatic) or a power of two >= 4, got {self.fft_size}"
            " (for an FFT of exactly the frame length: fft_size=0, round_to_power_of_two=False)",
        )
        _require(self.input_scale != 0, "input_scale must be non-zero")
        if self.kind == "mfcc":
            _require(
                1 <= self.num_ceps <= self.num_mel_bins,
                f"num_ceps must be in 1..num_mel_bins ({self.num_mel_bins}), got {self.num_ceps}",
            )
        _require(self.output_scale != 0, "output_scale must be non-zero")
        _require(
            self.output_clamp != "utterance" or self.cmvn == "none",
            "output_clamp='utterance' comes after every frame is computed, so it cannot be combined "
            "with CMVN; use output_clamp='fixed'",
        )
        if self.cmvn == "global":
            mean = self.cmvn_mean
            if mean is None:
                raise ValueError("cmvn='global' needs cmvn_mean (see with_global_cmvn)")
            _require(len(mean) == self.dim, f"cmvn_mean has {len(mean)} values; the features have {self.dim}")
            _require(
                all(abs(v) <= MAX_ABS_CMVN_MEAN for v in mean),
                f"cmvn_mean values must be finite and within +-{MAX_ABS_CMVN_MEAN:g}",
            )
            if self.cmvn_std is not None:
                _require(
                    len(self.cmvn_std) == self.dim,
                    f"cmvn_std has {len(self.cmvn_std)} values; the features have {self.dim}",
                )
                _require(
                    all(math.isfinite(v) and v >= MIN_CMVN_STD for v in self.cmvn_std),
                    f"cmvn_std values must be finite and >= {MIN_CMVN_STD:g} (dividing by a near-zero std "
                    "makes features overflow to Inf)",
                )


# librosa's framing and mel filters: centred reflect-padded frames, periodic Hann, no DC removal
# or pre-emphasis, Slaney mel scale with area-normalised triangles in Hz, 0 Hz to Nyquist.
_LIBROSA_ANALYSIS: Mapping[str, Any] = dict(
    padding="reflect",
    window="hann",
    periodic_window=True,
    remove_dc_offset=False,
    preemphasis=0.0,
    low_freq_hz=0.0,
    high_freq_hz=0.0,
    mel_scale="slaney",
    mel_triangles="hz",
    mel_norm="slaney",
)

PRESETS: Mapping[str, Mapping[str, Any]] = {
    # kaldi-native-fbank / Kaldi compute-fbank-feats with dither 0.
    "kaldi-fbank": dict(kind="fbank", num_mel_bins=80, use_energy=False),
    # Kaldi compute-mfcc-feats with dither 0: 23 bins, 13 cepstra, lifter 22, c0 = log energy.
    "kaldi-mfcc": dict(kind="mfcc", num_mel_bins=23, num_ceps=13, cepstral_lifter=22.0, use_energy=True),
    # np.log(librosa.feature.melspectrogram(center=True, pad_mode="reflect", window="hann",
    #        n_fft=fft_size, win_length, hop_length, n_mels=80) + 1e-6)
    "librosa-mel": dict(
        kind="fbank",
        **_LIBROSA_ANALYSIS,
        num_mel_bins=80,
        log_floor_mode="add",
        log_floor=1e-6,
        use_energy=False,
    ),
    # librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13) over a 40-bin mel.
    "librosa-mfcc": dict(
        kind="mfcc",
        **_LIBROSA_ANALYSIS,
        num_mel_bins=40,
        log_scale="db",
        log_floor_mode="max",
        log_floor=1e-10,
        num_ceps=13,
        cepstral_lifter=0.0,
        use_energy=False,
    ),
}


# Presets whose output needs the whole utterance: compute() and FeatureExtractor only, not
# FeatureStream (which streams every preset in PRESETS).
OFFLINE_PRESETS: Mapping[str, Mapping[str, Any]] = {
    # openai-whisper log_mel_spectrogram / transformers WhisperFeatureExtractor, at 16 kHz (see
    # the module docstring); output_clamp="fixed" with output_clamp_floor makes it stream.
    "whisper": dict(
        kind="fbank",
        frame_length_ms=25.0,
        frame_shift_ms=10.0,
        fft_size=0,
        round_to_power_of_two=False,
        padding="reflect",
        drop_last_frame=True,
        window="hann",
        periodic_window=True,
        remove_dc_offset=False,
        preemphasis=0.0,
        num_mel_bins=80,
        low_freq_hz=0.0,
        high_freq_hz=8000.0,
        mel_scale="slaney",
        mel_triangles="hz",
        mel_norm="slaney",
        log_scale="log10",
        log_floor_mode="max",
        log_floor=1e-10,
        use_energy=False,
        output_scale=0.25,
        output_offset=1.0,  # (log10 + 4) / 4
        output_clamp="utterance",
        output_clamp_range=2.0,  # Whisper's 8 log10 units, after the / 4
        # for output_clamp="fixed": the utterance floor of typical speech (max about 1.3 -> -0.7); on
        # the asterisk prompts it gave the same CER as the utterance clamp (benchmarks/RESULTS.md)
        output_clamp_floor=-0.7,
    ),
}


def normalize_waveform(samples: Any) -> np.ndarray:
    """Zero mean, unit variance over the whole utterance (float32): the input normalisation of
    waveform models such as wav2vec2 (Hugging Face's ``do_normalize``, same 1e-7 variance floor)."""
    x = _as_samples(samples).astype(np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def compute(samples: Any, sample_rate: float, config: Optional[FeatureConfig] = None) -> np.ndarray:
    """Features of a whole signal: float32 array [num_frames, config.dim].

    ``samples``: a 1-D float32/float64 array in [-1, 1] or int16 (strided views are fine).
    An empty signal gives zero frames.
    """
    return FeatureExtractor(config, sample_rate)(samples)


class FeatureExtractor:
    """:func:`compute` with the native front end kept between calls, for many short signals
    (saves the set-up, ~0.1-0.3 ms a call). Not thread-safe: one extractor per thread."""

    def __init__(self, config: Optional[FeatureConfig] = None, sample_rate: float = 16000):
        self.config = _check_config_type(config)
        self.sample_rate = _check_sample_rate(sample_rate)
        self._frontend = _native.FrontEnd(self.config._native(self.sample_rate))

    def __call__(self, samples: Any) -> np.ndarray:
        self._frontend.reset()
        return _frames(self._frontend.accept_and_finish(_as_samples(samples)), self._frontend.dim)


class FeatureStream:
    """Features computed chunk by chunk; identical to :func:`compute` on the whole signal.

    Not thread-safe: use one stream per thread (many streams may run in parallel; the native
    work releases the GIL).
    """

    def __init__(self, config: Optional[FeatureConfig] = None, sample_rate: float = 16000):
        self.config = _check_config_type(config)
        if self.config.output_clamp == "utterance":
            raise ValueError(
                "output_clamp='utterance' floors at the utterance's maximum, which a stream cannot "
                "know before the end; use compute(), or a causal floor: "
                "config.replace(output_clamp='fixed', output_clamp_floor=...)"
            )
        self.sample_rate = _check_sample_rate(sample_rate)
        self._frontend = _native.FrontEnd(self.config._native(self.sample_rate))
        self._pending: list = []

    @property
    def dim(self) -> int:
        return self._frontend.dim

    @property
    def frames_ready(self) -> int:
        """Frames computed but not yet read."""
        return sum(len(block) for block in self._pending)

    @property
    def frames_done(self) -> int:
        """Frames computed since creation or reset (the absolute index of the next one)."""
        return self._frontend.frames_done

    @property
    def finished(self) -> bool:
        return bool(self._frontend.finished)

    def accept(self, samples: Any) -> None:
        """Adds samples (any chunk size). Raises ValueError after :meth:`finish` until reset."""
        if self._frontend.finished:
            raise ValueError("FeatureStream already finished; call reset() before new audio")
        self._keep(self._frontend.accept(_as_samples(samples)))

    def finish(self) -> None:
        """Ends the signal; frames that overhang its end (padded modes) become ready."""
        self._keep(self._frontend.finish())

    def read(self) -> np.ndarray:
        """All frames computed since the last read, float32 [n, dim] (possibly n = 0)."""
        pending, self._pending = self._pending, []
        if not pending:
            return np.zeros((0, self.dim), dtype=np.float32)
        return pending[0] if len(pending) == 1 else np.concatenate(pending)

    def reset(self) -> None:
        """Forgets all audio and unread frames; the next sample starts a new signal."""
        self._frontend.reset()
        self._pending = []

    def _keep(self, data: bytearray) -> None:
        if len(data):
            self._pending.append(_frames(data, self._frontend.dim))


def compute_cmvn_stats(feature_arrays: Iterable[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Global mean and standard deviation over every frame of every array (float64 sums)."""
    total = 0
    sums: Optional[np.ndarray] = None
    squares: Optional[np.ndarray] = None
    for feats in feature_arrays:
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2:
            raise ValueError(f"feature arrays must be 2-D [frames, dim], got shape {feats.shape}")
        if sums is None:
            sums, squares = np.zeros(feats.shape[1]), np.zeros(feats.shape[1])
        elif feats.shape[1] != len(sums):
            raise ValueError(f"feature dims differ: {feats.shape[1]} vs {len(sums)}")
        total += len(feats)
        sums += feats.sum(axis=0)
        squares += np.square(feats).sum(axis=0)
    if not total or sums is None or squares is None:
        raise ValueError("no frames to compute CMVN statistics from")
    mean = sums / total
    std = np.sqrt(np.maximum(squares / total - mean**2, 1e-20))
    return mean, std


def load_cmvn_stats(path: "str | Path") -> Tuple[np.ndarray, np.ndarray]:
    """Reads global CMVN statistics: JSON ``{"mean": [...], "std": [...]}`` (as written by the
    converter), or a Kaldi text stats matrix (``[ sums... count \\n sums_of_squares... 0 ]``).
    Returns (mean, std) as float64 arrays."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: CMVN stats must be JSON or Kaldi text format (binary stats are not supported)"
        ) from None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            mean = np.asarray(data["mean"], dtype=np.float64)
            std = np.asarray(data.get("std", np.ones_like(mean)), dtype=np.float64)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{path}: malformed CMVN JSON ({err}); expected {{"mean": [...], "std": [...]}}') from None
    else:
        mean, std = _parse_kaldi_cmvn(stripped, path)
    if mean.ndim != 1 or mean.shape != std.shape or not len(mean):
        raise ValueError(f"{path}: CMVN mean and std must be equal-length non-empty vectors")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= MIN_CMVN_STD)):
        raise ValueError(f"{path}: CMVN statistics must be finite with std >= {MIN_CMVN_STD:g}")
    return mean, std


def _parse_kaldi_cmvn(text: str, path: Path) -> Tuple[np.ndarray, np.ndarray]:
    # Optional utterance key before the matrix, then "[ row \n row ]".
    match = re.search(r"\[(.*)\]", text, flags=re.S)
    rows = [r.split() for r in match.group(1).strip().splitlines()] if match else []
    try:
        if len(rows) != 2 or len(rows[0]) != len(rows[1]) or len(rows[0]) < 2:
            raise ValueError("expected a 2-row matrix")
        sums, squares = np.array(rows[0], dtype=np.float64), np.array(rows[1], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: malformed Kaldi CMVN stats ({err})") from None
    count = sums[-1]
    if not count > 0:
        raise ValueError(f"{path}: Kaldi CMVN stats have a frame count of {count}")
    mean = sums[:-1] / count
    std = np.sqrt(np.maximum(squares[:-1] / count - mean**2, MIN_CMVN_STD**2))  # a constant dimension
    return mean, std


def _native_value(kind: str, value: Any) -> Any:
    """A field's value as the binding takes it: enums by name, the rest as plain Python numbers."""
    if kind == "enum":
        return value
    if kind == "float":
        return float(value)
    return int(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _next_power_of_two(n: int) -> int:
    p = 4
    while p < n:
        p *= 2
    return p


def _check_config_type(config: Optional[FeatureConfig]) -> FeatureConfig:
    if config is None:
        return FeatureConfig()
    if not isinstance(config, FeatureConfig):
        raise TypeError(f"config must be a FeatureConfig, got {type(config).__name__}")
    return config


def _check_sample_rate(sample_rate: Any) -> float:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise TypeError(f"sample_rate must be a number in Hz, got {sample_rate!r}")
    rate = float(sample_rate)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return rate


_SAMPLE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int16))


def _as_samples(samples: Any) -> np.ndarray:
    array = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
    if array.dtype not in _SAMPLE_DTYPES:
        if array.size == 0 and array.dtype.kind in "fiu":
            return np.zeros(0, dtype=np.float32)
        raise TypeError(
            f"samples must be float32, float64 or int16, got {array.dtype}"
            " (convert, e.g. x.astype(np.float32) / 32768 for int32 PCM)"
        )
    if array.ndim != 1:
        raise ValueError(f"samples must be a 1-D mono signal, got shape {array.shape}; mix channels down first")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _frames(data: bytearray, dim: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32).reshape(-1, dim)
