"""Voice activity detectors that gate the acoustic model in :func:`edge_speech.listen.listen`.

- ``energy``: the native energy VAD (``_native.EnergyVad``, ``native/include/edge_speech/es_vad.h``),
  10 ms frames, next to no CPU. Its noise floor is the minimum of the (high-passed, 40 ms
  averaged) level over the last ``floor_window_ms`` (1.5 s): it follows a quieter background at
  once and a louder one (a fan turning on, AGC ramping up to ~6 dB/s) within the window, while
  speech, whose pauses dip to the background, cannot drag it up. Frames below
  ``silence_level_db`` (-85 dBFS) are digital silence (a noise gate, a muted or power-saving
  device): never speech and invisible to the floor, so faint noise after them is still noise.
  Options (:class:`EnergyVadConfig`): ``threshold_db`` (9, above the floor), ``min_level_db``
  (-55 dBFS), ``onset_frames`` (3), ``hangover_frames`` (25), ``silence_level_db``,
  ``floor_window_ms``, ``smooth_ms`` (40), ``highpass_hz`` (80).
- ``silero``: Silero VAD's ONNX model run through ONNX Runtime (numpy only, never torch): one
  speech probability per 32 ms window, far better than energy at telling speech from loud noise.

Both take float32 mono chunks of any size at the stream's rate and return one 0/1 decision per
frame (``bytes``); ``frame_seconds`` is the time one decision covers; ``reset()`` starts afresh.

Silero's model file ships in the PyPI package ``silero-vad``, whose own code needs torch; install
it without its dependencies (``pip install --no-deps silero-vad``): only the ONNX file is used,
located without importing the package.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from edge_speech import _native
from edge_speech._config_tables import native_fields
from edge_speech._deps import import_onnxruntime, import_soxr

__all__ = ["KINDS", "EnergyVadConfig", "SileroVad", "create_vad", "find_silero_model"]

KINDS = ("energy", "silero")

SILERO_MODEL_FILE = "silero_vad.onnx"  # the package's model for 8 and 16 kHz (the *_16k_* ones take 16 kHz only)
SILERO_INSTALL_HINT = "pip install --no-deps silero-vad  (only its ONNX file is used; torch is not needed)"
# The model's conventions (from its graph inputs and the package's wrapper): a window of 512
# samples at 16 kHz (256 at 8 kHz), preceded by the last 64 (32) samples of the previous window
# as context, and a recurrent state of shape [2, batch, 128].
SILERO_WINDOW = {16000: 512, 8000: 256}
SILERO_CONTEXT = {16000: 64, 8000: 32}
SILERO_STATE_SHAPE = (2, 1, 128)


# The C energy VAD's description (es_vad_config_table): defaults and single-field ranges. The
# sample rate is the stream's, not an option.
_ENERGY_FIELDS = native_fields("vad")


def _energy_default(name: str) -> Any:
    return _ENERGY_FIELDS[name].default


@dataclasses.dataclass(frozen=True)
class EnergyVadConfig:
    """Options of the energy VAD (``es_vad_config``; see the module docstring). Defaults and each
    field's range come from the C config table; the checks between fields (silence below
    ``min_level_db``, a floor window of at least a frame, ...) are the C core's, at creation."""

    frame_ms: float = _energy_default("frame_ms")
    threshold_db: float = _energy_default("threshold_db")
    min_level_db: float = _energy_default("min_level_db")
    onset_frames: int = _energy_default("onset_frames")
    hangover_frames: int = _energy_default("hangover_frames")
    silence_level_db: float = _energy_default("silence_level_db")
    floor_window_ms: float = _energy_default("floor_window_ms")
    smooth_ms: float = _energy_default("smooth_ms")
    highpass_hz: float = _energy_default("highpass_hz")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _ENERGY_FIELDS[f.name].check(getattr(self, f.name))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EnergyVadConfig":
        if not isinstance(data, Mapping):
            raise TypeError(f"energy VAD options must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(
                f"unknown energy VAD option(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(cls)]}"
            )
        return cls(**dict(data))

    def create(self, sample_rate: float) -> Any:
        """The native detector (``_native.EnergyVad``) for a stream at ``sample_rate``."""
        return _native.EnergyVad(sample_rate_hz=float(sample_rate), **self.to_dict())


def find_silero_model() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed ``silero-vad`` package.

    ``find_spec`` locates the package without running its ``__init__`` (which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "data" / SILERO_MODEL_FILE
        if path.is_file():
            return path
    where = f" (the installed package at {locations[0]} has no data/{SILERO_MODEL_FILE})" if locations else ""
    raise FileNotFoundError(
        f"Silero VAD needs the model file {SILERO_MODEL_FILE} from the silero-vad package"
        f"{where}: {SILERO_INSTALL_HINT}; or pass its path as model_path"
    )


class SileroVad:
    """Silero VAD on ONNX Runtime with the energy VAD's interface.

    Speech starts when a window's probability reaches ``threshold`` and ends when one falls below
    ``release_threshold`` (default ``threshold - 0.15``, Silero's own hysteresis), so a word's
    quieter middle does not end it. Streams at 8 or 16 kHz run as they are; other rates are
    resampled to 16 kHz (soxr, statefully), so decisions cover 32 ms whatever the input rate.
    """

    def __init__(
        self,
        sample_rate_hz: float = 16000,
        model_path: "str | Path | None" = None,
        threshold: float = 0.5,
        release_threshold: Optional[float] = None,
        threads: int = 1,
    ):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold!r}")
        release = threshold - 0.15 if release_threshold is None else release_threshold
        if not 0.0 < release <= threshold:
            raise ValueError(f"release_threshold must be in (0, threshold={threshold}], got {release!r}")
        rate = int(sample_rate_hz)
        if rate != sample_rate_hz or rate <= 0:
            raise ValueError(f"sample_rate_hz must be a positive whole number of Hz, got {sample_rate_hz!r}")
        path = Path(model_path) if model_path is not None else find_silero_model()
        if not path.is_file():
            raise FileNotFoundError(f"Silero VAD model {path} does not exist; {SILERO_INSTALL_HINT}")
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = int(threads)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own exception types
            raise ValueError(f"{path} is not a loadable ONNX model: {err}") from None
        names = {i.name for i in self._session.get_inputs()}
        if names != {"input", "state", "sr"}:
            raise ValueError(
                f"{path} does not look like Silero VAD: inputs {sorted(names)}, expected input, state and sr"
            )
        self.sample_rate = rate
        self.model_rate = rate if rate in SILERO_WINDOW else 16000
        self.window = SILERO_WINDOW[self.model_rate]
        self.context_size = SILERO_CONTEXT[self.model_rate]
        self.frame_seconds = self.window / self.model_rate
        self.threshold, self.release_threshold = float(threshold), float(release)
        self.model_path = path
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)
        self._buffer = np.zeros(self.context_size, dtype=np.float32)  # context + samples not yet in a window
        self._resampler: Optional[Any] = None  # soxr.ResampleStream once the input rate differs
        self.speaking = False
        self.frames_done = 0

    def accept_probabilities(self, samples: Any) -> np.ndarray:
        """Speech probability of each window completed by ``samples`` (float32)."""
        x = np.asarray(samples)
        if x.ndim != 1 or x.dtype.kind != "f":
            raise TypeError(f"SileroVad takes 1-D float samples, got {x.dtype} with shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("SileroVad: the audio contains NaN or Inf samples")
        x = x.astype(np.float32, copy=False)
        if self.model_rate != self.sample_rate:
            if self._resampler is None:
                self._resampler = import_soxr().ResampleStream(
                    self.sample_rate, self.model_rate, 1, dtype="float32", quality="HQ"
                )
            x = self._resampler.resample_chunk(x)
        buffer = np.concatenate([self._buffer, x])
        count = (len(buffer) - self.context_size) // self.window
        probabilities = np.empty(count, dtype=np.float32)
        rate = np.array(self.model_rate, dtype=np.int64)
        for i in range(count):
            start = i * self.window
            feed = buffer[start : start + self.context_size + self.window][np.newaxis]
            out, self._state = self._session.run(None, {"input": feed, "state": self._state, "sr": rate})
            probabilities[i] = out[0, 0]
        self._buffer = buffer[count * self.window :]
        self.frames_done += count
        return probabilities

    def accept(self, samples: Any) -> bytes:
        """One 0/1 decision per completed window, like ``EnergyVad.accept``."""
        decisions = bytearray()
        for p in self.accept_probabilities(samples):
            self.speaking = bool(p >= (self.release_threshold if self.speaking else self.threshold))
            decisions.append(self.speaking)
        return bytes(decisions)


def create_vad(kind: str, sample_rate: int, options: Optional[dict] = None) -> Any:
    """A VAD of ``kind`` (one of :data:`KINDS`) for a stream at ``sample_rate``; ``options`` are
    the fields of :class:`EnergyVadConfig` or :class:`SileroVad`'s keyword arguments."""
    if kind == "energy":
        return EnergyVadConfig.from_dict(options or {}).create(sample_rate)
    if kind == "silero":
        return SileroVad(sample_rate_hz=sample_rate, **(options or {}))
    raise ValueError(f"unknown VAD {kind!r}; choose one of {', '.join(KINDS)}")
