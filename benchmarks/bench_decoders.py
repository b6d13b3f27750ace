"""Ours vs pyctcdecode on the same synthetic CTC posteriors: T = 1000 frames, V = 32 and V = 500.

Prints time per second of audio (20 ms frames), the speed ratio, and which transcript the exact
CTC forward algorithm finds more probable (dlnP > 0: ours). Run from the repository root, with
the tests' exact CTC reference on the path:

    pip install --no-deps pyctcdecode pygtrie   # its metadata pins numpy < 2; it runs on numpy 2
    PYTHONPATH=tests python -m benchmarks.bench_decoders
"""

import platform
import sys
import time

import numpy as np
from decoding_reference import ctc_log_prob  # tests/: the exact CTC reference

from edge_speech import decoding
from edge_speech.text import edit_distance


def synth(rng, T, V, space_id):
    path = np.zeros(T, dtype=np.int64)
    t = 0
    while t < T:
        k = int(rng.integers(1, V))
        n = int(rng.integers(1, 4))
        path[t : t + n] = k
        t += n + int(rng.integers(0, 4))
    logits = rng.normal(size=(T, V)).astype(np.float32) * 1.5
    logits[np.arange(T), path] += rng.uniform(3, 9, size=T).astype(np.float32)
    logits = logits - logits.max(1, keepdims=True)
    return (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)


def vocab(V):
    if V == 32:
        return ["<pad>", " "] + [chr(ord("a") + i) for i in range(26)] + ["'", "-", ".", ","]
    code = lambda i: "p" + "".join("abcdefghijklmno"[(i // 15**k) % 15] for k in range(3))
    return ["<pad>"] + [("▁" if i % 3 == 0 else "") + code(i) for i in range(1, V)]


def wer(ref, hyp):
    return edit_distance(ref, hyp) / max(1, len(ref))


def exact(x, text, labels):
    """ln P(text | x): the text's label sequence (spaces as the word boundary) by the forward algorithm."""
    if labels[1] == " ":
        ids = [labels.index(c) for c in text]
    else:
        pieces = {t.lstrip("▁"): (i, t.startswith("▁")) for i, t in enumerate(labels) if i}
        ids = []
        for word in text.split():
            for k in range(0, len(word), 4):
                i, starts = pieces[word[k : k + 4]]
                ids.append(i)
    return float(ctc_log_prob(x.astype(np.float64), np.array([ids]), 0)[0])


def timeit(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        out = fn()
    return (time.perf_counter() - t0) / n, out


def main():
    import pyctcdecode

    rng = np.random.default_rng(0)
    rows = []
    for V in (32, 500):
        labels = vocab(V)
        lps = [synth(rng, 1000, V, 1) for _ in range(3)]
        seconds = 1000 * 0.02
        pd_labels = [""] + labels[1:]
        pd = pyctcdecode.build_ctcdecoder(pd_labels)
        for beam in (1, 16, 64):
            ours = decoding.CTCDecoder(labels, beam_width=beam, token_min_prob=float(np.exp(-5.0)))
            t_ours, r_ours = timeit(lambda ours=ours: [ours.decode(x).text for x in lps], 3)  # noqa: B023
            agree = None
            if beam > 1:
                t_pd, r_pd = timeit(lambda beam=beam: [pd.decode(x, beam_width=beam) for x in lps], 1)  # noqa: B023
                wa = np.mean([1 - wer(b.split(), a.split()) for a, b in zip(r_ours, r_pd)])
                # which transcript is more probable under the exact CTC forward algorithm
                diffs = [exact(x, a, labels) - exact(x, b, labels) for x, a, b in zip(lps, r_ours, r_pd)]
                agree = np.mean(diffs)
            else:
                t_pd, wa = float("nan"), float("nan")
            rows.append(
                (
                    V,
                    beam,
                    t_ours / len(lps) / seconds * 1e6,
                    t_pd / len(lps) / seconds * 1e6,
                    t_pd / t_ours if beam > 1 else float("nan"),
                    agree,
                    wa,
                )
            )
    print(
        f"python {sys.version.split()[0]}, {platform.machine()}, pyctcdecode {pyctcdecode.__version__ if hasattr(pyctcdecode, '__version__') else '0.5.0'}"
    )
    print(
        f"{'V':>4} {'beam':>5} {'ours us/s':>10} {'pyctc us/s':>11} {'speedup':>8} {'dlnP ours-pyctc':>15} {'1-WER vs pyctc':>14}"
    )
    for V, beam, a, b, r, ag, wa in rows:
        print(f"{V:>4} {beam:>5} {a:>10.1f} {b:>11.1f} {r:>8.1f} {'' if ag is None else f'{ag:+.2f}':>15} {wa:>14.3f}")


if __name__ == "__main__":
    main()
