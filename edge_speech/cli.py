"""The edge-speech command line."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edge_speech import __version__, audio, batch, features, targets
from edge_speech.vad import KINDS as VAD_KINDS


def _load_factory(spec: str):
    """The callable named by ``module:function`` (importable, or a ``module.py`` in the current
    directory) or ``path/to/file.py:function``."""
    target, _, function = spec.rpartition(":")
    if not target or not function:
        raise ValueError(f"--factory must be module:function or file.py:function, got {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            path = Path(*target.split(".")).with_suffix(".py")  # a script beside the user, as `python -m` finds it
            if not path.is_file():
                raise ValueError(f"--factory: cannot import {target!r} ({err}) and there is no {path}") from None
        else:
            return _factory_attribute(module, function, spec)
    if not path.is_file():
        raise ValueError(f"--factory: {path} is not a file")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"--factory: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return _factory_attribute(module, function, spec)


def _factory_attribute(module, function: str, spec: str):
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"--factory {spec}: {module.__name__} has no function {function!r}")
    return factory


def _features(args: argparse.Namespace) -> int:
    samples, rate = audio.read_wav(args.file)
    config = features.FeatureConfig.preset(args.preset)
    if args.num_mel_bins:
        config = config.replace(num_mel_bins=args.num_mel_bins)
    feats = features.compute(samples, rate, config)
    summary = {
        "file": str(args.file),
        "sample_rate": rate,
        "duration_s": round(len(samples) / rate, 3),
        "preset": args.preset,
        "frames": int(feats.shape[0]),
        "dim": int(feats.shape[1]),
        "mean": round(float(feats.mean()), 4) if feats.size else None,
        "std": round(float(feats.std()), 4) if feats.size else None,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
        if feats.size:
            energy = feats.mean(axis=1)
            print(f"{'per-frame':>12}: " + _sparkline(energy, 60))
    if args.output:
        np.save(args.output, feats)
    return 0


def _model_argument(parser: argparse.ArgumentParser) -> None:
    from edge_speech.recognizer import DEFAULT_MODEL, EMBEDDED_MODELS

    parser.add_argument(
        "--model",
        choices=sorted(EMBEDDED_MODELS),
        default=DEFAULT_MODEL,
        help="embedded model when no --bundle is given: en-small (small, fast, always-on commands) "
        "or en-base (Whisper base encoder, much better on real voices, heavier)",
    )


def _transcribe(args: argparse.Namespace) -> int:
    from edge_speech.recognizer import Recognizer

    threads = args.threads
    if threads is None and len(args.files) > 1 and args.jobs != 1:
        threads = 1  # the files run in parallel already; more model threads per job would oversubscribe
    options = dict(target=args.target, backend=args.backend, threads=threads, beam=args.beam)
    rec = Recognizer.from_bundle(args.bundle, **options) if args.bundle else Recognizer.default(args.model, **options)
    options = {"lm": False if args.no_lm else args.lm, "hotwords": args.hotwords, "lm_weight": args.lm_weight}
    grammar = _grammar_argument(args)
    if grammar is not None:
        options = {"grammar": grammar, "grammar_threshold": args.grammar_threshold}
    failures = 0
    results = rec.transcribe_many(args.files, workers=args.jobs, progress=_progress_bar(), **options)
    for path, result in zip(args.files, results):
        if isinstance(result, Exception):
            failures += 1
            logging.getLogger("edge_speech").debug("%s failed", path, exc_info=result)
            print(f"edge-speech: {path}: {_failure(result)}", file=sys.stderr)
        elif args.json:
            print(json.dumps({"file": path, **result.to_dict()}), flush=True)
        else:
            print(f"{path}\t{result.text}", flush=True)
    return 1 if failures else 0


def _failure(err: Exception) -> str:
    """One file's error for stderr: the message of an input error, the kind too for anything
    else (a backend's RuntimeError, MemoryError), which may say nothing on its own."""
    message = str(err).strip() or "(no message)"
    if isinstance(err, (ValueError, TypeError, OSError)):
        return message
    return f"{type(err).__name__}: {message}"


def _grammar_argument(args: argparse.Namespace):
    """--grammar FILE or --sentences DIR (Home Assistant sentence templates, compiled once)."""
    if getattr(args, "sentences", None):
        if args.grammar:
            raise ValueError("give --grammar or --sentences, not both")
        from edge_speech import grammars  # imported here: the template loader is optional

        loader = getattr(grammars, "load_sentences", None)
        if loader is None:
            raise ValueError(
                "--sentences needs Home Assistant sentence support (edge_speech.grammars.load_sentences), "
                "which this edge_speech does not have"
            )
        return loader(args.sentences)
    return args.grammar or None


def _sentences_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sentences",
        metavar="DIR",
        help="Home Assistant sentence templates (a folder of YAML files, or one file) as the grammar",
    )


def _serve(args: argparse.Namespace) -> int:
    from edge_speech.recognizer import DEFAULT_MODEL
    from edge_speech.serving.engine import ServeConfig, ServeLimits
    from edge_speech.serving.run import serve

    logger = logging.getLogger("edge_speech")
    logger.setLevel(getattr(logging, args.log_level.upper()))
    for handler in logger.handlers:  # a long-running service: stamp each line
        if isinstance(handler, _CurrentStderrHandler):
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    limits = ServeLimits(
        max_audio_s=args.max_audio_seconds,
        idle_timeout_s=args.idle_timeout,
        max_connections=args.max_connections,
        max_sessions=args.max_sessions,
        queue=args.queue,
        max_upload_bytes=int(args.max_upload_mb * 1e6),
    )
    config = ServeConfig(
        models=tuple((args.bundle or []) + (args.model or [])) or (DEFAULT_MODEL,),
        language=args.language,
        grammar=args.grammar,
        sentences=args.sentences,
        grammar_threshold=args.grammar_threshold,
        wake=args.wake,
        wake_threshold=args.wake_threshold,
        hotwords=args.hotwords,
        vad=args.vad,
        streaming=not args.no_streaming,
        workers=args.workers,
        backend=args.backend,
        target=args.target,
        threads=args.threads,
        reload_interval_s=args.reload_interval,
        ab=args.ab,
        limits=limits,
    )
    try:
        serve(config, wyoming=args.wyoming, http=args.http, zeroconf=args.zeroconf)
    except KeyboardInterrupt:
        pass
    return 0


def _classify(args: argparse.Namespace) -> int:
    from edge_speech.classifier import KeywordClassifier

    clf = KeywordClassifier.from_bundle(args.bundle, target=args.target, backend=args.backend, threads=args.threads)
    failures = 0
    for path in args.files:
        try:
            result = clf.classify(path)
        except (ValueError, OSError) as err:
            failures += 1
            print(f"edge-speech: {path}: {err}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": path, **result.to_dict()}), flush=True)
        else:
            print(f"{path}\t{result.label}\t{result.confidence:.3f}", flush=True)
    return 1 if failures else 0


def _progress_bar():
    """A stderr progress bar for batches that last more than a few seconds, on a terminal only."""
    if not sys.stderr.isatty():
        return None
    import threading
    import time

    start, lock = time.monotonic(), threading.Lock()

    def update(done: int, total: int) -> None:
        if time.monotonic() - start < 3.0 and done < total:
            return
        with lock:
            filled = int(30 * done / total)
            end = "\n" if done == total else ""
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    return update


def _bench(args: argparse.Namespace) -> int:
    import resource
    import time

    from edge_speech.recognizer import Recognizer

    if args.providers is not None:
        return _bench_providers(args)

    rec = Recognizer.from_bundle(args.bundle, backend=args.backend, threads=args.threads)
    rate = rec.manifest.sample_rate
    rng = np.random.default_rng(0)
    samples = (0.05 * rng.standard_normal(int(args.seconds * rate))).astype(np.float32)
    rec.transcribe((samples[:rate], rate))  # warm-up
    best = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = rec.transcribe((samples, rate))
        elapsed = time.perf_counter() - t0
        if best is None or elapsed < best[0]:
            best = (elapsed, result)
    if best is None:
        raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    elapsed, result = best
    stream = rec.create_stream()
    chunk = int(0.1 * rate)
    latencies = []
    for start in range(0, len(samples), chunk):
        t0 = time.perf_counter()
        stream.accept_waveform(samples[start : start + chunk], rate)
        latencies.append(time.perf_counter() - t0)
    stream.finish()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "bundle": args.bundle,
        "backend": rec.backend.name,
        "providers": list(rec.backend.providers),
        "audio_s": args.seconds,
        "rtf": round(elapsed / args.seconds, 5),
        "share": {k: round(v / sum(result.timings.values()), 3) for k, v in result.timings.items()},
        "stream_chunk_ms_p50": round(1e3 * float(np.median(latencies)), 2),
        "stream_chunk_ms_max": round(1e3 * max(latencies), 2),
        "peak_rss_mb": round(peak_mb, 1),
    }
    print(json.dumps(report) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in report.items()))
    return 0


def _convert(args: argparse.Namespace) -> int:
    try:  # by name: the wheel maps converters/ into the package, the source tree keeps it beside
        converters = importlib.import_module("edge_speech.converters")
    except ImportError as err:
        raise ValueError(str(err)) from None
    import torch

    shared = dict(  # what both conversion paths take from the command line
        calib=args.calib,
        eval=_read_eval(args.eval) if args.eval else None,
        prune=args.prune,
        quantize=None if args.quantize == "float" else args.quantize,
        formats=tuple(args.formats.split(",")),
        target=args.target,
        out=args.output,
        name=args.name,
        max_accuracy_drop=args.max_accuracy_drop,
        min_agreement=args.min_agreement or None,
    )
    if args.model and os.path.isdir(args.model):  # a Hugging Face *ForCTC directory
        if args.sweep:
            raise ValueError(
                "--sweep takes a --factory model; Hugging Face model directories convert one setting at a time"
            )
        if args.factory or args.tokens:
            raise ValueError(
                f"{args.model} is a model directory: it brings its own model and tokens (drop --factory/--tokens)"
            )
        report = converters.convert_wav2vec2(args.model, **shared)
        print(json.dumps(report.to_dict(), indent=2, default=float))
        return 0
    if not args.factory or not args.tokens:
        raise ValueError("convert needs --factory and --tokens (or a Hugging Face CTC model directory as MODEL)")
    factory = _load_factory(args.factory)
    model = converters.load_checkpoint(args.model, factory) if args.model else factory().eval()
    tokens = _read_tokens(args.tokens)
    config = features.FeatureConfig.preset(args.features)
    example = torch.zeros(1, 200, config.dim)
    with torch.no_grad():
        if model(example).dim() == 2:  # a classifier: the example is its clip
            example = torch.zeros(1, config.num_frames(int(args.clip_seconds * 16000), 16000), config.dim)
    model_options = dict(  # what a PyTorch model's conversion (one, or each of a sweep) takes besides
        finetune_epochs=args.finetune_epochs,
        finetune_data=_read_eval(args.finetune_data) if args.finetune_data else None,
        importance=args.importance,
        ignored_layers=args.ignore_layer or (),
        layer_ratios=_layer_ratios(args.layer_ratio),
        strict=args.strict,
        lm=args.lm,
        decoder=_decoder_defaults(args.decoder),
    )
    if args.sweep:  # every setting of the sweep file's grid through convert(), on Ray
        from edge_speech.converters.sweep import sweep_from_file

        if args.prune is not None or args.target is not None:
            raise ValueError("--sweep: prune and target come from the sweep file's 'search', not --prune/--target")
        result = sweep_from_file(
            args.sweep,
            model,
            example,
            config,
            tokens,
            calib=shared["calib"],
            eval=shared["eval"],
            out=args.output,
            formats=shared["formats"],
            max_accuracy_drop=args.max_accuracy_drop,
            **model_options,
        )
        print(json.dumps(result.to_dict(), indent=2, default=float))
        return 0
    report = converters.convert(model, example, config, tokens, **shared, **model_options)
    print(json.dumps(report.to_dict(), indent=2, default=float))
    return 0


def _read_tokens(path: str) -> list:
    """One token per line; or sherpa-style 'symbol id' lines (when every line ends in its index),
    where the symbol is everything before the last space, so a space token's line ' 1' stays ' '."""
    lines = [line.rstrip("\n").rstrip("\r") for line in open(path, encoding="utf-8")]
    lines = [line for line in lines if line != ""]
    indexed = [line.rpartition(" ") for line in lines]
    if lines and all(sep and index.isdigit() for _, sep, index in indexed):
        by_index = {int(index): symbol for symbol, _, index in indexed}
        if sorted(by_index) != list(range(len(lines))):
            raise ValueError(f"{path}: 'symbol id' lines must number the tokens 0..{len(lines) - 1} once each")
        return [by_index[i] for i in range(len(lines))]
    return lines


def _decoder_defaults(items) -> "dict | None":
    """--decoder KEY=VALUE options as the manifest's decoder defaults (numbers and true/false parsed)."""
    if not items:
        return None
    defaults = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--decoder takes KEY=VALUE (e.g. beam=16), got {item!r}")
        if value in ("true", "false"):
            defaults[key] = value == "true"
        else:
            try:
                defaults[key] = int(value) if value.lstrip("-").isdigit() else float(value)
            except ValueError:
                raise ValueError(f"--decoder {key}: {value!r} is not a number or true/false") from None
    return defaults


def _layer_ratios(items) -> "dict | None":
    """--layer-ratio NAME=RATIO options as a dict."""
    ratios = {}
    for item in items or ():
        name, sep, value = item.rpartition("=")
        try:
            ratios[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"--layer-ratio takes NAME=RATIO (a module name and a fraction), got {item!r}")
    return ratios or None


def _read_eval(path: str) -> list:
    """(audio path, transcript or label) pairs from a TSV ('path<TAB>text' lines) or a JSONL
    manifest (objects with "audio" and "text", or "audio_filepath" and "text" as NeMo writes, or
    "label"); relative audio paths are taken from the manifest's folder."""
    folder = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if path.endswith(".jsonl"):
                try:
                    row = json.loads(line)
                    audio_path = row.get("audio", row.get("audio_filepath"))
                    text = row.get("text", row.get("label"))
                except (json.JSONDecodeError, AttributeError):
                    raise ValueError(f"{path}:{number}: not a JSON object") from None
                if not isinstance(audio_path, str) or not isinstance(text, str):
                    raise ValueError(
                        f'{path}:{number}: needs string fields "audio" (or "audio_filepath") and "text" (or "label")'
                    )
            elif "\t" in line:
                audio_path, text = line.rstrip("\n").split("\t", 1)
            else:
                raise ValueError(f"{path}:{number}: expected 'audio path<TAB>transcript'")
            pairs.append((os.path.join(folder, audio_path), text))
    return pairs


def _listen(args: argparse.Namespace) -> int:
    from edge_speech import listen
    from edge_speech.recognizer import Recognizer

    rec = Recognizer.from_bundle(args.bundle) if args.bundle else Recognizer.default(args.model)
    source: listen.WavSource | listen.MicrophoneSource
    if args.wav:
        source = listen.WavSource(args.wav, realtime=args.realtime)
    else:
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        source = listen.MicrophoneSource(device)
    try:
        vad_options = {"model_path": args.silero_model} if args.silero_model else None
        if vad_options and args.vad != "silero":
            raise ValueError("--silero-model needs --vad silero")
        grammar = _grammar_argument(args)
        for event in listen.listen(
            rec,
            source,
            grammar=grammar,
            grammar_threshold=args.grammar_threshold,
            wake=args.wake,
            vad=args.vad,
            vad_options=vad_options,
        ):
            if args.json:
                print(event.to_json(), flush=True)
            elif event.type != "partial":
                extra = f"  {event.intent} {event.slots or ''} ({event.confidence:.2f})" if event.intent else ""
                print(f"[{event.start:7.2f}-{event.end:7.2f}] {event.type:>6}: {event.text}{extra}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if hasattr(source, "close"):
            source.close()
    return 0


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _bench_providers(args: argparse.Namespace) -> int:
    """Per execution provider: the first load (TensorRT builds its engines into a fresh cache),
    a second load (engines from that cache), and the real-time factor."""
    import tempfile

    from edge_speech import backends
    from edge_speech.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    if "onnx" not in bundle.model_bytes:
        raise ValueError(f"{args.bundle}: --providers compares ONNX Runtime providers; the bundle has no ONNX model")
    profile = targets.get_target(args.target or targets.detect().target)
    gpu_options = targets.get_target("x86_64-cuda")  # a profile without GPU options borrows these
    available = backends.import_onnxruntime().get_available_providers()
    wanted = args.providers or [p for p in (*GPU_PROVIDERS, "CPUExecutionProvider") if p in available]
    rate = bundle.manifest.sample_rate
    samples = (0.05 * np.random.default_rng(0).standard_normal(int(args.seconds * rate))).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="es_bench_trt_") as cache:
        for provider in wanted:
            source = profile if profile.provider_options.get(provider) else gpu_options
            options = backends.onnx_provider_options(bundle, [provider], source)
            if "trt_engine_cache_path" in options.get(provider, {}):  # a fresh cache: the first load builds
                options[provider]["trt_engine_cache_path"] = options[provider]["trt_timing_cache_path"] = cache
            rows.append(_bench_one_provider(bundle, provider, options, samples, rate, args))
    if args.json:
        print(json.dumps({"bundle": args.bundle, "target": profile.name, "rows": rows}))
        return 0
    print(f"bundle {args.bundle}, {args.seconds:g} s of audio, profile {profile.name}")
    print("| provider | loaded | first load s | cached load s | RTF | note |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['provider']} | {', '.join(row['loaded'])} | {row['first_load_s']} | {row['cached_load_s']} "
            f"| {row['rtf']} | {row['note']} |"
        )
    return 0


def _bench_one_provider(bundle, provider: str, options: dict, samples, rate: int, args) -> dict:
    import time
    import warnings

    from edge_speech import backends
    from edge_speech.recognizer import Recognizer

    def load() -> "tuple[Recognizer, float]":
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the note column says why a provider fell back
            backend = backends.create_backend(
                bundle, "onnx", threads=args.threads, providers=[provider], provider_options=options
            )
            recognizer = Recognizer(bundle, backend)
            recognizer.transcribe((samples[:rate], rate))  # TensorRT may build at the first run
        return recognizer, round(time.perf_counter() - t0, 3)

    _, first = load()
    recognizer, cached = load()  # the same again, with what the first one cached
    loads = [first, cached]
    best = min(_timed(lambda: recognizer.transcribe((samples, rate))) for _ in range(max(1, args.repeats)))
    loaded = list(recognizer.backend.providers)
    return {
        "provider": provider,
        "loaded": loaded,
        "first_load_s": loads[0],
        "cached_load_s": loads[1],
        "rtf": round(best / args.seconds, 5),
        "note": "" if loaded[0] == provider else (getattr(recognizer.backend, "fallback", None) or "not loaded"),
    }


def _timed(call) -> float:
    import time

    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _devices(args: argparse.Namespace) -> int:
    from edge_speech import listen

    for d in listen.list_devices():
        print(f"{d['index']:>3}  {d['name']}  ({d['channels']} ch, {d['default_rate']} Hz)")
    return 0


def _targets(args: argparse.Namespace) -> int:
    profiles = targets.load_targets()
    if args.detect:
        return _detect(args)
    width = max(len(n) for n in profiles)
    for name, target in profiles.items():
        print(
            f"{name:<{width}}  {target.backend:<6} threads={target.threads or 'all'}  "
            f"quant={target.quantization:<5} {target.description}"
        )
    return 0


def _detect(args: argparse.Namespace) -> int:
    """The board (under --root: captured files), its profile, and which of the profile's
    providers load here (a one-node model; a bundle with --bundle), CPU when none does."""
    from edge_speech import backends

    found = targets.detect(args.root)
    profile = targets.get_target(found.target)
    if args.bundle:
        from edge_speech.bundle import Bundle

        bundle = Bundle.load(args.bundle)
        backend = backends.create_backend_for_target(bundle, profile.name, backend="onnx")
        fallback = getattr(backend, "fallback", None)
        loaded, notes = tuple(backend.providers), (fallback.split("; ") if fallback else [])
    else:
        loaded, notes = backends.probe_providers(profile.onnx_providers)
    report = {
        **found.to_dict(),
        "profile_providers": list(profile.onnx_providers),
        "loaded_providers": list(loaded),
        "provider_notes": notes,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{found.target}  ({found.reason})")
    print(f"{'machine':>18}: {found.machine}" + (f", {found.mem_total_mb} MB" if found.mem_total_mb else ""))
    if found.cpu_parts:
        print(f"{'CPU parts':>18}: {', '.join(found.cpu_parts)}")
    if found.l4t_release:
        print(f"{'L4T':>18}: {found.l4t_release} (JetPack {found.jetpack or 'unknown'})")
    print(f"{'providers wanted':>18}: {', '.join(profile.onnx_providers)}")
    print(f"{'providers loaded':>18}: {', '.join(loaded)}")
    for line in found.warnings:  # each provider that did not load was logged as a warning already
        print(f"edge-speech: warning: {line}", file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    from edge_speech.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    m = bundle.manifest
    summary = {
        "source": bundle.source,
        "name": m.name,
        "kind": m.kind,
        "schema_version": m.schema_version,
        "sample_rate": m.sample_rate,
        "features": (
            f"{m.features.kind} dim {m.features.dim}, {m.features.frame_shift_ms:g} ms shift"
            if m.features
            else "none: waveform input" + (", normalised per utterance" if m.input.normalize else "")
        ),
        "tokens": len(m.tokens),
        "frame_shift_s": round(m.frame_shift_s, 4),
        "input": f"{m.input.layout}"
        + (
            f", chunks of {m.input.chunk_frames} (+{m.input.left_context_frames}/"
            f"{m.input.right_context_frames} context)"
            if m.input.chunk_frames
            else ", dynamic"
        ),
        "quantization": m.quantization.get("scheme", "float"),
        "target": m.target,
        "models": {fmt: f"{name} ({len(bundle.model_bytes[fmt]) / 1e6:.2f} MB)" for fmt, name in m.models.items()},
        "verification": dict(m.verification),
        "decoder": dict(m.decoder) or "greedy/beam defaults, no LM",
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            if key == "verification" and value.get("steps"):
                print(f"{key:>14}:")
                for line in _verification_table(value["steps"]):
                    print("  " + line)
            else:
                print(f"{key:>14}: {value}")
    return 0


def _verification_table(steps) -> list:
    """The converter's record, one row per step: what it cost and how far it moved the output."""

    def agreement(step):
        check = step.get("vs_torch") or step.get("vs_fp32") or {}
        if not check:
            return ""
        tokens = check.get("greedy_token_agreement")
        parts = [
            f"cos {check['cosine']:.4f}" if check.get("cosine") is not None else "",
            f"SNR {check['snr_db']:.1f} dB" if check.get("snr_db") is not None else "",
            f"tokens {tokens:.1%}" if isinstance(tokens, (int, float)) and tokens == tokens else "",
        ]
        return ", ".join(p for p in parts if p)

    def size(step):
        if "macs" in step:
            return f"{step['macs'] / 1e6:.2f} M MACs"
        if "macs_after" in step:
            return f"{step['macs_after'] / 1e6:.2f} M MACs (-{step.get('mac_reduction', 0):.1%})"
        if "bytes" in step:
            ratio = f", {step['size_ratio']:.2f}x smaller" if "size_ratio" in step else ""
            return f"{step['bytes'] / 1e6:.2f} MB{ratio}"
        return ""

    def quality(step):
        if "cer" in step:
            return f"CER {step['cer']:.1%}, WER {step.get('wer', 0):.1%}"
        return f"accuracy {step['accuracy']:.1%}" if "accuracy" in step else ""

    def notes(step):
        text = " ".join(step.get("warnings", [])) or step.get("error", "")
        return text if len(text) <= 160 else text[:157] + "..."

    header = ("step", "size", "vs reference", "eval", "notes")
    rows = [
        (
            str(s.get("step", "?")) + (f" ({s['scheme']})" if s.get("scheme") else ""),
            size(s),
            agreement(s),
            quality(s),
            notes(s),
        )
        for s in steps
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def _sparkline(values: np.ndarray, width: int) -> str:
    bars = " .:-=+*#%@"
    blocks = np.array_split(values, min(width, len(values)))
    means = np.array([b.mean() for b in blocks])
    lo, hi = means.min(), means.max()
    scaled = np.zeros_like(means) if hi == lo else (means - lo) / (hi - lo)
    return "".join(bars[int(round(v * (len(bars) - 1)))] for v in scaled)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives. main() may run many times in one
    process (tests, embedding applications); a stream captured once could by then be closed, or
    its file descriptor reused by a socket."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _configure_logging(verbose: int, quiet: int) -> None:
    """The package logger's level and a stderr handler: warnings by default, -v info, -vv debug, -q errors."""
    level = max(logging.DEBUG, min(logging.ERROR, logging.WARNING - 10 * verbose + 10 * quiet))
    logger = logging.getLogger("edge_speech")
    logger.setLevel(level)
    if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):  # one, however often main() runs
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("edge-speech: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False  # the handler above prints; the root logger would print it again


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-speech", description="Offline speech recognition for small devices.")
    parser.add_argument("--version", action="version", version=f"edge-speech {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="log errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("features", help="compute log-mel or MFCC features of a WAV file and summarise them")
    p.add_argument("file")
    p.add_argument("--preset", default="kaldi-fbank", choices=sorted([*features.PRESETS, *features.OFFLINE_PRESETS]))
    p.add_argument("--num-mel-bins", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--output", help="save the features as a .npy file")
    p.set_defaults(run=_features)
    p = sub.add_parser("transcribe", help="transcribe audio files with a bundle")
    p.add_argument("files", nargs="+")
    p.add_argument(
        "--bundle",
        help="bundle directory, .zip or .onnx model with an embedded manifest "
        "(default: an embedded English model, see --model)",
    )
    _model_argument(p)
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
    p.add_argument("--target", help="device profile (see 'edge-speech targets')")
    p.add_argument("--threads", type=int, help="model threads (default: all cores for one file, 1 per job for several)")
    p.add_argument("--jobs", type=int, help="files transcribed in parallel (default: up to 4)")
    p.add_argument("--beam", type=int, help="beam width; 1 is greedy decoding (default: the bundle's, else 8)")
    p.add_argument("--lm", help="ARPA n-gram language model for shallow fusion (default: the bundle's own, if any)")
    p.add_argument("--no-lm", action="store_true", help="do not use the bundle's own LM")
    p.add_argument("--lm-weight", type=float, help="LM weight (default: the bundle's, else 0.5)")
    p.add_argument("--hotwords", help="file with one phrase per line, optionally 'phrase:boost'")
    p.add_argument("--grammar", help="command grammar: YAML intents (.yaml) or JSGF (.gram/.jsgf)")
    p.add_argument(
        "--grammar-threshold",
        type=float,
        help="confidence below which a command is rejected (default: the bundle's calibrated one, else 0.5)",
    )
    _sentences_argument(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(run=_transcribe)
    p = sub.add_parser("classify", help="label audio files with a keyword classifier bundle")
    p.add_argument("files", nargs="+")
    p.add_argument("--bundle", required=True, help="classifier bundle (edge-speech convert of a keyword model)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
    p.add_argument("--target", help="device profile (see 'edge-speech targets')")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="one JSON object per file, with every label's probability")
    p.set_defaults(run=_classify)
    p = sub.add_parser("bench", help="real-time factor, streaming chunk latency and peak memory of a bundle")
    p.add_argument("bundle")
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
    p.add_argument("--threads", type=int)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--providers",
        nargs="*",
        help="compare ONNX Runtime execution providers (default: TensorRT, CUDA and CPU where available): "
        "first load, cached load and RTF of each",
    )
    p.add_argument("--target", help="with --providers: the profile whose provider options apply (default: detected)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_bench)
    p = sub.add_parser(
        "convert", help="prune, quantize, export and verify a PyTorch CTC model or keyword classifier into a bundle"
    )
    p.add_argument(
        "model",
        nargs="?",
        help="checkpoint (state dict or safetensors; omit to use the factory's weights), "
        "or a local Hugging Face Wav2Vec2/HuBERT/WavLM/Data2VecAudio/Wav2Vec2Conformer ForCTC directory "
        "(config, weights, vocab.json)",
    )
    p.add_argument("--factory", help="module:function returning the nn.Module (features [B,T,D] -> log-probs)")
    p.add_argument("--tokens", help="one token per line (blank first); sherpa-style 'token id' lines work")
    p.add_argument("--features", default="kaldi-fbank", choices=sorted(features.PRESETS))
    p.add_argument("--calib", help="folder of calibration WAVs (required for int8)")
    p.add_argument(
        "--eval",
        help="TSV of 'wav path<TAB>transcript' lines, or a .jsonl manifest ({\"audio\": ..., "
        '"text" or "label": ...}), for CER or accuracy before and after each step',
    )
    p.add_argument(
        "--clip-seconds",
        type=float,
        default=1.0,
        help="keyword classifiers (models with one output per label): the clip length they were trained on",
    )
    p.add_argument("--prune", type=float, help="fraction of MACs to remove")
    p.add_argument(
        "--ignore-layer",
        action="append",
        metavar="NAME",
        help="module name (as model.named_modules() gives it) never pruned; repeatable",
    )
    p.add_argument(
        "--layer-ratio",
        action="append",
        metavar="NAME=RATIO",
        help="fixed channel ratio for one module, e.g. blocks.0.pointwise=0.1; repeatable",
    )
    p.add_argument(
        "--strict", action="store_true", help="a pruning shortfall or a failed format is an error, not a warning"
    )
    p.add_argument("--finetune-epochs", type=int, default=0)
    p.add_argument(
        "--finetune-data",
        help="audio to fine-tune on after pruning, as --eval (TSV or JSONL; "
        "never the --eval audio); default: distil on the --calib audio",
    )
    p.add_argument(
        "--importance",
        default="magnitude",
        choices=["magnitude", "taylor"],
        help="channel importance for pruning (taylor: gradients on the --calib audio)",
    )
    p.add_argument("--lm", help="ARPA word LM (.arpa or .arpa.gz) shipped in the bundle as its default search")
    p.add_argument(
        "--decoder",
        action="append",
        metavar="KEY=VALUE",
        help="a decoder default for the manifest: beam, lm_weight, word_bonus, lexicon, "
        "grammar_threshold, grammar_token_bonus (repeatable)",
    )
    p.add_argument("--quantize", default="int8", choices=["int8", "int16x8", "dynamic", "fp16", "float", "target"])
    p.add_argument("--max-accuracy-drop", type=float, help="CER points the quantization may cost")
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.95,
        help="int8 ONNX's greedy-token agreement with float on the calibration audio below which the activations "
        "costing most stay float (int8 weights kept); 0 turns the guard off (default 0.95)",
    )
    p.add_argument("--formats", default="onnx", help="comma-separated: onnx,tflite")
    p.add_argument("--target", help="device profile (see 'edge-speech targets')")
    p.add_argument("--name", default="model")
    p.add_argument("-o", "--output", required=True, help="bundle directory to write (with --sweep: the sweep's folder)")
    p.add_argument(
        "--sweep",
        metavar="SWEEP.yaml",
        help="run a conversion sweep on Ray (pip install 'edge-speech[ray]') instead of one conversion: a YAML file "
        "with 'search' (lists of prune, quantize, calib_size, target), optional 'constraints' (max_bytes, "
        "max_macs, max_rtf, max_cer_loss), 'ray_address' and 'workers'",
    )
    p.set_defaults(run=_convert)
    p = sub.add_parser("listen", help="recognise speech and commands live from a microphone or a WAV file")
    p.add_argument("--bundle")
    _model_argument(p)
    p.add_argument("--grammar", help="command grammar: YAML intents or JSGF")
    p.add_argument(
        "--grammar-threshold",
        type=float,
        help="confidence below which a command is rejected (default: the bundle's calibrated one, else 0.5)",
    )
    _sentences_argument(p)
    p.add_argument("--wake", help="wake phrase, e.g. 'hey computer'")
    p.add_argument("--device", help="capture device index or name substring (see 'edge-speech devices')")
    p.add_argument("--wav", help="replay a WAV file instead of a microphone")
    p.add_argument("--realtime", action="store_true", help="replay the WAV at real-time pace")
    p.add_argument(
        "--vad",
        default="energy",
        choices=VAD_KINDS,
        help="voice activity detector gating the model: native energy VAD or Silero VAD (ONNX)",
    )
    p.add_argument("--silero-model", help="path of silero_vad.onnx (default: the one in the silero-vad package)")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    p.set_defaults(run=_listen)
    p = sub.add_parser(
        "serve",
        help="serve recognition to Home Assistant (Wyoming protocol) and other processes (HTTP and WebSocket)",
    )
    p.add_argument(
        "--wyoming",
        metavar="URI",
        help="Wyoming server address: tcp://HOST:PORT (Home Assistant's default port is 10300) or unix://PATH",
    )
    p.add_argument(
        "--http",
        metavar="ADDRESS",
        help="HTTP/WebSocket API address, HOST:PORT (e.g. 127.0.0.1:8080) or unix://PATH: "
        "/v1/audio/transcriptions, /v1/stream, /v1/intents, /v1/models, /healthz, /metrics",
    )
    p.add_argument(
        "--ab",
        metavar="A=W,B=W",
        help="split new sessions between served models by weight, e.g. en-small=90,./new-bundle=10 "
        "(names of served models or bundle paths); results carry the model and bundle that made them",
    )
    p.add_argument(
        "--bundle",
        action="append",
        help="bundle to serve (watched and hot-reloaded); repeatable, the first one is the default model",
    )
    from edge_speech.recognizer import EMBEDDED_MODELS

    p.add_argument(
        "--model",
        action="append",
        choices=sorted(EMBEDDED_MODELS),
        help="embedded model to serve; repeatable (default: en-small when no --bundle is given)",
    )
    p.add_argument("--language", default="en", help="language of the served models (default: en)")
    p.add_argument(
        "--grammar",
        help="command grammar (YAML intents or JSGF): transcripts carry intents, other "
        "speech gives an empty transcript, and 'recognize' matches text against it",
    )
    _sentences_argument(p)
    p.add_argument(
        "--grammar-threshold",
        type=float,
        help="confidence below which a command is rejected (default: the bundle's calibrated one, else 0.5)",
    )
    p.add_argument("--wake", help="wake phrase served to 'detect' requests, e.g. 'hey computer'")
    p.add_argument("--wake-threshold", type=float, help="confidence a wake phrase needs (default: as for commands)")
    p.add_argument("--hotwords", help="file with one phrase per line, optionally 'phrase:boost' (open vocabulary only)")
    p.add_argument("--vad", default="energy", choices=VAD_KINDS, help="VAD for voice-started/voice-stopped and wake")
    p.add_argument("--no-streaming", action="store_true", help="no transcript-start/-chunk/-stop partials")
    p.add_argument("--workers", type=int, help="recognition worker threads (default: one per core)")
    p.add_argument(
        "--queue",
        type=int,
        help="jobs that may wait for a worker before requests are refused as busy (default: 8 per worker)",
    )
    p.add_argument(
        "--max-sessions", type=int, help="audio streams open at once, live ones included (default: 16 per worker)"
    )
    p.add_argument("--max-audio-seconds", type=float, default=30.0, help="longest audio of one request")
    p.add_argument("--max-upload-mb", type=float, default=16.0, help="largest HTTP request body, in MB")
    p.add_argument("--max-connections", type=int, default=2048)
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds before a silent connection is closed")
    p.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        help="seconds between checks of the served bundles for a new version (0: no hot reload)",
    )
    p.add_argument(
        "--zeroconf",
        metavar="NAME",
        help="announce the service for Home Assistant's discovery (needs the zeroconf package; tcp:// only)",
    )
    p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
    p.add_argument("--target", help="device profile (see 'edge-speech targets')")
    p.add_argument(
        "--threads", type=int, default=1, help="model threads per job (default 1: the workers run in parallel)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=_serve)
    p = sub.add_parser("devices", help="list audio capture devices")
    p.set_defaults(run=_devices)
    p = sub.add_parser("info", help="summarise a bundle, a bundle zip or a model file with an embedded manifest")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_info)
    p = sub.add_parser("targets", help="list device profiles, or suggest one for this machine")
    p.add_argument(
        "--detect",
        action="store_true",
        help="read the device-tree model, /proc/cpuinfo, /proc/meminfo and /etc/nv_tegra_release, pick a profile "
        "and show which of its execution providers load",
    )
    p.add_argument("--root", default="/", help="with --detect: read those files under this folder (captured files)")
    p.add_argument("--bundle", help="with --detect: start this bundle's ONNX model with the profile's providers")
    p.add_argument("--json", action="store_true", help="with --detect: one JSON object")
    p.set_defaults(run=_targets)
    batch.register_cli(sub)  # edge-speech batch transcribe|evaluate (Ray; imported only when run)
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (edge-speech ... | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail
        return 0
    except (ValueError, TypeError, OSError, NotImplementedError, ImportError) as err:
        print(f"edge-speech: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
