"""What every decoder stream offers, and the accept/finish bookkeeping they share."""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from edge_speech.decoding.results import Result

__all__ = ["DecoderStream", "check_log_probs"]


@runtime_checkable
class DecoderStream(Protocol):
    """Streaming decoding: :meth:`accept` chunks, read :attr:`partial`, then :meth:`finish`.
    The final result equals decoding the whole utterance at once. Not thread-safe: one stream
    per thread."""

    @property
    def frames_done(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    @property
    def partial(self) -> Result:
        """The best hypothesis so far (without the end-of-utterance LM score)."""

    def accept(self, chunk: Any) -> None:
        """Adds frames: float32 [n, V] log-probs (n may be 0)."""

    def finish(self) -> Result:
        """Ends the utterance and returns the final result (again on later calls)."""

    def reset(self) -> None:
        """Forgets all input; the next chunk starts a new utterance."""


def check_log_probs(log_probs: Any, vocab_size: int) -> np.ndarray:
    """``log_probs`` as a contiguous float32 [frames, vocab_size] array, or a TypeError/ValueError."""
    array = np.asarray(log_probs)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"log_probs must be a float array, got {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"log_probs must be 2-D [frames, vocab], got shape {array.shape}")
    if array.shape[1] != vocab_size:
        raise ValueError(f"log_probs has {array.shape[1]} columns but the vocabulary has {vocab_size} tokens")
    return np.ascontiguousarray(array, dtype=np.float32)  # NaN / +inf are refused by the native code


class StreamBase:
    """The :class:`DecoderStream` life cycle; a subclass decodes frames (``_decode``), reports its
    best result so far (``_best``), and may act at the end (``_end``) and on reset (``_restart``)."""

    def __init__(self, vocab_size: int):
        self._vocab_size = vocab_size
        self._frames = 0
        self._result: Optional[Result] = None

    @property
    def frames_done(self) -> int:
        return self._frames

    @property
    def finished(self) -> bool:
        return self._result is not None

    @property
    def partial(self) -> Result:
        """The best hypothesis so far (without the end-of-utterance LM score)."""
        return self._result if self._result is not None else self._best()

    def accept(self, chunk: Any) -> None:
        """Adds frames: float32 [n, V] log-probs (n may be 0)."""
        if self._result is not None:
            raise ValueError("stream already finished; call reset() before new input")
        chunk = check_log_probs(chunk, self._vocab_size)
        self._decode(chunk)
        self._frames += chunk.shape[0]

    def finish(self) -> Result:
        """Ends the utterance and returns the final result (again on later calls)."""
        if self._result is None:
            self._end()
            self._result = self._best()
        return self._result

    def reset(self) -> None:
        """Forgets all input; the next chunk starts a new utterance."""
        self._frames = 0
        self._result = None
        self._restart()

    def _decode(self, log_probs: np.ndarray) -> None:
        raise NotImplementedError

    def _best(self) -> Result:
        raise NotImplementedError

    def _end(self) -> None:
        pass

    def _restart(self) -> None:
        pass
