"""The token vocabulary of a CTC model and the word boundaries its tokens imply."""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edge_speech import _native

__all__ = ["Vocabulary"]

_KIND_CODES = {"auto": 0, "chars": 1, "sentencepiece": 2}
_KIND_NAMES = {code: name for name, code in _KIND_CODES.items()}
# bits of the native core's per-token flags
_BLANK, _WORD_START, _SEPARATOR = 1, 2, 4

# (token id, frame, log-probability) of one emitted token
TokenTriple = Tuple[int, int, float]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token strings, the blank id, and the word boundaries they imply (``kind`` resolved)."""

    tokens: Tuple[str, ...]
    blank_id: int = 0
    kind: str = "auto"
    # Derived in __post_init__ from the native core's reading of the tokens.
    _flags: bytes = dataclasses.field(init=False, repr=False, compare=False)
    _texts: Tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    _spelling: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = self.tokens
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
            raise TypeError("tokens must be a sequence of str")
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError("tokens is empty; a CTC vocabulary needs at least the blank")
        for i, t in enumerate(tokens):
            if not isinstance(t, str):
                raise TypeError(f"tokens[{i}] must be a str, got {type(t).__name__}")
        object.__setattr__(self, "tokens", tokens)
        if isinstance(self.blank_id, bool) or not isinstance(self.blank_id, numbers.Integral):
            raise TypeError(f"blank_id must be an int, got {self.blank_id!r}")
        if not 0 <= self.blank_id < len(tokens):
            raise ValueError(f"blank_id {self.blank_id} is outside the vocabulary of {len(tokens)} tokens")
        if self.kind not in _KIND_CODES:
            raise ValueError(f"kind must be one of {sorted(_KIND_CODES)}, got {self.kind!r}")
        kind, flags, texts = _native.vocab_info(list(tokens), int(self.blank_id), _KIND_CODES[self.kind])
        object.__setattr__(self, "blank_id", int(self.blank_id))
        object.__setattr__(self, "kind", _KIND_NAMES[kind])
        object.__setattr__(self, "_flags", bytes(flags))
        object.__setattr__(self, "_texts", tuple(texts))
        spelling = np.array([not f & (_SEPARATOR | _BLANK) for f in self._flags], dtype=bool)
        spelling.flags.writeable = False
        object.__setattr__(self, "_spelling", spelling)

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def from_file(cls, path: "str | Path", blank_id: Optional[int] = None, kind: str = "auto") -> "Vocabulary":
        """Reads ``tokens.txt``: one token per line, optionally followed by its id (sherpa/k2
        style ``"a 3"``). ``blank_id`` defaults to the line ``<blk>``/``<blank>``/``<pad>``, else 0."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        entries = []
        for line in lines:
            if not line.strip() and line != " ":
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "":
                entries.append((int(parts[1]), parts[0]))
            else:
                entries.append((len(entries), line))
        ids = sorted(i for i, _ in entries)
        if ids != list(range(len(entries))):
            raise ValueError(f"{path}: token ids must be 0..{len(entries) - 1} without gaps")
        tokens = [t for _, t in sorted(entries)]
        if blank_id is None:
            blank_id = next((i for i, t in enumerate(tokens) if t in ("<blk>", "<blank>", "<pad>")), 0)
        return cls(tuple(tokens), blank_id, kind)

    # -- what each token means -------------------------------------------------------------------
    @property
    def native_kind(self) -> int:
        """The resolved kind as the native core numbers it."""
        return _KIND_CODES[self.kind]

    @property
    def pieces(self) -> Tuple[str, ...]:
        """The text each token adds to a word (word markers stripped; empty for the blank and separators)."""
        return self._texts

    @property
    def spelling_mask(self) -> np.ndarray:
        """Read-only bool per token: True where the token spells text (neither blank nor separator)."""
        return self._spelling

    def is_blank(self, token_id: int) -> bool:
        return bool(self._flags[token_id] & _BLANK)

    def is_separator(self, token_id: int) -> bool:
        """A word separator (``" "``, ``"|"``, a lone ``"▁"``): it spells nothing."""
        return bool(self._flags[token_id] & _SEPARATOR)

    def starts_word(self, token_id: int) -> bool:
        return bool(self._flags[token_id] & _WORD_START)

    # -- text --------------------------------------------------------------------------------------
    def text(self, ids: Iterable[int]) -> str:
        """The text of a token sequence: one space per word boundary, none at the ends."""
        return " ".join(w for w, _ in self.group_words([(int(i), 0, 0.0) for i in ids]))

    def group_words(self, tokens: Sequence[TokenTriple]) -> List[Tuple[str, List[TokenTriple]]]:
        """Splits emitted (id, frame, log_prob) tokens into words: ``[(text, member tokens)]``."""
        words: List[Tuple[str, List[TokenTriple]]] = []
        text, boundary = "", True
        members: List[TokenTriple] = []
        flags_of, texts = self._flags, self._texts
        for tok in tokens:
            flags, piece = flags_of[tok[0]], texts[tok[0]]
            if flags & _BLANK:
                continue
            if flags & _WORD_START:
                boundary = True
            if not piece:
                continue
            if boundary and text:
                words.append((text, members))
                text, members = "", []
            boundary = False
            text += piece
            members.append(tok)
        if text:
            words.append((text, members))
        return words
