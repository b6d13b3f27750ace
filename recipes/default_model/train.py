"""Train the default CTC model on the synthesised speech (see synthesize.py), on CPU.

Features are edge_speech.features "kaldi-fbank" (80 bins): the runtime's own C front end. Each
training utterance is augmented on the fly in a DataLoader worker (noise, babble, reverb, gain,
8 kHz round trips; optionally speed perturbation and vocal tract length perturbation; SpecAugment
on the features). Batches are length-sorted buckets of at most
--max-frames padded frames. AdamW with a one-cycle LR schedule, gradient clipping. After every
epoch the model is scored (greedy CER/WER) on the held-out voices; the best is kept.

    python -m recipes.default_model.train --data data/default_model --out data/default_model/run \
        --epochs 8                      # add --resume to continue from OUT/last.pt

Writes OUT/last.pt (full training state, every --save-minutes and each epoch), OUT/best.pt
(model state_dict + config + metrics) and OUT/history.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from edge_speech import features as es_features
from edge_speech.text import greedy_ids
from recipes import DATA
from recipes.default_model import augment, ctc_model
from recipes.default_model.evaluate import error_rates

FEATURES = es_features.FeatureConfig.preset("kaldi-fbank")
RATE = 16000


def read_wav_int16(path: str) -> np.ndarray:
    with wave.open(path) as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def fbank(samples: np.ndarray) -> np.ndarray:
    return es_features.compute(
        samples.astype(np.float32) / 32768 if samples.dtype == np.int16 else samples, RATE, FEATURES
    )


class Utterances(Dataset):
    def __init__(self, rows, audio, augment_p: float, seed: int, speed_range=(1.0, 1.0), warp_range=(1.0, 1.0)):
        self.rows, self.audio, self.augment_p, self.seed = rows, audio, augment_p, seed
        self.speed_range, self.warp_range = speed_range, warp_range
        self.labels = [ctc_model.encode(r["text"]) for r in rows]
        self.epoch = 0

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        x = self.audio[i].astype(np.float32) / 32768
        if rng.random() < self.augment_p:
            babble = lambda: self.audio[rng.integers(len(self.audio))].astype(np.float32) / 32768  # noqa: E731
            if self.speed_range != (1.0, 1.0) and rng.random() < 0.5:
                x = augment.speed_perturb(x, rng.uniform(*self.speed_range))
            x = augment.augment_waveform(x, rng, babble)
            f = fbank(x)
            if self.warp_range != (1.0, 1.0) and rng.random() < 0.5:
                f = augment.frequency_warp(f, rng.uniform(*self.warp_range))
            f = augment.spec_augment(f, rng)
        else:
            f = fbank(x)
        return torch.from_numpy(f), torch.tensor(self.labels[i], dtype=torch.long)


def batches(lengths, max_frames: int, seed: int, epoch: int):
    """Length-sorted buckets (with a little jitter) of at most max_frames padded frames, shuffled."""
    rng = np.random.default_rng((seed, epoch))
    order = np.argsort(np.asarray(lengths) * rng.uniform(0.95, 1.05, len(lengths)))
    out, current, longest = [], [], 0
    for i in order:
        longest_next = max(longest, lengths[i])
        if current and longest_next * (len(current) + 1) > max_frames:
            out.append(current)
            current, longest_next = [], lengths[i]
        current.append(int(i))
        longest = longest_next
    if current:
        out.append(current)
    rng.shuffle(out)
    return out


def one_cycle(optimizer, max_lr: float, batch_counts, done_steps: int = 0):
    """One-cycle LR over every batch of every epoch. The jittered bucketing gives each epoch its own
    batch count, so the total is their sum (epochs x the first epoch's count fell a step short of a
    later, longer epoch and crashed the last step of a run)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=sum(batch_counts), pct_start=0.15, last_epoch=done_steps - 1
    )


def pad_features(arrays, pad: np.ndarray):
    """Feature arrays [frames, dim] -> ([batch, longest, dim] padded with ``pad``, the model's
    mean frame, so padding normalises to zero; lengths)."""
    lengths = torch.tensor([len(f) for f in arrays])
    feats = torch.from_numpy(np.tile(pad, (len(arrays), int(lengths.max()), 1)))
    for k, f in enumerate(arrays):
        feats[k, : len(f)] = torch.as_tensor(f)
    return feats, lengths


def collate(items, pad: np.ndarray):
    feats, lengths = pad_features([f for f, _ in items], pad)
    labels = torch.cat([y for _, y in items])
    label_lengths = torch.tensor([len(y) for _, y in items])
    return feats, lengths, labels, label_lengths


def greedy_texts(log_probs: torch.Tensor, lengths) -> list:
    texts = []
    for lp, n in zip(log_probs, lengths):
        ids = greedy_ids(lp[: int(n)].detach().float().cpu().numpy(), ctc_model.BLANK_ID)
        texts.append(" ".join("".join(ctc_model.TOKENS[t] for t in ids).split()))
    return texts


@torch.no_grad()
def evaluate(model, test_feats, test_texts, pad, batch: int = 32) -> dict:
    model.eval()
    hyps = []
    order = np.argsort([len(f) for f in test_feats])
    by_index = {}
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        feats, lengths = pad_features([test_feats[i] for i in idx], pad)
        lp = model(feats)
        for i, text in zip(idx, greedy_texts(lp, ctc_model.output_frames(lengths))):
            by_index[int(i)] = text
    hyps = [by_index[i] for i in range(len(test_feats))]
    model.train()
    return error_rates(zip(test_texts, hyps)) | {"examples": list(zip(test_texts[:3], hyps[:3])), "hypotheses": hyps}


def load_split(data: Path, split: str, limit: int = 0):
    rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
    if limit:
        rows = rows[:limit]
    return rows, [read_wav_int16(r["path"]) for r in rows]


def feasible(frames: int, label) -> bool:
    """CTC needs one output frame per label plus one blank between repeated labels."""
    repeats = sum(1 for a, b in zip(label, label[1:]) if a == b)
    return ctc_model.output_frames(frames) >= len(label) + repeats


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA / "default_model")
    p.add_argument("--out", type=Path, default=DATA / "default_model/run")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=6000, help="padded input frames per batch")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--augment-p", type=float, default=0.8, help="fraction of training utterances augmented")
    p.add_argument(
        "--speed-range",
        type=float,
        nargs=2,
        default=(1.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="speed-perturb half of the augmented utterances by a factor drawn from this range "
        "(e.g. 0.9 1.2; 1 1 = off)",
    )
    p.add_argument(
        "--warp-range",
        type=float,
        nargs=2,
        default=(1.0, 1.0),
        metavar=("LOW", "HIGH"),
        help="vocal tract length perturbation of half the augmented utterances' fbank frames by a "
        "factor from this range (e.g. 0.9 1.2; >1 moves formants up); default off",
    )
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--blocks", type=int, default=12)
    p.add_argument("--kernel", type=int, default=9)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on a shared 2-core machine 1 was 5x faster than 2 (OpenMP spin waits)",
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="use only the first N training utterances (smoke tests)")
    p.add_argument("--save-minutes", type=float, default=10.0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (timing runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--init",
        type=Path,
        help="start from this checkpoint's weights and config (e.g. checkpoint/model.pt) "
        "with a fresh optimizer and schedule",
    )
    p.add_argument(
        "--grow",
        metavar="CHANNELSxBLOCKS",
        help="with --init: widen/deepen the initial model (same function at step 0), e.g. 320x14",
    )
    args = p.parse_args(argv)
    if args.grow and not args.init:
        p.error("--grow needs --init")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train.log", "a")

    def say(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    t0 = time.time()
    rows, audio = load_split(args.data, "train", args.limit)
    test_rows, test_audio = load_split(args.data, "test")
    frames = [FEATURES.num_frames(len(a), RATE) for a in audio]
    keep = [i for i, (n, r) in enumerate(zip(frames, rows)) if feasible(n, ctc_model.encode(r["text"]))]
    say(
        f"train: {len(rows)} utterances ({sum(len(a) for a in audio) / RATE / 3600:.2f} h), "
        f"{len(rows) - len(keep)} dropped as too fast for 40 ms CTC; test: {len(test_rows)}; "
        f"loaded in {time.time() - t0:.0f} s"
    )
    rows, audio, frames = [rows[i] for i in keep], [audio[i] for i in keep], [frames[i] for i in keep]
    test_feats = [fbank(a) for a in test_audio]
    test_texts = [r["text"] for r in test_rows]

    if args.init:
        init = torch.load(args.init, weights_only=True)
        config = {k: v for k, v in init["config"].items() if k in ("channels", "blocks", "kernel", "dropout")}
        model = ctc_model.ConvCTC(**config)
        model.load_state_dict(init["model"])
        say(f"initialised from {args.init} (epoch {init.get('epoch')}, metrics {init.get('metrics')})")
        if args.grow:
            channels, blocks = (int(v) for v in args.grow.lower().split("x"))
            model = ctc_model.grown(model, channels, blocks, seed=args.seed)
            say(f"grown to {channels} channels x {blocks} blocks (same outputs as the initial model)")
    else:
        model = ctc_model.ConvCTC(channels=args.channels, blocks=args.blocks, kernel=args.kernel, dropout=args.dropout)
        stats_rng = np.random.default_rng(args.seed)
        sample = np.concatenate(
            [fbank(audio[i]) for i in stats_rng.choice(len(audio), min(500, len(audio)), replace=False)]
        )
        model.mean.copy_(torch.from_numpy(sample.mean(0)))
        model.inv_std.copy_(torch.from_numpy(1.0 / (sample.std(0) + 1e-3)))
    pad = model.mean.numpy().astype(np.float32)
    say(
        f"model: {ctc_model.parameter_count(model):,} parameters, receptive field "
        f"{model.receptive_field_frames()} frames, config {model.config}"
    )

    dataset = Utterances(rows, audio, args.augment_p, args.seed, tuple(args.speed_range), tuple(args.warp_range))
    batch_counts = [len(batches(frames, args.max_frames, args.seed, epoch)) for epoch in range(args.epochs)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = one_cycle(optimizer, args.lr, batch_counts)
    ctc = torch.nn.CTCLoss(blank=ctc_model.BLANK_ID, zero_infinity=True)
    start_epoch, start_batch, best, step = 0, 0, None, 0
    if args.resume and (args.out / "last.pt").exists():
        state = torch.load(args.out / "last.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_batch, best = state["epoch"], state["batch"], state["best"]
        step = state["step"]
        # rebuilt rather than loaded, so --epochs may be changed when resuming (e.g. to finish sooner)
        scheduler = one_cycle(optimizer, args.lr, batch_counts, done_steps=step)
        pad = model.mean.numpy().astype(np.float32)
        say(f"resumed at epoch {start_epoch} batch {start_batch}, best CER {best}")

    def save(epoch, batch):
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "batch": batch,
            "step": step,
            "best": best,
            "config": model.config,
            "args": vars(args) | {"data": str(args.data), "out": str(args.out)},
        }
        torch.save(state, args.out / "last.pt.tmp")
        os.replace(args.out / "last.pt.tmp", args.out / "last.pt")

    say(f"{batch_counts[0]} steps per epoch, {args.epochs} epochs")
    last_save = time.time()
    for epoch in range(start_epoch, args.epochs):
        dataset.epoch = epoch
        plan = batches(frames, args.max_frames, args.seed, epoch)[start_batch if epoch == start_epoch else 0 :]
        first = start_batch if epoch == start_epoch else 0
        loader = DataLoader(
            dataset,
            batch_sampler=plan,
            num_workers=args.workers,
            prefetch_factor=4 if args.workers else None,
            collate_fn=lambda items: collate(items, pad),
        )
        epoch_start, seen_s, losses = time.time(), 0.0, []
        for b, (feats, lengths, labels, label_lengths) in enumerate(loader, first):
            log_probs = model(feats)
            loss = ctc(log_probs.transpose(0, 1), labels, ctc_model.output_frames(lengths), label_lengths)
            optimizer.zero_grad()
            loss.backward()
            grad = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            step += 1
            losses.append(loss.item())
            seen_s += float(lengths.sum()) / 100
            if step % args.log_every == 0:
                elapsed = time.time() - epoch_start
                say(
                    f"epoch {epoch} batch {b + 1}/{batch_counts[epoch]} loss {np.mean(losses[-args.log_every :]):.3f} "
                    f"grad {float(grad):.2f} lr {scheduler.get_last_lr()[0]:.2e} "
                    f"{seen_s / elapsed:.0f}x real time, {elapsed / 60:.1f} min"
                )
            if time.time() - last_save > args.save_minutes * 60:
                save(epoch, b + 1)
                last_save = time.time()
            if args.max_steps and step >= args.max_steps:
                say(f"stopping after {step} steps ({time.time() - epoch_start:.0f} s)")
                save(epoch, b + 1)
                return 0
        metrics = evaluate(model, test_feats, test_texts, pad)
        improved = best is None or metrics["cer"] < best
        if improved:
            best = metrics["cer"]
            torch.save(
                {
                    "model": model.state_dict(),
                    "config": model.config,
                    "epoch": epoch,
                    "metrics": {k: metrics[k] for k in ("cer", "wer")},
                },
                args.out / "best.pt",
            )
        save(epoch + 1, 0)
        last_save = time.time()
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else None,
            "test_cer": metrics["cer"],
            "test_wer": metrics["wer"],
            "epoch_minutes": (time.time() - epoch_start) / 60,
            "best": improved,
        }
        with open(args.out / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        say(
            f"epoch {epoch} done: loss {record['train_loss']:.3f}, held-out CER {100 * metrics['cer']:.2f}% "
            f"WER {100 * metrics['wer']:.2f}%{' (best)' if improved else ''}, {record['epoch_minutes']:.1f} min; "
            f"e.g. {metrics['examples'][0]}"
        )
    say(f"done; best held-out CER {100 * best:.2f}%, total {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
