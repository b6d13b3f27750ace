"""Small speech models of the three kinds the converter must handle, written here with plain
torch.nn: a QuartzNet-style depthwise-separable conv CTC model, a Conformer-CTC and a DS-CNN
keyword classifier. All take features [batch, frames, dim]."""

from __future__ import annotations

import torch
from torch import nn


class SeparableBlock(nn.Module):
    def __init__(self, channels: int, kernel: int = 11):
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x):
        return torch.relu(self.norm(self.pointwise(self.depthwise(x)))) + x


class DSConvCTC(nn.Module):
    """QuartzNet/Citrinet-style: strided conv (x2 subsampling), separable residual blocks, 1x1 head."""

    def __init__(self, dim: int = 80, channels: int = 96, blocks: int = 3, vocab: int = 29):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(dim, channels, 3, stride=2, padding=1), nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[SeparableBlock(channels) for _ in range(blocks)])
        self.head = nn.Conv1d(channels, vocab, 1)

    def forward(self, features):
        x = self.blocks(self.stem(features.transpose(1, 2)))
        return self.head(x).transpose(1, 2).log_softmax(-1)


class ConformerBlock(nn.Module):
    def __init__(self, d: int, heads: int = 4, kernel: int = 15):
        super().__init__()
        self.ff1 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.attn_norm = nn.LayerNorm(d)
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.conv_norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
        self.ff2 = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.out_norm = nn.LayerNorm(d)

    def forward(self, x):
        x = x + 0.5 * self.ff1(x)
        x = x + self.attention(self.attn_norm(x))
        c = self.conv_norm(x).transpose(1, 2)
        c = nn.functional.glu(self.pw1(c), dim=1)
        c = self.pw2(nn.functional.silu(self.bn(self.dw(c))))
        x = x + c.transpose(1, 2)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)

    def attention(self, a):
        # Written out (as ESPnet and NeMo do) rather than nn.MultiheadAttention, whose traced ONNX
        # export bakes the sequence length into a Reshape.
        batch, frames, d = a.shape
        q, k, v = self.qkv(a).reshape(batch, frames, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
        return self.attn_out((weights @ v).transpose(1, 2).reshape(batch, frames, d))


class ConformerCTC(nn.Module):
    def __init__(self, dim: int = 80, d: int = 64, blocks: int = 2, vocab: int = 29):
        super().__init__()
        self.subsample = nn.Conv1d(dim, d, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(*[ConformerBlock(d) for _ in range(blocks)])
        self.head = nn.Linear(d, vocab)

    def forward(self, features):
        x = torch.relu(self.subsample(features.transpose(1, 2))).transpose(1, 2)
        return self.head(self.blocks(x)).log_softmax(-1)


class DSCNN(nn.Module):
    """Keyword classifier (Hello Edge's DS-CNN): 2-D conv then depthwise-separable blocks."""

    def __init__(self, classes: int = 12, channels: int = 64, blocks: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, (10, 4), stride=(2, 2), padding=(5, 1)),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        layers = []
        for _ in range(blocks):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, features):
        x = self.body(self.stem(features[:, None]))
        return self.head(x.mean(dim=(2, 3)))


def seeded(model_class, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    model = model_class(**kwargs)
    # Non-trivial batch-norm statistics, as a trained model has.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()
