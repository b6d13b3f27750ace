"""Beam search settings for :class:`edge_speech.decoding.CTCDecoder`."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Mapping, Optional

__all__ = ["BeamConfig"]


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

    beam_width: int = 16
    top_k: int = 0
    token_min_prob: float = 1e-4
    blank_skip_prob: Optional[float] = 0.999
    lm_weight: float = 0.5
    word_bonus: float = 0.0
    oov_penalty: float = 0.0
    frame_shift_s: float = 0.02
    nbest: int = 5

    def __post_init__(self) -> None:
        for name in ("beam_width", "top_k", "nbest"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an int, got {value!r}")
        _require(1 <= self.beam_width <= 1 << 16, f"beam_width must be in 1..{1 << 16}, got {self.beam_width}")
        _require(self.top_k >= 0, f"top_k must be >= 0 (0 = all tokens), got {self.top_k}")
        _require(self.nbest >= 1, f"nbest must be >= 1, got {self.nbest}")
        for name in ("token_min_prob", "lm_weight", "word_bonus", "oov_penalty", "frame_shift_s") + (
                ("blank_skip_prob",) if self.blank_skip_prob is not None else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        _require(0 <= self.token_min_prob < 1, f"token_min_prob must be in [0, 1), got {self.token_min_prob}")
        if self.blank_skip_prob is not None:
            _require(0 < self.blank_skip_prob <= 1, f"blank_skip_prob must be in (0, 1] or None, got {self.blank_skip_prob}")
        _require(self.frame_shift_s > 0, f"frame_shift_s must be > 0, got {self.frame_shift_s}")
        _require(self.oov_penalty <= 0, f"oov_penalty must be <= 0, got {self.oov_penalty}")

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
