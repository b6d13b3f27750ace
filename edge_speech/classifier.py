"""Keyword and command classifiers (DS-CNN style: a clip of features in, one score per label
out), from bundles the converter writes with ``kind: classifier``.

Every input is fitted to the clip the model was trained on (``input.clip_frames``): shorter
audio is centred in silence, longer audio gives its most energetic clip, so a keyword anywhere in
a two-second recording is still seen whole.

    clf = KeywordClassifier.from_bundle("kws_bundle")
    result = clf.classify("yes.wav")       # or (samples, sample_rate)
    print(result.label, result.confidence)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from edge_speech import audio, features
from edge_speech.backends import Backend, create_backend_for_target
from edge_speech.bundle import Bundle, BundleError, Manifest

__all__ = ["Classification", "KeywordClassifier", "clip_features", "clip_samples", "fit_clip"]


@dataclasses.dataclass(frozen=True)
class Classification:
    label: str
    confidence: float  # the label's probability
    scores: Mapping[str, float]  # every label's probability (softmax of the model's output)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
        }


def clip_samples(clip_frames: int, config: features.FeatureConfig, sample_rate: int) -> int:
    """The fewest samples from which ``config`` computes ``clip_frames`` frames."""
    shift = config.frame_shift(sample_rate)
    n = max(1, (clip_frames - 1) * shift)
    while config.num_frames(n, sample_rate) < clip_frames:
        n += 1
    return n


def fit_clip(samples: np.ndarray, length: int, hop: int) -> np.ndarray:
    """``samples`` made exactly ``length`` long: centred in zeros when shorter; when longer, the
    window (on a grid of ``hop`` samples, plus the end) with the most energy."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) <= length:
        out = np.zeros(length, dtype=np.float32)
        start = (length - len(samples)) // 2
        out[start : start + len(samples)] = samples
        return out
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    starts = np.unique(np.append(np.arange(0, len(samples) - length + 1, max(1, hop)), len(samples) - length))
    best = int(starts[np.argmax(energy[starts + length] - energy[starts])])
    return samples[best : best + length].copy()


class KeywordClassifier:
    """One classifier bundle on one backend. Build it with :meth:`from_bundle`."""

    def __init__(self, bundle: Bundle, backend: Backend):
        if bundle.manifest.kind != "classifier":
            raise BundleError(
                f"{bundle.source}: a KeywordClassifier needs a classifier bundle, this one is "
                f"{bundle.manifest.kind!r} (use Recognizer)"
            )
        self.bundle, self.backend = bundle, backend
        self.manifest: Manifest = bundle.manifest
        self.labels = self.manifest.tokens
        clip_frames = self.manifest.input_for(backend.name).clip_frames
        if self.manifest.features is None or clip_frames is None:
            raise BundleError(f"{bundle.source}: a classifier bundle takes features with input.clip_frames")
        self.feature_config: features.FeatureConfig = self.manifest.features
        self.clip_frames: int = clip_frames

    @classmethod
    def from_bundle(
        cls,
        path: "str | Path | Bundle",
        target: Optional[str] = None,
        backend: str = "auto",
        threads: Optional[int] = None,
    ) -> "KeywordClassifier":
        """Loads and verifies a classifier bundle and starts its backend (``target``: a device
        profile, as for :meth:`edge_speech.Recognizer.from_bundle`)."""
        bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        return cls(bundle, create_backend_for_target(bundle, target, backend, threads))

    def classify(self, source: audio.AudioInput) -> Classification:
        """The most likely label of a file path or a ``(samples, sample_rate)`` pair."""
        probabilities = self.probabilities(audio.load_audio(source, self.manifest.sample_rate))
        best = int(np.argmax(probabilities))
        return Classification(
            self.labels[best],
            float(probabilities[best]),
            {label: float(p) for label, p in zip(self.labels, probabilities)},
        )

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """Label probabilities [labels] for mono float32 samples at the bundle's rate."""
        return _softmax(self.logits(samples))

    def logits(self, samples: np.ndarray) -> np.ndarray:
        """The model's raw output [labels] for the fitted clip of ``samples``."""
        return self.backend.run(self.clip_features(samples))

    def clip_features(self, samples: np.ndarray) -> np.ndarray:
        """Features [clip_frames, dim] of the fitted clip: what the model takes."""
        return clip_features(samples, self.feature_config, self.manifest.sample_rate, self.clip_frames)


def clip_features(
    samples: np.ndarray, config: features.FeatureConfig, sample_rate: int, clip_frames: int
) -> np.ndarray:
    """Features [clip_frames, dim] of ``samples`` fitted to the clip (:func:`fit_clip`)."""
    clip = fit_clip(samples, clip_samples(clip_frames, config, sample_rate), config.frame_shift(sample_rate))
    return features.compute(clip, sample_rate, config)[:clip_frames]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()
