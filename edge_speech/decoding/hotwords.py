"""Hotword phrases and their boosts, checked and handed to the native beam search."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from edge_speech import _native

__all__ = ["DEFAULT_FILE_BOOST", "MAX_HOTWORD_BOOST", "hotword_table", "parse_hotwords", "read_hotwords"]

# A boost is added to a float32 log-probability score per token: 3e38 was accepted and the beam
# returned garbage. 100 nats per token already outweighs any acoustic evidence.
MAX_HOTWORD_BOOST = 100.0
DEFAULT_FILE_BOOST = 2.0  # a phrase in a hotwords file without ":boost"


def read_hotwords(path: "str | Path") -> Dict[str, float]:
    """A hotwords file: one phrase per line, optionally ``phrase:boost``; ``#`` starts a comment line.
    Phrases keep their case (a model's tokens may be upper case); runs of spaces become one."""
    return parse_hotwords(Path(path).read_text(encoding="utf-8"), str(path))


def parse_hotwords(text: str, what: str = "hotwords") -> Dict[str, float]:
    """:func:`read_hotwords` on the text of such a file (a request field, say)."""
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        phrase, _, boost = line.rpartition(":") if ":" in line else (line, "", "")
        try:
            table[" ".join(phrase.split())] = float(boost) if boost else DEFAULT_FILE_BOOST
        except ValueError:
            raise ValueError(f"{what}:{number}: bad boost {boost!r} (expected 'phrase:number')") from None
    return table


def hotword_table(hotwords: Any, default_boost: float) -> Optional[Any]:
    """The native hotword table of ``{phrase: boost}``, or of phrases (each ``default_boost``) or
    (phrase, boost) pairs; None when there are none."""
    if hotwords is None:
        return None
    if isinstance(hotwords, str):
        raise TypeError("hotwords must be a dict {phrase: boost}, or a list of phrases or (phrase, boost) pairs")
    items = (
        list(hotwords.items())
        if isinstance(hotwords, Mapping)
        else [(h, default_boost) if isinstance(h, str) else tuple(h) for h in hotwords]
    )
    phrases, boosts = [], []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"hotword entries must be (phrase, boost), got {item!r}")
        phrase, boost = item
        if not phrase.split():
            raise ValueError("a hotword phrase is empty")
        if (
            isinstance(boost, bool)
            or not isinstance(boost, numbers.Real)
            or not (math.isfinite(boost) and 0 < float(boost) <= MAX_HOTWORD_BOOST)
        ):
            raise ValueError(
                f"hotword {phrase!r} has boost {boost!r}; boosts must be in (0, {MAX_HOTWORD_BOOST:g}] "
                "(log-probability added per token; past that, scores lose all precision)"
            )
        phrases.append(" ".join(phrase.split()))
        boosts.append(float(boost))
    if not phrases:
        return None
    return _native.Hotwords(phrases, boosts)
