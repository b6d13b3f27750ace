"""The native configs' descriptions (``native/include/edge_speech/es_config.h``) seen from Python.

Each C config (``"frontend"``, ``"vad"``, ``"beam"``) is described once, by a table beside its
default function: every field's type, default, valid range and enum names. The Python config
classes take their defaults, enum names and single-field ranges from here, so they cannot drift
from the C structs; checks that involve several fields stay with each class.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from edge_speech import _native

__all__ = ["NativeField", "native_fields"]


@dataclasses.dataclass(frozen=True)
class NativeField:
    """One row of a C config table, with the default in Python terms (an enum by name)."""

    name: str
    type: str  # "float", "int", "bool", "enum" or "u64"
    default: Any
    min: float
    max: float
    min_exclusive: bool
    max_exclusive: bool
    enum_names: Optional[Tuple[str, ...]]

    def in_range(self, value: float) -> bool:
        above = value > self.min if self.min_exclusive else value >= self.min
        below = value < self.max if self.max_exclusive else value <= self.max
        return bool(above and below)

    def range_text(self) -> str:
        """The range as a reader would write it: "> 0", "in [0, 1]", "in 1..65536"."""
        if self.type in ("int", "u64"):
            low = int(self.min) + (1 if self.min_exclusive else 0)
            high = int(self.max) - (1 if self.max_exclusive else 0)
            return f"in {low}..{high}"
        low, high = math.isinf(self.min), math.isinf(self.max)
        if high and not low:
            return f"{'>' if self.min_exclusive else '>='} {self.min:g}"
        if low and not high:
            return f"{'<' if self.max_exclusive else '<='} {self.max:g}"
        return f"in {'(' if self.min_exclusive else '['}{self.min:g}, {self.max:g}{')' if self.max_exclusive else ']'}"

    def check(self, value: Any) -> None:
        """Raises TypeError for a value of the wrong kind, ValueError for one out of range."""
        label = self.name
        if self.type == "enum":
            if self.enum_names is None:  # the C tables name every enum's values
                raise RuntimeError(f"{label}: the native table gives this enum no names")
            if value not in self.enum_names:
                raise ValueError(f"{label} must be one of {sorted(self.enum_names)}, got {value!r}")
            return
        if self.type == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{label} must be a bool, got {value!r}")
            return
        if self.type in ("int", "u64"):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{label} must be an int, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{label} must be a number, got {value!r}")
        elif not math.isfinite(value):
            raise ValueError(f"{label} must be finite, got {value!r}")
        if not self.in_range(value):
            raise ValueError(f"{label} must be {self.range_text()}, got {value!r}")


@functools.lru_cache(maxsize=None)
def native_fields(config: str) -> Mapping[str, NativeField]:
    """The fields of a C config (``"frontend"``, ``"vad"`` or ``"beam"``) by name, in table order."""
    return types.MappingProxyType({row["name"]: NativeField(**row) for row in _native.config_fields(config)})
