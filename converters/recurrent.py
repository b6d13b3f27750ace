"""Structured pruning of recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``; uni- or
bidirectional, any number of layers) inside torch-pruning's dependency graph.

torch-pruning's own LSTM rule handles one unidirectional layer only (it asserts
``num_layers == 1``, and reports a bidirectional layer's output width as ``hidden_size``); it has
none for GRU. The rules here remove hidden units: a unit is a row in every gate of ``weight_ih``
and ``weight_hh`` (and their biases), a column of ``weight_hh``, and a column of the next layer's
``weight_ih``. ``nn.LSTM`` keeps one ``hidden_size`` for all layers and both directions, so every
layer and direction loses the same number of units: the last layer loses the units the
dependency graph chose (the same ones in both directions, which its consumers see side by side),
the inner layers their own weakest units.

The dependency graph would trace into a recurrent layer's internal operators (one node per
layer and direction on CPU) and lose the channel mapping; :func:`opaque_recurrent_layers` hides
each one behind a single-node stand-in while the graph is built.
"""

from __future__ import annotations

import contextlib
from typing import Dict, List, Sequence

from edge_speech.converters._deps import import_torch, import_torch_pruning

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_types() -> tuple:
    torch = import_torch()
    return (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)


def is_recurrent(module) -> bool:
    return type(module) in recurrent_types()


def _directions(layer) -> int:
    return 2 if layer.bidirectional else 1


def _suffix(index: int, direction: int) -> str:
    return f"_l{index}" + ("_reverse" if direction else "")


def _gate_rows(keep, hidden: int, gates: int):
    torch = import_torch()
    keep = torch.as_tensor(keep, dtype=torch.long)
    return torch.cat([keep + g * hidden for g in range(gates)])


def unit_strength(layer, index: int, direction: int, p: int = 2, use_grad: bool = False):
    """Per hidden unit of one layer and direction: the p-norm of its gate rows in ``weight_ih``
    and ``weight_hh`` (of weight x gradient with ``use_grad``, first-order Taylor)."""
    torch = import_torch()
    gates, hidden = GATES[type(layer).__name__], layer.hidden_size
    total = torch.zeros(hidden)
    for kind in ("ih", "hh"):
        weight = getattr(layer, f"weight_{kind}{_suffix(index, direction)}")
        values = weight.detach() * weight.grad if use_grad and weight.grad is not None else weight.detach()
        total += values.abs().pow(p).reshape(gates, hidden, -1).sum(dim=(0, 2))
    return total


def _slice_units(layer, keeps: List[List[List[int]]]) -> None:
    """Keeps ``keeps[layer][direction]`` hidden units of each layer and direction."""
    torch = import_torch()
    gates, hidden = GATES[type(layer).__name__], layer.hidden_size
    new_hidden = len(keeps[0][0])
    for index in range(layer.num_layers):
        if index > 0:  # its input is the previous layer's directions side by side
            columns = torch.cat([torch.as_tensor(keeps[index - 1][d], dtype=torch.long) + d * hidden
                                 for d in range(_directions(layer))])
        for direction in range(_directions(layer)):
            sfx = _suffix(index, direction)
            keep = torch.as_tensor(keeps[index][direction], dtype=torch.long)
            rows = _gate_rows(keep, hidden, gates)
            for name, axis_rows, axis_cols in (("weight_ih", rows, columns if index > 0 else None),
                                              ("weight_hh", rows, keep)):
                weight = getattr(layer, name + sfx).data[axis_rows]
                if axis_cols is not None:
                    weight = weight[:, axis_cols]
                setattr(layer, name + sfx, torch.nn.Parameter(weight.contiguous()))
            if layer.bias:
                for name in ("bias_ih", "bias_hh"):
                    setattr(layer, name + sfx, torch.nn.Parameter(getattr(layer, name + sfx).data[rows].contiguous()))
    layer.hidden_size = new_hidden
    layer._init_flat_weights()


def pruners() -> Dict[type, object]:
    """torch-pruning rules for every recurrent type: ``customized_pruners=`` of its pruners."""
    tp = import_torch_pruning()

    class RecurrentPruner(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, leaf, idxs: Sequence[int]):
            layer = leaf.layer
            if getattr(layer, "proj_size", 0):
                raise ValueError("LSTMs with proj_size are not pruned")
            hidden, directions = layer.hidden_size, _directions(layer)
            chosen = sorted({int(i) for i in idxs})
            per_direction = [[i - d * hidden for i in chosen if d * hidden <= i < (d + 1) * hidden]
                             for d in range(directions)]
            if directions == 2 and sorted(per_direction[0]) != sorted(per_direction[1]):
                raise ValueError(f"a bidirectional {type(layer).__name__} loses the same units in both directions; "
                                 f"got {per_direction}")
            removed = len(per_direction[0])
            keep_count = hidden - removed
            last = [sorted(set(range(hidden)) - set(per_direction[d])) for d in range(directions)]
            inner = [[sorted(unit_strength(layer, i, d).argsort(descending=True)[:keep_count].tolist())
                      for d in range(directions)] for i in range(layer.num_layers - 1)]
            _slice_units(layer, inner + [last])
            return leaf

        def prune_in_channels(self, leaf, idxs: Sequence[int]):
            torch = import_torch()
            layer = leaf.layer
            keep = torch.as_tensor(sorted(set(range(layer.input_size)) - {int(i) for i in idxs}), dtype=torch.long)
            for direction in range(_directions(layer)):
                name = "weight_ih" + _suffix(0, direction)
                setattr(layer, name, torch.nn.Parameter(getattr(layer, name).data[:, keep].contiguous()))
            layer.input_size = len(keep)
            layer._init_flat_weights()
            return leaf

        def get_out_channels(self, leaf):
            return (getattr(leaf.layer, "proj_size", 0) or leaf.layer.hidden_size) * _directions(leaf.layer)

        def get_in_channels(self, leaf):
            return leaf.layer.input_size

    return {leaf_type(): RecurrentPruner()}


_LEAF_TYPE = None


def leaf_type():
    """The stand-in module type: one autograd node from the input to all outputs, so torch-pruning's
    graph sees the recurrent layer as one layer (in-channels: input_size; out-channels: the
    output's width). Its backward is never run: the real layers are back before any training."""
    global _LEAF_TYPE
    if _LEAF_TYPE is None:
        torch = import_torch()

        class _Opaque(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, weight, layer, hx):
                output, state = layer.forward(x, hx)  # forward(), not __call__: no hooks see the inside
                return (output, *state) if isinstance(state, tuple) else (output, state)

            @staticmethod
            def backward(ctx, *grads):  # pragma: no cover - the graph builder never runs it
                raise RuntimeError("the recurrent stand-in is for building the dependency graph only")

        class RecurrentLeaf(torch.nn.Module):
            def __init__(self, layer):
                super().__init__()
                self.layer = layer

            def forward(self, x, hx=None):
                if not isinstance(x, torch.Tensor):  # a PackedSequence: no channel tracing through it
                    return self.layer(x, hx)
                # The first weight makes the node exist even when x is the model's input.
                output, *state = _Opaque.apply(x, self.layer.weight_ih_l0, self.layer, hx)
                return output, (tuple(state) if len(state) > 1 else state[0])

        _LEAF_TYPE = RecurrentLeaf
    return _LEAF_TYPE


@contextlib.contextmanager
def opaque_recurrent_layers(model):
    """Inside: every recurrent layer of ``model`` sits behind a stand-in (see :func:`leaf_type`);
    yields {stand-in: layer}. On exit the real layers are back in place; stand-ins kept by a
    pruner still reach them (``.layer``), so pruning a stand-in prunes the model's layer."""
    Leaf = leaf_type()
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_recurrent(child):
                leaf = Leaf(child)
                setattr(parent, name, leaf)
                swapped.append((parent, name, leaf))
    try:
        yield {leaf: leaf.layer for _, _, leaf in swapped}
    finally:
        for parent, name, leaf in swapped:
            setattr(parent, name, leaf.layer)


def importance(kind: str):
    """torch-pruning's magnitude or Taylor importance, extended to score recurrent layers in a
    group (by their hidden units' gate weights, or the input columns they read)."""
    tp = import_torch_pruning()
    torch = import_torch()
    base = tp.importance.TaylorImportance if kind == "taylor" else tp.importance.MagnitudeImportance

    class RecurrentAware(base):
        def __call__(self, group):
            scores = super().__call__(group)
            use_grad = kind == "taylor"
            extra, extra_idxs = [], []
            for i, (dep, idxs) in enumerate(group):
                if not isinstance(dep.layer, leaf_type()) or getattr(dep.layer.layer, "proj_size", 0):
                    continue
                layer = dep.layer.layer
                if getattr(dep.handler, "__name__", "") == "prune_out_channels":
                    last = layer.num_layers - 1
                    local = torch.cat([unit_strength(layer, last, d, use_grad=use_grad)
                                       for d in range(_directions(layer))])
                else:
                    local = torch.zeros(layer.input_size)
                    for d in range(_directions(layer)):
                        weight = getattr(layer, "weight_ih" + _suffix(0, d))
                        values = weight.detach() * weight.grad if use_grad and weight.grad is not None else weight.detach()
                        local += values.abs().pow(2).sum(0)
                extra.append(local[list(idxs)])
                extra_idxs.append(group[i].root_idxs)
            if not extra:
                return scores
            # Averaged onto the root's channels (an index may stand for several flattened columns).
            roots = len(group[0].idxs)
            total, counts = torch.zeros(roots), torch.zeros(roots)
            for local, root_idxs in zip(extra, extra_idxs):
                index = torch.as_tensor(root_idxs, dtype=torch.long)
                total.scatter_add_(0, index, local.float())
                counts.scatter_add_(0, index, torch.ones(len(index)))
            recurrent = self._normalize(total / counts.clamp(min=1), "mean")
            return recurrent if scores is None else (scores + recurrent) / 2

    return RecurrentAware()
