"""Build the default model's word n-gram LM (ARPA) from the synthetic training text.

Interpolated Kneser-Ney (absolute discount D per order, continuation counts for the lower
orders), written in ARPA backoff form: a seen n-gram stores its interpolated probability and a
context stores the weight that makes its row sum to one. The vocabulary is the training text's
words plus wordfreq's top English words (an English word list, so words that the synthetic
training text happens to miss are not out of vocabulary); their unigram mass comes from wordfreq
frequencies, mixed in with weight ``--wordlist-weight``.

    python -m recipes.default_model.build_lm --data data/default_model --out lm.arpa.gz

Only ``train.jsonl`` is read; the held-out test text never is.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import sys
from pathlib import Path

from recipes import DATA

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def sentences(data: Path) -> list:
    with open(data / "train.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"].split() for line in f if line.strip()]


def english_words(top_n: int) -> dict:
    """{word: frequency} for wordfreq's top words that our tokens can spell."""
    import wordfreq

    allowed = set("abcdefghijklmnopqrstuvwxyz'")
    return {
        w: wordfreq.word_frequency(w, "en")
        for w in wordfreq.top_n_list("en", top_n)
        if set(w) <= allowed and any(c in "aeiouy" for c in w)
    }


class KneserNey:
    """Interpolated Kneser-Ney over ``order``-grams of whole sentences with <s> and </s>."""

    def __init__(self, corpus: list, order: int, discount: float, prior: dict, prior_weight: float):
        self.order, self.discount = order, discount
        top = collections.Counter()
        for words in corpus:
            padded = [BOS] * (order - 1) + words + [EOS]
            for i in range(order - 1, len(padded)):
                top[tuple(padded[i - order + 1 : i + 1])] += 1
        # counts[n]: raw counts for the top order; below it, continuation counts (how many distinct
        # words precede the n-gram), except for n-grams that start at <s>: nothing precedes those,
        # so they keep their raw counts
        self.counts = {order: top}
        for n in range(order - 1, 0, -1):
            lower = collections.Counter()
            for gram, c in self.counts[n + 1].items():
                lower[gram[1:]] += c if gram[1] == BOS else 1
            self.counts[n] = lower
        self.vocab = sorted({g[0] for g in self.counts[1]} | set(prior) | {EOS})
        self.prior_total = sum(prior.values())
        self.prior, self.prior_weight = prior, prior_weight
        self.context_total, self.context_types = {}, {}
        for n in range(1, order + 1):
            totals, types = collections.Counter(), collections.Counter()
            for gram, c in self.counts[n].items():
                totals[gram[:-1]] += c
                types[gram[:-1]] += 1
            self.context_total[n], self.context_types[n] = totals, types
        self._unigram = self._unigrams()

    def _unigrams(self) -> dict:
        counts, d = self.counts[1], self.discount
        total = self.context_total[1][()]
        leftover = d * self.context_types[1][()] / total
        uniform = 1.0 / len(self.vocab)
        probs = {}
        for w in self.vocab:
            kn = max(counts.get((w,), 0) - d, 0) / total + leftover * uniform
            listed = self.prior.get(w, 0.0) / self.prior_total if self.prior_total else 0.0
            probs[w] = (1 - self.prior_weight) * kn + self.prior_weight * listed
        norm = sum(probs.values())
        return {w: p / norm for w, p in probs.items()}

    def prob(self, gram: tuple) -> float:
        """Interpolated p(gram[-1] | gram[:-1])."""
        if len(gram) == 1:
            return self._unigram[gram[0]]
        n, context = len(gram), gram[:-1]
        lower = self.prob(gram[1:])
        total = self.context_total[n].get(context, 0)
        if not total:
            return lower
        c = self.counts[n].get(gram, 0)
        gamma = self.discount * self.context_types[n][context] / total
        return max(c - self.discount, 0) / total + gamma * lower

    def write_arpa(self, path: Path, min_count: int) -> dict:
        grams = {1: [(w,) for w in self.vocab]}
        for n in range(2, self.order + 1):
            keep = min_count if n == self.order else 1
            grams[n] = sorted(g for g, c in self.counts[n].items() if c >= keep and g[-1] != BOS)
        rows_of = {n: collections.defaultdict(list) for n in range(2, self.order + 1)}
        for n in rows_of:
            for gram in grams[n]:
                rows_of[n][gram[:-1]].append(gram)
        lines = ["\\data\\"] + [f"ngram {n}={len(grams[n]) + (1 if n == 1 else 0)}" for n in grams] + [""]
        for n in range(1, self.order + 1):
            lines.append(f"\\{n}-grams:")
            rows = grams[n] if n > 1 else [(BOS,)] + grams[1]
            for gram in rows:
                logp = -99.0 if gram == (BOS,) else math.log10(self.prob(gram))
                line = f"{logp:.6f}\t{' '.join(gram)}"
                if n < self.order and gram in rows_of[n + 1]:
                    line += f"\t{math.log10(self._backoff(rows_of[n + 1][gram])):.6f}"
                lines.append(line)
            lines.append("")
        lines.append("\\end\\")
        text = "\n".join(lines) + "\n"
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "wt", encoding="utf-8") as f:
            f.write(text)
        return {n: len(grams[n]) for n in grams}

    def _backoff(self, rows: list) -> float:
        """The weight that makes p(. | context) sum to one, given the context's kept ``rows``."""
        kept = sum(self.prob(g) for g in rows)
        kept_lower = sum(self.prob(g[1:]) for g in rows)
        return max(1.0 - kept, 1e-12) / max(1.0 - kept_lower, 1e-12)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA / "default_model")
    p.add_argument("--out", type=Path, required=True, help="ARPA file; .gz compresses it")
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--discount", type=float, default=0.75)
    p.add_argument("--min-count", type=int, default=2, help="drop top-order n-grams seen fewer times")
    p.add_argument("--top-words", type=int, default=20000, help="wordfreq words added to the vocabulary")
    p.add_argument("--wordlist-weight", type=float, default=0.3, help="unigram mass given by wordfreq")
    args = p.parse_args(argv)
    if args.order < 1:
        p.error("--order must be >= 1")
    corpus = sentences(args.data)
    prior = english_words(args.top_words) if args.top_words else {}
    lm = KneserNey(corpus, args.order, args.discount, prior, args.wordlist_weight if prior else 0.0)
    sizes = lm.write_arpa(args.out, args.min_count)
    print(
        f"{len(corpus)} sentences -> {args.out}: "
        + ", ".join(f"{n}-grams {c}" for n, c in sizes.items())
        + f", {args.out.stat().st_size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
