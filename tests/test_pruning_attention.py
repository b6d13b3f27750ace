"""Attention widths are pruned: hand-written attention over a fused q/k/v Linear reshaped into
(3, heads, head_dim) or (heads, 3, head_dim) loses head dimensions by our own rule (torch-pruning
cannot map the reshape), consistently in q, k, v and the output projection; nn.MultiheadAttention
loses embedding dimensions evenly per head through torch-pruning. Both Conformer and Transformer
reach half the MACs with every width cut, none to near zero."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from converter_models import ConformerCTC, TransformerCTC, seeded

from edge_speech import converters
from edge_speech.converters.pruning import fused_qkv_attention, sync_fused_attention
from edge_speech.converters.verification import onnx_runner, torch_runner

pytestmark = pytest.mark.torch


class FusedAttentionModel(nn.Module):
    """Fused q/k/v attention with a fixed score scale and the head size left to the reshape
    (-1), in either row layout: removing head dims is then exactly zeroing them."""

    def __init__(self, layout: str, d: int = 32, heads: int = 4):
        super().__init__()
        self.layout, self.heads = layout, heads
        self.inp = nn.Linear(20, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.head = nn.Linear(d, 7)

    def forward(self, x):
        a = self.inp(x)
        batch, frames, _ = a.shape
        if self.layout == "3hd":
            q, k, v = self.qkv(a).reshape(batch, frames, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self.qkv(a).view(batch, frames, self.heads, 3, -1).permute(3, 0, 2, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * 0.25, dim=-1)
        return self.head(a + self.proj((weights @ v).transpose(1, 2).flatten(2)))


def test_fused_attention_is_found_with_its_output_projection_heads_and_layout():
    model = seeded(ConformerCTC)
    found = fused_qkv_attention(model, torch.randn(1, 60, 80))
    assert [(a.qkv, a.out, a.heads, a.layout) for a in found] == [
        ("blocks.0.qkv", "blocks.0.attn_out", 4, "3hd"),
        ("blocks.1.qkv", "blocks.1.attn_out", 4, "3hd"),
    ]
    found = fused_qkv_attention(seeded(FusedAttentionModel, layout="h3d"), torch.randn(1, 9, 20))
    assert [(a.qkv, a.out, a.heads, a.layout) for a in found] == [("qkv", "proj", 4, "h3d")]
    assert fused_qkv_attention(seeded(TransformerCTC), torch.randn(1, 60, 80)) == []  # nn.MultiheadAttention


@pytest.mark.parametrize("layout", ["3hd", "h3d"])
def test_removing_head_dims_equals_zeroing_them_in_q_k_v_and_the_output_projection(layout):
    model = seeded(FusedAttentionModel, layout=layout)
    x = torch.randn(2, 11, 20)
    (attention,) = fused_qkv_attention(model, x)
    pruned = copy.deepcopy(model)
    # As if the residual width had been halved: the rule halves the inner width, 8 -> 4 per head.
    sync_fused_attention(pruned, [dataclasses.replace(attention, residual=2 * attention.residual)])
    assert pruned.qkv.weight.shape == (48, 32) and pruned.proj.weight.shape == (32, 16)
    # The same model with the removed rows and columns zeroed instead.
    zeroed = copy.deepcopy(model)
    kept_rows = {tuple(r.tolist()) for r in pruned.qkv.weight}
    kept_cols = {tuple(c.tolist()) for c in pruned.proj.weight.T}
    with torch.no_grad():
        for i, row in enumerate(model.qkv.weight):
            if tuple(row.tolist()) not in kept_rows:
                zeroed.qkv.weight[i] = 0
                zeroed.qkv.bias[i] = 0
        for j, col in enumerate(model.proj.weight.T):
            if tuple(col.tolist()) not in kept_cols:
                zeroed.proj.weight[:, j] = 0
        torch.testing.assert_close(pruned(x), zeroed(x), rtol=1e-5, atol=1e-5)
    # Every head keeps 4 dims, and q and k keep the same ones (their dot product).
    q, k = (
        pruned.qkv.weight.reshape(3, 4, 4, 32)[:2]
        if layout == "3hd"
        else pruned.qkv.weight.reshape(4, 3, 4, 32).transpose(0, 1)[:2]
    )
    original = (
        model.qkv.weight.reshape(3, 4, 8, 32)
        if layout == "3hd"
        else model.qkv.weight.reshape(4, 3, 8, 32).transpose(0, 1)
    )
    for head in range(4):
        dims = [next(j for j in range(8) if torch.equal(original[0, head, j], row)) for row in q[head]]
        assert [next(j for j in range(8) if torch.equal(original[1, head, j], row)) for row in k[head]] == dims


def _widths(model) -> dict:
    widths = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            widths[name] = module.out_features
        elif isinstance(module, nn.Conv1d):
            widths[name] = module.out_channels
        elif isinstance(module, nn.MultiheadAttention):
            widths[name] = module.embed_dim
    return widths


@pytest.mark.parametrize(
    "model_class, kwargs, residual, attention, feed_forward",
    [
        (ConformerCTC, {"d": 128}, "subsample", "blocks.0.attn_out", "blocks.0.ff1.1"),
        (TransformerCTC, {"d": 192}, "subsample", "encoder.layers.0.self_attn", "encoder.layers.0.linear1"),
    ],
)
def test_attention_models_reach_half_the_macs_with_a_balanced_cut(
    model_class, kwargs, residual, attention, feed_forward
):
    model = seeded(model_class, **kwargs)
    example = torch.randn(1, 101, 80)
    pruned, report = converters.prune(model, example, target_macs_ratio=0.5)
    assert abs(report.mac_reduction - 0.5) <= 0.05, report
    before, after = _widths(model), _widths(pruned)
    for name in (residual, attention, feed_forward):  # every width shares the cut, none goes near zero
        assert 0.3 <= after[name] / before[name] <= 0.85, (name, before[name], after[name])
    if model_class is ConformerCTC:
        qkv, out = pruned.blocks[0].qkv, pruned.blocks[0].attn_out
        assert qkv.out_features == 3 * out.in_features == 3 * qkv.in_features  # forward() takes d // heads
        assert out.in_features % 4 == 0
    else:
        assert all(
            m.embed_dim % m.num_heads == 0 and m.num_heads == 4
            for m in pruned.modules()
            if isinstance(m, nn.MultiheadAttention)
        )
    x = torch.randn(1, 77, 80)
    np.testing.assert_allclose(
        onnx_runner(converters.export_onnx(pruned, example))(x[0].numpy()),
        torch_runner(pruned)(x[0].numpy()),
        rtol=1e-3,
        atol=1e-4,
    )
