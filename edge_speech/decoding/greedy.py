"""Greedy CTC decoding: the argmax path, repeats merged, blanks removed (in the native core)."""

from __future__ import annotations

from typing import List

import numpy as np

from edge_speech import _native
from edge_speech.decoding.results import TOKEN_DTYPE, Result, TokenPath, ranked_result
from edge_speech.decoding.stream import StreamBase
from edge_speech.decoding.vocabulary import Vocabulary

__all__ = ["GreedyStream"]


class GreedyStream(StreamBase):
    """Greedy decoding, chunk by chunk; the result's score is the argmax path's log-probability."""

    def __init__(self, vocab: Vocabulary, frame_shift_s: float):
        super().__init__(len(vocab))
        self._vocab = vocab
        self._frame_shift_s = frame_shift_s
        self._restart()

    def _restart(self) -> None:
        self._previous = -1  # the argmax of the frame before the next chunk
        self._path_log_prob = 0.0
        self._chunks: List[np.ndarray] = []

    def _decode(self, log_probs: np.ndarray) -> None:
        data, self._previous, self._path_log_prob = _native.ctc_greedy(
            log_probs, log_probs.shape[1], self._vocab.blank_id, self._previous, self.frames_done, self._path_log_prob
        )
        if len(data):
            self._chunks.append(np.frombuffer(data, dtype=TOKEN_DTYPE))

    def _best(self) -> Result:
        tokens = np.concatenate(self._chunks) if self._chunks else np.zeros(0, TOKEN_DTYPE)
        path = TokenPath(tokens, self._path_log_prob, self._path_log_prob, 0.0)
        return ranked_result([path], self._vocab, self._frame_shift_s)
