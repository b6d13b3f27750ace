"""Fine-tunes the whole Whisper encoder (conv stem, every layer) and the CTC head on audio.

    python -m recipes.whisper_model.finetune_encoder --whisper W/whisper-base \
        --init W/runs/recovered/best.pt --train W/wb_e/train.jsonl --train W/real/train.jsonl:2 \
        --dev W/real/dev.jsonl --dev W/dm_test/test.jsonl --asterisk 60 --out W/runs/full --epochs 2

``train_head.py`` trains only the top of the encoder on cached states, which cannot teach the
frozen bottom layers a voice they represent poorly (espeak-ng's formant voices: Whisper base with
its own decoder reads the held-out one at 47% CER). This script runs the whole network on
waveforms instead: features by the runtime's C front end with the bundle's fixed floor (what
the model sees at run time), the cache's waveform augmentation (noise, babble, reverb,
telephone band, speed) on ``--augment-p`` of the utterances, SpecAugment masks, length-bucketed
batches with padding masked in attention, CTC, AdamW with a one-cycle schedule (``--lr`` for the
head, ``--encoder-lr`` for the encoder). ``--bf16`` runs forward and backward under CPU bfloat16
autocast (AMX/AVX-512-BF16 machines; weights and the optimizer stay float32).

A manifest given as ``PATH:K`` is repeated K times per epoch (to keep real speech weighty in a
synthetic mix). Every ``--eval-every`` steps and at the end of each epoch, greedy CER per voice of
every ``--dev`` manifest (at most ``--dev-count`` utterances per voice) and on ``--asterisk``
spread asterisk prompts goes to OUT/log.txt, and OUT/stepN.pt keeps the weights (format of
``train_head.py``, ``frozen_layers`` 0, loadable by ``build_bundle.py``). OUT/last.pt resumes a
run (``--resume``); ``--max-minutes`` stops one cleanly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from edge_speech import audio
from edge_speech.converters.finetune import spec_augment
from edge_speech.converters.whisper_encoder import encoder_output_frames
from recipes.default_model import augment
from recipes.default_model.evaluate import asterisk_set, error_rates
from recipes.default_model.train import batches
from recipes.whisper_model.build_bundle import load_model
from recipes.whisper_model.train_head import ctc_step, greedy
from recipes.whisper_model.whisper_ctc import BLANK_ID, MAX_SECONDS, encode, whisper_features

RATE = 16000


def read_16k(path: str) -> np.ndarray:
    x, rate = audio.read_wav(path)
    return audio.resample(x, rate, RATE) if rate != RATE else x


def seconds(path: str) -> float:
    samples, rate = audio.read_wav(path)
    return len(samples) / rate


def manifest_rows(spec: str) -> list:
    """Rows of a JSONL manifest; ``PATH:K`` repeats them K times."""
    path, _, repeat = spec.rpartition(":") if spec.rsplit(":", 1)[-1].isdigit() else (spec, "", "1")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows * int(repeat)


def training_features(row: dict, rng: np.random.Generator, augment_p: float, babble_rows: list) -> np.ndarray:
    x = read_16k(row["path"])
    if augment_p and rng.random() < augment_p:
        if rng.random() < 0.4:
            x = augment.speed_perturb(x, rng.uniform(0.9, 1.15))
        babble = lambda: read_16k(babble_rows[rng.integers(len(babble_rows))]["path"])  # noqa: E731
        x = np.clip(augment.augment_waveform(x, rng, babble), -1, 1).astype(np.float32)
    return spec_augment(whisper_features(x, clamp="fixed"), rng, freq_width=8, time_width=15)


def forward_batch(model, features: list) -> "tuple[torch.Tensor, torch.Tensor]":
    """Log-probs [B, T', V] and output lengths of a padded batch; padding is masked in attention
    (the stem's last frame sees zeros past the end, as at run time)."""
    lengths = [len(f) for f in features]
    x = torch.zeros(len(features), max(lengths), features[0].shape[1])
    for b, f in enumerate(features):
        x[b, : len(f)] = torch.from_numpy(f)
    out_lengths = torch.tensor([encoder_output_frames(n) for n in lengths])
    mask = torch.arange(encoder_output_frames(max(lengths)))[None, :] >= out_lengths[:, None]
    return model.head(model.encoder(x, mask)).float(), out_lengths


def dev_sets(manifests: list, per_voice: int, asterisk: int) -> dict:
    sets = {}
    for spec in manifests:
        by_voice = defaultdict(list)
        for row in manifest_rows(spec):
            by_voice[row.get("voice") or Path(spec).parent.name].append((row["path"], row["text"]))
        for voice, items in by_voice.items():
            sets[voice] = items[:: max(1, len(items) // per_voice)][:per_voice]
    if asterisk:
        prompts = asterisk_set()
        sets["asterisk"] = prompts[:: max(1, len(prompts) // asterisk)][:asterisk]
    return {name: [(p, t) for p, t in items if seconds(p) <= MAX_SECONDS] for name, items in sets.items()}


def evaluate(model, sets: dict, bf16: bool) -> dict:
    model.eval()
    scores = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for name, items in sets.items():
            pairs = []
            for path, text in items:
                log_probs = model(torch.from_numpy(whisper_features(read_16k(path), clamp="fixed"))[None]).float()
                pairs.append((text, greedy(log_probs[0], log_probs.shape[1])))
            scores[name] = error_rates(pairs)["cer"]
    model.train()
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True)
    parser.add_argument(
        "--init", required=True, help="checkpoint to start from (train_head.py or recover_checkpoint.py)"
    )
    parser.add_argument("--train", required=True, action="append", help="JSONL manifest, PATH:K repeats it K times")
    parser.add_argument("--dev", action="append", default=[])
    parser.add_argument("--dev-count", type=int, default=60, help="utterances per voice of each dev manifest")
    parser.add_argument("--asterisk", type=int, default=60, help="spread asterisk prompts in each evaluation")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--encoder-lr", type=float, default=3e-5)
    parser.add_argument("--max-frames", type=int, default=6000, help="padded feature frames per batch")
    parser.add_argument("--augment-p", type=float, default=0.6)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: per epoch)")
    parser.add_argument("--max-minutes", type=float, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = load_model(args.whisper, args.init)
    model.frozen_layers = 0  # everything trains, the conv stem included
    model.train()
    head = list(model.head.parameters())
    encoder = [p for p in model.trainable_parameters() if all(p is not h for h in head)]
    optimizer = torch.optim.AdamW([{"params": head, "lr": args.lr}, {"params": encoder, "lr": args.encoder_lr}])
    rows = [r for spec in args.train for r in manifest_rows(spec)]
    rows = [r for r in rows if r.get("seconds", 0) <= MAX_SECONDS and encode(r["text"])]
    frames = [int(100 * (r.get("seconds") or len(read_16k(r["path"])) / RATE)) for r in rows]
    plans = [batches(frames, args.max_frames, 0, epoch) for epoch in range(args.epochs)]
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[args.lr, args.encoder_lr], total_steps=sum(map(len, plans)), pct_start=0.1
    )
    ctc = torch.nn.CTCLoss(blank=BLANK_ID, zero_infinity=True)
    epoch, step = 0, 0
    if args.resume and (out / "last.pt").is_file():
        state = torch.load(out / "last.pt")
        model.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        epoch, step = state["epoch"], state["step"]
    sets = dev_sets(args.dev, args.dev_count, args.asterisk)
    log = open(out / "log.txt", "a")

    def say(message: str) -> None:
        print(message, flush=True)
        log.write(message + "\n")
        log.flush()

    def snapshot(name: str, scores: "dict | None" = None, **extra) -> None:
        state = {
            "trainable": model.trainable_state(),
            "frozen_layers": 0,
            "head_hidden": model.head.project.out_features,
        }
        torch.save({**state, "epoch": epoch, "step": step, "scores": scores, **extra}, out / name)

    def report(tag: str) -> None:
        scores = evaluate(model, sets, args.bf16)
        say(f"{tag} step {step}: " + ", ".join(f"{k} {v:.2%}" for k, v in scores.items()))
        snapshot(f"step{step}.pt", scores)

    say(f"args {vars(args)}; {len(rows)} utterances, {sum(map(len, plans))} steps")
    if step == 0 and sets:
        report("start")
    losses = []
    while epoch < args.epochs:
        plan = plans[epoch]
        done_in_epoch = step - sum(len(p) for p in plans[:epoch])
        for ids in plan[done_in_epoch:]:
            rng = np.random.default_rng((epoch, step))
            features = [training_features(rows[i], rng, args.augment_p, rows) for i in ids]
            targets = [torch.tensor(encode(rows[i]["text"])) for i in ids]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                log_probs, lengths = forward_batch(model, features)
            losses.append(ctc_step(ctc, log_probs, lengths, targets, optimizer, schedule, head + encoder))
            step += 1
            if step % 20 == 0:
                say(
                    f"epoch {epoch} step {step} loss {np.mean(losses[-20:]):.3f} {(time.time() - started) / 60:.1f} min"
                )
            if args.eval_every and step % args.eval_every == 0:
                report(f"epoch {epoch}")
            out_of_time = args.max_minutes and time.time() - started > 60 * args.max_minutes
            if step % 50 == 0 or out_of_time:
                snapshot("last.pt", optimizer=optimizer.state_dict(), schedule=schedule.state_dict())
            if out_of_time:
                say(f"stopped after {args.max_minutes} minutes at step {step}")
                return 0
        epoch += 1
        snapshot("last.pt", optimizer=optimizer.state_dict(), schedule=schedule.state_dict())
        if sets:
            report(f"epoch {epoch - 1} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
