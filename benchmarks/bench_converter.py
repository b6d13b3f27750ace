"""The converter on the trained default model: int8 size and accuracy, 50% MAC pruning with a
short distillation fine-tune, each one ``converters.convert`` call, all scored through the
runtime (``Recognizer.from_bundle``, greedy).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python -m benchmarks.bench_converter \\
        --checkpoint recipes/default_model/checkpoint/model.pt --data DATA \\
        --out build/bench_converter --plots benchmarks/converter_plots --json build/bench_converter.json

Rows: fp32, int8, pruned fp32, pruned int8, pruned + fine-tuned fp32, pruned + fine-tuned int8. Test set: every
second utterance of DATA/test.jsonl (300 of 600, all held-out voices). Calibration: 48 training
utterances spread over train.jsonl. Fine-tune: the first --train training utterances, KL to the
unpruned model plus CTC on their transcripts (converters.finetune), --epochs epochs on one thread.
``--from-json`` re-prints the table and redraws the plots from a previous run's JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "default_model"
GOALS = {"int8_size_ratio": 3.8, "int8_cer_drop_points": 0.5, "pruned_finetuned_cer_drop_points": 1.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=RECIPE / "checkpoint" / "model.pt")
    p.add_argument("--data", type=Path, required=True, help="the synthesized data set (test.jsonl, train.jsonl)")
    p.add_argument(
        "--train-data", type=Path, help="folder whose train.jsonl to calibrate and fine-tune on (default: --data)"
    )
    p.add_argument("--out", type=Path, default=Path("build/bench_converter"), help="bundles are written here")
    p.add_argument("--plots", type=Path, help="write the PNG plots into this folder")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--from-json", type=Path, help="only print the table and draw the plots of this results file")
    p.add_argument("--prune", type=float, default=0.5, help="fraction of MACs to remove")
    p.add_argument("--train", type=int, default=8000, help="training utterances for the fine-tune")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3, help="peak of the fine-tune's one-cycle schedule")
    p.add_argument("--calibration", type=int, default=48)
    p.add_argument(
        "--importance",
        choices=("magnitude", "taylor"),
        default="magnitude",
        help="channel importance for pruning; taylor uses the calibration utterances",
    )
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        results = run(args)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if args.plots:
        from edge_speech.converters.report import plot_steps

        written = plot_steps(
            [
                {"step": r["step"], "bytes": r["bytes"], "cer": r["cer"], "latency_ms": r["latency_ms_per_10s"]}
                for r in results["rows"]
            ],
            args.plots,
        )
        print("plots:", ", ".join(str(w) for w in written) if written else "none (matplotlib missing)")
    return 0


def run(args) -> dict:
    """Three ``converters.convert`` calls (the one conversion path): int8 alone, pruned + int8,
    pruned + fine-tuned + int8; each keeps its float bundle, so five bundles are scored."""
    import torch

    from edge_speech import Recognizer, __version__, audio, converters, features
    from edge_speech.bundle import Bundle
    from edge_speech.converters.onnx_size import size_breakdown
    from edge_speech.converters.verification import onnx_runner
    from recipes.default_model import ctc_model, evaluate, export

    torch.set_num_threads(1)
    started = time.perf_counter()
    model = export.load_model(args.checkpoint)
    fbank = features.FeatureConfig.preset("kaldi-fbank")
    example = torch.zeros(1, 100, ctc_model.FEATURE_DIM)  # MACs per second of audio
    test_items = evaluate.synthetic_set(args.data)[::2]
    train_rows = [
        json.loads(line)
        for line in (args.train_data or args.data).joinpath("train.jsonl").read_text().splitlines()
        if line.strip()
    ]
    calib = [r["path"] for r in train_rows[:: len(train_rows) // args.calibration][: args.calibration]]
    tuning = [(r["path"], r["text"]) for r in train_rows[: args.train]]
    first = features.compute(audio.load_audio(calib[0], 16000), 16000, fbank)
    probe = np.ascontiguousarray(np.tile(first, (max(1, 1000 // len(first) + 1), 1))[:1000])  # 10 s
    common = dict(
        calib=calib,
        quantize="int8",
        importance=args.importance,
        blank_id=ctc_model.BLANK_ID,
        max_calibration=args.calibration,
    )

    def score(name: str, bundle_dir: Path, torch_model) -> dict:
        onnx_bytes = Bundle.load(bundle_dir).model_bytes["onnx"]
        recognizer = Recognizer.from_bundle(bundle_dir, threads=1)
        rates, _ = evaluate.run_set(recognizer, test_items)
        runner = onnx_runner(onnx_bytes)
        runner(probe)
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            runner(probe)
            times.append(time.perf_counter() - t0)
        macs, params = converters.count_macs(torch_model, example)
        row = {
            "step": name,
            "params": params,
            "macs_per_s": macs,
            "bytes": len(onnx_bytes),
            "cer": rates["cer"],
            "wer": rates["wer"],
            "latency_ms_per_10s": 1e3 * float(np.median(times)),
            "runtime_rtf": rates["rtf"],
            "scheme": Bundle.load(bundle_dir).manifest.quantization["scheme"],
        }
        print(
            f"{name}: CER {100 * row['cer']:.2f}%  {row['bytes']} bytes  {row['latency_ms_per_10s']:.1f} ms/10 s",
            flush=True,
        )
        return row

    def converted(name: str, **options):
        out = args.out / name
        report = converters.convert(model, example, fbank, ctc_model.TOKENS, out=out, name=name, **common, **options)
        return out, report

    rows = []
    out, report = converted("int8")
    rows += [score("fp32", Path(report.fp32_bundle), model), score("int8", out, model)]
    out, pruned = converted("pruned", prune=args.prune)
    rows += [score("pruned fp32", Path(pruned.fp32_bundle), pruned.model), score("pruned int8", out, pruned.model)]
    out, tuned = converted(
        "pruned-ft",
        prune=args.prune,
        finetune_epochs=args.epochs,
        finetune_data=tuning,
        finetune_options={"batch_size": 16, "lr": args.lr, "progress": False},
    )
    step = tuned.step("finetune")
    print(
        f"fine-tune: {step['steps']} steps, loss {step['first_loss']:.3f} -> {step['last_loss']:.3f}, "
        f"{step['seconds'] / 60:.1f} min",
        flush=True,
    )
    rows += [score("pruned+ft fp32", Path(tuned.fp32_bundle), tuned.model), score("pruned+ft int8", out, tuned.model)]
    return {
        "rows": rows,
        "goals": GOALS,
        "prune": {k: v for k, v in pruned.step("prune").items() if k != "step"},
        "finetune": {k: v for k, v in step.items() if k != "step"},
        "finetune_utterances": len(tuning),
        "epochs": args.epochs,
        "lr": args.lr,
        "test_utterances": len(test_items),
        "int8_size_breakdown": size_breakdown(Bundle.load(args.out / "int8").model_bytes["onnx"]),
        "fp32_size_breakdown": size_breakdown(Bundle.load(report.fp32_bundle).model_bytes["onnx"]),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "edge_speech": __version__,
            "torch_threads": torch.get_num_threads(),
        },
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
    }


def table(results: dict) -> str:
    rows = {r["step"]: r for r in results["rows"]}
    fp32 = rows["fp32"]
    lines = [
        "| model | params | MACs per s of audio | model.onnx bytes | size vs fp32 | CER % | CER drop (points) "
        "| ms per 10 s (ORT, 1 thread) | runtime RTF |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['step']} | {r['params']:,} | {r['macs_per_s'] / 1e6:.1f} M | {r['bytes']:,} | "
            f"{fp32['bytes'] / r['bytes']:.2f}x | {100 * r['cer']:.2f} | {100 * (r['cer'] - fp32['cer']):+.2f} | "
            f"{r['latency_ms_per_10s']:.1f} | {r['runtime_rtf']:.4f} |"
        )
    checks = [
        ("int8 size ratio", fp32["bytes"] / rows["int8"]["bytes"], ">=", GOALS["int8_size_ratio"]),
        ("int8 CER drop", 100 * (rows["int8"]["cer"] - fp32["cer"]), "<=", GOALS["int8_cer_drop_points"]),
        (
            "pruned+ft fp32 CER drop",
            100 * (rows["pruned+ft fp32"]["cer"] - fp32["cer"]),
            "<=",
            GOALS["pruned_finetuned_cer_drop_points"],
        ),
        (
            "pruned+ft int8 CER drop",
            100 * (rows["pruned+ft int8"]["cer"] - fp32["cer"]),
            "<=",
            GOALS["pruned_finetuned_cer_drop_points"],
        ),
    ]
    lines.append("")
    for name, value, op, goal in checks:
        ok = value >= goal if op == ">=" else value <= goal
        lines.append(f"- {name}: {value:.2f} (goal {op} {goal}): {'pass' if ok else 'FAIL'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
