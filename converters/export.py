"""ONNX export with a dynamic time axis."""

from __future__ import annotations

import dataclasses
import io
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

from edge_speech.converters._deps import import_litert_torch, import_torch

if TYPE_CHECKING:
    from edge_speech.manifest import InputSpec


def export_onnx(
    model,
    example_input,
    input_name: str = "features",
    output_name: str = "log_probs",
    dynamic_time: bool = True,
    opset: int = 17,
    check_lengths: bool = True,
) -> bytes:
    """Serialized ONNX of ``model`` (eval mode) for inputs shaped like ``example_input``
    [1, frames, dim]; the frame axis stays dynamic unless ``dynamic_time=False`` (fixed-shape
    models for chunked runtimes). ``nn.MultiheadAttention`` layers are exported through an
    equivalent that keeps the time axis dynamic (the traced original bakes the example's length
    into a Reshape). A dynamic export is run in ONNX Runtime at the example's length and two
    others and compared with torch before it is returned (``check_lengths``); errors name the
    operator or the length that failed and what to do."""
    torch = import_torch()
    model = model.eval()
    export_model = dynamic_attention(model)
    buffer = io.BytesIO()
    axes = {input_name: {1: "frames"}, output_name: {1: "out_frames"}} if dynamic_time else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                export_model,
                (example_input,),
                buffer,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as err:  # torch.onnx raises many error types; all mean "this model does not export"
        raise RuntimeError(
            "ONNX export failed. If an operator is unsupported, replace that layer with standard "
            "torch.nn modules or register a symbolic; data-dependent Python control flow in forward() "
            f"must be removed. The exporter said: {_full_text(err)}"
        ) from None
    data = buffer.getvalue()
    if dynamic_time and check_lengths:
        check_dynamic_lengths(model, data, example_input)
    return data


def check_dynamic_lengths(model, onnx_model: bytes, example_input, rtol: float = 1e-3) -> None:
    """Runs ``onnx_model`` in ONNX Runtime at the example's length and at two other lengths and
    compares it with ``model``; raises RuntimeError naming the length and the failing node."""
    torch = import_torch()
    import onnxruntime as ort

    frames = int(example_input.shape[1])
    lengths = [frames, max(2, frames * 3 // 5 + 1), frames + frames // 3 + 7]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(0)
    for length in lengths:
        shape = (example_input.shape[0], length, *example_input.shape[2:])
        x = torch.randn(shape, generator=generator, dtype=example_input.dtype)
        with torch.no_grad():
            expected = model(x).numpy()
        try:
            got = session.run(None, {input_name: x.numpy()})[0]
        except Exception as err:
            raise RuntimeError(
                f"the exported ONNX model does not run at {length} frames (it was traced at {frames}): a shape was "
                "fixed at export. Typical causes: a view/reshape with Python ints taken from a tensor's shape "
                "(use -1 or x.shape directly), nn.MultiheadAttention subclasses, or positional tables sliced "
                f"with an int. ONNX Runtime said: {_full_text(err)}"
            ) from None
        if got.shape != expected.shape:
            raise RuntimeError(
                f"the exported ONNX model gives output shape {got.shape} at {length} frames where torch "
                f"gives {expected.shape}: a length was fixed at export (traced at {frames} frames)"
            )
        scale = 1.0 + float(np.abs(expected).max())
        error = float(np.abs(got - expected).max())
        if error > rtol * scale:
            raise RuntimeError(
                f"the exported ONNX model differs from torch by {error:.3g} at {length} frames (traced "
                f"at {frames}): a length-dependent value was fixed at export (e.g. a mask or positional "
                "table built with Python ints)"
            )


def dynamic_attention(model):
    """``model`` itself, or a copy whose ``nn.MultiheadAttention`` layers are replaced by an
    equivalent written with reshapes the tracer keeps dynamic (same parameters, same outputs;
    attention weights are not returned). Layers using ``bias_k``/``add_zero_attn`` stay as they are."""
    torch = import_torch()
    F = torch.nn.functional
    targets = [
        name
        for name, m in model.named_modules()
        if type(m) is torch.nn.MultiheadAttention and m.bias_k is None and not m.add_zero_attn
    ]
    if not targets:
        return model

    class DynamicMultiheadAttention(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def __getattr__(self, name):  # callers (TransformerEncoderLayer) read the original's attributes
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(self._modules["inner"], name)

        def forward(
            self,
            query,
            key,
            value,
            key_padding_mask=None,
            need_weights=True,
            attn_mask=None,
            average_attn_weights=True,
            is_causal=False,
        ):
            m = self.inner
            if not m.batch_first:
                query, key, value = (t.transpose(0, 1) for t in (query, key, value))
            heads, head_dim = m.num_heads, m.head_dim
            if m._qkv_same_embed_dim:
                weights = m.in_proj_weight.chunk(3)
            else:
                weights = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
            biases = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None, None, None)
            q, k, v = (
                F.linear(t, w, b).unflatten(-1, (heads, head_dim)).transpose(1, 2)
                for t, w, b in zip((query, key, value), weights, biases)
            )
            mask = None
            if attn_mask is not None:
                mask = (
                    attn_mask
                    if attn_mask.dtype != torch.bool
                    else torch.zeros_like(attn_mask, dtype=q.dtype).masked_fill(attn_mask, float("-inf"))
                )
                if mask.dim() == 3:
                    mask = mask.view(q.shape[0], heads, mask.shape[-2], mask.shape[-1])
            if key_padding_mask is not None:
                padding = (
                    key_padding_mask
                    if key_padding_mask.dtype != torch.bool
                    else torch.zeros_like(key_padding_mask, dtype=q.dtype).masked_fill(key_padding_mask, float("-inf"))
                )
                padding = padding[:, None, None, :]
                mask = padding if mask is None else mask + padding
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None)
            out = m.out_proj(out.transpose(1, 2).flatten(2))
            return (out if m.batch_first else out.transpose(0, 1)), None

    from edge_speech.converters.loading import with_modules_replaced

    return with_modules_replaced(model, targets, DynamicMultiheadAttention)


def export_tflite(
    model,
    feature_dim: int,
    *,
    chunk_frames: int = 64,
    left_context_frames: int = 16,
    right_context_frames: int = 16,
    quantize: Optional[str] = None,
    calibration: Sequence[np.ndarray] = (),
    int8_activations: bool = True,
) -> Tuple[bytes, "InputSpec"]:
    """A fixed-shape TFLite model (litert-torch) over windows of left + chunk + right frames,
    and the input spec the runtime chunks with. LiteRT's converter does not keep a dynamic time
    axis, so the runtime runs overlapping windows; the context must cover the model's receptive
    field for chunked output to equal a whole-utterance run (verify() measures it).

    ``quantize="int8"``: static per-channel int8 (PT2E) calibrated on windows cut from
    ``calibration`` feature arrays; the model then takes int8 input, which the runtime quantizes.
    With ``int8_activations=False``, int8 weights only (per channel, LiteRT's dynamic-range
    quantization: activations stay float): what full attention needs, whose static int8
    activations flip tokens (pruned Transformer of the converter matrix: 87.3% greedy agreement
    static, 92.4% weights-only, equal to float; the file is smaller too, 235 vs 255 kB).
    """
    torch = import_torch()
    from edge_speech.bundle import InputSpec

    litert_torch = import_litert_torch()
    if quantize not in (None, "int8"):
        raise ValueError(f"TFLite export supports quantize=None or 'int8', got {quantize!r}")
    window = left_context_frames + chunk_frames + right_context_frames
    example = torch.zeros(1, window, feature_dim)
    model = model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if quantize == "int8" and int8_activations:
                windows = _calibration_windows(calibration, window, feature_dim)
                if not windows:
                    raise ValueError("int8 TFLite export needs calibration feature arrays")
                from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
                from litert_torch.quantize.quant_config import QuantConfig
                from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

                quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
                graph = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
                with torch.no_grad():
                    for x in windows:
                        graph(torch.from_numpy(x)[None])
                graph = convert_pt2e(graph, fold_quantize=False)
                edge = litert_torch.convert(graph, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            else:
                edge = litert_torch.convert(model, (example,))
            with tempfile.TemporaryDirectory(prefix="es_tflite_") as tmp:
                path = Path(tmp) / "model.tflite"
                edge.export(str(path))
                data = path.read_bytes()
            if quantize == "int8" and not int8_activations:
                from edge_speech.converters.recurrent import int8_weights_tflite

                data = _inline_buffers(int8_weights_tflite(data))
    except ValueError:
        raise
    except Exception as err:  # litert-torch and torch.export raise many error types
        raise RuntimeError(
            f"TFLite conversion failed in {_failing_step(err)}. Layers must be torch.export-able (no "
            "data-dependent control flow) and supported by LiteRT. The converter said: "
            f"{_full_text(err)}"
        ) from None
    spec = InputSpec(
        name="features",
        chunk_frames=chunk_frames,
        left_context_frames=left_context_frames,
        right_context_frames=right_context_frames,
    )
    return data, spec


# Input frames of context each side of a TFLite window for models whose receptive field is
# unbounded (full attention): measured on the converter matrix's Transformer and Conformer
# (pruned, float, in the runtime's windows vs a whole-utterance run of 3.5 s), greedy tokens agree
# 87-88% with 16 frames, 92-100% with 80-96; wider windows than the utterance lose again (they
# are zero-padded, and padding enters every attention), so this stays at a 2.56 s window.
FULL_ATTENTION_CONTEXT_FRAMES = 96


def receptive_field_frames(
    model, feature_dim: int, lengths: Sequence[int] = (256, 512), tolerance: float = 1e-3
) -> Optional[int]:
    """Input frames over which the first input frame changes ``model``'s output by more than
    ``tolerance`` (features [1, frames, feature_dim] in, [1, frames', vocab] out): measured by
    perturbing that frame in random inputs of each of ``lengths``. None when the reach grows with
    the input (full attention, or a recurrent layer whose state does not fade): no window context
    then gives a whole-utterance run's output, and the TFLite windows need all the context they
    can get (:data:`FULL_ATTENTION_CONTEXT_FRAMES`)."""
    torch = import_torch()
    generator = torch.Generator().manual_seed(0)
    reach = []
    with torch.no_grad():
        for frames in lengths:
            x = torch.randn(1, frames, feature_dim, generator=generator)
            base = model(x)
            x[:, 0] += 3.0
            changed = ((model(x) - base).abs().amax(-1) > tolerance)[0].nonzero()
            if not len(changed):
                reach.append(0)
                continue
            reach.append(-(-(int(changed.max()) + 1) * frames // base.shape[1]))  # in input frames
    if reach[-1] > reach[0] and reach[-1] > lengths[0] // 2:
        return None
    return max(reach)


def _inline_buffers(model: bytes) -> bytes:
    """The TFLite flatbuffer with every buffer's data inside it. ai-edge-quantizer stores some
    buffers after the flatbuffer, addressed by offset and size; a re-packed flatbuffer (the
    bundle's metadata embedding) would leave those offsets pointing past its end ("Constant buffer
    N specified an out of range offset")."""
    from edge_speech._deps import import_litert_schema as _tflite_schema

    schema, flatbuffers = _tflite_schema()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    moved = False
    for buffer in tree.buffers or []:
        if getattr(buffer, "offset", 0) > 1:
            buffer.data = np.frombuffer(model[buffer.offset : buffer.offset + buffer.size], dtype=np.uint8)
            buffer.offset, buffer.size = 0, 0
            moved = True
    if not moved:
        return model
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _calibration_windows(calibration: Sequence[np.ndarray], window: int, dim: int) -> list:
    windows = []
    for feats in calibration:
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != dim:
            raise ValueError(f"calibration features must be [frames, {dim}], got {feats.shape}")
        for start in range(0, max(1, len(feats) - window + 1), window):
            piece = np.zeros((window, dim), dtype=np.float32)
            chunk = feats[start : start + window]
            piece[: len(chunk)] = chunk
            windows.append(piece)
    return windows


WAVEFORM_WINDOW_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def export_tflite_waveform(
    model,
    input_spec,
    *,
    sample_rate: int = 16000,
    samples_per_frame: int = 320,
    window_seconds: Sequence[float] = WAVEFORM_WINDOW_SECONDS,
    quantize: Optional[str] = None,
    calibration: Sequence[np.ndarray] = (),
) -> Tuple[bytes, "InputSpec"]:
    """A TFLite model of a ``Wav2Vec2ForCTC`` (from :func:`load_wav2vec2`) with one signature per
    fixed window, ``window_<samples>``, all sharing the weights; and its input spec. Each takes
    ``waveform`` [1, samples] (the utterance zero-padded) and ``length`` [1] int32, and returns
    the logits and the number of valid output frames, which equal an unpadded run (see
    :func:`~edge_speech.converters.wav2vec2.window_module`). The runtime runs the smallest window
    that holds the utterance, so a 1 s command does not pay for 32 s; longer audio is cut into
    overlapping windows of the largest size.

    LiteRT's converter cannot keep a dynamic sample axis (litert-torch 0.10 fails on
    transformers' attention-mask arange, then on the dynamic axis itself), hence the windows.
    ``quantize="int8"``: static int8 (PT2E, per-channel weights) calibrated per window on
    ``calibration`` (normalised sample arrays); the waveform input is then int8, which the
    runtime quantizes with the model's own scale."""
    torch = import_torch()
    from edge_speech.converters.wav2vec2 import window_module

    litert_torch = import_litert_torch()
    if quantize not in (None, "int8"):
        raise ValueError(f"TFLite export supports quantize=None or 'int8', got {quantize!r}")
    if quantize and not calibration:
        raise ValueError("int8 TFLite export needs calibration audio")
    windows = sorted({max(1, round(s * sample_rate / samples_per_frame)) * samples_per_frame for s in window_seconds})
    if not windows:
        raise ValueError("window_seconds must name at least one window")
    module = window_module()(model.eval()).eval()
    quant_config = None
    converter = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            examples = {
                samples: {"waveform": torch.zeros(1, samples), "length": torch.tensor([samples], dtype=torch.int32)}
                for samples in windows
            }
            graphs = {samples: module for samples in windows}
            if quantize:
                graphs, quant_config = _int8_window_graphs(module, examples, calibration)
            for samples in windows:
                add = litert_torch.signature if converter is None else converter.signature
                converter = add(f"window_{samples}", graphs[samples], sample_kwargs=examples[samples])
            edge = converter.convert(quant_config=quant_config) if quant_config else converter.convert()
            with tempfile.TemporaryDirectory(prefix="es_tflite_") as tmp:
                path = Path(tmp) / "model.tflite"
                edge.export(str(path))
                data = path.read_bytes()
    except Exception as err:  # torch.export and litert-torch raise many error types
        raise RuntimeError(
            f"TFLite conversion of the waveform model failed in {_failing_step(err)}: "
            f"{_full_text(err)}. Use the ONNX model (formats=('onnx',)) for this model"
        ) from None
    return data, dataclasses.replace(input_spec, length_name="length")


def _int8_window_graphs(module, examples: dict, calibration: Sequence[np.ndarray]):
    """``module`` at every window size ({samples: example}), prepared and converted with PT2E
    int8, and the quant config. Only the largest window is calibrated, on each utterance tiled
    to fill it (padding would show the observers frames the runtime never keeps); the others
    copy its observers, so every window gets the same scales and the weights' quantized
    constants are stored once in the flatbuffer."""
    torch = import_torch()
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = {
        samples: prepare_pt2e(torch.export.export(module, (), example).module(), quantizer)
        for samples, example in examples.items()
    }
    largest = max(prepared)
    with torch.no_grad():
        for samples in calibration:
            samples = np.asarray(samples, dtype=np.float32).reshape(-1)
            if not len(samples):
                continue
            tiled = torch.from_numpy(np.resize(samples, largest))[None]
            prepared[largest](waveform=tiled, length=torch.tensor([largest], dtype=torch.int32))
    observers = {name: m for name, m in prepared[largest].named_modules() if name.startswith("activation_post_process")}
    for samples, graph in prepared.items():
        if samples == largest:
            continue
        mine = {name: m for name, m in graph.named_modules() if name.startswith("activation_post_process")}
        if mine.keys() != observers.keys():
            raise RuntimeError(f"the {samples}-sample window's graph differs from the largest window's")
        for name, observer in mine.items():
            observer.load_state_dict(observers[name].state_dict())
    return (
        {samples: convert_pt2e(graph, fold_quantize=False) for samples, graph in prepared.items()},
        QuantConfig(pt2e_quantizer=quantizer),
    )


def _failing_step(err: BaseException) -> str:
    """The innermost litert-torch/torch.export function in the traceback, which names the
    lowering (e.g. rewrite_arange for an arange whose length depends on the input)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if "litert_torch" in f.filename or "torch/export" in f.filename
    ]
    return f"{frames[-1].name} ({Path(frames[-1].filename).name})" if frames else type(err).__name__


def _full_text(err: BaseException) -> str:
    """The whole message (some exporters put the cause on a later line), with its type."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# What sherpa-onnx's FeatureExtractorConfig can change in its kaldi-native-fbank front end (besides dither,
# which must stay 0: sherpa-onnx draws its own); every other setting is knf's default, as in "kaldi-fbank".
_SHERPA_FEATURE_FIELDS = ("num_mel_bins", "low_freq_hz", "high_freq_hz")


def export_sherpa_onnx(
    model,
    example_input,
    tokens: Sequence[str],
    out: "str | Path",
    feature_config,
    sample_rate: int = 16000,
    blank_id: int = 0,
) -> dict:
    """Writes ``model.onnx`` and ``tokens.txt`` in sherpa-onnx's ``zipformer_ctc`` layout (inputs
    ``x`` [N, T, dim] and ``x_lens``, outputs ``log_probs`` and ``log_probs_len``; the model must
    subsample by 4, which sherpa-onnx assumes for this type) and returns the keyword arguments of
    ``sherpa_onnx.FeatureExtractorConfig`` that give features equal to ``feature_config``.

    That model type is the one whose front end sherpa-onnx leaves to the caller (its NeMo CTC type
    forces a librosa-style front end, WeNet's feeds int16-scaled samples). Its Python shortcut
    ``OfflineRecognizer.from_zipformer_ctc`` keeps the defaults ``high_freq=-400`` and
    ``snip_edges=False``, so build the recognizer from an ``OfflineRecognizerConfig`` with these
    arguments instead. Only Kaldi fbank configs without CMVN can be matched; others raise
    ``ValueError`` naming the settings sherpa-onnx cannot reproduce."""
    torch = import_torch()
    from edge_speech import features

    if blank_id != 0 or any(any(c.isspace() for c in t) and t != " " for t in tokens) or "" in tokens:
        raise ValueError("sherpa-onnx needs blank id 0 and tokens without whitespace (a lone space is written as ▁)")
    reference = features.FeatureConfig.preset("kaldi-fbank").replace(
        **{f: getattr(feature_config, f) for f in _SHERPA_FEATURE_FIELDS}
    )
    differing = [
        f for f in dataclasses.fields(reference) if getattr(reference, f.name) != getattr(feature_config, f.name)
    ]
    if differing:
        raise ValueError(
            "sherpa-onnx's front end cannot reproduce these feature settings: "
            + ", ".join(f"{f.name}={getattr(feature_config, f.name)!r}" for f in differing)
            + " (it is kaldi-native-fbank with "
            "only the mel bins, band edges and dither configurable)"
        )

    class SherpaCtc(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x, x_lens):
            log_probs = self.inner(x)
            # Output frames per input frame, from the shapes: ceil(x_lens * T' / T).
            lengths = (x_lens * log_probs.shape[1] + x.shape[1] - 1) // x.shape[1]
            return log_probs, lengths

    wrapped = SherpaCtc(model.eval()).eval()
    with torch.no_grad():
        out_frames = wrapped(example_input, torch.tensor([example_input.shape[1]]))[0].shape[1]
    if int(round(example_input.shape[1] / out_frames)) != 4:
        raise ValueError(
            f"sherpa-onnx's zipformer_ctc type assumes subsampling by 4; this model subsamples by "
            f"{example_input.shape[1] / out_frames:.2f}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (example_input, torch.tensor([example_input.shape[1]])),
            buffer,
            input_names=["x", "x_lens"],
            output_names=["log_probs", "log_probs_len"],
            dynamic_axes={
                "x": {0: "N", 1: "T"},
                "x_lens": {0: "N"},
                "log_probs": {0: "N", 1: "T2"},
                "log_probs_len": {0: "N"},
            },
            opset_version=17,
            dynamo=False,
        )
    (out / "model.onnx").write_bytes(buffer.getvalue())
    # sherpa-onnx reads "symbol id" lines and turns a leading ▁ (U+2581) into a space.
    (out / "tokens.txt").write_text(
        "".join(f"{'▁' if t == ' ' else t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8"
    )
    return {
        "sampling_rate": sample_rate,
        "feature_dim": feature_config.num_mel_bins,
        "low_freq": feature_config.low_freq_hz,
        "high_freq": feature_config.high_freq_hz,
        "dither": 0.0,
        "normalize_samples": True,
        "snip_edges": True,
    }
