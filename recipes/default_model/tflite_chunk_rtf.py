"""RTF of the int8 TFLite default model against its window's chunk size (how
build_bundle.py's --tflite-chunk-frames was chosen). Model only (LiteRT, 1 thread), in process
CPU time so other jobs on a shared machine disturb it less:

    OMP_NUM_THREADS=1 .venv/bin/python -m recipes.default_model.tflite_chunk_rtf --data data/dm24k

Each window recomputes the context on both sides, so long audio costs (2 context + chunk) /
chunk, while a command shorter than one window costs the whole window.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from edge_speech import converters
from edge_speech.converters.verification import tflite_runner
from recipes.default_model import ctc_model, export, train

HERE = Path(__file__).resolve().parent


def cpu_seconds(run, inputs, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for x in inputs:
            run(x)
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=HERE / "checkpoint" / "model.pt")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--chunks", default="64,128,256,512,1024")
    p.add_argument("--context-frames", type=int, default=264)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = ctc_model.ZeroPaddedWindows(export.load_model(args.checkpoint))
    test = [train.fbank(a) for a in train.load_split(args.data, "test", 100)[1]]
    calibration = [train.fbank(a) for a in train.load_split(args.data, "train", 32)[1]]
    long_audio = np.concatenate(test)[:6000]  # 60 s
    test_s = sum(len(f) for f in test) / 100
    print(
        f"| chunk frames | window | RTF, {len(test)} held-out utterances ({test_s / len(test):.1f} s mean) "
        "| RTF, 60 s audio |\n|---|---|---|---|"
    )
    for chunk in map(int, args.chunks.split(",")):
        tflite, spec = converters.export_tflite(
            model,
            ctc_model.FEATURE_DIM,
            chunk_frames=chunk,
            left_context_frames=args.context_frames,
            right_context_frames=args.context_frames,
            quantize="int8",
            calibration=calibration,
        )
        run = tflite_runner(tflite, spec, ctc_model.SUBSAMPLING, threads=1)
        run(test[0])
        print(
            f"| {chunk} | {2 * args.context_frames + chunk} | {cpu_seconds(run, test) / test_s:.4f} "
            f"| {cpu_seconds(run, [long_audio]) / 60:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
