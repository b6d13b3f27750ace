"""Short fine-tuning after pruning: knowledge distillation from the unpruned model (KL on
log-probs) plus CTC on transcripts when given, with SpecAugment (time masks only for waveform
models), resumable checkpoints. :func:`spec_augment` is also the training recipes' SpecAugment."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edge_speech.converters._deps import import_torch

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FinetuneReport:
    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def finetune(
    student,
    teacher,
    features: Sequence[np.ndarray],
    transcripts: Optional[Sequence[Sequence[int]]] = None,
    *,
    epochs: int = 2,
    batch_size: int = 8,
    lr: float = 1e-3,
    kd_weight: float = 1.0,
    ctc_weight: float = 1.0,
    blank_id: int = 0,
    spec_augment: bool = True,
    checkpoint: Optional["str | Path"] = None,
    seed: int = 0,
    progress: bool = True,
) -> FinetuneReport:
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
    mask_rng = np.random.default_rng(seed)
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
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for epoch in range(start_epoch, epochs):
        student.train()
        for b in torch.randperm(len(batches), generator=generator).tolist():
            inputs = [features[i] for i in batches[b]]
            if spec_augment:
                inputs = [_masked(f, mask_rng) for f in inputs]
            x, lengths = _pad(inputs, torch)
            with torch.no_grad():
                target = teacher(x)
            out = student(x)
            classifier = out.dim() == 2
            frames = 1 if classifier else out.shape[1]
            loss = (
                kd_weight
                * torch.nn.functional.kl_div(
                    out.log_softmax(-1), target.log_softmax(-1), log_target=True, reduction="batchmean"
                )
                / frames
            )
            if transcripts is not None and classifier:
                classes = torch.tensor([int(transcripts[i]) for i in batches[b]], dtype=torch.long)
                loss = loss + ctc_weight * torch.nn.functional.cross_entropy(out, classes)
            elif transcripts is not None:
                labels = [torch.tensor(transcripts[i], dtype=torch.long) for i in batches[b]]
                out_lengths = torch.clamp(lengths * out.shape[1] // x.shape[1], min=1)
                loss = loss + ctc_weight * torch.nn.functional.ctc_loss(
                    out.log_softmax(-1).transpose(0, 1),
                    torch.cat(labels),
                    out_lengths,
                    torch.tensor([len(t) for t in labels]),
                    blank=blank_id,
                    zero_infinity=True,
                )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        if progress:
            logger.info("fine-tune epoch %d/%d loss %.4f", epoch + 1, epochs, np.mean(losses[-len(batches) :]))
        if checkpoint is not None:
            torch.save(
                {
                    "model": student.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "epoch": epoch + 1,
                },
                checkpoint,
            )
    student.eval()
    if not losses:
        return FinetuneReport(0, float("nan"), float("nan"), 0.0)
    return FinetuneReport(len(losses), losses[0], float(np.mean(losses[-len(batches) :])), time.perf_counter() - t0)


def _pad(arrays, torch) -> Tuple["object", "object"]:
    longest = max(len(a) for a in arrays)
    x = torch.zeros(len(arrays), longest, *np.shape(arrays[0])[1:])
    for i, a in enumerate(arrays):
        x[i, : len(a)] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return x, torch.tensor([len(a) for a in arrays])


def spec_augment(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    freq_masks: int = 2,
    freq_width: int = 10,
    time_masks: int = 2,
    time_width: int = 20,
    fill: Optional[float] = 0.0,
) -> np.ndarray:
    """SpecAugment on one utterance: a copy of features [frames, dim] with ``freq_masks`` bands of
    0..``freq_width`` bins and ``time_masks`` spans of 0..``time_width`` frames (at most a fifth of
    the utterance) set to ``fill`` (None: the utterance's mean). Samples [samples] get time spans
    only. Band and span positions are uniform over the places they fit."""
    x = np.asarray(x)
    x = x.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32, copy=True)
    if x.ndim not in (1, 2):
        raise ValueError(f"spec_augment takes features [frames, dim] or samples [samples], got shape {x.shape}")
    value = float(x.mean()) if fill is None else fill
    frames = len(x)
    if x.ndim == 2:
        dim = x.shape[1]
        for _ in range(freq_masks):
            width = int(rng.integers(0, min(freq_width, dim) + 1))
            start = int(rng.integers(0, dim - width + 1))
            x[:, start : start + width] = value
    longest = min(time_width, max(1, frames // 5))
    for _ in range(time_masks):
        width = int(rng.integers(0, longest + 1))
        start = int(rng.integers(0, max(1, frames - width)))
        x[start : start + width] = value
    return x


def _masked(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fine-tuning's masks: features get two bands and two spans; samples two spans of up to 5%."""
    if np.ndim(x) == 1:
        return spec_augment(x, rng, freq_masks=0, time_width=max(1, len(x) // 20))
    return spec_augment(x, rng)
