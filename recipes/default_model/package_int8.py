"""Builds the package's embedded default model (edge_speech/models/default) in one command: the
fp32 ONNX bundle quantized to int8 ONNX, plus an int8 TFLite model converted from the same
checkpoint, both verified, in one bundle whose manifest records the verification. Run by path,
after export.py (its fp32 bundle must come from the same checkpoint; this is checked):

    OMP_NUM_THREADS=1 .venv/bin/python recipes/default_model/package_int8.py \\
        --fp32 recipes/default_model/bundle_fp32 --checkpoint recipes/default_model/checkpoint/model.pt \\
        --data /work/data/dm24k --out edge_speech/models/default [--lm lm.arpa.gz ...]

TFLite (LiteRT) models have a fixed input shape here (litert-torch 0.10 cannot lower this model
with a dynamic time axis), so the runtime runs windows of context + chunk + context frames and
keeps each window's middle; a context of at least half the receptive field makes the result
equal a whole-utterance run. With ``--lm`` the bundle also ships that word LM (build_lm.py) as
its default search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ctc_model  # noqa: E402
import export  # noqa: E402
from edge_speech import audio, converters, features  # noqa: E402
from edge_speech.bundle import Bundle, write_bundle  # noqa: E402
from edge_speech.converters.verification import (error_rate, greedy_tokens, onnx_runner, tflite_runner,  # noqa: E402
                                                 torch_runner)

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", required=True, help="the fp32 bundle written by export.py")
    parser.add_argument("--checkpoint", type=Path, default=HERE / "checkpoint" / "model.pt",
                        help="the checkpoint export.py exported (the TFLite model is converted from it)")
    parser.add_argument("--data", required=True, help="the synthesized data set (train.jsonl, test.jsonl)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration", type=int, default=48, help="training utterances used to calibrate")
    parser.add_argument("--eval", type=int, default=100, help="held-out utterances used to verify")
    parser.add_argument("--stream-context-frames", type=int,
                        help="input frames each side that streaming and TFLite windows need (default: half the "
                             "model's receptive field rounded up to the subsampling; 328 = ±3.3 s for the shipped model)")
    parser.add_argument("--tflite-chunk-frames", type=int, default=256,
                        help="input frames each TFLite window contributes; every window also recomputes the context "
                             "on both sides. 256 (measured, see the recipe README): within 25%% of the fastest on "
                             "short commands (which fit in one window) and 3x faster than 64 on long audio")
    parser.add_argument("--lm", type=Path, help="ARPA LM (.arpa or .arpa.gz) to ship as the default search")
    parser.add_argument("--lm-weight", type=float, default=0.5)
    parser.add_argument("--word-bonus", type=float, default=0.0)
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument("--lexicon", action="store_true", help="restrict words to the LM's vocabulary")
    parser.add_argument("--grammar-token-bonus", type=float, default=0.0,
                        help="per-token bonus when ranking grammar sentences (chosen on asterisk prompts)")
    parser.add_argument("--grammar-threshold", type=float, default=0.5,
                        help="command rejection confidence (chosen with benchmarks/bench_listen.py --sweep)")
    args = parser.parse_args()
    fp32 = Bundle.load(args.fp32)
    m = fp32.manifest
    data = Path(args.data)
    train = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    calib = [_path(data, item) for item in train[:: max(1, len(train) // args.calibration)][: args.calibration]]
    evaluation = [(_path(data, item), item["text"]) for item in test[:: max(1, len(test) // args.eval)][: args.eval]]

    model = export.load_model(args.checkpoint)
    needed = -(-(model.receptive_field_frames() // 2) // m.subsampling_factor) * m.subsampling_factor
    context = needed if args.stream_context_frames is None else args.stream_context_frames
    if context < needed:
        raise SystemExit(f"--stream-context-frames {context} is below the model's receptive field half-width "
                         f"({needed} frames): chunked and streamed output would differ from offline")

    def front_end(path: str) -> np.ndarray:  # what the runtime's Recognizer computes
        return features.compute(audio.load_audio(path, m.sample_rate), m.sample_rate, m.features)

    eval_features = [front_end(path) for path, _ in evaluation]
    _check_same_model(model, fp32, eval_features[:8], args)

    lm_bytes = args.lm.read_bytes() if args.lm else None  # before OUT is cleared: the LM may live there
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    spec = dataclasses.replace(m.input, stream_context_frames=context)
    report = converters.convert_onnx(fp32.model_bytes["onnx"], m.features, m.tokens, input_spec=spec,
                                     subsampling_factor=m.subsampling_factor, calib=calib, eval=evaluation,
                                     quantize="int8", out=out, sample_rate=m.sample_rate, blank_id=m.blank_id,
                                     name=m.name + "-int8", output_is_log_probs=m.output_is_log_probs)
    onnx_int8 = Bundle.load(out)

    tflite, tflite_spec = converters.export_tflite(
        ctc_model.ZeroPaddedWindows(model), m.input_dim, chunk_frames=args.tflite_chunk_frames,
        left_context_frames=context, right_context_frames=context, quantize="int8",
        calibration=[front_end(path) for path in calib])
    tflite_spec = dataclasses.replace(tflite_spec, stream_context_frames=context)
    run_tflite = tflite_runner(tflite, tflite_spec, m.subsampling_factor)
    texts = ["".join(m.tokens[t] for t in greedy_tokens(run_tflite(f), m.blank_id)).strip() for f in eval_features]
    references = [text for _, text in evaluation]
    tflite_step = {
        "step": "export_tflite", "scheme": "int8", "bytes": len(tflite), "chunk_frames": tflite_spec.chunk_frames,
        "context_frames": context,
        "vs_torch_fp32": converters.verify(torch_runner(model), run_tflite, eval_features, m.blank_id).to_dict(),
        "vs_onnx_int8": converters.verify(onnx_runner(onnx_int8.model_bytes["onnx"], input_spec=spec), run_tflite,
                                          eval_features, m.blank_id).to_dict(),
        "cer": round(error_rate(references, texts, "char"), 4), "wer": round(error_rate(references, texts, "word"), 4)}

    files = {"model.onnx": onnx_int8.model_bytes["onnx"], "model.tflite": tflite}
    decoder = {"grammar_token_bonus": args.grammar_token_bonus, "grammar_threshold": args.grammar_threshold}
    if args.lm:
        decoder |= {"lm": args.lm.name, "lm_weight": args.lm_weight, "word_bonus": args.word_bonus,
                    "beam": args.beam, "lexicon": args.lexicon}
        files[args.lm.name] = lm_bytes
    manifest = onnx_int8.manifest
    verification = dict(manifest.verification, steps=[*manifest.verification["steps"], tflite_step])
    write_bundle(out, dataclasses.replace(manifest, files={}, models={"onnx": "model.onnx", "tflite": "model.tflite"},
                                          format_inputs={"tflite": tflite_spec}, decoder=decoder,
                                          provenance=dict(manifest.provenance, steps=[*manifest.provenance["steps"],
                                                                                      "export_tflite"]),
                                          verification=verification), files)
    Bundle.load(out)  # checks every checksum, the LM's included
    print(json.dumps(report.to_dict() | {"steps": verification["steps"]}, indent=2, default=float))


def _path(data: Path, item: dict) -> str:
    return item["path"] if Path(item["path"]).is_absolute() else str(data / item["path"])


def _check_same_model(model, fp32: Bundle, probe, args) -> None:
    """The ONNX and TFLite models must come from one checkpoint; a stale --fp32 bundle is refused."""
    reference, exported = torch_runner(model), onnx_runner(fp32.model_bytes["onnx"], input_spec=fp32.manifest.input)
    diff = max(float(np.abs(reference(x) - exported(x)).max()) for x in probe)
    if diff > 1e-3:
        raise SystemExit(f"{args.fp32} was not exported from {args.checkpoint} (max |Δ log-prob| {diff:.3g}); "
                         f"rerun export.py --checkpoint {args.checkpoint} --bundle {args.fp32} first")


if __name__ == "__main__":
    main()
