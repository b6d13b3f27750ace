"""Beam search settings for :class:`edge_speech.decoding.CTCDecoder`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Optional

from edge_speech._config_tables import native_fields

__all__ = ["BeamConfig"]

# The C beam search's description (es_ctc_beam_config_table). These fields are the C struct's,
# under the same names, so their defaults and ranges come from it; the probabilities are held in C
# as logs (token_min_log_prob, blank_skip_log_prob), and frame_shift_s and nbest are Python's own.
_FIELDS = native_fields("beam")
_SHARED = ("beam_width", "top_k", "lm_weight", "word_bonus", "oov_penalty")


def _default(name: str) -> Any:
    return _FIELDS[name].default


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    """Search settings. ``beam_width=1`` is greedy decoding. Per frame, only the ``top_k``
    most likely non-blank tokens (0 = all) with probability >= ``token_min_prob`` extend
    hypotheses, and frames whose blank probability is above ``blank_skip_prob`` (None = never)
    extend none. ``lm_weight`` scales the LM's natural-log probability, ``word_bonus`` is added per
    word, ``oov_penalty`` (<= 0) per out-of-vocabulary word: with a lexicon, per word that leaves it
    (charged as soon as it does; 0 keeps such words out altogether), else, with an LM, per word
    missing from its unigrams. ``frame_shift_s`` is the model's output frame period (word times). ``nbest`` bounds the
    n-best list."""

    beam_width: int = _default("beam_width")  # 8: a Recognizer's beam when the bundle names none
    top_k: int = _default("top_k")
    token_min_prob: float = 1e-4  # exp of the C default token_min_log_prob
    blank_skip_prob: Optional[float] = 0.999  # exp of the C default blank_skip_log_prob
    lm_weight: float = _default("lm_weight")
    word_bonus: float = _default("word_bonus")
    oov_penalty: float = _default("oov_penalty")
    frame_shift_s: float = 0.02
    nbest: int = 5

    def __post_init__(self) -> None:
        for name in ("beam_width", "top_k", "nbest"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {value!r}")
        _require(self.nbest >= 1, f"nbest must be >= 1, got {self.nbest}")
        for name in ("token_min_prob", "lm_weight", "word_bonus", "oov_penalty", "frame_shift_s") + (
            ("blank_skip_prob",) if self.blank_skip_prob is not None else ()
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        _require(0 <= self.token_min_prob < 1, f"token_min_prob must be in [0, 1), got {self.token_min_prob}")
        if self.blank_skip_prob is not None:
            _require(
                0 < self.blank_skip_prob <= 1, f"blank_skip_prob must be in (0, 1] or None, got {self.blank_skip_prob}"
            )
        _require(self.frame_shift_s > 0, f"frame_shift_s must be > 0, got {self.frame_shift_s}")
        for name in _SHARED:
            _FIELDS[name].check(getattr(self, name))

    def replace(self, **changes: Any) -> "BeamConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown BeamConfig field(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BeamConfig":
        if not isinstance(data, Mapping):
            raise TypeError(f"beam config must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown beam config key(s): {sorted(unknown)}")
        return cls(**dict(data))

    def _native(self) -> dict:
        return {
            "beam_width": self.beam_width,
            "top_k": self.top_k,
            "token_min_log_prob": math.log(self.token_min_prob) if self.token_min_prob > 0 else -math.inf,
            "blank_skip_log_prob": math.inf if self.blank_skip_prob is None else math.log(self.blank_skip_prob),
            "lm_weight": self.lm_weight,
            "word_bonus": self.word_bonus,
            "oov_penalty": self.oov_penalty,
        }


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
