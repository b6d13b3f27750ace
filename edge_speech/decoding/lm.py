"""Word n-gram language models from ARPA files, held in the native core."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Tuple, Union

from edge_speech import _native

__all__ = ["ArpaLM"]


class ArpaLM:
    """A word n-gram LM from an ARPA file, held in the native core (sorted arrays, backoff).

    Malformed files raise ValueError naming the line. Read-only once built: share one between
    decoders and threads."""

    def __init__(self, text: Union[str, bytes, bytearray, memoryview]):
        if isinstance(text, str):
            text = text.encode("utf-8")
        if not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"ArpaLM takes ARPA text (str or bytes), got {type(text).__name__}; "
                "use ArpaLM.from_file(path) for a file"
            )
        self._lm = _native.ArpaLM(text)  # any bytes-like buffer, read in place (a big LM is not copied)

    @classmethod
    def from_file(cls, path: "str | Path") -> "ArpaLM":
        """An ARPA file, plain or gzip-compressed (recognised by its magic bytes, not its name)."""
        from edge_speech import limits

        path = Path(path)
        if path.is_file() and path.stat().st_size > limits.current().max_lm_bytes:
            raise limits.exceeded(f"{path}: size", f"{path.stat().st_size} bytes", "max_lm_bytes")
        data = limits.gunzip(path.read_bytes(), str(path), "max_lm_bytes")
        try:
            return cls(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @property
    def native_model(self) -> Any:
        """The native core's model, for the beam search."""
        return self._lm

    @property
    def order(self) -> int:
        return self._lm.order

    @property
    def words(self) -> Tuple[str, ...]:
        """The unigrams (``<s>``, ``</s>``, ``<unk>`` included when present)."""
        return tuple(self._lm.words)

    @property
    def counts(self) -> Tuple[int, ...]:
        """How many n-grams of each order."""
        return tuple(self._lm.counts)

    def score(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> List[float]:
        """log10 p(word | history) for each word (and ``</s>`` last if eos and the model has it)."""
        if isinstance(words, str):
            words = words.split()
        return self._lm.score_words([str(w) for w in words], bool(bos), bool(eos))
