"""Builds the embedded default bundle (en-small, ``edge_speech/models/default``) from the trained
checkpoint through the converter's one path, ``converters.convert``:

    OMP_NUM_THREADS=1 .venv/bin/python -m recipes.default_model.build_bundle \\
        --checkpoint recipes/default_model/checkpoint/model.pt --calib TRAIN.jsonl --eval TEST.jsonl \\
        --lm LM.arpa.gz --out edge_speech/models/default

One call: int8 ONNX (static, calibrated on ``--calibration`` training utterances, 7-bit weights)
and int8 TFLite (fixed windows of context + 256 + context frames), both verified against the
torch model on ``--eval-count`` held-out utterances, with the decoder defaults and the word LM
in the manifest. ``--compare BUNDLE`` then decodes the held-out set with that bundle (the one
shipped before) and the new one through the runtime, so a rebuild shows whether it changed.

The model is wrapped in ``ctc_model.ZeroPaddedWindows`` (the same weights; on unpadded input
the same outputs): the runtime pads TFLite windows past the utterance end with zero frames, and
the wrapper treats them as the model's own edge padding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from edge_speech import Recognizer, converters, features
from edge_speech.bundle import InputSpec
from edge_speech.converters.verification import error_rate
from recipes.default_model import ctc_model, export

HERE = Path(__file__).resolve().parent


def rows(manifest: str):
    return [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=HERE / "checkpoint" / "model.pt")
    parser.add_argument("--calib", required=True, help="training manifest (JSONL: path, text) to calibrate int8 on")
    parser.add_argument("--eval", required=True, help="held-out manifest (JSONL) to verify on")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration", type=int, default=48)
    parser.add_argument("--eval-count", type=int, default=100)
    parser.add_argument(
        "--stream-context-frames",
        type=int,
        help="input frames each side that streaming and TFLite windows need (default: half the "
        "model's receptive field rounded up to the subsampling; 328 for the shipped model)",
    )
    parser.add_argument(
        "--tflite-chunk-frames",
        type=int,
        default=256,
        help="input frames each TFLite window contributes (256: see the recipe README)",
    )
    parser.add_argument("--lm", type=Path, help="ARPA LM (.arpa or .arpa.gz) shipped as the default search")
    parser.add_argument("--lm-weight", type=float, default=0.4)
    parser.add_argument("--word-bonus", type=float, default=2.0)
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument(
        "--no-lexicon", action="store_true", help="let the LM search spell words outside its vocabulary"
    )
    parser.add_argument("--grammar-token-bonus", type=float, default=3.0)
    parser.add_argument("--grammar-threshold", type=float, default=0.2)
    parser.add_argument("--name", default="edge-speech-en-default-int8")
    parser.add_argument("--compare", type=Path, help="a bundle to decode the held-out set with beside the new one")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    model = export.load_model(args.checkpoint).eval()
    needed = -(-(model.receptive_field_frames() // 2) // ctc_model.SUBSAMPLING) * ctc_model.SUBSAMPLING
    context = needed if args.stream_context_frames is None else args.stream_context_frames
    if context < needed:
        raise SystemExit(
            f"--stream-context-frames {context} is below the model's receptive field half-width "
            f"({needed} frames): chunked and streamed output would differ from offline"
        )
    train, test = rows(args.calib), rows(args.eval)
    calib = [r["path"] for r in train[:: max(1, len(train) // args.calibration)][: args.calibration]]
    evaluation = [(r["path"], r["text"]) for r in test[:: max(1, len(test) // args.eval_count)][: args.eval_count]]
    decoder = {
        "grammar_token_bonus": args.grammar_token_bonus,
        "grammar_threshold": args.grammar_threshold,
        "beam": args.beam,
    }
    if args.lm:
        decoder |= {"lm_weight": args.lm_weight, "word_bonus": args.word_bonus, "lexicon": not args.no_lexicon}
    lm_copy = None
    if args.lm:  # OUT is cleared below and the LM may live there
        lm_copy = Path(args.out).with_name(Path(args.out).name + "-lm") / args.lm.name
        lm_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.lm, lm_copy)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    report = converters.convert(
        ctc_model.ZeroPaddedWindows(model),
        torch.zeros(1, 400, 80),
        features.FeatureConfig.preset("kaldi-fbank"),
        ctc_model.TOKENS,
        calib=calib,
        eval=evaluation,
        quantize="int8",
        formats=("onnx", "tflite"),
        out=out,
        name=args.name,
        blank_id=ctc_model.BLANK_ID,
        keep_fp32=False,
        input_spec=InputSpec(name="features", stream_context_frames=context),
        tflite_chunk_frames=args.tflite_chunk_frames,
        tflite_context_frames=context,
        decoder=decoder,
        lm=lm_copy,
        strict=True,
    )
    if lm_copy is not None:
        shutil.rmtree(lm_copy.parent)
    print(json.dumps(report.to_dict(), indent=2, default=float))
    if args.compare:
        for backend in ("onnx", "tflite"):
            for name, bundle in (("before", args.compare), ("after", out)):
                rec = Recognizer.from_bundle(bundle, backend=backend, threads=1)
                refs = [text for _, text in evaluation]
                for beam, options in (("greedy", {"beam": 1, "lm": False}), ("default", {})):
                    hyps = [rec.transcribe(path, **options).text for path, _ in evaluation]
                    print(
                        f"{backend:6s} {name:6s} {beam:7s} CER {error_rate(refs, hyps, 'char'):.4f} "
                        f"WER {error_rate(refs, hyps, 'word'):.4f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
