"""Export the best checkpoint to an fp32 ONNX bundle and verify it with the real runtime.

    python -m recipes.default_model.export --checkpoint recipes/default_model/checkpoint/model.pt \
        --bundle recipes/default_model/bundle_fp32 --data data/default_model

1. ONNX (opset 17, legacy TorchScript exporter): input "features" float32 [1, T, 80] (dynamic T,
   raw kaldi-fbank frames; normalisation is inside the graph), output "log_probs" [1, ceil(T/4), 29].
2. A bundle via edge_speech.bundle.write_bundle: kind "ctc", 16 kHz, the "kaldi-fbank" preset,
   character tokens (blank, space, a-z, apostrophe), subsampling factor 4.
3. Verification: ONNX Runtime vs torch log-probs (max abs difference) on held-out utterances, and
   Recognizer.from_bundle(...) greedy text vs the torch greedy text. The results are recorded in
   the manifest's "verification" field.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

from edge_speech import Recognizer
from edge_speech.bundle import InputSpec, Manifest, write_bundle
from recipes import DATA
from recipes.default_model import ctc_model, train


def load_model(checkpoint: Path) -> ctc_model.ConvCTC:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = dict(state["config"])
    model = ctc_model.build(config)
    model.load_state_dict(state["model"])
    return model.eval()


def to_onnx(model: ctc_model.ConvCTC) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.randn(1, 300, ctc_model.FEATURE_DIM),),
        buffer,
        input_names=["features"],
        output_names=["log_probs"],
        dynamic_axes={"features": {1: "frames"}, "log_probs": {1: "out_frames"}},
        opset_version=17,
        dynamo=False,
    )
    return buffer.getvalue()


def manifest(verification: dict, provenance: dict) -> Manifest:
    return Manifest(
        kind="ctc",
        sample_rate=train.RATE,
        features=train.FEATURES,
        tokens=ctc_model.TOKENS,
        models={"onnx": "model.onnx"},
        blank_id=ctc_model.BLANK_ID,
        subsampling_factor=ctc_model.SUBSAMPLING,
        input=InputSpec(name="features", layout="time_major"),
        name="edge-speech-en-default",
        provenance=provenance,
        verification=verification,
    )


def verify(model, bundle: Path, data: Path, count: int = 50) -> dict:
    import onnxruntime as ort

    rows, audio = train.load_split(data, "test", count)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    recognizer = Recognizer.from_bundle(bundle, threads=1)
    max_diff, same_text = 0.0, 0
    for samples in audio:
        feats = train.fbank(samples)[None]
        with torch.no_grad():
            ref = model(torch.from_numpy(feats))
        out = session.run(None, {"features": feats})[0]
        max_diff = max(max_diff, float(np.abs(out - ref.numpy()).max()))
        torch_text = train.greedy_texts(ref, [ref.shape[1]])[0]
        runtime_text = recognizer.transcribe((samples.astype(np.float32) / 32768, train.RATE), beam=1).text
        same_text += torch_text == runtime_text
    return {
        "onnx_vs_torch_max_abs_log_prob_diff": max_diff,
        "utterances": len(audio),
        "runtime_greedy_text_equals_torch": f"{same_text}/{len(audio)}",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="best.pt from train.py (or the committed copy)")
    p.add_argument("--bundle", type=Path, required=True, help="output bundle directory")
    p.add_argument("--data", type=Path, default=DATA / "default_model")
    p.add_argument(
        "--evaluate",
        default="clean,noisy20,noisy10,asterisk",
        help="evaluate.py sets to record in the manifest ('' for none)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.checkpoint)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    provenance = {
        "recipe": "recipes/default_model",
        "architecture": "ConvCTC",
        "config": model.config,
        "parameters": ctc_model.parameter_count(model),
        "epoch": state.get("epoch"),
        "training_data": "synthetic speech (espeak-ng, flite, festival); see recipes/default_model/README.md",
    }
    onnx_bytes = to_onnx(model)
    write_bundle(args.bundle, manifest({}, provenance), {"model.onnx": onnx_bytes})
    verification = verify(model, args.bundle, args.data)
    print(json.dumps(verification, indent=2), flush=True)
    if args.evaluate:
        import evaluate

        results = evaluate.evaluate(str(args.bundle), str(args.data), args.evaluate.split(","))
        verification["error_rates_greedy"] = {
            k: {m: round(v[m], 4) for m in ("cer", "wer")} | {"utterances": v["utterances"]} for k, v in results.items()
        }
    write_bundle(args.bundle, manifest(verification, provenance), {"model.onnx": onnx_bytes})
    print(f"bundle written to {args.bundle} ({len(onnx_bytes) / 1e6:.2f} MB model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
