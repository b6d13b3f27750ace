"""The default model: a small convolutional CTC acoustic model over 80-bin Kaldi fbank frames.

    features [B, T, 80] (10 ms frames, raw log-mel from edge_speech.features "kaldi-fbank")
      -> fixed global mean/variance normalisation (buffers, part of the exported graph)
      -> Conv1d k5 s2 (80 -> C), BN, ReLU         20 ms
      -> depthwise Conv1d k5 s2, pointwise, BN, ReLU   40 ms
      -> N residual blocks: depthwise Conv1d k (dilation d), BN, SiLU, pointwise, BN, SiLU, dropout
      -> pointwise projection to the tokens, log-softmax  -> [B, ceil(T/4), V] natural-log probs

Non-causal (offline); the receptive field is printed by ``receptive_field_frames``.
"""

from __future__ import annotations

import string
from typing import Sequence

import torch
from torch import nn

TOKENS = ("<blk>", " ") + tuple(string.ascii_lowercase) + ("'",)
BLANK_ID = 0
SUBSAMPLING = 4
FEATURE_DIM = 80


def encode(text: str) -> list:
    index = {t: i for i, t in enumerate(TOKENS)}
    return [index[c] for c in " ".join(text.split()) if c in index]


def output_frames(frames):
    """Model output length for ``frames`` input frames (two k5/s2/p2 convolutions)."""
    for _ in range(2):
        frames = (frames - 1) // 2 + 1
    return frames


class Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.net = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation, groups=channels, bias=False),
            nn.BatchNorm1d(channels),
            nn.SiLU(),
            nn.Conv1d(channels, channels, 1, bias=False),
            nn.BatchNorm1d(channels),
            nn.SiLU(),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return x + self.net(x)


class ConvCTC(nn.Module):
    def __init__(
        self,
        channels: int = 256,
        blocks: int = 12,
        kernel: int = 9,
        dilations: Sequence[int] = (1, 1, 2),
        dropout: float = 0.1,
        vocab: int = len(TOKENS),
        dim: int = FEATURE_DIM,
    ):
        super().__init__()
        self.config = dict(
            channels=channels,
            blocks=blocks,
            kernel=kernel,
            dilations=list(dilations),
            dropout=dropout,
            vocab=vocab,
            dim=dim,
        )
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))
        self.subsample = nn.Sequential(
            nn.Conv1d(dim, channels, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2, groups=channels, bias=False),
            nn.Conv1d(channels, channels, 1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            *[Block(channels, kernel, dilations[i % len(dilations)], dropout) for i in range(blocks)]
        )
        self.head = nn.Conv1d(channels, vocab, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, dim] -> log-probs [B, T', vocab]."""
        x = ((features - self.mean) * self.inv_std).transpose(1, 2)
        x = self.blocks(self.subsample(x))
        return torch.log_softmax(self.head(x), dim=1).transpose(1, 2)

    def receptive_field_frames(self) -> int:
        c = self.config
        field = 1 + 4 + 2 * 4  # the two stride-2 k5 convolutions, in input frames
        for i in range(c["blocks"]):
            field += 4 * (c["kernel"] - 1) * c["dilations"][i % len(c["dilations"])]
        return field


class ZeroPaddedWindows(nn.Module):
    """``model`` for fixed-shape windows (TFLite): input frames that are all exactly zero (the
    runtime's padding past the utterance end; no real fbank frame is) act as the model's own
    zero padding at every convolution, so a padded window gives the whole-utterance outputs.
    Padding with raw zeros alone changed 11% of greedy tokens on short held-out utterances.
    The same weights; on unpadded input the outputs equal ``model``'s."""

    def __init__(self, model: ConvCTC):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        m = self.model
        valid = (features.abs().amax(dim=2, keepdim=True) > 0).to(features.dtype).transpose(1, 2)  # [B, 1, T]
        x = ((features - m.mean) * m.inv_std).transpose(1, 2) * valid
        for layers in (m.subsample[:3], m.subsample[3:]):  # each starts with a stride-2 convolution
            valid = valid[:, :, ::2]
            x = layers(x) * valid
        for block in m.blocks:
            x = block(x) * valid  # the next depthwise convolution must see zeros past the end
        return torch.log_softmax(m.head(x), dim=1).transpose(1, 2)


def build(config: dict) -> ConvCTC:
    return ConvCTC(**config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def grown(model: ConvCTC, channels: int, blocks: int, seed: int = 0) -> ConvCTC:
    """A wider and/or deeper copy of ``model`` that computes exactly the same function, for
    continuing the training of an underfitting model without starting over. New channels get
    random weights but every old channel (and the head) reads them through zero weights; new
    blocks are appended with their last BatchNorm scale at zero, so they start as the identity.
    The zero weights get gradients from the first step; the new channels' own weights as soon as
    something reads them."""
    old = model.config
    if channels < old["channels"] or blocks < old["blocks"]:
        raise ValueError(f"can only grow: {old['channels']}x{old['blocks']} -> {channels}x{blocks}")
    torch.manual_seed(seed)
    big = ConvCTC(**(old | {"channels": channels, "blocks": blocks}))
    big.mean.copy_(model.mean)
    big.inv_std.copy_(model.inv_std)
    small_layers = dict(model.named_modules())
    for name, layer in big.named_modules():
        src = small_layers.get(name)
        if src is None:
            continue
        if isinstance(layer, nn.Conv1d):
            out_n, in_n = src.weight.shape[:2]
            if layer.groups == 1 and layer.in_channels > src.in_channels:
                layer.weight[:out_n, in_n:] = 0  # old outputs ignore the new channels
            layer.weight[:out_n, :in_n] = src.weight
            if src.bias is not None:
                layer.bias[:out_n] = src.bias
        elif isinstance(layer, nn.BatchNorm1d):
            n = src.num_features
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(layer, attr)[:n] = getattr(src, attr)
            layer.num_batches_tracked.copy_(src.num_batches_tracked)
    for block in big.blocks[old["blocks"] :]:
        block.net[4].weight.zero_()  # the block's residual branch starts at zero
    return big
