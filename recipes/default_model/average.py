"""Averages the weights of checkpoints fine-tuned from the same start ("model soup"), then scores
the average on the held-out voices (greedy CER/WER, as train.py does each epoch, and per voice).
With one checkpoint it just scores that one.

Runs that start from the same weights and differ only in their data stay in one basin, so their
mean is usually better than either; checkpoints from unrelated starts must not be averaged.

    python -m recipes.default_model.average --checkpoints data/runs/r7/best.pt data/runs/r8/best.pt \
        --data data/dm48k_ce --out data/runs/soup.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

import torch

from recipes.default_model import ctc_model, train
from recipes.default_model.evaluate import print_by_voice, rates_by_voice


def average_state_dicts(states: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; integer ones (BatchNorm's step counters) are
    taken from the first. All state dicts must have the same keys and shapes."""
    if not states:
        raise ValueError("no checkpoints to average")
    keys = list(states[0])
    for k, state in enumerate(states[1:], 1):
        if list(state) != keys or any(state[name].shape != states[0][name].shape for name in keys):
            raise ValueError(f"checkpoint {k} has other parameters or shapes than checkpoint 0")
    return {
        name: (
            torch.stack([s[name] for s in states]).mean(0)
            if states[0][name].is_floating_point()
            else states[0][name].clone()
        )
        for name in keys
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--data", type=Path, required=True, help="a folder with test.jsonl (the held-out voices)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    loaded = [torch.load(path, weights_only=True) for path in args.checkpoints]
    if any(c["config"] != loaded[0]["config"] for c in loaded):
        raise SystemExit("the checkpoints have different model configs")
    model = ctc_model.build(loaded[0]["config"])
    model.load_state_dict(average_state_dicts([c["model"] for c in loaded]))

    test_rows, test_audio = train.load_split(args.data, "test")
    test_feats = [train.fbank(a) for a in test_audio]
    pad = model.mean.numpy()
    metrics = train.evaluate(model, test_feats, [r["text"] for r in test_rows], pad)
    for path, c in zip(args.checkpoints, loaded):
        print(f"{path}: held-out greedy CER {100 * c['metrics']['cer']:.2f}%")
    print(f"average of {len(loaded)}: held-out greedy CER {100 * metrics['cer']:.2f}%, WER {100 * metrics['wer']:.2f}%")
    pairs = list(zip([r["text"] for r in test_rows], metrics["hypotheses"]))
    print_by_voice(rates_by_voice(pairs, [r["voice"] for r in test_rows]))
    torch.save(
        {
            "model": model.state_dict(),
            "config": model.config,
            "epoch": None,
            "metrics": {k: metrics[k] for k in ("cer", "wer")},
            "averaged": [str(c) for c in args.checkpoints],
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
