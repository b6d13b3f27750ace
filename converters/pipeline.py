"""One call from a trained model to a verified bundle: prune, export, quantize, verify, write."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_speech import __version__, audio, features
from edge_speech.classifier import clip_features
from edge_speech.converters import recurrent
from edge_speech.converters._deps import import_torch
from edge_speech.converters.bundle_writer import write_bundle
from edge_speech.converters.export import WAVEFORM_WINDOW_SECONDS, export_onnx, export_tflite, export_tflite_waveform
from edge_speech.converters.preflight import pad_frames, preflight
from edge_speech.converters.pruning import count_macs
from edge_speech.converters.pruning import prune as prune_model
from edge_speech.converters.quantization import MIN_AGREEMENT, quantize_within_agreement
from edge_speech.converters.quantization import quantize as quantize_onnx
from edge_speech.converters.report import REPORT_FOLDER, write_report
from edge_speech.converters.verification import (
    error_rate,
    greedy_tokens,
    onnx_runner,
    tflite_runner,
    torch_runner,
    verify,
    within_max_frames,
)
from edge_speech.manifest import InputSpec, Manifest

AudioSet = Union[str, Path, Iterable[Any]]


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    bundle: str
    fp32_bundle: Optional[str]
    steps: Tuple[dict, ...]
    # The torch model the bundle was exported from (pruned, fine-tuned): the reference for checks.
    model: Any = dataclasses.field(default=None, repr=False, compare=False)

    def step(self, name: str) -> dict:
        return next(s for s in self.steps if s["step"] == name)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "fp32_bundle": self.fp32_bundle, "steps": list(self.steps)}


LOG = logging.getLogger(__name__)
_FEATURES_INPUT = InputSpec()  # frozen: one shared default


def _record(steps: list, step: dict) -> None:
    """Appends a step to the report and logs it (``edge-speech -v convert`` shows the progress)."""
    steps.append(step)
    facts = ", ".join(f"{key} {step[key]}" for key in ("scheme", "bytes", "macs", "error") if step.get(key) is not None)
    LOG.info("convert: %s%s", step.get("step", "?"), f" ({facts})" if facts else "")


def convert(
    model,
    example_input,
    feature_config: Optional[features.FeatureConfig],
    tokens: Sequence[str],
    *,
    calib: Optional[AudioSet] = None,
    eval: Optional[Sequence[Tuple[Any, str]]] = None,
    prune: Optional[float] = None,
    importance: str = "magnitude",
    quantize: Optional[str] = "int8",
    formats: Sequence[str] = ("onnx",),
    target: Optional[str] = None,
    out: "str | Path" = "bundle",
    sample_rate: int = 16000,
    blank_id: int = 0,
    name: str = "model",
    keep_fp32: bool = True,
    max_calibration: int = 64,
    tflite_chunk_frames: int = 64,
    tflite_context_frames: int = 16,
    tflite_window_seconds: Sequence[float] = WAVEFORM_WINDOW_SECONDS,
    finetune_epochs: int = 0,
    max_accuracy_drop: Optional[float] = None,
    min_agreement: Optional[float] = MIN_AGREEMENT,
    input_spec: Optional[InputSpec] = None,
    subsampling_factor: Optional[int] = None,
    output_is_log_probs: bool = True,
    ignored_layers: Sequence[Any] = (),
    layer_ratios: Optional[Dict[str, float]] = None,
    strict: bool = False,
    finetune_data: Optional[Iterable[Any]] = None,
    finetune_options: Optional[Dict[str, Any]] = None,
    decoder: Optional[Dict[str, Any]] = None,
    lm: "str | Path | None" = None,
) -> ConversionReport:
    """Converts a CTC model (features [1, frames, dim] -> log-probs [1, frames', vocab]).

    ``prune``: fraction of MACs to remove. ``quantize``: ``"int8"``, ``"int16x8"``, ``"dynamic"``,
    ``"fp16"`` (ONNX weights and compute in float16 with float32 inputs and outputs, for CUDA and
    TensorRT; verified against fp32 like int8; a TFLite model stays float32), ``None`` (float),
    or ``"target"`` to take the scheme from ``target``'s profile. ``calib``: a
    folder of WAVs or an iterable of audio (arrays at ``sample_rate`` or paths). ``eval``:
    ``(audio, transcript)`` pairs for CER before and after each step. Writes the final bundle to
    ``out`` (and the float one to ``out``-fp32 when quantized and ``keep_fp32``). ``formats``
    may add ``"tflite"``: a fixed-shape model over windows of ``tflite_chunk_frames`` plus
    ``tflite_context_frames`` on each side (int8 when ``quantize="int8"``, int8 weights with float
    activations when ``"dynamic"``); for waveform models,
    one signature per window of ``tflite_window_seconds`` (see :func:`export_tflite_waveform`).
    ``finetune_epochs``: after pruning, distil from the unpruned model on ``finetune_data``
    (audio items, or ``(audio, transcript)`` pairs that add a CTC term; classifiers: a label),
    or on the calibration audio when it is None; ``finetune_options``: keyword arguments of
    :func:`~edge_speech.converters.finetune` (``lr``, ``batch_size``, ``checkpoint``, ...). The
    evaluation audio is never trained on: ``finetune_data`` sharing an utterance with ``eval`` is
    refused. ``max_accuracy_drop``: CER points (greedy-token disagreement without ``eval``) the
    ONNX quantization may cost; the most sensitive layers go back to float until it holds.
    ``min_agreement`` (default 0.95; ``None`` turns it off): the static int8 (and int16x8) ONNX
    model's greedy-token agreement with the float one on the first 8 calibration utterances
    (classifiers: equal labels) that the conversion guarantees: below it, the activations whose
    rounding costs most are left in float (int8 weights and file size unchanged; those layers
    run in float) until it holds (:func:`~edge_speech.converters.quantization.quantize_within_agreement`),
    recorded in the report's quantize step as ``agreement_guard``; a model that meets it costs one
    comparison. If it cannot be met with every activation in float, that is a warning (an error
    with ``strict=True``). Waveform models' static int8 TFLite below the bound (measured against
    torch on the same audio) is replaced by int8 weights dequantized for float kernels when that
    agrees better (``agreement_guard`` in the report's export_tflite step).

    ``ignored_layers``: modules (or their names in ``model.named_modules()``) never pruned.
    ``layer_ratios``: per-layer channel ratios by module name, fixed while a uniform ratio for
    the other layers is searched to reach ``prune``. A pruning shortfall (more than 5 points
    below ``prune``) and a failed TFLite export are warnings on the console and in the report,
    keeping every finished artifact (the ONNX bundle is written before TFLite is tried);
    ``strict=True`` makes them errors (raised after the ONNX bundle is written).

    Before any pruning or quantization, a preflight (:mod:`~edge_speech.converters.preflight`,
    seconds) checks the ONNX export at several lengths, measures the model's frame mapping (a
    front end giving other than ceil(T / subsampling) frames, such as an unpadded
    Conv2dSubsampling, is exported with the trailing zero frames that make it so; one no padding
    fixes is refused for TFLite) and refuses layers a requested format cannot hold (an LSTM with
    ``proj_size`` or a ReLU RNN in int8 TFLite), raising ``ValueError`` with the layer's name and
    the alternative.

    Recurrent models: unidirectional LSTM/GRU models whose chunked run with carried state equals
    the whole run (measured, :func:`~edge_speech.converters.recurrent.stream_plan`) are exported
    with their state as inputs and outputs, so the runtime streams them exactly; GRUs reach int8
    TFLite lowered to matmuls and gates (int8 weights, float activations). Models with full
    attention (an unbounded receptive field, measured) get TFLite windows with 96 frames of
    context each side and int8 weights with float activations.

    ``decoder``: the bundle's decoder defaults (keys of :data:`edge_speech.bundle.DECODER_KEYS`);
    ``lm``: an ARPA word LM (``.arpa`` or ``.arpa.gz``) shipped in the bundle as its default
    search (``decoder["lm"]`` is set to its file name).

    Waveform models (``input_spec.kind == "waveform"``, ``feature_config=None``, see
    :func:`convert_wav2vec2`) take samples [1, samples]; ``subsampling_factor`` then gives the
    samples per output frame, and ``output_is_log_probs=False`` marks logits.
    """
    torch = import_torch()
    spec = input_spec or InputSpec(name="features")
    waveform = spec.kind == "waveform"
    if waveform != (feature_config is None):
        raise ValueError("waveform input takes no feature_config, and feature input needs one")
    unknown = set(formats) - {"onnx", "tflite"}
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of ('onnx', 'tflite'), got {formats}")
    profile = None
    if target is not None:
        from edge_speech.targets import get_target

        profile = get_target(target)
        if quantize == "target":
            quantize = profile.quantization
    if quantize == "float":
        quantize = None
    out = Path(out)
    steps: List[dict] = []
    model = model.eval()
    with torch.no_grad():
        reference_out = model(example_input)
    if reference_out.shape[-1] != len(tokens):
        raise ValueError(f"the model outputs {reference_out.shape[-1]} classes but {len(tokens)} tokens were given")
    classifier = reference_out.dim() == 2  # [batch, classes]: a keyword classifier; tokens are its labels
    if classifier:
        if waveform:
            raise ValueError("classifiers take feature clips; waveform input is for CTC models")
        unknown = sorted({label for _, label in (eval or []) if label not in tokens})
        if unknown:
            raise ValueError(f"evaluation labels {unknown[:5]} are not among the classifier's labels {list(tokens)}")
        spec = dataclasses.replace(spec, clip_frames=int(example_input.shape[1]))
        subsampling = 1
    else:
        subsampling = subsampling_factor or int(round(example_input.shape[1] / reference_out.shape[1]))

    checked = None
    if not waveform:  # waveform models' exports have their own checks (convert_wav2vec2)
        checked = preflight(
            model,
            example_input,
            formats,
            tflite_int8=quantize == "int8",
            subsampling=subsampling,
            sequence_output=not classifier,
        )
    front_end = _front_end(feature_config, spec, sample_rate)

    def run_torch(torch_model):  # the runtime's windows where the model has a longest input
        return within_max_frames(torch_runner(torch_model), spec, subsampling)

    calibration = _model_inputs(calib, front_end, sample_rate, max_calibration) if calib is not None else []
    evaluation = [(_model_inputs([a], front_end, sample_rate, 1)[0], text) for a, text in (eval or [])]
    tuning = None
    if finetune_epochs:
        tuning = _finetune_set(finetune_data, calibration, evaluation, front_end, sample_rate)
    decoder_defaults, lm_file = _decoder_defaults(decoder, lm)
    macs, params = count_macs(model, example_input)
    _record(
        steps,
        {
            "step": "source",
            "macs": macs,
            "params": params,
            **({"preflight": checked.to_dict()} if checked else {}),
            **_accuracy(run_torch(model), evaluation, tokens, blank_id),
        },
    )

    if prune:
        teacher = model
        named = dict(model.named_modules())
        unknown = [m for m in ignored_layers if isinstance(m, str) and m not in named]
        if unknown:
            raise ValueError(
                f"ignored_layers names no module {unknown[0]!r}; names are those of model.named_modules(), "
                f"e.g. {[n for n in named if n][:4]}"
            )
        ignored = [named[m] if isinstance(m, str) else m for m in ignored_layers]
        taylor_batches = None
        if importance == "taylor":
            taylor_batches = [torch.from_numpy(np.asarray(f, dtype=np.float32))[None] for f in calibration[:8]]
            if not taylor_batches:
                raise ValueError("importance='taylor' needs calib= audio (its gradients come from the calibration set)")
        model, prune_report = _prune_to_target(
            model, example_input, prune, importance, taylor_batches, ignored, layer_ratios
        )
        step = {"step": "prune", **prune_report.to_dict(), **_accuracy(run_torch(model), evaluation, tokens, blank_id)}
        if prune_report.mac_reduction < prune - 0.05:
            why = "; ".join(prune_report.notes) or "no further channel could be removed"
            message = (
                f"pruning removed {prune_report.mac_reduction:.1%} of the MACs, short of the {prune:.0%} asked: {why}"
            )
            if strict:
                raise RuntimeError(message + " (strict=True)")
            warnings.warn(message, stacklevel=2)
            step["warnings"] = [message]
        _record(steps, step)
        if finetune_epochs:
            from edge_speech.converters.finetune import finetune

            token_ids = {t: i for i, t in enumerate(tokens)}
            data = [f for f, _ in tuning]
            labels = None
            if all(text is not None for _, text in tuning):
                labels = [
                    token_ids[text] if classifier else [token_ids[c] for c in text if c in token_ids]
                    for _, text in tuning
                ]
            tuned = finetune(
                model, teacher, data, labels, epochs=finetune_epochs, blank_id=blank_id, **(finetune_options or {})
            )
            _record(
                steps,
                {
                    "step": "finetune",
                    **dataclasses.asdict(tuned),
                    **_accuracy(run_torch(model), evaluation, tokens, blank_id),
                },
            )

    if checked and checked.pad_frames:  # the runtime's frame arithmetic: T frames give ceil(T / subsampling)
        model = pad_frames(model, checked.pad_frames)
    plan = (
        None
        if classifier or waveform
        else recurrent.stream_plan(model, example_input, subsampling, tflite_chunk_frames)[0]
    )
    if plan is not None:  # unidirectional recurrent layers: exported with their state, streamed carrying it
        spec = plan.input_spec(spec)
        fp32 = recurrent.export_stateful_onnx(
            model, example_input, plan, spec, output_name="log_probs" if output_is_log_probs else "logits"
        )
    else:
        fp32 = export_onnx(
            model, example_input, input_name=spec.name, output_name="log_probs" if output_is_log_probs else "logits"
        )

    def runner(onnx_model: bytes):
        return within_max_frames(onnx_runner(onnx_model, input_spec=spec), spec, subsampling)

    probe = calibration[:8] or [f for f, _ in evaluation[:8]] or [example_input[0].numpy()]
    export_check = verify(run_torch(model), runner(fp32), probe, blank_id)
    _record(
        steps,
        {
            "step": "export_onnx",
            "bytes": len(fp32),
            "vs_torch": export_check.to_dict(),
            **_accuracy(runner(fp32), evaluation, tokens, blank_id),
        },
    )

    final = fp32
    if quantize:
        options = dict(
            scheme=quantize,
            input_spec=spec,
            symmetric_activations=bool(profile and "TensorrtExecutionProvider" in profile.onnx_providers),
        )
        guard: Dict[str, Any] = {}
        if min_agreement is not None and quantize in ("int8", "int16x8") and calibration:
            final, guard = quantize_within_agreement(
                fp32, calibration, _agreement_with(runner(fp32), runner, probe, blank_id), min_agreement, **options
            )
        else:
            final = quantize_onnx(fp32, calibration, **options)
        kept_float: List[str] = []
        if max_accuracy_drop is not None:
            final, kept_float = _within_budget(
                fp32,
                final,
                quantize,
                calibration,
                probe,
                evaluation,
                tokens,
                blank_id,
                max_accuracy_drop,
                spec,
                subsampling,
            )
        check = verify(runner(fp32), runner(final), probe + [f for f, _ in evaluation], blank_id)
        step = {
            "step": "quantize",
            "scheme": quantize,
            "bytes": len(final),
            "kept_float": kept_float,
            **({"agreement_guard": guard} if guard else {}),
            "size_ratio": round(len(fp32) / len(final), 3),
            "vs_fp32": check.to_dict(),
            **_accuracy(runner(final), evaluation, tokens, blank_id),
        }
        if guard.get("met") is False:
            message = (
                f"{quantize} agrees with float on {guard['after']['agreement']:.1%} of the calibration audio's "
                f"greedy tokens with every activation in float, below min_agreement={min_agreement}: the "
                "weights' rounding alone costs that (max_accuracy_drop= keeps the most sensitive layers in float)"
            )
            if strict:
                raise RuntimeError(message + " (strict=True)")
            warnings.warn(message, stacklevel=2)
            step["warnings"] = [message]
        _record(steps, step)

    files = {"model.onnx": final} if "onnx" in formats else {}
    shipped = dict(lm_file)  # files every bundle carries besides its models
    format_inputs = {}
    fp32_dir = out.with_name(out.name + "-fp32") if quantize and keep_fp32 and "onnx" in formats else None

    def write() -> None:
        """The bundle as far as it got: rewritten after each format, so a later failure keeps it."""
        provenance = {
            "converter_version": __version__,
            "source_sha256": hashlib.sha256(fp32).hexdigest(),
            "steps": [s["step"] for s in steps],
        }
        manifest = Manifest(
            kind="classifier" if classifier else "ctc",
            sample_rate=sample_rate,
            features=feature_config,
            tokens=tuple(tokens),
            models={fmt: f"model.{fmt}" for fmt in ("onnx", "tflite") if f"model.{fmt}" in files},
            blank_id=blank_id,
            subsampling_factor=subsampling,
            input=spec,
            format_inputs=format_inputs,
            output_is_log_probs=output_is_log_probs,
            quantization=_manifest_quantization(quantize),
            target=target,
            name=name,
            provenance=provenance,
            decoder=decoder_defaults,
            verification=json.loads(json.dumps({"steps": steps}, default=float)),
        )
        if fp32_dir is not None:
            write_bundle(
                fp32_dir,
                dataclasses.replace(
                    manifest, quantization={"scheme": "float"}, models={"onnx": "model.onnx"}, format_inputs={}
                ),
                {"model.onnx": fp32, **shipped},
            )
        write_bundle(out, manifest, {**files, **shipped})
        write_report(steps, out / REPORT_FOLDER, title=f"Conversion report: {name}")

    if files:
        write()
    if "tflite" in formats:
        # "dynamic" (int8 weights, float activations) maps to LiteRT's dynamic range on the windowed path.
        weights_only = quantize == "dynamic" and not waveform and plan is None
        tflite_scheme = "int8" if quantize == "int8" or weights_only else None
        try:
            if waveform:
                tflite, tflite_spec = export_tflite_waveform(
                    model,
                    spec,
                    sample_rate=sample_rate,
                    samples_per_frame=subsampling,
                    window_seconds=tflite_window_seconds,
                    quantize=tflite_scheme,
                    calibration=calibration,
                )
                layout = {"windows_s": [round(s, 3) for s in tflite_window_seconds]}
            else:
                chunk, context = (spec.clip_frames, 0) if classifier else (tflite_chunk_frames, tflite_context_frames)
                from edge_speech.converters.export import FULL_ATTENTION_CONTEXT_FRAMES, receptive_field_frames

                full_context = not classifier and receptive_field_frames(model, example_input.shape[2]) is None
                # Full attention: windows as wide as a command fills, and int8 weights with float
                # activations (static int8 activations flip its tokens; see export.export_tflite).
                if full_context:
                    context = max(context, FULL_ATTENTION_CONTEXT_FRAMES - FULL_ATTENTION_CONTEXT_FRAMES % subsampling)
                if plan is not None:
                    tflite, tflite_spec = recurrent.export_stateful_tflite(
                        model, example_input.shape[2], plan, spec, quantize=tflite_scheme, calibration=calibration
                    )
                else:  # GRUs lowered to matmuls and gates for int8 (recurrent.export_tflite_lowered)
                    tflite, tflite_spec = recurrent.export_tflite_lowered(
                        model,
                        example_input.shape[2],
                        quantize=tflite_scheme,
                        calibration=calibration,
                        chunk_frames=chunk,
                        left_context_frames=context,
                        right_context_frames=context,
                        export=export_tflite,
                        **({"int8_activations": False} if full_context or weights_only else {}),
                    )
                layout = {
                    "chunk_frames": tflite_spec.chunk_frames,
                    "context_frames": tflite_spec.left_context_frames,
                    **({"receptive_field": "unbounded"} if full_context else {}),
                    **({"int8": "weights only"} if (full_context or weights_only) and tflite_scheme else {}),
                }
                tflite_spec = dataclasses.replace(tflite_spec, stream_context_frames=spec.stream_context_frames)
                if classifier:  # one fixed window: the clip
                    tflite_spec, layout = spec, {"clip_frames": spec.clip_frames}
            check = verify(run_torch(model), tflite_runner(tflite, tflite_spec, subsampling), probe, blank_id)
            if waveform and tflite_scheme and min_agreement is not None and calibration:
                # The agreement guard for waveform TFLite: static int8 below the bound (random HF
                # encoders: digital silence magnified by LayerNorm) gives way to int8 weights
                # dequantized for float kernels, kept if it agrees better.
                agreement = check.greedy_token_agreement
                if agreement < min_agreement:
                    from edge_speech.converters.export import _inline_buffers
                    from edge_speech.converters.recurrent import int8_weights_tflite

                    floating, float_spec = export_tflite_waveform(
                        model,
                        spec,
                        sample_rate=sample_rate,
                        samples_per_frame=subsampling,
                        window_seconds=tflite_window_seconds,
                    )
                    weights_only = _inline_buffers(int8_weights_tflite(floating, weight_only=True))
                    second = verify(
                        run_torch(model), tflite_runner(weights_only, float_spec, subsampling), probe, blank_id
                    )
                    layout["agreement_guard"] = {
                        "min_agreement": min_agreement,
                        "static_int8": round(agreement, 4),
                        "weights_only_int8": round(second.greedy_token_agreement, 4),
                    }
                    if second.greedy_token_agreement > agreement:
                        tflite, check, tflite_spec = weights_only, second, float_spec
                        layout["int8"] = "weights only"
        except Exception as err:  # keep the ONNX bundle; say what failed, in full
            message = f"TFLite export failed: {type(err).__name__}: {err}"
            if not files:
                raise RuntimeError(message) from err
            _record(steps, {"step": "export_tflite", "scheme": tflite_scheme or "float", "error": message})
            write()
            if strict:
                raise RuntimeError(message + f" (strict=True; the ONNX bundle is kept in {out})") from err
            warnings.warn(message + f"; the ONNX bundle in {out} is complete", stacklevel=2)
        else:
            _record(
                steps,
                {
                    "step": "export_tflite",
                    "scheme": tflite_scheme or "float",
                    "bytes": len(tflite),
                    **layout,
                    "vs_torch": check.to_dict(),
                    **_accuracy(tflite_runner(tflite, tflite_spec, subsampling), evaluation, tokens, blank_id),
                },
            )
            files["model.tflite"] = tflite
            format_inputs["tflite"] = tflite_spec
            write()
    return ConversionReport(str(out), str(fp32_dir) if fp32_dir else None, tuple(steps), model)


def _manifest_quantization(scheme: Optional[str]) -> dict:
    """The manifest's quantization entry. An fp16 model is float (the schema's schemes name
    integer quantization); its precision says float16."""
    if scheme == "fp16":
        return {"scheme": "float", "precision": "float16"}
    return {"scheme": scheme or "float"}


def _prune_to_target(model, example_input, target: float, importance: str, calibration, ignored, layer_ratios):
    """``prune_model`` down to ``target`` of the MACs; with ``layer_ratios`` (fixed per layer), by
    bisecting the ratio of every other layer."""
    if not layer_ratios:
        return prune_model(
            model,
            example_input,
            target_macs_ratio=target,
            importance=importance,
            calibration=calibration,
            ignored_layers=ignored,
        )
    lo, hi, best = 0.0, 0.94, None
    for _ in range(8):
        ratio = (lo + hi) / 2
        pruned, report = prune_model(
            model,
            example_input,
            ratio=ratio,
            layer_ratios=layer_ratios,
            importance=importance,
            calibration=calibration,
            ignored_layers=ignored,
        )
        if best is None or abs(report.mac_reduction - target) < abs(best[1].mac_reduction - target):
            best = (pruned, report)
        if abs(report.mac_reduction - target) <= 0.01:
            break
        lo, hi = (ratio, hi) if report.mac_reduction < target else (lo, ratio)
    return best


def convert_onnx(
    model: "str | Path | bytes",
    feature_config: features.FeatureConfig,
    tokens: Sequence[str],
    *,
    input_spec: InputSpec = _FEATURES_INPUT,
    subsampling_factor: int = 1,
    calib: Optional[AudioSet] = None,
    eval: Optional[Sequence[Tuple[Any, str]]] = None,
    quantize: Optional[str] = "int8",
    out: "str | Path" = "bundle",
    sample_rate: int = 16000,
    blank_id: int = 0,
    name: str = "model",
    output_is_log_probs: bool = True,
    max_calibration: int = 64,
) -> ConversionReport:
    """An existing ONNX CTC model (e.g. exported by NeMo or ESPnet) to a verified bundle:
    quantize, embed the manifest, verify. ``input_spec`` says how it takes features (name,
    layout, frame-count input); ``feature_config`` must be what it was trained with."""
    fp32 = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    front_end = _front_end(feature_config, input_spec, sample_rate)
    calibration = _model_inputs(calib, front_end, sample_rate, max_calibration) if calib is not None else []
    evaluation = [(_model_inputs([a], front_end, sample_rate, 1)[0], text) for a, text in (eval or [])]
    reference = onnx_runner(fp32, input_spec=input_spec)
    probe = calibration[:8] or [f for f, _ in evaluation[:8]]
    if not probe:
        raise ValueError("convert_onnx needs calib= or eval= audio to verify the model on")
    sample = reference(probe[0])
    if sample.ndim != 2 or sample.shape[1] != len(tokens):
        raise ValueError(f"the model outputs shape {sample.shape} per utterance; expected [frames, {len(tokens)}]")
    steps: List[dict] = [{"step": "source", "bytes": len(fp32), **_accuracy(reference, evaluation, tokens, blank_id)}]
    final = fp32
    if quantize:
        final = quantize_onnx(fp32, calibration, scheme=quantize, input_spec=input_spec)
        candidate = onnx_runner(final, input_spec=input_spec)
        check = verify(reference, candidate, probe + [f for f, _ in evaluation], blank_id)
        _record(
            steps,
            {
                "step": "quantize",
                "scheme": quantize,
                "bytes": len(final),
                "size_ratio": round(len(fp32) / len(final), 3),
                "vs_fp32": check.to_dict(),
                **_accuracy(candidate, evaluation, tokens, blank_id),
            },
        )
    manifest = Manifest(
        kind="ctc",
        sample_rate=sample_rate,
        features=feature_config,
        tokens=tuple(tokens),
        models={"onnx": "model.onnx"},
        blank_id=blank_id,
        subsampling_factor=subsampling_factor,
        input=input_spec,
        output_is_log_probs=output_is_log_probs,
        quantization=_manifest_quantization(quantize),
        name=name,
        provenance={
            "converter_version": __version__,
            "source_sha256": hashlib.sha256(fp32).hexdigest(),
            "steps": [s["step"] for s in steps],
        },
        verification=json.loads(json.dumps({"steps": steps}, default=float)),
    )
    write_bundle(out, manifest, {"model.onnx": final})
    write_report(steps, Path(out) / REPORT_FOLDER, title=f"Conversion report: {name}")
    return ConversionReport(str(Path(out)), None, tuple(steps))


def _within_budget(
    fp32: bytes,
    quantized: bytes,
    scheme: str,
    calibration,
    probe,
    evaluation,
    tokens,
    blank_id,
    budget: float,
    spec: InputSpec,
    subsampling: int,
) -> Tuple[bytes, List[str]]:
    """Moves the most quantization-sensitive layers back to float, one at a time, until the
    accuracy drop is within ``budget`` (CER points, or greedy-token disagreement points)."""
    from edge_speech.converters.quantization import sensitivity

    def run_onnx(model: bytes):  # in the runtime's windows, as the final verification runs it
        return within_max_frames(onnx_runner(model, input_spec=spec), spec, subsampling)

    def drop(model: bytes) -> float:
        if evaluation:
            return _error_points(_accuracy(run_onnx(model), evaluation, tokens, blank_id)) - _error_points(
                _accuracy(run_onnx(fp32), evaluation, tokens, blank_id)
            )
        check = verify(run_onnx(fp32), run_onnx(model), probe, blank_id)
        agreement = check.frame_agreement if spec.clip_frames else check.greedy_token_agreement
        return 100 * (1 - agreement)

    kept: List[str] = []
    if drop(quantized) <= budget:
        return quantized, kept
    for name, _ in sensitivity(fp32, calibration, probe, scheme=scheme, input_spec=spec):
        kept.append(name)
        quantized = quantize_onnx(fp32, calibration, scheme=scheme, keep_float=kept, input_spec=spec)
        if drop(quantized) <= budget:
            break
    return quantized, kept


def _agreement_with(reference, runner, probe, blank_id: int):
    """``model -> (agreement, output SNR dB)`` of a quantized model against the float one's
    outputs on ``probe`` (computed once): greedy-token agreement, or for classifiers the share of
    equal labels."""
    outputs = {id(x): reference(x) for x in probe}

    def compare(model: bytes) -> Tuple[float, float]:
        check = verify(lambda x: outputs[id(x)], runner(model), probe, blank_id)
        classifier = np.isnan(check.greedy_token_agreement)
        return (check.frame_agreement if classifier else check.greedy_token_agreement), check.snr_db

    return compare


def _finetune_set(finetune_data, calibration, evaluation, front_end, rate: int) -> List[Tuple[np.ndarray, Any]]:
    """(model input, transcript or None) to fine-tune on: ``finetune_data`` or the calibration
    audio; never an utterance of the evaluation set."""
    if finetune_data is None:
        if not calibration:
            raise ValueError(
                "finetune_epochs needs finetune_data= (or calib=) audio; the eval= audio is never trained on"
            )
        return [(f, None) for f in calibration]
    items = list(finetune_data) if not isinstance(finetune_data, (str, Path)) else [finetune_data]
    if len(items) == 1 and isinstance(items[0], (str, Path)) and Path(items[0]).is_dir():
        items = sorted(Path(items[0]).glob("*.wav"))
    labelled = [isinstance(i, tuple) and len(i) == 2 and isinstance(i[1], str) for i in items]
    if any(labelled) and not all(labelled):
        raise ValueError("finetune_data mixes (audio, transcript) pairs with bare audio; give one kind")
    pairs = [(a, t) for a, t in items] if items and all(labelled) else [(a, None) for a in items]
    tuning = [(_model_inputs([a], front_end, rate, 1)[0], t) for a, t in pairs]
    if not tuning:
        raise ValueError("finetune_data is empty")
    evaluated = {_fingerprint(f): i for i, (f, _) in enumerate(evaluation)}
    shared = [(i, evaluated[_fingerprint(f)]) for i, (f, _) in enumerate(tuning) if _fingerprint(f) in evaluated]
    if shared:
        i, j = shared[0]
        raise ValueError(
            f"finetune_data item {i} is eval item {j} ({len(shared)} shared utterance(s)): fine-tuning on "
            "the evaluation audio would inflate the accuracy the report shows; keep the sets apart"
        )
    return tuning


def _fingerprint(model_input: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(model_input, dtype=np.float32).tobytes()).hexdigest()


def _decoder_defaults(decoder: Optional[Dict[str, Any]], lm: "str | Path | None") -> Tuple[dict, Dict[str, bytes]]:
    """The manifest's decoder defaults and the LM file that ships with them, checked as the
    runtime checks them before anything is converted."""
    from edge_speech.decoding import ArpaLM
    from edge_speech.manifest import BundleError
    from edge_speech.manifest import check_decoder_defaults as _check_decoder_defaults

    defaults = dict(decoder or {})
    files: Dict[str, bytes] = {}
    if lm is not None:
        path = Path(lm)
        if not path.is_file():
            raise FileNotFoundError(f"lm={str(lm)!r}: no such file (an ARPA LM, .arpa or .arpa.gz)")
        if path.name.startswith("model."):
            raise ValueError(f"lm={path.name!r}: model.* names are the bundle's models; rename the LM")
        defaults["lm"] = path.name
        files[path.name] = path.read_bytes()
    elif "lm" in defaults:
        raise ValueError(f"decoder names lm {defaults['lm']!r} but no lm= file was given to ship with it")
    try:
        _check_decoder_defaults(defaults)
    except BundleError as err:
        raise ValueError(f"decoder={decoder!r}: {err}") from None
    if lm is not None:
        ArpaLM.from_file(lm)  # a broken LM fails here, before minutes of conversion, not on the device
    return defaults, files


def _error_points(accuracy: dict) -> float:
    """Errors in percentage points: CER, or 100 - accuracy for classifiers."""
    return 100 * (accuracy["cer"] if "cer" in accuracy else 1 - accuracy["accuracy"])


def _front_end(config: Optional[features.FeatureConfig], spec: InputSpec, rate: int):
    """samples -> the model's input, as the runtime's Recognizer or KeywordClassifier computes it."""
    if spec.kind == "waveform":
        return features.normalize_waveform if spec.normalize else (lambda x: np.asarray(x, dtype=np.float32))
    if spec.clip_frames is not None:
        return lambda x: clip_features(x, config, rate, spec.clip_frames)
    return lambda x: features.compute(x, rate, config)


def _model_inputs(source: AudioSet, front_end, rate: int, limit: int) -> List[np.ndarray]:
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise ValueError(f"calibration audio {folder} is not a folder of WAV files")
        items = sorted(folder.glob("*.wav"))
        if not items:
            raise ValueError(f"calibration folder {folder} has no .wav files")
    else:
        items = list(source)
    feats = []
    for item in items[:limit]:
        if not isinstance(item, (str, Path, tuple)):
            item = (np.asarray(item), rate)  # a bare array is audio at the model's rate
        feats.append(front_end(audio.load_audio(item, rate)))
    return feats


def _accuracy(runner, evaluation, tokens, blank_id) -> dict:
    """CER and WER of greedy decoding, or a classifier's accuracy (its outputs are [classes])."""
    if not evaluation:
        return {}
    outputs = [runner(f) for f, _ in evaluation]
    if outputs[0].ndim == 1:
        hits = [tokens[int(np.argmax(out))] == label for out, (_, label) in zip(outputs, evaluation)]
        return {"accuracy": round(float(np.mean(hits)), 4)}
    hyps = ["".join(tokens[t] for t in greedy_tokens(out, blank_id)).strip() for out in outputs]
    refs = [text for _, text in evaluation]
    return {"cer": round(error_rate(refs, hyps, "char"), 4), "wer": round(error_rate(refs, hyps, "word"), 4)}
