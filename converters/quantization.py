"""int8 quantization of ONNX models with onnxruntime.quantization: static QDQ with calibration
features (per-channel symmetric int8 weights, int8 activations), int16-activation/int8-weight,
or dynamic (weights only); and float16 (:func:`to_float16`: weights and compute in fp16 for
GPUs and TensorRT, float32 inputs and outputs kept).

Whatever the scheme, index arithmetic stays float (:func:`index_arithmetic_nodes`): the nodes
that compute positions, distance buckets, positional tables and masks from shapes and lengths
rather than from the audio, found from the graph's data flow for any model."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

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
    float_activations: Sequence[str] = (),
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

    ``float_activations``: activation tensors (by their names in ``onnx_model``) left unquantized:
    their QuantizeLinear/DequantizeLinear pairs are removed, so the layers that read them run in
    float on int8 weights; the size is unchanged (see :func:`quantize_within_agreement`).
    """
    return finish_qdq(
        static_qdq(
            onnx_model,
            calibration,
            scheme,
            input_name,
            method,
            per_channel,
            symmetric_activations,
            keep_float,
            input_spec,
            reduce_range,
        ),
        float_activations,
    )


def finish_qdq(qdq: "bytes | QdqModel", float_activations: Sequence[str] = ()) -> bytes:
    """A :func:`static_qdq` result as :func:`quantize` returns it: without the activation
    quantization of ``float_activations``, recurrent weights in int8, stored compactly."""
    if not isinstance(qdq, QdqModel):
        return qdq
    model = without_activation_quantization(qdq.model, float_activations, qdq.source)
    return compact_qdq(quantize_recurrent_weights(model, qdq.keep_float))


@dataclasses.dataclass(frozen=True)
class QdqModel:
    """onnxruntime's QDQ model before :func:`finish_qdq`: tensor names as in the float model."""

    model: bytes
    keep_float: Tuple[str, ...]
    source: bytes  # the float model it quantizes (node names added)


def static_qdq(
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
) -> "bytes | QdqModel":
    """:func:`quantize`'s work up to onnxruntime's QDQ model (static schemes; other schemes'
    finished bytes are returned as they are)."""
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
            # ReLU and Clip after a weight op are quantized with it (onnxruntime folds them into
            # its output's range): otherwise the weight op's output is rounded before the ReLU,
            # over a range whose negative half the ReLU discards (pruned Conformer: output SNR
            # 36.7 -> 38.9 dB, greedy agreement on the calibration speech 95.9% -> 97.7%).
            options["op_types_to_quantize"] = list(WEIGHT_OPS) + list(REMOVABLE_ACTIVATIONS)
        q.quantize_static(str(prepared), str(dst), _Reader(spec, batches), nodes_to_exclude=list(keep_float), **options)
        return QdqModel(dst.read_bytes(), tuple(keep_float), prepared.read_bytes())


# Elementwise ops that apply a mask or a positional value to activations; they stay float when
# one operand is index arithmetic (an additive mask's -1e9 or -inf would set the scale).
MASKING_OPS = ("Add", "Sub", "Mul", "Div", "Where", "Max", "Min", "Pow")
# Ops with a stored weight: quantized even when their input is a positional table (Conformer's
# linear_pos projects bounded sinusoids), so the weight is stored in int8.
WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# Activations onnxruntime's QDQ quantizer folds into the preceding op's output range.
REMOVABLE_ACTIVATIONS = ("Relu", "Clip")
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


def quantized_activations(qdq_model: bytes) -> list:
    """Names of the activation tensors of a QDQ model that a QuantizeLinear rounds (weights are
    stored already quantized and have none)."""
    import onnx

    graph = onnx.load_from_string(qdq_model).graph
    constants = {t.name for t in graph.initializer}
    return list(
        dict.fromkeys(n.input[0] for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants)
    )


def without_activation_quantization(qdq_model: bytes, tensors: Sequence[str], source: Optional[bytes] = None) -> bytes:
    """``qdq_model`` with the QuantizeLinear/DequantizeLinear pairs on the activation ``tensors``
    removed: their consumers read them in float (a layer whose input is float runs in float on its
    dequantized int8 weights). Weights and file size are unchanged.

    onnxruntime's quantizer deletes a ReLU or Clip after a quantized op and lets the pair's range
    do the clipping; ``source``, the float model it quantized, gives such activations back."""
    if not tensors:
        return qdq_model
    import onnx
    from onnx import helper

    proto = onnx.load_from_string(qdq_model)
    graph = proto.graph
    folded = _folded_activations(graph, onnx.load_from_string(source).graph if source else None)
    wanted = set(tensors)
    unknown = wanted - set(quantized_activations(qdq_model))
    if unknown:
        raise ValueError(f"float_activations: {sorted(unknown)[:3]} are not quantized activations of the model")
    quantizers = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in wanted]
    rounded = {q.output[0]: q.input[0] for q in quantizers}
    dequantizers = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in rounded]
    restored = {dq.output[0]: rounded[dq.input[0]] for dq in dequantizers}
    outputs = {o.name for o in graph.output}
    removed = {id(n) for n in quantizers + dequantizers}
    kept = []
    for node in graph.node:
        if id(node) in removed:
            if node.op_type == "DequantizeLinear" and node.output[0] in outputs:  # a graph output keeps its name
                kept.append(helper.make_node("Identity", [restored[node.output[0]]], [node.output[0]]))
            continue
        for i, name in enumerate(node.input):
            node.input[i] = restored.get(name, name)
        for i, name in enumerate(node.output):
            if name in wanted and name in folded:  # the deleted ReLU/Clip back between the op and its readers
                activation, constants = folded[name]
                node.output[i] = name + "/unclipped"
                kept.append(node)
                node = onnx.NodeProto()
                node.CopyFrom(activation)
                node.input[0] = name + "/unclipped"
                present = {t.name for t in graph.initializer}
                graph.initializer.extend(t for t in constants if t.name not in present)
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    if source is not None:
        _float_input_weights(graph, onnx.load_from_string(source).graph)
    return proto.SerializeToString()


def _float_input_weights(graph, source) -> None:
    """For the weight ops of ``graph`` whose activation input is float: int8 weights over the full
    range [-127, 127] (requantized from ``source``'s float weights; ``reduce_range``'s 7 bits are
    for onnxruntime's integer kernels, which no longer run these), and the bias in float (its
    int32 scale was the input's scale times the weights')."""
    from onnx import numpy_helper

    producers = {o: n for n in graph.node for o in n.output}
    constants = {t.name: t for t in graph.initializer}
    floats = {t.name: t for t in source.initializer}

    def dequantizer(name):
        node = producers.get(name)
        if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in constants:
            return node
        return None

    for node in graph.node:
        if node.op_type not in WEIGHT_OPS or len(node.input) < 2 or dequantizer(node.input[0]) is not None:
            continue
        weight = dequantizer(node.input[1])
        original = weight.input[0][: -len("_quantized")] if weight is not None else ""
        if weight is not None and original in floats and weight.input[1] in constants:
            values = numpy_helper.to_array(floats[original]).astype(np.float32)
            stored = constants[weight.input[0]]
            if numpy_helper.to_array(stored).dtype == np.int8:
                scale_tensor = constants[weight.input[1]]
                per_axis = numpy_helper.to_array(scale_tensor).size > 1
                axis = next((a.i for a in weight.attribute if a.name == "axis"), 1) % values.ndim
                reduce = tuple(i for i in range(values.ndim) if i != axis) if per_axis else None
                peak = np.abs(values).max(axis=reduce, keepdims=True) if per_axis else np.abs(values).max()
                scale = np.maximum(peak, 1e-12) / 127.0
                stored.CopyFrom(
                    numpy_helper.from_array(np.clip(np.round(values / scale), -127, 127).astype(np.int8), stored.name)
                )
                scale_tensor.CopyFrom(
                    numpy_helper.from_array(
                        np.asarray(scale, np.float32).reshape(-1 if per_axis else ()), scale_tensor.name
                    )
                )
        bias = dequantizer(node.input[2]) if len(node.input) > 2 else None
        if bias is not None and bias.input[1] in constants:
            value = numpy_helper.to_array(constants[bias.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(constants[bias.input[1]]).astype(np.float64)
            name = bias.output[0] + "/float"
            graph.initializer.append(numpy_helper.from_array((value * scale).astype(np.float32), name))
            node.input[2] = name
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unread = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] not in read]
    for node in unread:
        graph.node.remove(node)


def _folded_activations(graph, source) -> dict:
    """tensor -> (ReLU/Clip node of ``source`` that produced it, its constant inputs) for the
    tensors of ``graph`` (a QDQ model of ``source``) that onnxruntime's quantizer made the output
    of the op before that activation, deleting the activation."""
    if source is None:
        return {}
    producers = {o: n for n in graph.node for o in n.output}
    constants = {t.name: t for t in source.initializer}
    folded = {}
    for node in source.node:
        if node.op_type in REMOVABLE_ACTIVATIONS and node.output[0] in producers:
            if producers[node.output[0]].op_type != node.op_type:
                folded[node.output[0]] = (node, [constants[i] for i in node.input[1:] if i in constants])
    return folded


# Greedy-token agreement (classifiers: label agreement) of an int8 model with its float model on
# the calibration audio below which convert() keeps the activations most sensitive to rounding
# in float (quantize_within_agreement).
MIN_AGREEMENT = 0.95


def quantize_within_agreement(
    onnx_model: bytes,
    calibration: Sequence[np.ndarray],
    compare: Callable[[bytes], Tuple[float, float]],
    min_agreement: float = MIN_AGREEMENT,
    **options,
) -> Tuple[bytes, dict]:
    """:func:`quantize` (``options`` are its keyword arguments), then a guard: when the quantized
    model's agreement with the float one, ``compare(model) -> (agreement, output SNR dB)``, is
    below ``min_agreement``, the activations whose rounding costs most are left in float until it
    holds. Only activation rounding is given up: weights stay int8 and the file keeps its size,
    the layers reading a float activation run in float (slower than int8 kernels on CPUs).

    Each quantized activation is ranked by the output SNR of the model with only it rounded
    (one run over the probe audio each; no recalibration), then the shortest prefix of that
    ranking that reaches the bound is found by doubling and bisection. A model that meets the
    bound as quantized costs one comparison. Returns the model and a record for the report:
    ``agreement`` and ``snr_db`` before (and ``after`` when the guard acted), the float
    activations' names, whether the bound was met and the seconds spent."""
    start = time.perf_counter()
    qdq = static_qdq(onnx_model, calibration, **options)
    final = finish_qdq(qdq)
    agreement, snr = compare(final)
    record: Dict[str, Any] = {"min_agreement": min_agreement, "agreement": round(agreement, 4), "snr_db": round(snr, 2)}
    if agreement >= min_agreement or not isinstance(qdq, QdqModel):
        return final, record
    tensors = quantized_activations(qdq.model)

    def candidate(floats: Sequence[str]) -> bytes:  # compact_qdq only for the one kept
        return quantize_recurrent_weights(
            without_activation_quantization(qdq.model, floats, qdq.source), qdq.keep_float
        )

    alone = [(compare(candidate([t for t in tensors if t != kept]))[1], kept) for kept in tensors]
    ranked = [t for _, t in sorted(alone, key=lambda item: item[0])]
    tried: Dict[int, Tuple[float, float]] = {}

    def score(count: int) -> Tuple[float, float]:
        if count not in tried:
            tried[count] = compare(candidate(ranked[:count]))
        return tried[count]

    passing, low, count = None, 0, 1  # low: a count known to fail
    while count < len(ranked) and score(count)[0] < min_agreement:
        low, count = count, count * 2
    count = min(count, len(ranked))
    if score(count)[0] >= min_agreement:
        passing = count
        while passing - low > 1:
            middle = (low + passing) // 2
            if score(middle)[0] >= min_agreement:
                passing = middle
            else:
                low = middle
    best = passing if passing is not None else max(tried, key=lambda n: (tried[n][0], -n))
    record.update(
        after={"agreement": round(tried[best][0], 4), "snr_db": round(tried[best][1], 2)},
        float_activations=ranked[:best],
        quantized_activations=len(ranked) - best,
        met=passing is not None,
        seconds=round(time.perf_counter() - start, 2),
    )
    return compact_qdq(candidate(ranked[:best])), record


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
