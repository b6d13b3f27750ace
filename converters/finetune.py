"""Short fine-tuning after pruning: knowledge distillation from the unpruned model (KL on
log-probs) plus CTC on transcripts when given, with SpecAugment (time masks only for waveform
models), resumable checkpoints."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edge_speech.converters._deps import import_torch


@dataclasses.dataclass(frozen=True)
class FinetuneReport:
    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def finetune(student, teacher, features: Sequence[np.ndarray], transcripts: Optional[Sequence[Sequence[int]]] = None,
             *, epochs: int = 2, batch_size: int = 8, lr: float = 1e-3, kd_weight: float = 1.0,
             ctc_weight: float = 1.0, blank_id: int = 0, spec_augment: bool = True,
             checkpoint: Optional["str | Path"] = None, seed: int = 0, progress: bool = True) -> FinetuneReport:
    """Trains ``student`` in place (it is the pruned copy) to match ``teacher`` on ``features``
    (arrays [frames, dim], or sample arrays [samples] for waveform models, which both models
    then see zero-padded to the batch's longest); with ``transcripts`` (token id sequences) a
    CTC term is added. Classifiers (outputs [batch, classes]) take one class id per input as
    ``transcripts`` and get cross-entropy instead (weighted by ``ctc_weight``). ``checkpoint``: a file saved after every
    epoch and resumed from when it exists."""
    torch = import_torch()
    if not features:
        raise ValueError("fine-tuning needs feature arrays")
    if len({np.ndim(f) for f in features}) != 1 or np.ndim(features[0]) not in (1, 2):
        raise ValueError("fine-tuning inputs must all be feature arrays [frames, dim] or all sample arrays [samples]")
    if transcripts is not None and len(transcripts) != len(features):
        raise ValueError(f"{len(features)} feature arrays but {len(transcripts)} transcripts")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=1e-4)
    total_steps = epochs * math.ceil(len(features) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 1))
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = int(state["epoch"])
    teacher = teacher.eval()
    losses: List[float] = []
    t0 = time.perf_counter()
    order = np.argsort([len(f) for f in features])  # length-sorted batches waste little padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for epoch in range(start_epoch, epochs):
        student.train()
        for b in torch.randperm(len(batches), generator=generator).tolist():
            x, lengths = _pad([features[i] for i in batches[b]], torch)
            if spec_augment:
                x = _spec_augment(x, generator, torch)
            with torch.no_grad():
                target = teacher(x)
            out = student(x)
            classifier = out.dim() == 2
            frames = 1 if classifier else out.shape[1]
            loss = kd_weight * torch.nn.functional.kl_div(out.log_softmax(-1), target.log_softmax(-1),
                                                          log_target=True, reduction="batchmean") / frames
            if transcripts is not None and classifier:
                classes = torch.tensor([int(transcripts[i]) for i in batches[b]], dtype=torch.long)
                loss = loss + ctc_weight * torch.nn.functional.cross_entropy(out, classes)
            elif transcripts is not None:
                labels = [torch.tensor(transcripts[i], dtype=torch.long) for i in batches[b]]
                out_lengths = torch.clamp(lengths * out.shape[1] // x.shape[1], min=1)
                loss = loss + ctc_weight * torch.nn.functional.ctc_loss(
                    out.log_softmax(-1).transpose(0, 1), torch.cat(labels), out_lengths,
                    torch.tensor([len(t) for t in labels]), blank=blank_id, zero_infinity=True)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        if progress and sys.stderr.isatty():
            print(f"fine-tune epoch {epoch + 1}/{epochs} loss {np.mean(losses[-len(batches):]):.4f}", file=sys.stderr)
        if checkpoint is not None:
            torch.save({"model": student.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "epoch": epoch + 1}, checkpoint)
    student.eval()
    if not losses:
        return FinetuneReport(0, float("nan"), float("nan"), 0.0)
    return FinetuneReport(len(losses), losses[0], float(np.mean(losses[-len(batches):])), time.perf_counter() - t0)


def _pad(arrays, torch) -> Tuple["object", "object"]:
    longest = max(len(a) for a in arrays)
    x = torch.zeros(len(arrays), longest, *np.shape(arrays[0])[1:])
    for i, a in enumerate(arrays):
        x[i, :len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return x, torch.tensor([len(a) for a in arrays])


def _spec_augment(x, generator, torch, freq_masks: int = 2, freq_width: int = 10, time_masks: int = 2,
                  time_width: int = 20):
    """Zeroed frequency bands and time spans of features [batch, frames, dim]; for samples
    [batch, samples] time spans only, each up to 5% of the batch's length."""
    x = x.clone()
    waveform = x.dim() == 2
    if waveform:
        x, freq_masks = x[..., None], 0
        time_width = max(1, x.shape[1] // 20)
    batch, frames, dim = x.shape
    for i in range(batch):
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, dim - w), (1,), generator=generator))
            x[i, :, f0:f0 + w] = 0
        for _ in range(time_masks):
            w = int(torch.randint(0, min(time_width, max(1, frames // 5)) + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, max(1, frames - w), (1,), generator=generator))
            x[i, t0:t0 + w] = 0
    return x[..., 0] if waveform else x
