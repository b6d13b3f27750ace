"""Quantizes the trained fp32 bundle to int8 with calibration audio and installs it as the
package's embedded default model (edge_speech/models/default), recording the verification in
its manifest. Run by path, after export.py:

    .venv/bin/python recipes/default_model/package_int8.py --fp32 recipes/default_model/bundle_fp32 \
        --data /work/data/default_model --out edge_speech/models/default [--lm lm.arpa.gz ...]

With ``--lm`` the bundle also ships that word LM (build_lm.py) as its default search.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import dataclasses

from edge_speech import converters
from edge_speech.bundle import Bundle, write_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fp32", required=True, help="the fp32 bundle written by export.py")
    parser.add_argument("--data", required=True, help="the synthesized data set (train.jsonl, test.jsonl)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--calibration", type=int, default=48, help="training utterances used to calibrate")
    parser.add_argument("--eval", type=int, default=100, help="held-out utterances used to verify")
    parser.add_argument("--stream-context-frames", type=int, default=264,
                        help="input frames each side that streaming needs: the model's receptive field (±2.6 s)")
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
    calib = [str(data / item["path"]) if not Path(item["path"]).is_absolute() else item["path"]
             for item in train[:: max(1, len(train) // args.calibration)][: args.calibration]]
    evaluation = [(str(data / item["path"]) if not Path(item["path"]).is_absolute() else item["path"], item["text"])
                  for item in test[:: max(1, len(test) // args.eval)][: args.eval]]
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    spec = dataclasses.replace(m.input, stream_context_frames=args.stream_context_frames)
    report = converters.convert_onnx(fp32.model_bytes["onnx"], m.features, m.tokens, input_spec=spec,
                                     subsampling_factor=m.subsampling_factor, calib=calib, eval=evaluation,
                                     quantize="int8", out=out, sample_rate=m.sample_rate, blank_id=m.blank_id,
                                     name=m.name + "-int8", output_is_log_probs=m.output_is_log_probs)
    bundle = Bundle.load(out)
    decoder = {"grammar_token_bonus": args.grammar_token_bonus, "grammar_threshold": args.grammar_threshold}
    files = {name: bundle.model_bytes[fmt] for fmt, name in bundle.manifest.models.items()}
    if args.lm:
        decoder |= {"lm": args.lm.name, "lm_weight": args.lm_weight, "word_bonus": args.word_bonus,
                    "beam": args.beam, "lexicon": args.lexicon}
        files[args.lm.name] = args.lm.read_bytes()
    write_bundle(out, dataclasses.replace(bundle.manifest, files={}, decoder=decoder), files)
    Bundle.load(out)  # checks every checksum entry, the LM's included
    print(json.dumps(report.to_dict(), indent=2, default=float))


if __name__ == "__main__":
    main()
