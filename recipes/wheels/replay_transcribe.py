"""Transcribes a WAV file with an installed edge_speech wheel whose model backend cannot run here.

On armv7l PyPI has no ONNX Runtime or LiteRT wheel, so the wheel smoke test (recipes/wheels/smoke.sh) runs
everything but the model on the device: the native front end computes the features, which must match the
reference machine's within tolerance; the model's outputs recorded on the reference machine for those
features are replayed; the native beam search with the bundle's language model decodes them.

    python replay_transcribe.py --reference ref.npz audio.wav     (ref.npz: 'features', 'model_output')
    python replay_transcribe.py --record ref.npz audio.wav        (on the reference machine, with a backend)

Needs nothing beyond the installed wheel and its numpy (on the Pi: Debian's python3-numpy).
"""

import argparse
import sys

import numpy as np

from edge_speech import Recognizer, audio
from edge_speech.bundle import Bundle
from edge_speech.recognizer import DEFAULT_BUNDLE

FEATURE_TOLERANCE = 1e-3  # log-mel units; float32 FFTs on two instruction sets differ by rounding only


class ReplayBackend:
    """A Backend that returns recorded model outputs for the features they were recorded for."""

    name = "onnx"  # the bundle's ONNX input description applies: the recording came from that backend

    def __init__(self, features: np.ndarray, model_output: np.ndarray):
        self.features = features
        self.model_output = model_output

    def run(self, features: np.ndarray) -> np.ndarray:
        if features.shape != self.features.shape:
            raise ValueError(f"features of shape {features.shape}; the recording has {self.features.shape}")
        worst = float(np.max(np.abs(features - self.features))) if features.size else 0.0
        if worst > FEATURE_TOLERANCE:
            raise ValueError(f"features differ from the recording's by {worst:.3g} (tolerance {FEATURE_TOLERANCE})")
        print(f"features: {features.shape[0]} frames x {features.shape[1]}, max |diff| vs reference {worst:.2e}")
        return self.model_output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--reference", help="npz with the reference machine's features and model output")
    mode.add_argument("--record", help="write the npz (needs a model backend)")
    parser.add_argument("wav")
    args = parser.parse_args()
    if args.record:
        recognizer = Recognizer.from_bundle(DEFAULT_BUNDLE)
        samples = audio.load_audio(args.wav, recognizer.manifest.sample_rate)
        features = recognizer._front_end(samples)
        np.savez(args.record, features=features, model_output=recognizer.backend.run(features))
        return 0
    recorded = np.load(args.reference)
    backend = ReplayBackend(recorded["features"], recorded["model_output"])
    recognizer = Recognizer(Bundle.load(DEFAULT_BUNDLE), backend)
    try:
        print(f"{args.wav}\t{recognizer.transcribe(args.wav).text}")
    except ValueError as err:
        print(f"error: {args.wav}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
