"""CTC prefix beam search with optional ARPA LM fusion, hotwords and a lexicon (in the native core)."""

from __future__ import annotations

import math
from typing import Any, List, Optional

import numpy as np

from edge_speech import _native
from edge_speech.decoding.config import BeamConfig
from edge_speech.decoding.lm import ArpaLM
from edge_speech.decoding.results import TOKEN_DTYPE, Result, TokenPath, ranked_result
from edge_speech.decoding.stream import StreamBase
from edge_speech.decoding.vocabulary import Vocabulary

__all__ = ["BeamStream", "native_beam_options"]


def native_beam_options(config: BeamConfig) -> dict:
    """The search settings in the native core's terms (natural-log thresholds)."""
    return {
        "beam_width": config.beam_width,
        "top_k": config.top_k,
        "token_min_log_prob": math.log(config.token_min_prob) if config.token_min_prob > 0 else -math.inf,
        "blank_skip_log_prob": math.inf if config.blank_skip_prob is None else math.log(config.blank_skip_prob),
        "lm_weight": config.lm_weight,
        "word_bonus": config.word_bonus,
        "oov_penalty": config.oov_penalty,
    }


class BeamStream(StreamBase):
    """Prefix beam search, chunk by chunk. ``hotwords`` and ``lexicon`` are native tables (see
    :func:`edge_speech.decoding.hotwords.hotword_table`)."""

    def __init__(
        self,
        vocab: Vocabulary,
        config: BeamConfig,
        lm: Optional[ArpaLM] = None,
        hotwords: Any = None,
        lexicon: Any = None,
    ):
        super().__init__(len(vocab))
        self._vocab = vocab
        self._config = config
        self._beam = _native.CTCBeam(
            list(vocab.tokens),
            vocab.blank_id,
            vocab.native_kind,
            native_beam_options(config),
            None if lm is None else lm.native_model,
            hotwords,
            lexicon,
        )

    def _restart(self) -> None:
        self._beam.reset()

    def _decode(self, log_probs: np.ndarray) -> None:
        self._beam.accept(log_probs)

    def _end(self) -> None:
        self._beam.finish()  # adds the end-of-sentence LM score

    def _best(self) -> Result:
        paths: List[TokenPath] = []
        for data, total, acoustic, lm, _hotword, _words in self._beam.hypotheses(self._config.nbest):
            if math.isfinite(total) or not paths:  # a lexicon can rule hypotheses out
                paths.append(TokenPath(np.frombuffer(data, dtype=TOKEN_DTYPE), total, acoustic, lm))
        if not math.isfinite(paths[0].score):
            paths = [TokenPath(np.zeros(0, TOKEN_DTYPE), -math.inf, -math.inf, 0.0)]
        return ranked_result(paths, self._vocab, self._config.frame_shift_s)
