"""The edge-speech command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

import numpy as np

from edge_speech import __version__, audio, features


def _features(args: argparse.Namespace) -> int:
    samples, rate = audio.read_wav(args.file)
    config = features.FeatureConfig.preset(args.preset)
    if args.num_mel_bins:
        config = config.replace(num_mel_bins=args.num_mel_bins)
    feats = features.compute(samples, rate, config)
    summary = {
        "file": str(args.file),
        "sample_rate": rate,
        "duration_s": round(len(samples) / rate, 3),
        "preset": args.preset,
        "frames": int(feats.shape[0]),
        "dim": int(feats.shape[1]),
        "mean": round(float(feats.mean()), 4) if feats.size else None,
        "std": round(float(feats.std()), 4) if feats.size else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
        if feats.size:
            energy = feats.mean(axis=1)
            print(f"{'per-frame':>12}: " + _sparkline(energy, 60))
    if args.output:
        np.save(args.output, feats)
    return 0


def _sparkline(values: np.ndarray, width: int) -> str:
    bars = " .:-=+*#%@"
    blocks = np.array_split(values, min(width, len(values)))
    means = np.array([b.mean() for b in blocks])
    lo, hi = means.min(), means.max()
    scaled = np.zeros_like(means) if hi == lo else (means - lo) / (hi - lo)
    return "".join(bars[int(round(v * (len(bars) - 1)))] for v in scaled)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-speech", description="Offline speech recognition for small devices.")
    parser.add_argument("--version", action="version", version=f"edge-speech {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("features", help="compute log-mel or MFCC features of a WAV file and summarise them")
    p.add_argument("file")
    p.add_argument("--preset", default="kaldi-fbank", choices=sorted(features.PRESETS))
    p.add_argument("--num-mel-bins", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--output", help="save the features as a .npy file")
    p.set_defaults(run=_features)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as err:
        print(f"edge-speech: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
