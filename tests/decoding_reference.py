"""Independent references for the decoder tests: exact CTC probabilities by the forward
algorithm (numpy, batched over label sequences), brute-force decoding by enumerating every label
sequence, and an ARPA n-gram scorer written from the format's definition."""

from __future__ import annotations

import itertools
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ctc_log_prob(log_probs: np.ndarray, labels: np.ndarray, blank: int) -> np.ndarray:
    """ln P(labels | log_probs) for a batch of equal-length label sequences [N, L] (float64)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    labels = np.atleast_2d(np.asarray(labels, dtype=np.int64))
    n, length = labels.shape
    T = lp.shape[0]
    if length == 0:
        return np.full(max(n, 1), lp[:, blank].sum())
    S = 2 * length + 1
    ext = np.full((n, S), blank, dtype=np.int64)
    ext[:, 1::2] = labels
    # a skip from s-2 to s is allowed for labels that differ from the label two back
    skip = np.zeros((n, S), dtype=bool)
    skip[:, 3::2] = labels[:, 1:] != labels[:, :-1]
    alpha = np.full((n, S), -np.inf)
    alpha[:, 0] = lp[0, blank]
    alpha[:, 1] = lp[0, ext[:, 1]]
    for t in range(1, T):
        prev = alpha
        a1 = np.concatenate([np.full((n, 1), -np.inf), prev[:, :-1]], axis=1)
        a2 = np.concatenate([np.full((n, 2), -np.inf), prev[:, :-2]], axis=1)
        a2 = np.where(skip, a2, -np.inf)
        alpha = np.logaddexp(np.logaddexp(prev, a1), a2) + lp[t, ext]
    return np.logaddexp(alpha[:, -1], alpha[:, -2])


def all_label_scores(log_probs: np.ndarray, blank: int) -> Dict[Tuple[int, ...], float]:
    """Every label sequence that has a non-zero probability (length <= T) -> its exact ln P."""
    T, V = log_probs.shape
    labels = [v for v in range(V) if v != blank]
    out: Dict[Tuple[int, ...], float] = {}
    for length in range(0, T + 1):
        seqs = np.array(list(itertools.product(labels, repeat=length)), dtype=np.int64)
        if length == 0:
            seqs = np.zeros((1, 0), dtype=np.int64)
        else:
            # a repeated label needs a blank between: the sequence needs length + repeats <= T frames
            repeats = (seqs[:, 1:] == seqs[:, :-1]).sum(axis=1)
            seqs = seqs[length + repeats <= T]
            if not len(seqs):
                continue
        scores = ctc_log_prob(log_probs, seqs, blank)
        for seq, score in zip(seqs, scores):
            if score > -np.inf:
                out[tuple(int(s) for s in seq)] = float(score)
    return out


def greedy_reference(log_probs: np.ndarray, blank: int) -> List[int]:
    best = np.argmax(log_probs, axis=1)
    out, prev = [], -1
    for b in best:
        if b != prev and b != blank:
            out.append(int(b))
        prev = b
    return out


class ArpaReference:
    """ARPA back-off scoring straight from the definition: p(w | h) = p(h, w) if present, else
    backoff(h) * p(w | h[1:]); words missing from the unigrams are <unk> if present, else score
    -100 and clear the history."""

    def __init__(self, text: str):
        self.prob: Dict[Tuple[str, ...], float] = {}
        self.backoff: Dict[Tuple[str, ...], float] = {}
        self.order = 0
        section = None
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = "data"
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1 : line.index("-")])
                self.order = max(self.order, section)
                continue
            if section == "data" or section is None:
                continue
            parts = line.split()
            words = tuple(parts[1 : 1 + section])
            self.prob[words] = float(parts[0])
            if len(parts) == section + 2:
                self.backoff[words] = float(parts[-1])
        self.vocab = {w[0] for w in self.prob if len(w) == 1}

    def score_word(self, history: Sequence[str], word: str) -> float:
        history = list(history)[-(self.order - 1) :] if self.order > 1 else []
        for start in range(len(history) + 1):
            h = tuple(history[start:])
            if h + (word,) in self.prob:
                return self.prob[h + (word,)] + sum(self.backoff.get(tuple(history[s:]), 0.0) for s in range(start))
        raise AssertionError("unreachable: unigrams cover every known word")

    def score(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> List[float]:
        history: List[str] = ["<s>"] if bos and "<s>" in self.vocab else []
        out = []
        seq = list(words) + (["</s>"] if eos and "</s>" in self.vocab else [])
        for w in seq:
            if w not in self.vocab:
                if "<unk>" in self.vocab:
                    w = "<unk>"
                else:
                    out.append(-100.0)
                    history = []
                    continue
            out.append(self.score_word(history, w))
            history.append(w)
        return out


LN10 = math.log(10.0)
