"""int8 quantization of ONNX models with onnxruntime.quantization: static QDQ with calibration
features (per-channel symmetric int8 weights, int8 activations), int16-activation/int8-weight,
or dynamic (weights only); and float16 (:func:`to_float16`: weights and compute in fp16 for
GPUs and TensorRT, float32 inputs and outputs kept).

Whatever the scheme, index arithmetic stays float (:func:`index_arithmetic_nodes`): the nodes
that compute positions, distance buckets, positional tables and masks from shapes and lengths
rather than from the audio, found from the graph's data flow for any model."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from edge_speech.backends import model_feeds
from edge_speech.converters._deps import import_ort_quantization
from edge_speech.converters.onnx_size import compact_qdq

SCHEMES = ("int8", "int16x8", "dynamic", "fp16")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def quantize(
    onnx_model: bytes,
    calibration: Optional[Iterable[np.ndarray]] = None,
    scheme: str = "int8",
    input_name: str = "features",
    method: str = "minmax",
    per_channel: bool = True,
    symmetric_activations: bool = False,
    keep_float: Sequence[str] = (),
    input_spec=None,
    reduce_range: bool = True,
) -> bytes:
    """The quantized model as bytes (stored compactly: :func:`onnx_size.compact_qdq`).

    ``calibration``: feature arrays [frames, dim], or sample arrays for waveform models (static schemes; a few dozen utterances are
    enough). ``symmetric_activations`` suits TensorRT. ``keep_float``: node names left in float
    (e.g. from a sensitivity analysis). ``input_spec`` (an :class:`edge_speech.bundle.InputSpec`)
    describes models that take channel-major features or a frame-count input. Index arithmetic
    (:func:`index_arithmetic_nodes`) is always kept float in addition to ``keep_float``.

    ``reduce_range`` (default) keeps int8 weights within 7 bits: onnxruntime's x86 kernels on
    CPUs without VNNI (AVX2 only) add pairs of u8 x s8 products in saturating int16, which
    with full-range weights clips large activations; on such a CPU a pruned conv model's output
    SNR fell from 39 dB to 16 dB. The file size is unchanged.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"quantization scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "fp16":  # no calibration: a cast of the weights and compute
        return to_float16(onnx_model, keep_float=keep_float)
    q = import_ort_quantization()
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    with tempfile.TemporaryDirectory(prefix="es_quant_") as tmp:
        src, prepared, dst = Path(tmp, "fp32.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "quant.onnx")
        src.write_bytes(onnx_model)
        try:
            # its shape inference leaves temporary model files in the working directory: keep them in tmp
            with _working_directory(tmp):
                q.shape_inference.quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
        except Exception:  # symbolic shape inference fails on some graphs; quantize the original then
            prepared = src
        # Index arithmetic (positions, buckets, masks) stays float whatever the scheme: it is
        # integer-valued, its ranges are no activation's (log(0) = -inf in WavLM's distance
        # buckets), and it costs nothing in size.
        index_nodes, products = _exclude_index_arithmetic(prepared, Path(tmp, "named.onnx"))
        prepared = Path(tmp, "named.onnx")
        keep_float = list(keep_float) + [n for n in index_nodes if n not in keep_float]
        if scheme == "dynamic":
            q.quantize_dynamic(
                str(prepared),
                str(dst),
                weight_type=q.QuantType.QInt8,
                per_channel=per_channel,
                reduce_range=reduce_range,
                nodes_to_exclude=list(keep_float),
            )
            return compact_qdq(dst.read_bytes())
        batches = [np.asarray(x, dtype=np.float32) for x in (calibration or [])]
        if not batches:
            raise ValueError(
                f"{scheme} static quantization needs calibration data: pass feature arrays of "
                "representative audio (calib=a folder of WAVs in convert())"
            )
        spec = input_spec or _default_spec(input_name)
        rank, what = (1, "samples [samples]") if spec.kind == "waveform" else (2, "features [frames, dim]")
        for i, x in enumerate(batches):
            if x.ndim != rank or not np.all(np.isfinite(x)):
                raise ValueError(f"calibration item {i} must be finite {what}, got shape {x.shape}")
        if method != "minmax":
            batches = _equal_lengths(batches)
        activation = q.QuantType.QInt16 if scheme == "int16x8" else q.QuantType.QInt8
        extra = {"ActivationSymmetric": symmetric_activations or scheme == "int16x8", "WeightSymmetric": True}
        if method == "percentile":
            extra["CalibPercentile"] = 99.99
        options = dict(
            quant_format=q.QuantFormat.QDQ,
            activation_type=activation,
            weight_type=q.QuantType.QInt8,
            per_channel=per_channel,
            extra_options=extra,
            reduce_range=reduce_range,
            calibrate_method={
                "minmax": q.CalibrationMethod.MinMax,
                "percentile": q.CalibrationMethod.Percentile,
                "entropy": q.CalibrationMethod.Entropy,
            }[method],
        )
        if products:
            # Attention (activation-by-activation products): only layers with stored weights are
            # quantized; the scores, context products and residual adds stay float (same size).
            # Measured greedy agreement with float, all ops -> weight ops: pruned Transformer
            # 87% -> 98%, pruned Conformer 80% -> 90%, HF Conformer 75% -> 81%, data2vec 88% -> 89%,
            # WavLM 98% -> 89% (random encoders, tests/test_hf_ctc_families.py).
            keep_float += [n for n in products if n not in keep_float]
            options["op_types_to_quantize"] = list(WEIGHT_OPS)
        q.quantize_static(str(prepared), str(dst), _Reader(spec, batches), nodes_to_exclude=list(keep_float), **options)
        return compact_qdq(quantize_recurrent_weights(dst.read_bytes(), keep_float))


# Elementwise ops that apply a mask or a positional value to activations; they stay float when
# one operand is index arithmetic (an additive mask's -1e9 or -inf would set the scale).
MASKING_OPS = ("Add", "Sub", "Mul", "Div", "Where", "Max", "Min", "Pow")
# Ops with a stored weight: quantized even when their input is a positional table (Conformer's
# linear_pos projects bounded sinusoids), so the weight is stored in int8.
WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# Ops whose output depends on their input's shape, not its values.
SHAPE_OPS = ("Shape", "Size")


def index_arithmetic_nodes(model) -> list:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) that compute index arithmetic:
    everything whose outputs depend on no floating-point graph input's *values*, only on
    shapes (``Shape``, ``Size``), integer inputs (lengths), and constants. That is relative
    positions and their buckets (WavLM: ``Range``, ``Sub``, ``Abs``, ``Cast``, ``Log``, ``Div``,
    ``Cast`` to int, ``Gather`` from the bucket table), sinusoidal and rotary tables computed from
    the sequence length (``Range``, ``Mul``, ``Sin``, ``Cos``), and masks built from lengths (``Range``,
    ``Less``, ``Where``), plus the elementwise ops (:data:`MASKING_OPS`) that combine such a value
    with activations (adding a mask or a bias, multiplying by cos/sin). Weight-bearing ops
    (:data:`WEIGHT_OPS`) on a positional table are not listed, so their weights are stored in int8.

    Nodes without a name cannot be excluded from onnxruntime's quantizer; name them first
    (:func:`name_nodes`)."""
    import onnx

    graph = model.graph
    # "static": stored or computed from stored values only (initializers, Constant nodes, folded
    # arithmetic); "value": carries the audio (float graph inputs and what is computed from their
    # values); everything else is index arithmetic (shapes, integer inputs such as lengths).
    static = {t.name for t in graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    value = {i.name for i in graph.input if i.name not in static and i.type.tensor_type.elem_type in floats}
    found = []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type not in SHAPE_OPS and any(name in value for name in inputs):
            value.update(node.output)
            if node.op_type in MASKING_OPS and any(name not in value and name not in static for name in inputs):
                found.append(node.name)
            continue
        if all(name in static for name in inputs):
            static.update(node.output)
        if not (node.op_type in WEIGHT_OPS and any(name in static for name in inputs[1:])):
            found.append(node.name)
    return found


def activation_product_nodes(model) -> list:
    """Names of the weight-op nodes (:data:`WEIGHT_OPS`) of ``model`` none of whose inputs is
    stored or computed from stored values only: products of two activations, such as attention's
    query-by-key scores and its weighted sum of values."""
    static = {t.name for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if all(name in static for name in inputs):  # Constant nodes (no inputs) included
            static.update(node.output)
        elif node.op_type in WEIGHT_OPS and not any(name in static for name in inputs):
            found.append(node.name)
    return found


def name_nodes(model) -> None:
    """Gives every unnamed node of ``model`` a unique name (in place)."""
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _exclude_index_arithmetic(source: Path, destination: Path) -> Tuple[list, list]:
    """Writes ``source`` with every node named to ``destination``; returns the names of its index
    arithmetic nodes (:func:`index_arithmetic_nodes`) and of its activation products
    (:func:`activation_product_nodes`)."""
    import onnx

    model = onnx.load(str(source))
    name_nodes(model)
    onnx.save(model, str(destination))
    return index_arithmetic_nodes(model), activation_product_nodes(model)


_MAX_FLOAT16_RETRIES = 16


def to_float16(onnx_model: bytes, keep_float: Sequence[str] = (), blocked_ops: Sequence[str] = ()) -> bytes:
    """The model with weights and compute in float16 and its inputs and outputs kept float32
    (casts at the edges), for GPUs (CUDA, TensorRT) and fp16 Arm cores: half the size of fp32.

    Index arithmetic (:func:`index_arithmetic_nodes`: positions, masks; fp16 holds integers
    exactly only up to 2048), the nodes named in ``keep_float`` (e.g. from :func:`sensitivity`;
    the converter's accuracy budget adds them) and the op types in ``blocked_ops`` stay float32,
    each with its output cast back to fp16. An op type the CPU build of onnxruntime has no fp16
    kernel for is also kept float32 (found by starting a CPU session), so the model runs
    everywhere, if slowly on CPUs without fp16 arithmetic. fp16 overflows past 65504: the
    verification against fp32 (the pipeline's report) is what shows a model survives it.

    Uses onnxruntime's float16 converter (``onnxruntime.transformers.float16``), which the
    converter's onnxruntime dependency already ships."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError:
        raise ImportError("fp16 conversion needs onnxruntime: pip install 'edge-speech[converter]'") from None
    import onnxruntime as ort

    model = onnx.load_from_string(onnx_model)
    name_nodes(model)
    keep_nodes = list(dict.fromkeys([*keep_float, *index_arithmetic_nodes(model)]))
    op_block = list(dict.fromkeys([*DEFAULT_OP_BLOCK_LIST, *blocked_ops]))
    named = model.SerializeToString()
    for _ in range(_MAX_FLOAT16_RETRIES):
        converted = convert_float_to_float16(
            onnx.load_from_string(named),
            keep_io_types=True,
            op_block_list=op_block,
            node_block_list=keep_nodes,
        ).SerializeToString()
        try:
            ort.InferenceSession(converted, providers=["CPUExecutionProvider"])
            return converted
        except Exception as err:  # onnxruntime's NOT_IMPLEMENTED: no fp16 kernel for an op type
            missing = _op_without_kernel(str(err))
            if missing is None or missing in op_block:
                raise RuntimeError(f"the fp16 model does not load in onnxruntime: {err}") from None
            op_block.append(missing)
    raise RuntimeError(f"the fp16 model still does not load after keeping {op_block} in float32")


def _op_without_kernel(message: str) -> Optional[str]:
    """The op type in onnxruntime's 'Could not find an implementation for Foo(13) node' error."""
    found = re.search(r"implementation for (\w+)\(\d+\)", message)
    return found.group(1) if found else None


RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def quantize_recurrent_weights(onnx_model: bytes, keep_float: Sequence[str] = ()) -> bytes:
    """Stores the input and recurrence weights (W, R) of every ONNX LSTM/GRU/RNN node as int8,
    symmetric per output row (gate unit and direction), read through DequantizeLinear.

    onnxruntime's static quantizer has no rule for recurrent nodes and leaves them in float, which
    in a recurrent model is most of the file. The recurrence itself still runs in float (there is
    no int8 LSTM/GRU kernel for static QDQ); what changes is the stored weight, rounded to int8."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(onnx_model)
    graph = proto.graph
    constants = {t.name: t for t in graph.initializer}
    added = []
    for node in graph.node:
        if node.op_type not in RECURRENT_OPS or node.name in keep_float:
            continue
        for position in (1, 2):  # W, R: [directions, gates * hidden, inputs]
            name = node.input[position]
            if name not in constants:
                continue
            weight = numpy_helper.to_array(constants[name]).astype(np.float32)
            rows = weight.reshape(-1, weight.shape[-1])
            scale = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
            quantized = np.clip(np.round(rows / scale[:, None]), -127, 127).astype(np.int8)
            graph.initializer.remove(constants[name])
            stem = f"{name}_int8"
            graph.initializer.extend(
                [
                    numpy_helper.from_array(quantized, stem),
                    numpy_helper.from_array(scale.astype(np.float32), stem + "_scale"),
                    numpy_helper.from_array(np.array(weight.shape, dtype=np.int64), stem + "_shape"),
                ]
            )
            # Per-axis DequantizeLinear takes one axis: the rows of the flattened weight, then its shape back.
            added.append(
                (
                    node,
                    [
                        helper.make_node(
                            "DequantizeLinear",
                            [stem, stem + "_scale"],
                            [stem + "_rows"],
                            axis=0,
                            name=stem + "_dequantize",
                        ),
                        helper.make_node("Reshape", [stem + "_rows", stem + "_shape"], [name], name=stem + "_reshape"),
                    ],
                )
            )
    for node, new_nodes in added:  # before their consumer, keeping the graph topologically sorted
        index = list(graph.node).index(node)
        for offset, new in enumerate(new_nodes):
            graph.node.insert(index + offset, new)
    return proto.SerializeToString() if added else onnx_model


@contextlib.contextmanager
def _working_directory(path: str):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _default_spec(input_name: str):
    from edge_speech.bundle import InputSpec

    return InputSpec(name=input_name)


def _equal_lengths(batches: Sequence[np.ndarray]) -> list:
    """The calibration arrays cut into pieces of the shortest one's length: onnxruntime's
    histogram calibrators (percentile, entropy) stack every batch's tensors, so utterances of
    different lengths failed with "inhomogeneous shape"."""
    length = min(len(x) for x in batches)
    return [x[start : start + length] for x in batches for start in range(0, len(x) - length + 1, length)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over feature arrays."""

    def __init__(self, spec, batches):
        self._items = iter([model_feeds(spec, x) for x in batches])

    def get_next(self):
        return next(self._items, None)

    def rewind(self):  # pragma: no cover - called by some calibrators
        pass


def sensitivity(
    onnx_model: bytes,
    calibration: Sequence[np.ndarray],
    probe: Sequence[np.ndarray],
    scheme: str = "int8",
    input_name: str = "features",
    input_spec=None,
) -> list:
    """Per-layer quantization error: for every weight-bearing node, the output SNR (dB) against
    float when only that node is quantized; lowest SNR (most sensitive) first."""
    import onnx

    from edge_speech.converters.verification import onnx_runner, verify

    nodes = [n.name for n in onnx.load_from_string(onnx_model).graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    reference = onnx_runner(onnx_model, input_name, input_spec=input_spec)
    scores = []
    for name in nodes:
        others = [n for n in nodes if n != name]
        single = quantize(
            onnx_model, calibration, scheme=scheme, input_name=input_name, keep_float=others, input_spec=input_spec
        )
        scores.append((name, verify(reference, onnx_runner(single, input_name, input_spec=input_spec), probe).snr_db))
    return sorted(scores, key=lambda item: item[1])
