"""Text and token-sequence helpers shared by the runtime, the converter, the recipes and the benchmarks.

One implementation each of: the CTC greedy collapse, edit distance, transcript normalisation and
corpus CER/WER. Nothing here imports more than numpy.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, List, Sequence, Tuple

import numpy as np

_NOT_WORD_CHARACTER = re.compile(r"[^a-z' ]")


def ctc_collapse(token_ids: Iterable[int], blank_id: int = 0, previous: int = -1) -> List[int]:
    """CTC's greedy rule on a frame-wise id sequence: merge repeats, then drop blanks.

    ``previous`` is the id of the frame before the first one (for streams continuing a sequence);
    -1 means none.
    """
    out: List[int] = []
    for token in token_ids:
        token = int(token)
        if token != previous and token != blank_id:
            out.append(token)
        previous = token
    return out


def greedy_ids(log_probs: Any, blank_id: int = 0) -> Tuple[int, ...]:
    """Best path of a (frames, vocabulary) score matrix, collapsed by :func:`ctc_collapse`."""
    scores = np.asarray(log_probs)
    if scores.ndim != 2:
        raise ValueError(f"expected a (frames, vocabulary) matrix, got shape {scores.shape}")
    return tuple(ctc_collapse(scores.argmax(axis=1).tolist() if len(scores) else (), blank_id))


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance with unit costs for insertion, deletion and substitution."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, 1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_item != hyp_item)))
        previous = current
    return previous[-1]


def normalize_transcript(text: str) -> str:
    """Lower case, letters and apostrophes only, single spaces: the form CER/WER are scored on."""
    return " ".join(_NOT_WORD_CHARACTER.sub(" ", text.lower()).split())


def error_rates(pairs: Iterable[Tuple[str, str]], normalize: bool = True) -> dict:
    """Corpus CER and WER of (reference, hypothesis) pairs.

    Returns ``{"cer", "wer", "utterances", "chars", "words"}``; errors are summed over the corpus
    before dividing, so long utterances weigh more.
    """
    char_errors = char_total = word_errors = word_total = utterances = 0
    for reference, hypothesis in pairs:
        if normalize:
            reference, hypothesis = normalize_transcript(reference), normalize_transcript(hypothesis)
        char_errors += edit_distance(reference, hypothesis)
        char_total += len(reference)
        word_errors += edit_distance(reference.split(), hypothesis.split())
        word_total += len(reference.split())
        utterances += 1
    return {
        "cer": char_errors / max(1, char_total),
        "wer": word_errors / max(1, word_total),
        "utterances": utterances,
        "chars": char_total,
        "words": word_total,
    }
