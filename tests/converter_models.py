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
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, (10, 4), stride=(2, 2), padding=(5, 1)), nn.BatchNorm2d(channels), nn.ReLU()
        )
        layers = []
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
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


# The architectures users bring (issue 15's matrix), tiny: a few thousand to ~100k parameters.


class DeepSpeech2(nn.Module):
    """deepspeech.pytorch's shape: conv2d over [freq, time] (x2 in time), the channels and
    frequencies flattened together, then a multi-layer bidirectional LSTM and a linear head."""

    def __init__(self, dim: int = 80, channels: int = 8, hidden: int = 32, layers: int = 2, vocab: int = 29):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (11, 5), stride=(2, 2), padding=(5, 2)),
            nn.BatchNorm2d(channels),
            nn.Hardtanh(0, 20),
            nn.Conv2d(channels, channels, (11, 5), stride=(2, 1), padding=(5, 2)),
            nn.BatchNorm2d(channels),
            nn.Hardtanh(0, 20),
        )
        self.rnn = nn.LSTM(channels * ((dim + 3) // 4), hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, vocab)

    def forward(self, features):
        x = self.conv(features.transpose(1, 2)[:, None])  # [B, C, F/4, T/2]
        batch, channels, freq, frames = x.shape
        x = x.view(batch, channels * freq, frames).transpose(1, 2)
        x, _ = self.rnn(x)
        return self.head(x).log_softmax(-1)


class GRUStack(nn.Module):
    """Strided conv then a unidirectional multi-layer GRU (streamable)."""

    def __init__(self, dim: int = 80, channels: int = 48, hidden: int = 48, layers: int = 2, vocab: int = 29):
        super().__init__()
        self.subsample = nn.Conv1d(dim, channels, 4, stride=2, padding=1)
        self.rnn = nn.GRU(channels, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, features):
        x = torch.relu(self.subsample(features.transpose(1, 2))).transpose(1, 2)
        x, _ = self.rnn(x)
        return self.head(x).log_softmax(-1)


class TransformerCTC(nn.Module):
    """nn.TransformerEncoder as people write it, over a strided conv."""

    def __init__(self, dim: int = 80, d: int = 64, heads: int = 4, layers: int = 2, vocab: int = 29):
        super().__init__()
        self.subsample = nn.Conv1d(dim, d, 3, stride=2, padding=1)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)

    def forward(self, features):
        x = torch.relu(self.subsample(features.transpose(1, 2))).transpose(1, 2)
        return self.head(self.encoder(x)).log_softmax(-1)


class QuartzNet(nn.Module):
    """QuartzNet's first block: a depthwise conv straight over the input features, then separable blocks."""

    def __init__(self, dim: int = 80, channels: int = 64, blocks: int = 2, vocab: int = 29):
        super().__init__()
        self.input_depthwise = nn.Conv1d(dim, dim, 11, stride=2, padding=5, groups=dim)
        self.input_pointwise = nn.Conv1d(dim, channels, 1)
        self.input_norm = nn.BatchNorm1d(channels)
        self.blocks = nn.Sequential(*[SeparableBlock(channels, kernel=7) for _ in range(blocks)])
        self.head = nn.Conv1d(channels, vocab, 1)

    def forward(self, features):
        x = torch.relu(self.input_norm(self.input_pointwise(self.input_depthwise(features.transpose(1, 2)))))
        return self.head(self.blocks(x)).transpose(1, 2).log_softmax(-1)


class Conv2dSubsampling(nn.Module):
    """ESPnet/WeNet's front end: two unpadded 3x3 stride-2 convs, so T frames give (T-1)//2-1)//2."""

    def __init__(self, dim: int, d: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, d, 3, 2), nn.ReLU(), nn.Conv2d(d, d, 3, 2), nn.ReLU())
        self.out = nn.Linear(d * (((dim - 1) // 2 - 1) // 2), d)

    def forward(self, x):
        x = self.conv(x[:, None])
        batch, channels, frames, freq = x.shape
        return self.out(x.transpose(1, 2).reshape(batch, frames, channels * freq))


class ConformerConv2dSub(nn.Module):
    def __init__(self, dim: int = 80, d: int = 48, blocks: int = 1, vocab: int = 29):
        super().__init__()
        self.subsample = Conv2dSubsampling(dim, d)
        self.blocks = nn.Sequential(*[ConformerBlock(d) for _ in range(blocks)])
        self.head = nn.Linear(d, vocab)

    def forward(self, features):
        return self.head(self.blocks(self.subsample(features))).log_softmax(-1)


class CRNNKeywordSpotter(nn.Module):
    """Keyword classifier: conv2d over the spectrogram, a GRU over time, the last state's class scores."""

    def __init__(self, dim: int = 40, classes: int = 12, channels: int = 16, hidden: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, (5, 5), stride=(1, 2), padding=2), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.rnn = nn.GRU(channels * ((dim + 1) // 2), hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, features):
        x = self.conv(features[:, None]).permute(0, 2, 1, 3).flatten(2)
        x, _ = self.rnn(x)
        return self.head(x[:, -1])


def confident(model, example, spread: float = 6.0):
    """``model`` with its output layer rescaled so its logits spread about ``spread`` (std over
    the classes) on ``example``, as a trained model's do. A random model's logits are nearly
    flat, so the argmax (greedy decoding) would flip on any rounding and agreement between two
    formats would measure noise rather than the conversion."""
    with torch.no_grad():
        width = model(example).shape[-1]
        head = [
            m
            for m in model.modules()
            if (isinstance(m, nn.Linear) and m.out_features == width)
            or (isinstance(m, nn.Conv1d) and m.out_channels == width)
        ][-1]
        out = model(example)
        centred = out - out.mean(-1, keepdim=True)
        scale = spread / float(centred.std(-1).mean())
        head.weight.mul_(scale)
        if head.bias is not None:
            head.bias.mul_(scale)
    return model


# Issue 15's conversion matrix: the architectures users bring, sized so that their weights (not
# the graph's bookkeeping) fill the files, a few hundred thousand parameters each. Each entry:
# class, constructor arguments, feature dimension, and whether it is a keyword classifier.
MATRIX = {
    "DSConvCTC": (DSConvCTC, {"channels": 256}, 80, False),
    "ConformerCTC": (ConformerCTC, {"d": 128}, 80, False),
    "DSCNN": (DSCNN, {"channels": 256, "blocks": 4}, 40, True),
    "DeepSpeech2": (DeepSpeech2, {"channels": 16, "hidden": 64}, 80, False),
    "GRUStack": (GRUStack, {"channels": 128, "hidden": 128}, 80, False),
    "TransformerCTC": (TransformerCTC, {"d": 192}, 80, False),
    "QuartzNet": (QuartzNet, {"channels": 256, "blocks": 3}, 80, False),
    "ConformerConv2dSub": (ConformerConv2dSub, {"d": 80}, 80, False),
    "CRNNKeywordSpotter": (CRNNKeywordSpotter, {"channels": 32, "hidden": 96}, 40, True),
}
