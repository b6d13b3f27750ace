"""Wav2Vec2ForCTC (or, with --family, HubertForCTC, WavLMForCTC, Data2VecAudioForCTC,
Wav2Vec2ConformerForCTC) through the converter: ONNX (dynamic length) against TFLite (fixed windows,
the smallest that holds the utterance), fp32 and int8, on one thread: bundle size, latency per
utterance length, and agreement with transformers' own forward pass.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_wav2vec2 --json build/bench_wav2vec2.json
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_wav2vec2 --family wavlm

No pretrained wav2vec2 can be had offline, so the model is a random-weight Wav2Vec2ForCTC of the
shape of a small real one (--hidden, --layers; wav2vec2's conv feature encoder and 320-sample
frames). Latency does not depend on the weights; agreement is measured on synthesised speech
(espeak-ng) and is a lower bound for int8 (random weights give flat logits). The TFLite/ONNX
column is the time ratio on the same bundle (below 1: TFLite faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def speech(seconds: float, rate: int = 16000) -> np.ndarray:
    """espeak-ng speech, repeated to ``seconds``."""
    from edge_speech import audio

    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "raw.wav", Path(tmp) / "s.wav"
        subprocess.run(
            ["espeak-ng", "-w", str(raw), "turn on the kitchen light and set a timer for ten minutes"], check=True
        )
        subprocess.run(["sox", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(wav)], check=True)
        x, _ = audio.read_wav(wav)
    return np.resize(x, int(seconds * rate)).astype(np.float32)


FAMILIES = {  # --family: transformers' config and CTC classes, and family-specific settings
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2ForCTC", {}),
    "hubert": ("HubertConfig", "HubertForCTC", {}),
    "wavlm": ("WavLMConfig", "WavLMForCTC", {}),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioForCTC", {}),
    "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerForCTC", {}),
}


def build(directory: Path, hidden: int, layers: int, family: str = "wav2vec2") -> None:
    import torch
    import transformers

    config_name, class_name, extra = FAMILIES[family]
    vocab = {
        "<pad>": 0,
        "<s>": 1,
        "</s>": 2,
        "<unk>": 3,
        "|": 4,
        **{c: 5 + i for i, c in enumerate("ETAONIHSRDLUMWCFGYPBVKXJQZ'")},
    }
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
        pad_token_id=0,
        conv_dim=(256,) * 7,
        **extra,
    )
    getattr(transformers, class_name)(config).eval().save_pretrained(directory)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))


def timed(run, x, repeats: int) -> float:
    run(x)  # warm-up (TFLite allocates a window's tensors on first use)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=sorted(FAMILIES), default="wav2vec2")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--seconds", type=float, nargs="+", default=[0.7, 1.5, 3.0, 6.0, 12.0])
    p.add_argument("--windows", type=float, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import transformers

    from edge_speech import Recognizer, converters
    from edge_speech.bundle import Bundle

    work = Path(tempfile.mkdtemp(prefix="bench_w2v_"))
    build(work / "model", args.hidden, args.layers, args.family)
    calib = [speech(s) for s in (1.0, 2.0, 3.0)]
    t0 = time.perf_counter()
    converters.convert_wav2vec2(
        work / "model",
        calib=calib,
        quantize="int8",
        formats=("onnx", "tflite"),
        tflite_window_seconds=args.windows,
        out=work / "int8",
    )
    convert_s = time.perf_counter() - t0
    converters.convert_wav2vec2(
        work / "model", quantize=None, formats=("onnx", "tflite"), tflite_window_seconds=args.windows, out=work / "fp32"
    )
    hf = getattr(transformers, FAMILIES[args.family][1]).from_pretrained(work / "model", local_files_only=True).eval()
    params = sum(p.numel() for p in hf.parameters())

    bundles = {}
    for scheme in ("fp32", "int8"):
        for backend in ("onnx", "tflite"):
            rec = Recognizer.from_bundle(work / scheme, backend=backend, threads=1)
            bundles[scheme, backend] = rec
    sizes = {
        scheme: {fmt: len(b) for fmt, b in Bundle.load(work / scheme).model_bytes.items()}
        for scheme in ("fp32", "int8")
    }

    rows = []
    for seconds in args.seconds:
        x = speech(seconds)
        normalised = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        with torch.no_grad():
            reference = hf(torch.from_numpy(normalised)[None]).logits[0].numpy()
        row = {"seconds": seconds}
        for (scheme, backend), rec in bundles.items():
            run = rec.backend.run
            out = run(rec._front_end(x))
            a, b = out.ravel(), reference.ravel()
            row[f"{scheme}_{backend}_ms"] = 1e3 * timed(run, rec._front_end(x), args.repeats)
            row[f"{scheme}_{backend}_cosine"] = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        rows.append(row)

    print(
        f"{FAMILIES[args.family][1]}, random weights, hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f} M parameters; "
        f"TFLite windows {args.windows} s; one thread; int8 conversion {convert_s:.0f} s"
    )
    print(
        f"sizes: fp32 ONNX {sizes['fp32']['onnx'] / 1e6:.2f} MB, TFLite {sizes['fp32']['tflite'] / 1e6:.2f} MB; "
        f"int8 ONNX {sizes['int8']['onnx'] / 1e6:.2f} MB, TFLite {sizes['int8']['tflite'] / 1e6:.2f} MB"
    )
    print(
        "| audio s | fp32 ONNX ms | fp32 TFLite ms | TFLite/ONNX | int8 ONNX ms | int8 TFLite ms | TFLite/ONNX "
        "| cosine to transformers: fp32 ONNX / fp32 TFLite / int8 ONNX / int8 TFLite |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['seconds']:g} | {r['fp32_onnx_ms']:.1f} | {r['fp32_tflite_ms']:.1f} | "
            f"{r['fp32_tflite_ms'] / r['fp32_onnx_ms']:.2f} | {r['int8_onnx_ms']:.1f} | {r['int8_tflite_ms']:.1f} | "
            f"{r['int8_tflite_ms'] / r['int8_onnx_ms']:.2f} | {r['fp32_onnx_cosine']:.5f} / {r['fp32_tflite_cosine']:.5f} / "
            f"{r['int8_onnx_cosine']:.3f} / {r['int8_tflite_cosine']:.3f} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"family": args.family, "params": params, "sizes": sizes, "convert_s": convert_s, "rows": rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
