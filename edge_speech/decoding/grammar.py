"""Grammar-constrained decoding: a Viterbi search over the sentences of a command grammar."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Dict, List, Optional

import numpy as np

from edge_speech import _native
from edge_speech.decoding.results import Hypothesis, Result, Word
from edge_speech.decoding.stream import StreamBase
from edge_speech.decoding.vocabulary import Vocabulary
from edge_speech.grammar_tokens import TokenGraph
from edge_speech.grammars import Grammar
from edge_speech.text import ctc_collapse

__all__ = ["GRAMMAR_MIN_EVIDENCE", "GrammarSearch", "GrammarStream"]

# Commands' greedy decodings spell 0.86-1.05x their tokens even at 10 dB SNR; noise 0-0.1x, music
# 2.5-6.5x (benchmarks/bench_vad_session.py). 0.6 lost 1 of 60 held-out commands at 20 dB.
GRAMMAR_MIN_EVIDENCE = 0.55
# a per-token bonus in natural-log units, bounded like the beam's lm_weight and word_bonus
MAX_TOKEN_BONUS = 1000.0

# one step of the best in-grammar alignment as the native grammar decoder writes it
_STEP_DTYPE = np.dtype(
    {
        "names": ["arc", "token", "label", "frame"],
        "formats": ["<i4", "<i4", "<i4", "<i8"],
        "offsets": [0, 4, 8, 16],
        "itemsize": 24,
    }
)


@dataclasses.dataclass(frozen=True)
class GrammarSearch:
    """A grammar spelled with one vocabulary, and when its best sentence is accepted (see
    :class:`edge_speech.decoding.CTCDecoder` for ``threshold``, ``token_bonus``, ``min_evidence``)."""

    grammar: Grammar
    vocab: Vocabulary
    graph: TokenGraph
    threshold: float
    token_bonus: float
    min_evidence: float
    frame_shift_s: float

    @classmethod
    def create(
        cls,
        grammar: Grammar,
        vocab: Vocabulary,
        threshold: float,
        token_bonus: float,
        min_evidence: float,
        frame_shift_s: float,
    ) -> "GrammarSearch":
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
            raise ValueError(f"grammar_threshold must be in [0, 1], got {threshold!r}")
        if (
            isinstance(token_bonus, bool)
            or not isinstance(token_bonus, numbers.Real)
            or not abs(token_bonus) <= MAX_TOKEN_BONUS
        ):
            raise ValueError(f"grammar_token_bonus must be a number within +-{MAX_TOKEN_BONUS:g}, got {token_bonus!r}")
        if isinstance(min_evidence, bool) or not isinstance(min_evidence, numbers.Real) or not 0 <= min_evidence <= 1:
            raise ValueError(f"grammar_min_evidence must be in [0, 1], got {min_evidence!r}")
        graph = grammar.compile_tokens(vocab, float(token_bonus))
        return cls(grammar, vocab, graph, float(threshold), float(token_bonus), float(min_evidence), frame_shift_s)


class GrammarStream(StreamBase):
    """Grammar decoding, chunk by chunk. Alongside the constrained search it counts the tokens a
    free greedy decoding of the same frames emits: the speech evidence behind a command."""

    def __init__(self, search: GrammarSearch):
        super().__init__(len(search.vocab))
        self._search = search
        graph, vocab = search.graph, search.vocab
        self._viterbi = _native.GrammarDecoder(
            graph.arcs.tobytes(), graph.num_states, 0, graph.finals.tobytes(), len(vocab), vocab.blank_id
        )
        self._restart()

    def _restart(self) -> None:
        self._viterbi.reset()
        self._free_previous = -1  # the free decoding's argmax on the frame before the next chunk
        self._free_tokens = 0

    def _decode(self, log_probs: np.ndarray) -> None:
        self._viterbi.accept(log_probs)
        if len(log_probs):
            best = log_probs.argmax(axis=1).tolist()
            emitted = ctc_collapse(best, self._search.vocab.blank_id, previous=self._free_previous)
            spelling = self._search.vocab.spelling_mask
            self._free_tokens += sum(1 for token in emitted if spelling[token])
            self._free_previous = best[-1]

    def _best(self) -> Result:
        search, vocab = self._search, self._search.vocab
        shift = search.frame_shift_s
        data, score, free_score = self._viterbi.result()
        steps = np.frombuffer(data, dtype=_STEP_DTYPE)
        labels = search.graph.labels
        found = bool(len(steps)) and math.isfinite(score)
        # the token bonus ranks sentences of different lengths fairly; it is not acoustic evidence
        spelled = sum(1 for t in steps["token"].tolist() if not vocab.is_separator(t)) if found else 0
        score -= search.token_bonus * spelled
        # confidence: the per-token ratio of the in-grammar path to the free-running best path
        confidence = math.exp(min(0.0, score - free_score) / (len(steps) + 1)) if found else 0.0
        # speech evidence: the free decoding emits about as many tokens as the command spells
        shortfall = 1.0
        if found and spelled and search.min_evidence > 0:
            ratio = self._free_tokens / spelled
            shortfall = min(1.0, ratio / search.min_evidence, 1.0 / (search.min_evidence * ratio or 1e-9))
            confidence *= shortfall
            if shortfall < 1.0 and search.threshold > 0:  # rejected: below the threshold too
                confidence = min(confidence, search.threshold * shortfall)
        words: List[Word] = []
        intent: Optional[str] = None
        slots: Dict[str, object] = {}
        starts = [i for i, label in enumerate(steps["label"]) if label >= 0]
        for k, i in enumerate(starts):
            intent, word, slot = labels[int(steps["label"][i])]
            last = (starts[k + 1] if k + 1 < len(starts) else len(steps)) - 1
            while last > i and steps["label"][last] < 0 and vocab.is_separator(int(steps["token"][last])):
                last -= 1
            first_frame, end_frame = int(steps["frame"][i]), int(steps["frame"][last]) + 1
            words.append(Word(word, first_frame * shift, end_frame * shift, confidence, first_frame, end_frame))
            if slot is not None:
                slots[slot] = f"{slots[slot]} {word}" if slot in slots else word
        text = " ".join(w.text for w in words)
        tokens = tuple(int(t) for t in steps["token"])
        accepted = found and confidence >= search.threshold and (shortfall == 1.0 or search.threshold == 0)
        if accepted and starts:  # e.g. Home Assistant sentences: list `out` values, range numbers
            interpreted = search.grammar.interpret([labels[int(steps["label"][i])] for i in starts])
            if interpreted is not None:
                intent, slots = interpreted
        hyp = Hypothesis(text, tokens, float(score), float(score), 0.0)
        return Result(
            text=text if accepted else "",
            tokens=tokens if accepted else (),
            token_frames=tuple(int(f) for f in steps["frame"]) if accepted else (),
            score=float(score),
            acoustic_score=float(score),
            lm_score=0.0,
            words=tuple(words) if accepted else (),
            nbest=(hyp,) if found else (),
            intent=intent if accepted else None,
            slots=dict(slots) if accepted else None,
            confidence=confidence,
        )
