"""Bundles of the tiny ONNX CTC model (``tiny_models``) that the runtime tests share, and an
intent grammar spelled with its letters."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import tiny_models

from edge_speech import features
from edge_speech.bundle import Manifest, write_bundle

FEATURES = features.FeatureConfig.preset("kaldi-fbank").replace(num_mel_bins=40)

# Spelled with the tiny model's letters (a e i k l n o t).
INTENTS = """intents:
  Take:
    - "take a {item}"
    - "[okie] take {item}"
  Eat:
    - "eat"
slots:
  item: [kite, note, lake]
"""


def make_bundle(directory: Path, model: Optional[bytes] = None, embed: bool = True, **changes) -> Path:
    """A bundle of the tiny model (or ``model``) in ``directory``; ``changes`` replace manifest fields."""
    manifest = Manifest(
        kind="ctc",
        sample_rate=16000,
        features=FEATURES,
        tokens=tuple(tiny_models.TOKENS),
        models={"onnx": "model.onnx"},
        blank_id=0,
        subsampling_factor=2,
        name="tiny",
    )
    manifest = dataclasses.replace(manifest, **changes)
    return write_bundle(
        directory, manifest, {"model.onnx": model or tiny_models.build(FEATURES.dim)}, embed_in_onnx=embed
    )
