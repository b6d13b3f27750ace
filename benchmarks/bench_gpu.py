"""CPU vs CUDA vs TensorRT (fp16) on the embedded models, in one run for a machine with a GPU:

  load      first load (session start + a first 1-s transcription, when TensorRT builds its
            engines into a fresh cache) and a second load of the same (engines from that cache)
  agree     the example transcripts equal to the shipped model's on CPU (character error rate
            between them) and the largest log-probability difference from it
  RTF       seconds of processing per second of audio (--seconds of the examples, tiled), best
            of --repeats

Each model runs as shipped (en-small int8 QDQ, en-base int8 dynamic) and as fp16: the shipped
QDQ model with its weights folded back to float and its activation quantization as a Clip to
the int8 range (what the int8 model computes, without the rounding) converted by edge_speech.converters.to_float16 (float32 inputs/outputs).
A dynamic-quantized model has no such folding here: give its float bundle with
--float-bundle en-base=PATH (a converter run's -fp32 bundle) or its fp16 row is skipped.
Providers this onnxruntime lacks are skipped with a note, so the script runs on a CPU-only
machine too (then only the CPU rows have numbers).

    pip install onnxruntime-gpu  # CUDA 12 build; TensorRT needs the tensorrt libraries too
    python -m benchmarks.bench_gpu --seconds 20 --repeats 3

Prints a markdown table, then the machine and versions.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from edge_speech import audio, backends, targets
from edge_speech.bundle import Bundle, write_bundle
from edge_speech.recognizer import EMBEDDED_MODELS, Recognizer
from edge_speech.text import edit_distance

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "recipes/default_model/examples").glob("*.wav"))
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
PROVIDERS = (CPU, CUDA, TRT)
GPU_PROFILE = "x86_64-cuda"  # TensorRT fp16 + engine cache, CUDA options (targets/x86_64-cuda.toml)


def fold_qdq(model: bytes) -> bytes:
    """A QDQ int8 model as float: onnxruntime folds the constant weight DequantizeLinear nodes
    (its QDQ handling off), and each activation QuantizeLinear -> DequantizeLinear pair becomes
    a Clip to its int8 range (the saturation without the rounding: the shipped en-small model
    was calibrated with it, and dropping the pairs altogether changed its output). Returns the
    model unchanged when it has no QDQ nodes."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    if b"DequantizeLinear" not in model:
        return model
    with tempfile.TemporaryDirectory(prefix="es_fold_") as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        options.optimized_model_filepath = os.path.join(tmp, "folded.onnx")
        ort.InferenceSession(model, options, providers=[CPU])
        proto = onnx.load(options.optimized_model_filepath)
    graph = proto.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    nodes, bounds = [], []
    for node in graph.node:
        source = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if source is None or source.op_type != "QuantizeLinear":
            nodes.append(node)
            continue
        scale, zero = constants[source.input[1]], constants[source.input[2]]
        if scale.shape != () or zero.dtype not in (np.int8, np.uint8):
            raise ValueError(f"{source.name}: only per-tensor int8/uint8 activation quantization folds here")
        info = np.iinfo(zero.dtype)
        low, high = [f"{node.output[0]}_clip_{end}" for end in ("low", "high")]
        for name, value in ((low, (info.min - int(zero)) * scale), (high, (info.max - int(zero)) * scale)):
            bounds.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        nodes.append(
            helper.make_node("Clip", [source.input[0], low, high], [node.output[0]], name=node.output[0] + "_clip")
        )
    used = collections.Counter(name for node in nodes for name in node.input)
    nodes = [n for n in nodes if n.op_type != "QuantizeLinear" or used[n.output[0]]]
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in nodes):
        raise ValueError("the model's QDQ nodes do not all come in foldable pairs")
    used = collections.Counter(name for node in nodes for name in node.input)
    initializers = [t for t in graph.initializer if used[t.name]] + bounds
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return proto.SerializeToString()


def fp16_bundle(name: str, float_bundles: dict, workdir: Path):
    """(the fp16 bundle of an embedded model, a note); None when there is no float model."""
    from edge_speech.converters.quantization import to_float16

    source = Bundle.load(float_bundles.get(name, EMBEDDED_MODELS[name]))
    scheme = source.manifest.quantization.get("scheme", "float")
    if scheme not in ("float", "int8"):
        return None, f"{name}: {scheme}-quantized, no float model (--float-bundle {name}=PATH)"
    model = to_float16(fold_qdq(source.model_bytes["onnx"]))
    out = workdir / f"{name}-fp16"
    manifest = dataclasses.replace(
        source.manifest,
        models={"onnx": "model.onnx"},
        files={},
        format_inputs={},
        quantization={"scheme": "float", "precision": "float16"},
        decoder={k: v for k, v in source.manifest.decoder.items() if k not in ("lm", "lexicon")},  # greedy here
    )
    write_bundle(out, manifest, {"model.onnx": model}, embed_in_onnx=False)
    return Bundle.load(
        out
    ), f"{name} fp16: {'QDQ weights folded, ' if scheme == 'int8' else ''}{len(model) / 1e6:.1f} MB"


def load(bundle: Bundle, provider: str, options: dict, clip: np.ndarray):
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a fallback shows in the "loaded" column
        backend = backends.create_backend(bundle, "onnx", providers=[provider], provider_options=options)
        recognizer = Recognizer(bundle, backend, beam=1)
        recognizer.transcribe((clip, 16000))
    return recognizer, time.perf_counter() - started


def bench(bundle: Bundle, provider: str, examples, long_audio, repeats: int, reference) -> dict:
    profile = targets.get_target(GPU_PROFILE)
    options = backends.onnx_provider_options(bundle, [provider], profile)
    with tempfile.TemporaryDirectory(prefix="es_trt_") as cache:
        if provider == TRT:  # a fresh cache: the first load builds, the second reuses
            options[TRT]["trt_engine_cache_path"] = options[TRT]["trt_timing_cache_path"] = cache
        _, first = load(bundle, provider, options, examples[0][:16000])
        recognizer, cached = load(bundle, provider, options, examples[0][:16000])
        engines = sorted(p.suffix for p in Path(cache).iterdir()) if provider == TRT else []
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            recognizer.transcribe((long_audio, 16000))
            times.append(time.perf_counter() - t0)
        texts = [recognizer.transcribe((x, 16000)).text for x in examples]
        log_probs = [recognizer.log_probs(x) for x in examples]
    row = {
        "provider": provider,
        "loaded": recognizer.backend.providers[0],
        "first_load_s": round(first, 3),
        "cached_load_s": round(cached, 3),
        "engine_files": len(engines),
        "rtf": round(min(times) / (len(long_audio) / 16000), 5),
        "texts": texts,
    }
    if reference is not None:
        ref_texts, ref_log_probs = reference
        errors = sum(edit_distance(list(r), list(t)) for r, t in zip(ref_texts, texts))
        row["cer_vs_cpu"] = round(errors / max(1, sum(len(r) for r in ref_texts)), 4)
        row["max_logprob_diff"] = round(max(float(np.abs(a - b).max()) for a, b in zip(ref_log_probs, log_probs)), 4)
    else:
        row["reference"] = (texts, log_probs)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["en-small", "en-base"], choices=sorted(EMBEDDED_MODELS))
    parser.add_argument("--seconds", type=float, default=20.0, help="audio for the RTF (the examples, tiled)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--float-bundle", action="append", default=[], metavar="MODEL=PATH")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    float_bundles = dict(item.split("=", 1) for item in args.float_bundle)
    import onnxruntime as ort

    available = ort.get_available_providers()
    notes = [
        f"{p}: not in this onnxruntime ({ort.__version__}, {ort.get_device()}): skipped"
        for p in PROVIDERS[1:]
        if p not in available
    ]
    examples = [audio.load_audio(str(path), 16000) for path in EXAMPLES]
    tiled = np.concatenate(examples)
    long_audio = np.tile(tiled, int(np.ceil(args.seconds * 16000 / len(tiled))))[: int(args.seconds * 16000)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="es_bench_gpu_") as workdir:
        for name in args.models:
            variants = [("shipped", Bundle.load(EMBEDDED_MODELS[name]))]
            half, note = fp16_bundle(name, float_bundles, Path(workdir))
            notes.append(note)
            if half is not None:
                variants.append(("fp16", half))
            reference = None  # the shipped model on CPU: what every row of this model is compared with
            for variant, bundle in variants:
                for provider in PROVIDERS:
                    if provider not in available:
                        continue
                    row = bench(bundle, provider, examples, long_audio, args.repeats, reference)
                    if reference is None:
                        reference = row.pop("reference")
                    rows.append({"model": name, "variant": variant, **row})
                    print(f"  {name} {variant} {provider}: {row['rtf']} RTF", file=sys.stderr, flush=True)
    print(
        "| model | variant | provider | loaded | first load s | cached load s | RTF | CER vs CPU | max logprob diff |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['variant']} | {r['provider'].replace('ExecutionProvider', '')} "
            f"| {r['loaded'].replace('ExecutionProvider', '')} | {r['first_load_s']} | {r['cached_load_s']} "
            f"| {r['rtf']} | {r.get('cer_vs_cpu', '(reference)')} | {r.get('max_logprob_diff', '')} |"
        )
    print()
    for note in notes:
        print(f"- {note}")
    for r in rows:
        if r["provider"] == CPU:
            print(f"- {r['model']} {r['variant']} CPU transcripts: {r['texts']}")
    gpu = ""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    print(
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; GPU: {gpu or 'none'}; "
        f"onnxruntime {ort.__version__} ({', '.join(available)}); python {platform.python_version()}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
