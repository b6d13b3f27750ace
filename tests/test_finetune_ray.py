"""Data-parallel fine-tuning on Ray Train (2 workers, gloo, loopback) gives the weights one process
gets from finetune() with the same global batch; the shards deal out each global batch."""

from __future__ import annotations

import copy

import numpy as np
import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")
pytest.importorskip("ray.train.torch")

from torch import nn

from edge_speech.converters.finetune import finetune
from edge_speech.converters.finetune_ray import finetune_data_parallel, shard_batches

pytestmark = [pytest.mark.torch, pytest.mark.ray]


class SmallCTC(nn.Module):
    """Conv CTC without batch norm: nothing in it depends on how a batch is split."""

    def __init__(self, dim: int = 20, hidden: int = 24, vocab: int = 8):
        super().__init__()
        self.conv = nn.Conv1d(dim, hidden, 3, stride=2, padding=1)
        self.head = nn.Conv1d(hidden, vocab, 1)

    def forward(self, features):
        return self.head(torch.relu(self.conv(features.transpose(1, 2)))).transpose(1, 2).log_softmax(-1)


def test_two_workers_reach_the_weights_of_one_process(local_ray, tmp_path):
    torch.manual_seed(0)
    teacher = SmallCTC().eval()
    student = SmallCTC(hidden=24).eval()
    with torch.no_grad():  # a student that starts away from the teacher
        for p in student.parameters():
            p.mul_(0.5)
    rng = np.random.default_rng(0)
    features = [rng.standard_normal((40, 20)).astype(np.float32) for _ in range(16)]  # one length: no padding
    transcripts = [rng.integers(1, 8, size=5).tolist() for _ in features]
    options = dict(epochs=2, lr=1e-2, spec_augment=False, seed=3)

    before = copy.deepcopy(student.state_dict())
    alone = copy.deepcopy(student)
    finetune(alone, teacher, features, transcripts, batch_size=4, progress=False, **options)
    parallel, report = finetune_data_parallel(
        student, teacher, features, transcripts, workers=2, batch_size=4, storage=tmp_path, **options
    )

    assert report.steps == 2 * 16 // 4  # each worker took every global step, on half the batch
    moved = max((a - s).abs().max().item() for a, s in zip(alone.state_dict().values(), student.state_dict().values()))
    gap = max((a - p).abs().max().item() for a, p in zip(alone.state_dict().values(), parallel.state_dict().values()))
    assert moved > 1e-2, "training changed the weights"
    assert gap < 1e-5 * max(1.0, moved), f"data-parallel weights differ from one process by {gap}"
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items()), "the caller's student is untouched"


def test_the_shards_deal_out_each_global_batch():
    rng = np.random.default_rng(1)
    lengths = rng.permutation(np.arange(50, 73)).tolist()  # 23 distinct lengths: 5 full batches of 4 and 3 left
    shards = shard_batches(lengths, batch_size=4, workers=2)
    order = np.argsort(lengths)
    global_batches = [set(order[i : i + 4].tolist()) for i in range(0, len(order), 4)]
    per_worker = []
    for shard in shards:  # as finetune() cuts each worker's inputs: sorted by length, batches of 2
        sorted_shard = [shard[i] for i in np.argsort([lengths[i] for i in shard])]
        per_worker.append([set(sorted_shard[i : i + 2]) for i in range(0, len(sorted_shard), 2)])
    assert len(per_worker[0]) == len(per_worker[1]) == len(global_batches)
    for step, batch in enumerate(global_batches):
        assert per_worker[0][step] | per_worker[1][step] == batch
        assert not per_worker[0][step] & per_worker[1][step]
    with pytest.raises(ValueError, match="batch_size 5 must be a multiple of the 2 workers"):
        shard_batches(lengths, batch_size=5, workers=2)
    assert sum(map(len, shard_batches([10, 11, 12, 13, 14], batch_size=4, workers=2))) == 4  # 1 left over: dropped
