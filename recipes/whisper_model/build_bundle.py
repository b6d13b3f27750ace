"""Builds the en-base bundle from a trained head through the converter's one path, convert().

    python -m recipes.whisper_model.build_bundle --whisper W/whisper-base --checkpoint W/runs/w1/best.pt \
        --calib W/wb_a/train.jsonl --eval W/dm_test/test.jsonl --out edge_speech/models/en-base \
        [--prune 0.3] [--lm edge_speech/models/default/lm.arpa.gz --lm-weight 0.4 --word-bonus 2 --beam 32]

The model (Whisper encoder with its trained top layers + the CTC head, features [1, T, 80] ->
log-probs [1, ceil(T/2), 29]) goes through ``converters.convert``: optional pruning, int8
quantization calibrated on training audio, ONNX export checked at several lengths, verification
against torch on held-out audio. The manifest then gets the runtime settings convert() cannot
know: the longest input (10 s; longer audio runs in overlapping windows), the streaming context, and the decoder defaults with the word LM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch

from edge_speech import converters
from edge_speech.bundle import Bundle, InputSpec, write_bundle
from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder
from recipes.whisper_model.whisper_ctc import BLANK_ID, TOKENS, WhisperCTC, feature_config

# Whisper's positions reach 30 s, but the head was trained on utterances of a few seconds: 10-s
# windows with 1.5 s of context each side measured better on long audio (CER with the LM 9.6%
# vs 22.4% for 30-s windows, tests/test_en_base_model.py's 37-s input).
MAX_FRAMES = 1000
STREAM_CONTEXT_FRAMES = 150


def load_model(whisper: str, checkpoint: str) -> WhisperCTC:
    state = torch.load(checkpoint)
    model = WhisperCTC(load_ctranslate2_encoder(whisper), state["frozen_layers"], state["head_hidden"])
    missing = set(model.load_state_dict(state["trainable"], strict=False).unexpected_keys)
    if missing:
        raise SystemExit(f"{checkpoint}: weights this model does not have: {sorted(missing)[:4]}")
    return model.eval()


def rows(manifest: str):
    return [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calib", required=True, help="training manifest (JSONL) to calibrate int8 on")
    parser.add_argument("--eval", required=True, help="held-out manifest (JSONL) to verify on")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration", type=int, default=48)
    parser.add_argument("--eval-count", type=int, default=60)
    parser.add_argument("--prune", type=float)
    parser.add_argument("--quantize", default="int8")
    parser.add_argument("--max-accuracy-drop", type=float)
    parser.add_argument("--lm", type=Path)
    parser.add_argument("--lm-weight", type=float, default=0.4)
    parser.add_argument("--word-bonus", type=float, default=2.0)
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--lexicon", action="store_true")
    parser.add_argument("--grammar-token-bonus", type=float, default=3.0)
    parser.add_argument("--grammar-threshold", type=float, default=0.2)
    parser.add_argument("--name", default="en-base")
    parser.add_argument("--formats", default="onnx", help="comma-separated: onnx, tflite")
    parser.add_argument("--tflite-chunk-frames", type=int, default=300)
    parser.add_argument("--tflite-context-frames", type=int, default=100)
    parser.add_argument("--keep-fp32", action="store_true", help="also write the float bundle to OUT-fp32")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    model = load_model(args.whisper, args.checkpoint)
    train, test = rows(args.calib), rows(args.eval)
    calib = [r["path"] for r in train[:: max(1, len(train) // args.calibration)][: args.calibration]]
    evaluation = [(r["path"], r["text"]) for r in test[:: max(1, len(test) // args.eval_count)][: args.eval_count]]
    lm_bytes = args.lm.read_bytes() if args.lm else None
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    spec = InputSpec(name="features", max_frames=MAX_FRAMES, stream_context_frames=STREAM_CONTEXT_FRAMES)
    report = converters.convert(
        model,
        torch.zeros(1, 400, 80),
        feature_config(),
        TOKENS,
        calib=calib,
        eval=evaluation,
        prune=args.prune,
        quantize=args.quantize,
        formats=tuple(args.formats.split(",")),
        tflite_chunk_frames=args.tflite_chunk_frames,
        tflite_context_frames=args.tflite_context_frames,
        out=out,
        name=args.name,
        blank_id=BLANK_ID,
        input_spec=spec,
        keep_fp32=args.keep_fp32,
        max_accuracy_drop=args.max_accuracy_drop,
    )
    bundle = Bundle.load(out)
    files = {name: (out / name).read_bytes() for name in bundle.manifest.files}
    decoder = {
        "grammar_token_bonus": args.grammar_token_bonus,
        "grammar_threshold": args.grammar_threshold,
        "beam": args.beam,
    }
    if args.lm:
        decoder |= {
            "lm": args.lm.name,
            "lm_weight": args.lm_weight,
            "word_bonus": args.word_bonus,
            "lexicon": args.lexicon,
        }
        files[args.lm.name] = lm_bytes
    write_bundle(out, dataclasses.replace(bundle.manifest, files={}, decoder=decoder), files)
    Bundle.load(out)  # every checksum, the LM's included
    print(json.dumps(report.to_dict(), indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
