"""Trains the CTC head (and the encoder's unfrozen top layers) on cached encoder states.

    python -m recipes.whisper_model.train_head --whisper W/whisper-base --train W/cache/wb_a \
        --dev W/cache/dm_test --dev W/cache/asterisk --out W/runs/w0 --epochs 6

Length-bucketed batches (``--max-frames`` encoder frames each, padding masked in attention),
AdamW with a one-cycle schedule (the head's learning rate ``--lr``, the encoder layers'
``--encoder-lr``), time masking and frame dropout on the cached states, greedy CER on every dev
cache after each epoch; ``best.pt`` keeps the trainable weights with the lowest CER on the first
dev set, ``last.pt`` lets a run resume (``--resume``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder
from edge_speech.text import greedy_ids
from recipes.default_model.evaluate import error_rates
from recipes.default_model.train import batches  # the default model's length-bucketed batches
from recipes.whisper_model.whisper_ctc import BLANK_ID, TOKENS, WhisperCTC, encode


class StateCache:
    def __init__(self, directory: "str | Path"):
        directory = Path(directory)
        info = json.loads((directory / "info.json").read_text())
        dim, self.frozen_layers = info["dim"], info["frozen_layers"]
        self.rows = [json.loads(line) for line in (directory / "index.jsonl").read_text().splitlines()]
        end = max(r["offset"] + r["frames"] for r in self.rows)
        self.states = np.memmap(directory / "states.f16", dtype=np.float16, mode="r", shape=(end, dim))
        self.name = directory.name

    def __len__(self):
        return len(self.rows)

    def get(self, i: int) -> np.ndarray:
        r = self.rows[i]
        return np.asarray(self.states[r["offset"] : r["offset"] + r["frames"]], dtype=np.float32)


def collate(cache: StateCache, ids, rng=None, time_masks: int = 0, drop: float = 0.0):
    arrays = [cache.get(i) for i in ids]
    longest = max(len(a) for a in arrays)
    x = np.zeros((len(arrays), longest, arrays[0].shape[1]), np.float32)
    mask = np.ones((len(arrays), longest), bool)
    for b, a in enumerate(arrays):
        if rng is not None:
            a = a.copy()
            for _ in range(time_masks):
                width = int(rng.integers(0, max(1, min(10, len(a) // 10)) + 1))
                start = int(rng.integers(0, max(1, len(a) - width)))
                a[start : start + width] = 0
        x[b, : len(a)] = a
        mask[b, : len(a)] = False
    x = torch.from_numpy(x)
    if drop:
        x = torch.nn.functional.dropout(x, drop)
    return x, torch.from_numpy(mask), torch.tensor([len(a) for a in arrays])


def greedy(log_probs: torch.Tensor, length: int) -> str:
    return "".join(TOKENS[t] for t in greedy_ids(log_probs[:length].numpy(), BLANK_ID)).strip()


def ctc_step(ctc, log_probs, lengths, targets: list, optimizer, schedule, params: list) -> float:
    """One optimizer step on the CTC loss of a batch's log-probs [B, T, V]; returns the loss."""
    loss = ctc(log_probs.transpose(0, 1), torch.cat(targets), lengths, torch.tensor([len(t) for t in targets]))
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def evaluate(model, cache: StateCache, batch_frames: int = 6000) -> dict:
    model.eval()
    pairs = []
    with torch.no_grad():
        for ids in batches([r["frames"] for r in cache.rows], batch_frames, 0, 0):
            x, mask, lengths = collate(cache, ids)
            log_probs = model.forward_states(x, mask)
            pairs += [(cache.rows[i]["text"], greedy(log_probs[b], int(lengths[b]))) for b, i in enumerate(ids)]
    model.train()
    return error_rates(pairs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--train", required=True, action="append")
    parser.add_argument("--dev", required=True, action="append")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frozen-layers", type=int, default=5)
    parser.add_argument("--head-hidden", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--encoder-lr", type=float, default=2e-4)
    parser.add_argument("--max-frames", type=int, default=8000)
    parser.add_argument("--time-masks", type=int, default=2)
    parser.add_argument("--drop", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", help="trainable weights to start from (best.pt of an earlier run)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = WhisperCTC(load_ctranslate2_encoder(args.whisper), args.frozen_layers, args.head_hidden)
    if args.init:
        model.load_state_dict(torch.load(args.init)["trainable"], strict=False)
    for p in model.parameters():
        p.requires_grad_(False)
    head_params = list(model.head.parameters())
    encoder_params = [p for p in model.trainable_parameters() if all(p is not h for h in head_params)]
    for p in head_params + encoder_params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": head_params, "lr": args.lr}, {"params": encoder_params, "lr": args.encoder_lr}], weight_decay=1e-2
    )
    train_caches = [StateCache(t) for t in args.train]
    dev_caches = [StateCache(d) for d in args.dev]
    for cache in train_caches + dev_caches:
        if cache.frozen_layers != args.frozen_layers:
            raise SystemExit(
                f"{cache.name}: cached after {cache.frozen_layers} frozen layers, not {args.frozen_layers}"
            )
    labels = {id(c): [encode(r["text"]) for r in c.rows] for c in train_caches}
    steps_per_epoch = sum(len(batches([r["frames"] for r in c.rows], args.max_frames, 0, 0)) for c in train_caches)
    total = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[args.lr, args.encoder_lr], total_steps=total, pct_start=0.1
    )
    ctc = torch.nn.CTCLoss(blank=BLANK_ID, zero_infinity=True)
    start_epoch, best = 0, math.inf
    if args.resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt")
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, best = state["epoch"] + 1, state["best"]
    log = open(out / "log.txt", "a")

    def say(message):
        print(message, flush=True)
        log.write(message + "\n")
        log.flush()

    say(
        f"args {vars(args)}; {steps_per_epoch} steps per epoch; "
        f"{sum(p.numel() for p in head_params + encoder_params)} trainable parameters"
    )
    for epoch in range(start_epoch, args.epochs):
        rng = np.random.default_rng((1, epoch))
        plan = [
            (c, ids)
            for k, c in enumerate(train_caches)
            for ids in batches([r["frames"] for r in c.rows], args.max_frames, k, epoch)
        ]
        order = rng.permutation(len(plan))
        started, seen_loss = time.time(), []
        for step, k in enumerate(order):
            cache, ids = plan[k]
            x, mask, lengths = collate(cache, ids, rng, args.time_masks, args.drop)
            targets = [torch.tensor(labels[id(cache)][i]) for i in ids]
            log_probs = model.forward_states(x, mask)
            params = head_params + encoder_params
            seen_loss.append(ctc_step(ctc, log_probs, lengths, targets, optimizer, schedule, params))
            if step % 200 == 0:
                say(
                    f"epoch {epoch} step {step}/{len(plan)} loss {np.mean(seen_loss[-200:]):.3f} "
                    f"{time.time() - started:.0f} s"
                )
        scores = {c.name: evaluate(model, c) for c in dev_caches}
        say(
            f"epoch {epoch} done in {time.time() - started:.0f} s: "
            + ", ".join(f"{n} CER {s['cer']:.2%} WER {s['wer']:.2%}" for n, s in scores.items())
        )
        first = scores[dev_caches[0].name]["cer"]
        snapshot = {
            "trainable": model.trainable_state(),
            "epoch": epoch,
            "scores": scores,
            "frozen_layers": args.frozen_layers,
            "head_hidden": args.head_hidden,
        }
        if first < best:
            best = first
            torch.save(snapshot, out / "best.pt")
        torch.save(
            {**snapshot, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "best": best},
            out / "last.pt",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
