"""Decoding results: words with times, n-best hypotheses, and the result of an utterance."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge_speech.decoding.vocabulary import Vocabulary

__all__ = ["Hypothesis", "Result", "Word"]

# one emitted token as the native greedy and beam searches write it
TOKEN_DTYPE = np.dtype([("id", "<i4"), ("log_prob", "<f4"), ("frame", "<i8")])


@dataclasses.dataclass(frozen=True)
class Word:
    """A decoded word: text, start/end in seconds (model frame rate), confidence in [0, 1].

    ``start`` is the first token's frame, ``end`` one frame past the last token's frame; the
    confidence is the geometric mean of the word's token probabilities at their frames."""

    text: str
    start: float
    end: float
    confidence: float
    start_frame: int
    end_frame: int


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One entry of the n-best list. ``score`` = ``acoustic_score`` + lm_weight * ``lm_score``
    + word_bonus * words + hotword credit (natural log)."""

    text: str
    tokens: Tuple[int, ...]
    score: float
    acoustic_score: float
    lm_score: float


@dataclasses.dataclass(frozen=True)
class Result:
    """A decoding result. ``tokens`` are token ids, ``token_frames`` the absolute frame at which
    each was emitted. ``nbest`` holds the ranked hypotheses (the first is this one).

    With a grammar: ``intent`` and ``slots`` (``{"room": "kitchen"}``) of the best in-grammar
    sentence, and ``confidence`` in [0, 1]: exp of the per-token log-ratio between the best
    in-grammar alignment and the best unconstrained one, scaled down when the speech evidence
    falls short (see :class:`CTCDecoder`'s ``grammar_min_evidence``). Below the decoder's
    ``grammar_threshold``, or short of evidence, the result is a rejection: ``intent`` and
    ``slots`` are None and ``text`` is empty, while ``nbest[0]`` still shows the closest
    in-grammar sentence. Grammar words carry the utterance confidence."""

    text: str
    tokens: Tuple[int, ...]
    token_frames: Tuple[int, ...]
    score: float
    acoustic_score: float
    lm_score: float
    words: Tuple[Word, ...]
    nbest: Tuple[Hypothesis, ...]
    intent: Optional[str] = None
    slots: Optional[Mapping[str, Any]] = None  # text; Home Assistant lists and ranges give values
    confidence: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TokenPath:
    """A ranked token sequence from the greedy or beam search: ``tokens`` in :data:`TOKEN_DTYPE`."""

    tokens: np.ndarray
    score: float
    acoustic_score: float
    lm_score: float


def ranked_result(paths: Sequence[TokenPath], vocab: Vocabulary, frame_shift_s: float) -> Result:
    """The result of ranked token paths (best first): text, words with times and confidences, n-best."""
    nbest: List[Hypothesis] = []
    grouped = []
    for rank, path in enumerate(paths):
        ids = tuple(path.tokens["id"].tolist())
        if rank == 0:
            triples = list(zip(ids, path.tokens["frame"].tolist(), path.tokens["log_prob"].tolist()))
            grouped = vocab.group_words(triples)
            text = " ".join(w for w, _ in grouped)
        else:
            text = vocab.text(ids)
        nbest.append(Hypothesis(text, ids, float(path.score), float(path.acoustic_score), float(path.lm_score)))
    words = []
    for text, members in grouped:
        first, last = members[0][1], members[-1][1]
        confidence = math.exp(sum(m[2] for m in members) / len(members))
        words.append(
            Word(text, first * frame_shift_s, (last + 1) * frame_shift_s, min(1.0, confidence), first, last + 1)
        )
    best = paths[0]
    return Result(
        text=nbest[0].text,
        tokens=nbest[0].tokens,
        token_frames=tuple(best.tokens["frame"].tolist()),
        score=float(best.score),
        acoustic_score=float(best.acoustic_score),
        lm_score=float(best.lm_score),
        words=tuple(words),
        nbest=tuple(nbest),
    )
