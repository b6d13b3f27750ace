"""Tiny CTC acoustic models built directly as ONNX graphs (no torch): one strided 1-D
convolution, ReLU, a projection and log-softmax. Weights are seeded, and a numpy reference
computes the same function independently."""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOKENS = ["<blk>", " ", "a", "e", "i", "k", "l", "n", "o", "t"]


def weights(dim: int, hidden: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "conv_w": (rng.standard_normal((hidden, dim, 3)) / np.sqrt(3 * dim)).astype(np.float32),
        "conv_b": (rng.standard_normal(hidden) * 0.1).astype(np.float32),
        "proj_w": (rng.standard_normal((hidden, vocab)) * 2 / np.sqrt(hidden)).astype(np.float32),
        "proj_b": (rng.standard_normal(vocab) * 0.5).astype(np.float32),
    }


def build(
    dim: int,
    vocab: int = len(TOKENS),
    hidden: int = 16,
    seed: int = 0,
    frames: Optional[int] = None,
    layout: str = "time_major",
    log_softmax: bool = True,
    length_input: bool = False,
) -> bytes:
    """Serialized ONNX model: input 'features' [1, T, dim] (or [1, dim, T]), output [1, ceil(T/2), vocab]."""
    w = weights(dim, hidden, vocab, seed)
    time = frames if frames is not None else "T"
    in_shape = [1, time, dim] if layout == "time_major" else [1, dim, time]
    nodes = []
    conv_in = "features"
    if layout == "time_major":
        nodes.append(helper.make_node("Transpose", ["features"], ["x_ct"], perm=[0, 2, 1]))
        conv_in = "x_ct"
    nodes += [
        helper.make_node("Conv", [conv_in, "conv_w", "conv_b"], ["h"], kernel_shape=[3], pads=[1, 1], strides=[2]),
        helper.make_node("Relu", ["h"], ["h_relu"]),
        helper.make_node("Transpose", ["h_relu"], ["h_tc"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["h_tc", "proj_w"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "proj_b"], ["logits" if log_softmax else "log_probs"]),
    ]
    if log_softmax:
        nodes.append(helper.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=-1))
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, in_shape)]
    if length_input:  # as NeMo exports have; the frame count is not needed by this model
        inputs.append(helper.make_tensor_value_info("length", TensorProto.INT64, [1]))
    graph = helper.make_graph(
        nodes,
        "tiny_ctc",
        inputs,
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1, None, vocab])],
        initializer=[numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(
    features: np.ndarray, vocab: int = len(TOKENS), hidden: int = 16, seed: int = 0, log_softmax: bool = True
) -> np.ndarray:
    """The same model in float64 numpy: [T, dim] -> [ceil(T/2), vocab]."""
    w = weights(features.shape[1], hidden, vocab, seed)
    x = np.pad(features.astype(np.float64), ((1, 1), (0, 0)))
    out_frames = (len(features) - 1) // 2 + 1
    h = np.stack([np.einsum("hdk,kd->h", w["conv_w"], x[2 * t : 2 * t + 3]) for t in range(out_frames)]) + w["conv_b"]
    logits = np.maximum(h, 0) @ w["proj_w"] + w["proj_b"]
    if not log_softmax:
        return logits
    return (
        logits
        - np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
        - logits.max(axis=1, keepdims=True)
    )
