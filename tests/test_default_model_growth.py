"""The default-model recipe's ``ctc_model.grown``: the wider/deeper copy must compute exactly what
the trained model computed, and its new weights must learn (they are not dead); and train.py's
learning-rate schedule, which must last as many steps as the run has batches."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recipes.default_model import ctc_model  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.recipe]


def _trained_like(seed: int = 0) -> ctc_model.ConvCTC:
    """A small ConvCTC with non-trivial BatchNorm statistics and normalisation buffers."""
    torch.manual_seed(seed)
    model = ctc_model.ConvCTC(channels=32, blocks=3, kernel=5)
    model.mean.uniform_(-2, 2)
    model.inv_std.uniform_(0.5, 1.5)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # moves the running statistics away from their defaults
            model(torch.randn(4, 120, ctc_model.FEATURE_DIM) * 2)
    return model.eval()


def _no_dropout(model):
    for layer in model.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    return model


def test_grown_model_computes_the_same_function_in_eval_and_train_mode():
    small = _trained_like()
    big = ctc_model.grown(small, channels=48, blocks=5).eval()
    assert big.config["channels"] == 48 and big.config["blocks"] == 5
    assert ctc_model.parameter_count(big) > 1.5 * ctc_model.parameter_count(small)
    assert big.receptive_field_frames() > small.receptive_field_frames()
    x = torch.randn(2, 173, ctc_model.FEATURE_DIM) * 3
    with torch.no_grad():
        torch.testing.assert_close(big(x), small(x), rtol=0, atol=1e-5)
        _no_dropout(big).train()  # batch statistics instead of running ones
        _no_dropout(small).train()
        torch.testing.assert_close(big(x), small(x), rtol=0, atol=1e-5)
    # the same config rebuilds it (how train.py --resume and export.py load it)
    rebuilt = ctc_model.build(big.config)
    rebuilt.load_state_dict(big.state_dict())


def test_new_channels_and_blocks_learn_from_the_first_steps():
    small = _trained_like()
    big = ctc_model.grown(small, channels=48, blocks=5)
    big.train()
    _no_dropout(big)
    optimizer = torch.optim.SGD(big.parameters(), lr=0.05)
    x = torch.randn(3, 150, ctc_model.FEATURE_DIM)
    labels = torch.randint(1, len(ctc_model.TOKENS), (3, 10))
    frames = torch.full((3,), ctc_model.output_frames(150), dtype=torch.long)
    head_before = big.head.weight[:, 32:].clone()
    gate_before = big.blocks[4].net[4].weight.clone()
    for _ in range(3):
        loss = torch.nn.functional.ctc_loss(big(x).transpose(0, 1), labels, frames, torch.full((3,), 10))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert head_before.abs().max() == 0 and big.head.weight[:, 32:].abs().max() > 0
    assert gate_before.abs().max() == 0 and big.blocks[4].net[4].weight.abs().max() > 0
    # after the head reads the new channels, gradients reach the new channels' own weights
    assert big.blocks[0].net[3].weight.grad[32:].abs().max() > 0


def test_growing_can_only_grow():
    small = _trained_like()
    with pytest.raises(ValueError, match="can only grow"):
        ctc_model.grown(small, channels=16, blocks=3)
    with pytest.raises(ValueError, match="can only grow"):
        ctc_model.grown(small, channels=32, blocks=2)


def test_one_cycle_schedule_covers_every_epochs_own_batch_count():
    import numpy as np

    from recipes.default_model import train

    lengths = list(np.random.default_rng(6).integers(100, 1500, 3000))
    counts = [len(train.batches(lengths, 6000, 0, epoch)) for epoch in range(4)]
    assert max(counts[1:]) > counts[0]  # a later epoch has more batches than the first: the bug's condition
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scheduler = train.one_cycle(optimizer, 1e-3, counts)
    lrs = []
    for _ in range(sum(counts)):  # the old epochs x counts[0] total raised on a longer epoch
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert max(lrs) == pytest.approx(1e-3, rel=1e-2) and lrs[-1] < 1e-6
    # resuming at step k continues the same curve
    resumed = train.one_cycle(optimizer, 1e-3, counts, done_steps=100)
    assert resumed.get_last_lr()[0] == pytest.approx(lrs[99], rel=1e-6)
