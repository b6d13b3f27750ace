"""Issue 15's conversion matrix as a table: every architecture of ``tests/converter_models.py``
(random seeded weights, confident outputs) through the one documented ``converters.convert``
call with ``prune=0.5, quantize="int8", formats=("onnx", "tflite"), target="rpi4"``, the same
conversion and checks as ``tests/test_converter_matrix.py``.

    OMP_NUM_THREADS=1 PYTHONPATH=tests .venv/bin/python -m benchmarks.bench_converter_matrix [--only NAME ...]

(from the repository root; ``PYTHONPATH=tests`` makes the tests' model zoo importable)

Columns: MACs removed (our counter, converted torch model vs original), int8/fp32 ONNX file size
ratio, greedy-token agreement with the converted torch model on synthesized speech (espeak-ng;
classifiers: equal labels over 1 s clips) of the float ONNX, int8 ONNX and int8 TFLite bundles
loaded by the runtime, the TFLite window (left context + chunk + right context input frames;
models whose receptive field is unbounded get the wide context), and the wall time of the
convert() call (after a preflight refusal, of the call without TFLite). Needs espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def synthesize(text: str, folder: Path) -> np.ndarray:
    from edge_speech import audio

    raw, wav = folder / f"raw_{abs(hash(text))}.wav", folder / f"speech_{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True)
    subprocess.run(["sox", "-R", str(raw), "-r", "16000", "-b", "16", "-c", "1", str(wav)], check=True)
    return audio.read_wav(wav)[0]


def main(argv=None) -> int:
    import test_converter_matrix as matrix
    import torch
    from converter_models import MATRIX

    from edge_speech import converters

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=list(MATRIX), help="architectures to run (default: all)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="es_matrix_") as tmp:
        tmp = Path(tmp)
        evaluation = synthesize(matrix.EVAL_TEXT, tmp)
        calibration = synthesize(matrix.CALIB_TEXT, tmp)
        calib = [calibration[i : i + 16000] for i in range(0, len(calibration) - 8000, 16000)]
        for name in args.only or MATRIX:
            with contextlib.redirect_stdout(sys.stderr):  # litert-torch's progress lines
                report, seconds, model, example, refusal = matrix.convert_one(
                    name, tmp / name, calib, [(evaluation, matrix.EVAL_TEXT)]
                )
            converted = {"report": report, "speech": evaluation}
            before = converters.count_macs(model, example)[0]
            after = converters.count_macs(report.model, example)[0]
            fp32 = (Path(report.fp32_bundle) / "model.onnx").stat().st_size
            int8 = (Path(report.bundle) / "model.onnx").stat().st_size
            tflite_file = Path(report.bundle) / "model.tflite"
            tflite_ratio = f"{fp32 / tflite_file.stat().st_size:.2f}x" if tflite_file.is_file() else "-"
            cells = []
            for backend, use_fp32 in (("onnx", True), ("onnx", False), ("tflite", False)):
                if backend == "tflite" and refusal:
                    cells.append(f"refused in the preflight ({refusal[1]:.1f} s)")
                    continue
                try:
                    cells.append(
                        f"{matrix.agreement(*matrix._reference_and_runtime(converted, backend, use_fp32)):.1%}"
                    )
                except Exception as err:  # a bundle without TFLite: say why
                    tflite = next((s for s in report.steps if s["step"] == "export_tflite"), {})
                    cells.append("failed" if "error" in tflite else f"error: {type(err).__name__}")
            params = sum(x.numel() for x in model.parameters())
            tflite = next((s for s in report.steps if s["step"] == "export_tflite"), {})
            window = (
                f"{tflite['context_frames']}+{tflite['chunk_frames']}+{tflite['context_frames']}"
                + (" (full attention)" if tflite.get("receptive_field") == "unbounded" else "")
                if "chunk_frames" in tflite
                else tflite.get("clip_frames", "-")
            )
            rows.append(
                (
                    name,
                    f"{params / 1e3:.0f}k",
                    f"{1 - after / before:.1%}",
                    f"{fp32 / int8:.2f}x",
                    tflite_ratio,
                    *cells,
                    str(window),
                    f"{report.step('source')['preflight']['seconds']:.1f} s",
                    f"{seconds:.1f} s",
                )
            )
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    header = (
        "architecture",
        "params",
        "MACs removed",
        "int8 ONNX smaller",
        "int8 TFLite smaller",
        "fp32 ONNX agrees",
        "int8 ONNX agrees",
        "int8 TFLite agrees",
        "TFLite window (frames)",
        "preflight",
        "convert() time",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    import litert_torch
    import onnxruntime

    print(
        f"\n{platform.machine()}, {platform.python_version()}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, litert-torch {getattr(litert_torch, '__version__', '?')}, one thread"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
