"""en-base's pruning curve: CER against MACs removed, before and after a short distillation fine-tune.

    python -m recipes.whisper_model.pruning_curve --whisper W/whisper-base --checkpoint W/runs/w1/best.pt \
        --train W/wb_a/train.jsonl --train W/real/train.jsonl --ratios 0.1,0.2,0.3 --out W/pruning

Each point is one ``converters.convert()`` call on the trained model: prune ``ratio`` of the MACs
(attention heads, FFN width, head width; torch-pruning's magnitude importance, or ``--importance
taylor`` from the calibration audio's gradients), fine-tune the
whole pruned network for ``--epochs`` by distillation from the unpruned model plus CTC on the
training transcripts (``--finetune-count`` utterances of the ``--train`` manifests, never the
evaluation audio), then dynamic int8 as shipped. The evaluation is ``--eval-count`` asterisk
prompts (Debian's real telephone speaker, never trained on), greedy, so the CER moves with the
acoustic model alone. The JSON written to OUT/curve.json has, per point: MACs removed, CER
unpruned / pruned / fine-tuned / int8, fine-tune seconds. Without a checkpoint, recover one from
the shipped bundle first (``recover_checkpoint.py``).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

from edge_speech import converters
from edge_speech.bundle import InputSpec
from recipes.default_model.evaluate import asterisk_set
from recipes.whisper_model.build_bundle import MAX_FRAMES, STREAM_CONTEXT_FRAMES, load_model, rows
from recipes.whisper_model.whisper_ctc import BLANK_ID, TOKENS, feature_config


def _spread(items: list, count: int) -> list:
    return items[:: max(1, len(items) // count)][:count]


def _cer(step: dict) -> "float | None":
    return None if step is None or "cer" not in step else round(100 * step["cer"], 2)


def curve_point(model, ratio: float, args, calib: list, tuning: list, evaluation: list, out: Path) -> dict:
    started = time.perf_counter()
    report = converters.convert(
        copy.deepcopy(model),
        torch.zeros(1, 400, 80),
        feature_config(),
        TOKENS,
        calib=calib,
        eval=evaluation,
        prune=ratio,
        importance=args.importance,
        quantize="dynamic",
        formats=("onnx",),
        out=out / f"prune{ratio:g}-{args.importance}",
        name=f"en-base-prune{ratio:g}",
        blank_id=BLANK_ID,
        input_spec=InputSpec(name="features", max_frames=MAX_FRAMES, stream_context_frames=STREAM_CONTEXT_FRAMES),
        finetune_epochs=args.epochs,
        finetune_data=tuning,
        finetune_options={
            "lr": args.lr,
            "batch_size": args.batch_size,
            "checkpoint": out / f"finetune{ratio:g}-{args.importance}.pt",
        },
    ).to_dict()
    steps = {s["step"]: s for s in report["steps"]}
    prune = steps.get("prune", {})
    tuned = steps.get("finetune", {})
    return {
        "ratio": ratio,
        "importance": args.importance,
        "macs_removed": prune.get("mac_reduction"),
        "params": prune.get("params"),
        "cer_unpruned": _cer(steps.get("source")),
        "cer_pruned": _cer(prune),
        "cer_finetuned": _cer(tuned),
        "cer_int8": _cer(steps.get("quantize")),
        "finetune_seconds": round(tuned.get("seconds", 0.0), 1),
        "finetune_steps": tuned.get("steps"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--train", action="append", required=True, help="training manifest (JSONL); repeatable")
    parser.add_argument("--ratios", default="0.1,0.2,0.3")
    parser.add_argument("--finetune-count", type=int, default=800)
    parser.add_argument("--eval-count", type=int, default=60)
    parser.add_argument("--importance", choices=("magnitude", "taylor"), default="magnitude")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)

    model = load_model(args.whisper, args.checkpoint)
    training = [r for manifest in args.train for r in rows(manifest)]
    tuning = [(r["path"], r["text"]) for r in _spread(training, args.finetune_count)]
    calib = [r["path"] for r in _spread(training, 48)]
    evaluation = _spread(asterisk_set(), args.eval_count)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "curve.json"
    done = json.loads(results.read_text()) if results.is_file() else []
    for ratio in (float(r) for r in args.ratios.split(",")):
        if any(p["ratio"] == ratio and p.get("importance", "magnitude") == args.importance for p in done):
            continue
        done.append(curve_point(model, ratio, args, calib, tuning, evaluation, out))
        results.write_text(json.dumps(done, indent=2))
        print(json.dumps(done[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
