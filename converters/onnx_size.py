"""Where an ONNX model's bytes go, and a quantized model's same computation in fewer bytes.

onnxruntime's QDQ quantizer stores, next to every int8 weight, a per-channel zero point of zeros,
and next to every int32 bias a zero point of zeros as large as the bias itself plus a per-channel
scale that is exactly input scale x weight scale; tensors keep the exporter's long names and
shape annotations. On a small model that is about 10% of the file. :func:`compact_qdq` removes
it; onnxruntime then runs the identical integer kernels.
"""

from __future__ import annotations

import collections
from typing import Dict

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def size_breakdown(model: bytes) -> Dict[str, int]:
    """Serialized bytes of ``model`` by what they hold; the values sum to ``len(model)``.

    Keys: ``quantized_<dtype>`` (constants a DequantizeLinear reads: int8 weights, int32
    biases), ``float_<dtype>`` (other constants: weights of layers left in float, buffers),
    ``scales``, ``zero_points``, ``nodes``, ``value_info`` (shape annotations), ``metadata``
    (the embedded manifest) and ``other`` (headers, opsets, inputs and outputs)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    graph = proto.graph
    role = {}
    for node in graph.node:
        if node.op_type in QDQ_OPS:
            for position, name in enumerate(node.input):
                role.setdefault(
                    name,
                    ("quantized", "scales", "zero_points")[position]
                    if node.op_type == "DequantizeLinear" or position
                    else None,
                )
    sizes: Dict[str, int] = collections.Counter()
    for tensor in graph.initializer:
        kind = role.get(tensor.name)
        dtype = numpy_helper.to_array(tensor).dtype.name
        key = {"quantized": f"quantized_{dtype}", "scales": "scales", "zero_points": "zero_points"}.get(
            kind, f"float_{dtype}"
        )
        sizes[key] += _field_bytes(tensor)
    sizes["nodes"] = sum(_field_bytes(n) for n in graph.node)
    sizes["value_info"] = sum(_field_bytes(v) for v in graph.value_info)
    sizes["metadata"] = sum(_field_bytes(p) for p in proto.metadata_props)
    sizes["other"] = len(model) - sum(sizes.values())
    return dict(sizes)


def compact_qdq(model: bytes) -> bytes:
    """The same model in fewer bytes, for onnxruntime's QDQ models (a no-op on others):

    - constant DequantizeLinear inputs (weights, biases) lose their all-zero zero points, which
      the ONNX spec makes the default;
    - a bias scale that equals input scale x weight scale bit for bit becomes a Mul of the two
      (onnxruntime folds it when the session loads, before fusing the QDQ groups);
    - identical constants are stored once, unused ones and shape annotations are dropped, tensors
      get short names (graph inputs and outputs keep theirs), unused opset domains go.
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model)
    graph = proto.graph
    constants = {t.name: t for t in graph.initializer}
    value = lambda name: numpy_helper.to_array(constants[name])  # noqa: E731
    for node in graph.node:
        if (
            node.op_type == "DequantizeLinear"
            and len(node.input) == 3
            and node.input[0] in constants
            and node.input[2] in constants
            and not value(node.input[2]).any()
        ):
            del node.input[2]
    nodes = _derived_bias_scales(graph, constants, value, helper) + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    _share_identical_constants(graph)
    used = {name for node in graph.node for name in node.input} | {i.name for i in graph.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]
    if not any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute
    ):  # subgraphs may name outer tensors: leave names alone then
        _shorten_names(graph)
    domains = {n.domain for n in graph.node} | {""}
    opsets = [o for o in proto.opset_import if o.domain in domains or o.domain == "ai.onnx"]
    del proto.opset_import[:]
    proto.opset_import.extend(opsets)
    return proto.SerializeToString()


def _derived_bias_scales(graph, constants, value, helper) -> list:
    """Mul nodes replacing stored bias scales of Conv/Gemm groups that equal input x weight scale."""
    producer = {out: node for node in graph.node for out in node.output}
    added = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        dqs = [producer.get(name) for name in node.input[:3]]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in dqs):
            continue
        scales = [d.input[1] for d in dqs]
        if not all(s in constants for s in scales):
            continue
        product = (value(scales[0]) * value(scales[1])).astype(np.float32)
        stored = value(scales[2])
        if stored.dtype != np.float32 or product.shape != stored.shape or not np.array_equal(product, stored):
            continue
        derived = f"{scales[2]}/derived"
        added.append(helper.make_node("Mul", scales[:2], [derived]))
        dqs[2].input[1] = derived
    return added


def _share_identical_constants(graph) -> None:
    from onnx import numpy_helper

    first_of = {}
    rename = {}
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        key = (array.dtype.str, array.shape, array.tobytes())
        rename[tensor.name] = first_of.setdefault(key, tensor.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)


def _shorten_names(graph) -> None:
    fixed = {v.name for v in graph.input} | {v.name for v in graph.output}
    short: Dict[str, str] = {}

    def name_of(name: str) -> str:
        if not name or name in fixed:
            return name
        if name not in short:
            candidate = np.base_repr(len(short), 36).lower()
            while candidate in fixed:
                candidate += "_"
            short[name] = candidate
        return short[name]

    for tensor in graph.initializer:
        tensor.name = name_of(tensor.name)
        tensor.doc_string = ""
    for node in graph.node:
        node.name = ""
        node.doc_string = ""
        for i, name in enumerate(node.input):
            node.input[i] = name_of(name)
        for i, name in enumerate(node.output):
            node.output[i] = name_of(name)


def _field_bytes(message) -> int:
    """Bytes of ``message`` as a repeated field of its parent: tag, length prefix and body."""
    size = message.ByteSize()
    return 1 + _varint_bytes(size) + size


def _varint_bytes(n: int) -> int:
    count = 1
    while n >= 0x80:
        n >>= 7
        count += 1
    return count
