"""Data-parallel fine-tuning after pruning on Ray Train: :func:`~edge_speech.converters.finetune`
itself, run by N workers on N shards with DistributedDataParallel (gloo on CPUs).

    from edge_speech.converters.finetune_ray import finetune_data_parallel
    tuned, report = finetune_data_parallel(pruned, teacher, features, transcripts, workers=4, batch_size=16)

Nothing of the training step is re-implemented: each worker calls ``finetune()`` on its shard
with ``batch_size / workers`` and the student wrapped in DDP, whose backward pass averages the
gradients. The shards are cut so that the workers' step-j batches are, together, the step-j
batch one process would take (``finetune`` sorts by length, cuts batches, and shuffles their
order with ``seed``; here the global length order is dealt out batch by batch). With the loss a
mean over the batch, the averaged gradient is then the one-process gradient: the same weights up
to float summation order when the inputs in a batch have one length and nothing random differs
(``spec_augment=False``). Otherwise the workers differ from one process by what is per-worker:
padding to each worker's longest input, SpecAugment masks drawn per worker, batch-norm
statistics of half a batch (DDP keeps rank 0's running statistics), and a last batch split
unevenly weighing its inputs unevenly. tests/test_finetune_ray.py: 2 workers land within 1.1e-7
of one process's weights (which moved 0.034); contiguous half-shards land 0.044 away.

Ray is an optional dependency (``pip install 'edge-speech[ray]'``).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from edge_speech.converters.finetune import FinetuneReport

__all__ = ["finetune_data_parallel", "shard_batches"]

LOG = logging.getLogger(__name__)
RAY_EXTRA = "pip install 'edge-speech[ray]'"


def shard_batches(lengths: Sequence[int], batch_size: int, workers: int) -> List[List[int]]:
    """Input indices per worker such that, batch by batch, the workers' batches of
    ``batch_size // workers`` make up the batch of ``batch_size`` one process would cut from
    the length-sorted inputs. A last batch too small to give every worker an input is dropped
    (DDP needs every worker to take the same number of steps)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if batch_size % workers:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {workers} workers")
    order = np.argsort(np.asarray(lengths))  # the order finetune() batches in
    share = batch_size // workers
    shards: List[List[int]] = [[] for _ in range(workers)]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < batch_size:
            if len(batch) < workers:
                LOG.warning(
                    "data-parallel fine-tuning: the last %d inputs are fewer than the workers; left out", len(batch)
                )
                break
            parts = np.array_split(batch, workers)  # sizes within one of each other
        else:
            parts = [batch[k * share : (k + 1) * share] for k in range(workers)]
        for shard, part in zip(shards, parts):
            shard.extend(int(i) for i in part)
    return shards


def _train_loop(config: dict) -> None:
    """One Ray Train worker: its shard through finetune() with a DDP student; rank 0 saves the weights."""
    import ray.train
    import torch
    from ray.train import Checkpoint
    from ray.train.torch import prepare_model

    from edge_speech.converters.finetune import finetune

    torch.set_num_threads(1)  # one CPU per worker
    torch.manual_seed(config["seed"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    student = prepare_model(config["student"], move_to_device=False)  # DistributedDataParallel over gloo
    shard = config["shards"][rank]
    transcripts = config["transcripts"]
    report = finetune(
        student,
        config["teacher"],
        [config["features"][i] for i in shard],
        None if transcripts is None else [transcripts[i] for i in shard],
        batch_size=config["batch_size"] // context.get_world_size(),
        **config["options"],
    )
    metrics = {"steps": report.steps, "first_loss": report.first_loss, "last_loss": report.last_loss}
    metrics["seconds"] = report.seconds
    if rank == 0:
        with tempfile.TemporaryDirectory() as folder:
            module = student.module if hasattr(student, "module") else student
            torch.save(module.state_dict(), os.path.join(folder, "student.pt"))
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
    else:
        ray.train.report(metrics)


def finetune_data_parallel(
    student,
    teacher,
    features: Sequence[np.ndarray],
    transcripts: Optional[Sequence[Any]] = None,
    *,
    workers: int = 2,
    batch_size: int = 8,
    storage: "str | os.PathLike | None" = None,
    ray_address: Optional[str] = None,
    **options: Any,
) -> Tuple[Any, FinetuneReport]:
    """:func:`~edge_speech.converters.finetune` on ``workers`` Ray Train workers (one CPU each).

    Returns a trained copy of ``student`` (the caller's is not modified) and rank 0's report.
    ``batch_size`` is the global batch (a multiple of ``workers``); ``options`` are finetune()'s
    (``epochs``, ``lr``, ``seed``, ``spec_augment``, ...; not ``checkpoint``). ``storage``: where
    Ray Train keeps its run (default: a temporary folder). ``ray_address`` as in
    :func:`edge_speech.batch.transcribe_dataset`."""
    if "checkpoint" in options:
        raise ValueError("data-parallel fine-tuning keeps no finetune() checkpoint; Ray Train holds the run")
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise ImportError(f"data-parallel fine-tuning runs on Ray Train: {RAY_EXTRA}") from None
    import torch

    if not features:
        raise ValueError("fine-tuning needs feature arrays")
    shards = shard_batches([len(f) for f in features], batch_size, workers)
    config = {
        "student": student,
        "teacher": teacher,
        "features": list(features),
        "transcripts": None if transcripts is None else list(transcripts),
        "shards": shards,
        "batch_size": batch_size,
        "seed": options.get("seed", 0),
        "options": {**options, "progress": options.get("progress", False)},
    }
    started_ray = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        ray.init(
            address=ray_address, num_cpus=workers if ray_address in (None, "local") else None, include_dashboard=False
        )
        started_ray = True
    try:
        with tempfile.TemporaryDirectory() as scratch:
            trainer = TorchTrainer(
                _train_loop,
                train_loop_config=config,
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(storage_path=os.fspath(storage or scratch), name="finetune"),
            )
            result = trainer.fit()
            if result.error is not None:
                raise RuntimeError(f"data-parallel fine-tuning failed: {result.error}") from result.error
            with result.checkpoint.as_directory() as folder:
                state = torch.load(os.path.join(folder, "student.pt"), map_location="cpu", weights_only=True)
    finally:
        if started_ray:
            ray.shutdown()
    tuned = copy.deepcopy(student)
    tuned.load_state_dict(state)
    tuned.eval()
    metrics = result.metrics
    report = FinetuneReport(
        int(metrics["steps"]), float(metrics["first_loss"]), float(metrics["last_loss"]), float(metrics["seconds"])
    )
    return tuned, report
