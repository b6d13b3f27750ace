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
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_speech.converters._deps import import_litert_torch, import_torch, import_torch_pruning

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
            columns = torch.cat(
                [torch.as_tensor(keeps[index - 1][d], dtype=torch.long) + d * hidden for d in range(_directions(layer))]
            )
        for direction in range(_directions(layer)):
            sfx = _suffix(index, direction)
            keep = torch.as_tensor(keeps[index][direction], dtype=torch.long)
            rows = _gate_rows(keep, hidden, gates)
            for name, axis_rows, axis_cols in (
                ("weight_ih", rows, columns if index > 0 else None),
                ("weight_hh", rows, keep),
            ):
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
            per_direction = [
                [i - d * hidden for i in chosen if d * hidden <= i < (d + 1) * hidden] for d in range(directions)
            ]
            if directions == 2 and sorted(per_direction[0]) != sorted(per_direction[1]):
                raise ValueError(
                    f"a bidirectional {type(layer).__name__} loses the same units in both directions; "
                    f"got {per_direction}"
                )
            removed = len(per_direction[0])
            keep_count = hidden - removed
            last = [sorted(set(range(hidden)) - set(per_direction[d])) for d in range(directions)]
            inner = [
                [
                    sorted(unit_strength(layer, i, d).argsort(descending=True)[:keep_count].tolist())
                    for d in range(directions)
                ]
                for i in range(layer.num_layers - 1)
            ]
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
                    local = torch.cat(
                        [unit_strength(layer, last, d, use_grad=use_grad) for d in range(_directions(layer))]
                    )
                else:
                    local = torch.zeros(layer.input_size)
                    for d in range(_directions(layer)):
                        weight = getattr(layer, "weight_ih" + _suffix(0, d))
                        values = (
                            weight.detach() * weight.grad if use_grad and weight.grad is not None else weight.detach()
                        )
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


# -- Export-time lowering: recurrent layers as explicit matmuls and gates -------------------------


def explicit_recurrent_type():
    """A module computing exactly what an ``nn.GRU``/``nn.LSTM``/``nn.RNN`` (tanh) computes, from
    the same weights, written as ``nn.Linear`` layers and gate arithmetic over a loop on the time
    axis. Traced at a fixed length (TFLite windows) the loop unrolls; every matmul is an
    ``nn.Linear``, which the PT2E int8 quantizer stores as int8 per channel (litert-torch 0.10's
    quantizer has no working rule for the fused GRU op)."""
    torch = import_torch()

    class ExplicitRecurrent(torch.nn.Module):
        def __init__(self, layer):
            super().__init__()
            kind = type(layer).__name__
            if getattr(layer, "proj_size", 0):
                raise ValueError("LSTMs with proj_size are not lowered")
            if kind == "RNN" and layer.nonlinearity != "tanh":
                raise ValueError("only tanh RNNs are lowered")
            self.kind, self.hidden, self.layers = kind, layer.hidden_size, layer.num_layers
            self.directions, self.batch_first = _directions(layer), layer.batch_first
            self.ih, self.hh = torch.nn.ModuleList(), torch.nn.ModuleList()
            for index in range(layer.num_layers):
                for direction in range(self.directions):
                    sfx = _suffix(index, direction)
                    for kind_, store in (("ih", self.ih), ("hh", self.hh)):
                        weight = getattr(layer, f"weight_{kind_}{sfx}").detach()
                        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=layer.bias)
                        linear.weight.data.copy_(weight)
                        if layer.bias:
                            linear.bias.data.copy_(getattr(layer, f"bias_{kind_}{sfx}").detach())
                        store.append(linear)

        def _cell(self, gx, h, c, hh):
            H = self.hidden
            gh = hh(h)
            if self.kind == "GRU":
                r = torch.sigmoid(gx[:, :H] + gh[:, :H])
                z = torch.sigmoid(gx[:, H : 2 * H] + gh[:, H : 2 * H])
                n = torch.tanh(gx[:, 2 * H :] + r * gh[:, 2 * H :])
                return (1 - z) * n + z * h, c
            if self.kind == "LSTM":
                g = gx + gh
                i, f = torch.sigmoid(g[:, :H]), torch.sigmoid(g[:, H : 2 * H])
                cell, o = torch.tanh(g[:, 2 * H : 3 * H]), torch.sigmoid(g[:, 3 * H :])
                c = f * c + i * cell
                return o * torch.tanh(c), c
            return torch.tanh(gx + gh), c

        def forward(self, x, hx=None):
            if not self.batch_first:
                x = x.transpose(0, 1)
            batch, frames = x.shape[0], x.shape[1]
            lstm = self.kind == "LSTM"
            count = self.layers * self.directions
            if hx is None:
                zeros = x.new_zeros(count, batch, self.hidden)
                h0, c0 = zeros, zeros
            else:
                h0, c0 = hx if lstm else (hx, None)
            finals_h, finals_c = [], []
            for index in range(self.layers):
                outputs = []
                for direction in range(self.directions):
                    k = index * self.directions + direction
                    gx = self.ih[k](x)  # one matmul over all frames
                    h, c = h0[k], (c0[k] if lstm else None)
                    steps = [None] * frames
                    order = range(frames - 1, -1, -1) if direction else range(frames)
                    for t in order:
                        h, c = self._cell(gx[:, t], h, c, self.hh[k])
                        steps[t] = h
                    outputs.append(torch.stack(steps, dim=1))
                    finals_h.append(h)
                    finals_c.append(c)
                x = torch.cat(outputs, dim=2) if self.directions == 2 else outputs[0]
            h_n = torch.stack(finals_h)
            state = (h_n, torch.stack(finals_c)) if lstm else h_n
            return (x if self.batch_first else x.transpose(0, 1)), state

    return ExplicitRecurrent


def lowerable(module) -> Optional[str]:
    """None when ``module`` is not recurrent or :func:`lower_recurrent` lowers it; else why not."""
    if not is_recurrent(module):
        return None
    if getattr(module, "proj_size", 0):
        return "proj_size"
    if type(module).__name__ == "RNN" and module.nonlinearity != "tanh":
        return f"nonlinearity={module.nonlinearity!r}"
    return None


def lower_recurrent(model):
    """A copy of ``model`` whose recurrent layers are :func:`explicit_recurrent_type` modules
    (``model`` itself when it has none; layers :func:`lowerable` refuses stay as they are).
    Same outputs within float rounding."""
    from edge_speech.converters.loading import with_modules_replaced

    targets = [name for name, m in model.named_modules() if is_recurrent(m) and lowerable(m) is None]
    if not targets:
        return model
    return with_modules_replaced(model, targets, explicit_recurrent_type())


# -- Streaming with state: unidirectional recurrent models carry h (and c) across chunks ---------

# Input frames of context the layers before the first recurrent one may need on either side;
# beyond this the model is not streamed with state (it is a whole-utterance model).
MAX_FRONT_CONTEXT = 64
CHUNK_RANGE_NAME = "chunk_range"


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """How a model with unidirectional recurrent layers streams with state: its recurrent
    layers (module names, in call order; the first one takes only the chunk's frames), the
    input frames of context the layers before it need on the left and right (measured), and
    the chunk length in input frames."""

    layers: Tuple[str, ...]
    kinds: Tuple[str, ...]
    state_shapes: Tuple[Tuple[Tuple[int, ...], ...], ...]  # per layer: (h,) or (h, c)
    left_frames: int
    right_frames: int
    chunk_frames: int
    subsampling: int

    def state_tensors(self):
        from edge_speech.bundle import StateTensor

        out = []
        for k, shapes in enumerate(self.state_shapes):
            for part, shape in zip("hc", shapes):
                out.append(StateTensor(input=f"state_in_{k}_{part}", output=f"state_out_{k}_{part}", shape=shape))
        return tuple(out)

    def input_spec(self, spec):
        """``spec`` with this plan's chunking and state (see :class:`edge_speech.bundle.InputSpec`)."""
        return dataclasses.replace(
            spec,
            chunk_frames=self.chunk_frames,
            left_context_frames=self.left_frames,
            right_context_frames=self.right_frames,
            state=self.state_tensors(),
            chunk_range_name=CHUNK_RANGE_NAME,
            stream_context_frames=None,
        )

    def to_dict(self) -> dict:
        return {
            "recurrent_layers": list(self.layers),
            "left_context_frames": self.left_frames,
            "right_context_frames": self.right_frames,
            "chunk_frames": self.chunk_frames,
        }


def stream_plan(model, example_input, subsampling: int, chunk_frames: int = 64):
    """(plan, None) when ``model`` (features [1, frames, dim] -> [1, frames', vocab]) can stream
    with its recurrent state carried across chunks, else (None, why not).

    How it is decided: every recurrent layer is unidirectional (``bidirectional=False``) and
    called once per forward on a tensor without an explicit initial state; the layers before
    the first recurrent one have a bounded receptive field (measured by perturbing one input
    frame at a time: which of the recurrent layer's input frames change), which sets the left
    and right context; and a chunked run carrying the state equals the whole-utterance run on
    random input (measured), which catches anything after the recurrent layers that looks
    across frames. Bidirectional models keep the chunk + context path."""
    torch = import_torch()
    layers = [(name, m) for name, m in model.named_modules() if is_recurrent(m)]
    if not layers:
        return None, "no recurrent layers"
    bidirectional = [name for name, m in layers if m.bidirectional]
    if bidirectional:
        return None, f"bidirectional recurrent layer(s) {bidirectional}: the whole utterance is needed"
    if any(getattr(m, "proj_size", 0) for _, m in layers):
        return None, "LSTMs with proj_size are not streamed with state"
    calls, first_inputs = [], []

    def pre_hook(module, args, kwargs):
        calls.append(module)
        x = args[0]
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if not isinstance(x, torch.Tensor) or hx is not None:
            raise _NotStreamable("a recurrent layer is called with a packed sequence or an explicit initial state")
        if module is layers[0][1] or not first_inputs:
            first_inputs.append(x if module.batch_first else x.transpose(0, 1))

    handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True) for _, m in layers]
    dim = example_input.shape[2]
    frames = 4 * MAX_FRONT_CONTEXT
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(1, frames, dim, generator=generator)
    try:
        with torch.no_grad():
            model(base)
            order = list(dict.fromkeys(calls))
            if len(calls) != len(layers) or len(order) != len(layers):
                return None, "each recurrent layer must run exactly once per forward"
            first_inputs.clear()
            model(base)
            reference = first_inputs[0]
            if reference.shape[1] != -(-frames // subsampling):
                return None, (
                    f"the first recurrent layer sees {reference.shape[1]} frames for {frames} input frames, "
                    f"not ceil(T / {subsampling})"
                )
            left = right = 0
            for i in range(frames // 2, frames // 2 + subsampling):
                first_inputs.clear()
                poked = base.clone()
                poked[0, i] += 10 * torch.randn(dim, generator=generator)
                model(poked)
                changed = ((first_inputs[0] - reference).abs().amax(dim=(0, 2)) > 1e-6).nonzero().flatten()
                if len(changed) == 0:
                    continue
                lo, hi = int(changed.min()), int(changed.max())
                left, right = max(left, hi * subsampling - i), max(right, i - lo * subsampling)
    except _NotStreamable as err:
        return None, str(err)
    finally:
        for handle in handles:
            handle.remove()
    if max(left, right) > MAX_FRONT_CONTEXT:
        return None, (
            f"the layers before the first recurrent one see {max(left, right)} input frames away "
            f"(more than {MAX_FRONT_CONTEXT})"
        )
    names = {id(m): name for name, m in layers}
    shapes = []
    for m in order:
        count = m.num_layers
        shapes.append(((count, 1, m.hidden_size),) * (2 if isinstance(m, torch.nn.LSTM) else 1))
    chunk = max(subsampling, chunk_frames // subsampling * subsampling)
    left = -(-left // subsampling) * subsampling
    right = max(0, right - subsampling + 1)
    right += -(left + chunk + right) % subsampling  # whole output frames per window
    plan = StreamPlan(
        layers=tuple(names[id(m)] for m in order),
        kinds=tuple(type(m).__name__ for m in order),
        state_shapes=tuple(shapes),
        left_frames=left,
        right_frames=right,
        chunk_frames=chunk,
        subsampling=subsampling,
    )
    # The measured check: a chunked run carrying the state equals the whole utterance.
    from edge_speech.backends import run_stateful

    x = torch.randn(1, 2 * chunk + chunk // 2 + 3, dim, generator=generator)
    with torch.no_grad():
        whole = model(x)[0].numpy()
    stepped = run_stateful(
        TorchStateful(stateful_module(model, plan)), x[0].numpy(), plan.input_spec(_spec()), subsampling
    )
    error = float(np.abs(stepped - whole).max()) if stepped.shape == whole.shape else float("inf")
    if error > 1e-4 * (1 + float(np.abs(whole).max())):
        return None, (
            f"a chunked run carrying the recurrent state differs from the whole-utterance run by {error:.3g} "
            "(a layer after the recurrent ones looks across frames)"
        )
    return plan, None


class _NotStreamable(Exception):
    pass


def _spec():
    from edge_speech.bundle import InputSpec

    return InputSpec(name="features")


def stateful_module(model, plan: StreamPlan, fixed_frames: Optional[int] = None, lowered: bool = False):
    """A copy of ``model`` taking ``(features [1, W, dim], chunk_range [2], *states)`` and
    returning ``(outputs [1, frames, vocab], *states after)``: the layers before the first
    recurrent one run on the whole window; that layer takes only its output frames
    ``chunk_range[0]:chunk_range[1]`` (``fixed_frames`` of them from ``chunk_range[0]``,
    repeating the last, for fixed-shape exports); every recurrent layer starts from the given
    state. ``lowered``: recurrent layers as explicit matmuls and gates (TFLite)."""
    import copy

    torch = import_torch()
    copied = copy.deepcopy(model).eval()
    Explicit = explicit_recurrent_type() if lowered else None

    class Carry(torch.nn.Module):
        def __init__(self, layer, slicing: bool):
            super().__init__()
            self.layer = Explicit(layer) if Explicit and lowerable(layer) is None else layer
            self.lstm, self.batch_first, self.slicing = isinstance(layer, torch.nn.LSTM), layer.batch_first, slicing
            self.inputs, self.after, self.chunk_range = (), (), None

        def forward(self, x, hx=None):
            if self.slicing:
                xt = x if self.batch_first else x.transpose(0, 1)
                start, stop = self.chunk_range[0], self.chunk_range[1]
                if fixed_frames is None:
                    xt = xt[:, start:stop]
                else:
                    index = torch.arange(fixed_frames, dtype=self.chunk_range.dtype) + start
                    index = torch.minimum(index, torch.minimum(stop, torch.full_like(stop, xt.shape[1])) - 1)
                    xt = torch.index_select(xt, 1, index)
                x = xt if self.batch_first else xt.transpose(0, 1)
            state = tuple(self.inputs) if self.lstm else self.inputs[0]
            out, after = self.layer(x, state)
            self.after = after if self.lstm else (after,)
            return out, after

    carries = []
    for k, name in enumerate(plan.layers):
        parent_name, _, child = name.rpartition(".")
        parent = copied.get_submodule(parent_name) if parent_name else copied
        carry = Carry(getattr(parent, child), slicing=k == 0)
        setattr(parent, child, carry)
        carries.append(carry)

    class Stateful(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = copied
            self.carries = carries
            self.plan = plan

        def forward(self, features, chunk_range, *states):
            position = 0
            for carry, shapes in zip(self.carries, plan.state_shapes):
                carry.inputs = states[position : position + len(shapes)]
                carry.chunk_range = chunk_range
                position += len(shapes)
            out = self.model(features)
            return (out, *[t for carry in self.carries for t in carry.after])

    return Stateful().eval()


class TorchStateful:
    """A torch stateful module (:func:`stateful_module`) behind the runtime backends' stateful
    protocol (``initial_state``, ``run_chunk``, ``fixed_window``), so torch runs the runtime's
    own chunking (:func:`edge_speech.backends.run_stateful`)."""

    def __init__(self, module, fixed_window: Optional[int] = None):
        self.module, self.fixed_window = module, fixed_window

    def initial_state(self):
        torch = import_torch()
        return [torch.zeros(shape) for shapes in self.module.plan.state_shapes for shape in shapes]

    def run_chunk(self, window, first, end, state):
        torch = import_torch()
        x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None]
        if self.fixed_window is not None and x.shape[1] < self.fixed_window:
            x = torch.nn.functional.pad(x, (0, 0, 0, self.fixed_window - x.shape[1]))
        with torch.no_grad():
            out, *after = self.module(x, torch.tensor([first, end]), *state)
        return out[0, : end - first].numpy(), after


def _zero_state(plan: StreamPlan):
    torch = import_torch()
    return [torch.zeros(shape) for shapes in plan.state_shapes for shape in shapes]


def export_stateful_onnx(
    model, example_input, plan: StreamPlan, spec, output_name: str = "log_probs", opset: int = 17
) -> bytes:
    """ONNX of :func:`stateful_module` with a dynamic time axis: inputs ``spec.name`` [1,
    frames, dim], ``chunk_range`` int64 [2] and the state tensors (``plan.state_tensors()``),
    outputs ``output_name`` and the states after the chunk. Fed zeros and the range [0, a large
    number] it runs a whole utterance, which is checked against ``model`` at three lengths, and
    a chunked run carrying the state is checked against it too."""
    import io
    import warnings

    torch = import_torch()
    import onnxruntime as ort

    from edge_speech.backends import model_feeds, run_stateful

    spec = plan.input_spec(spec)
    module = stateful_module(model, plan)
    tensors = plan.state_tensors()
    buffer = io.BytesIO()
    chunk_range = torch.tensor([0, int(example_input.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on recurrent layers with state
        torch.onnx.export(
            module,
            (example_input, chunk_range, *_zero_state(plan)),
            buffer,
            input_names=[spec.name, CHUNK_RANGE_NAME, *(t.input for t in tensors)],
            output_names=[output_name, *(t.output for t in tensors)],
            dynamic_axes={spec.name: {1: "frames"}, output_name: {1: "out_frames"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    data = buffer.getvalue()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    frames = int(example_input.shape[1])
    for length in (frames, max(2, frames * 3 // 5 + 1), 2 * plan.chunk_frames + frames // 3 + 7):
        x = torch.randn(1, length, example_input.shape[2], generator=generator)
        with torch.no_grad():
            expected = model(x)[0].numpy()
        got = session.run([output_name], model_feeds(spec, x[0].numpy()))[0][0]

        class _Session:  # the ONNX model behind the backends' stateful protocol
            fixed_window = None

            @staticmethod
            def initial_state():
                return {t.input: np.zeros(t.shape, dtype=np.float32) for t in tensors}

            @staticmethod
            def run_chunk(window, first, end, state):
                feeds = {spec.name: window[None].astype(np.float32), CHUNK_RANGE_NAME: np.array([first, end]), **state}
                out, *after = session.run([output_name, *(t.output for t in tensors)], feeds)
                return out[0, : end - first], dict(zip((t.input for t in tensors), after))

        stepped = run_stateful(_Session, x[0].numpy(), spec, plan.subsampling)
        scale = 1.0 + float(np.abs(expected).max())
        for what, candidate in (("the whole-utterance run", got), ("the chunked run carrying the state", stepped)):
            if candidate.shape != expected.shape or float(np.abs(candidate - expected).max()) > 1e-3 * scale:
                raise RuntimeError(f"the stateful ONNX export differs from torch in {what} at {length} frames")
    return data


def short_tensor_names(model: bytes) -> bytes:
    """The TFLite model with its internal tensors renamed ``t<index>`` (inputs and outputs keep
    their names). litert-torch names each tensor after its whole module path and op; with a
    recurrent layer unrolled over a window those names were 60% of the file (247 KB of 403 KB
    for a 64-unit GRU stack over 16 steps). Nothing reads them: signatures map their own names
    to tensor indices."""
    from edge_speech._deps import import_litert_schema as _tflite_schema

    schema, flatbuffers = _tflite_schema()
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for graph in tree.subgraphs or []:
        keep = set(graph.inputs if graph.inputs is not None else []) | set(
            graph.outputs if graph.outputs is not None else []
        )
        for index, tensor in enumerate(graph.tensors or []):
            if index not in keep:
                tensor.name = f"t{index}".encode()
    builder = flatbuffers.Builder(len(model))
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def int8_weights_tflite(model: bytes, weight_only: bool = False) -> bytes:
    """The TFLite model with every weight stored as int8 (per channel) and activations left in
    float: LiteRT's dynamic-range quantization (ai-edge-quantizer's ``dynamic_wi8_afp32``). For
    recurrent layers lowered to matmuls and unrolled over a window, static int8 (PT2E) stores
    quantization parameters and a bias per unrolled step and re-quantizes around every gate, so
    its file came out larger than the float one (GRU stack, 32 steps: 1.71 MB vs 1.59 MB);
    weights-only int8 keeps one int8 copy of each weight (0.88 MB). ``weight_only``: the
    weights are dequantized to float for float kernels (``weight_only_wi8_afp32``), where
    dynamic range quantizes each matmul's input to int8 on the fly."""
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise ImportError(
            "int8 TFLite of recurrent models needs ai-edge-quantizer: pip install 'edge-speech[converter]'"
        ) from None
    engine = quantizer.Quantizer(model)
    engine.load_quantization_recipe(recipe.weight_only_wi8_afp32() if weight_only else recipe.dynamic_wi8_afp32())
    return bytes(engine.quantize().quantized_model)


def export_tflite_lowered(
    model,
    feature_dim: int,
    *,
    quantize: Optional[str] = None,
    calibration: Sequence[np.ndarray] = (),
    export=None,
    **chunking,
):
    """:func:`~edge_speech.converters.export.export_tflite` for models with recurrent layers:
    those lowered to matmuls and gates (:func:`lower_recurrent`), exported in float, then int8
    weights (:func:`int8_weights_tflite`). litert-torch 0.10's int8 quantizer crashes on the
    fused GRU, and on the fused LSTM it leaves the input weights float (a bidirectional
    DeepSpeech2's int8 TFLite was 2.5x its fp32 ONNX; lowered, 1.3x: the window's unrolled
    steps are now most of the file). Models without recurrent layers go to ``export_tflite``
    (or ``export``, a function like it) unchanged."""
    from edge_speech.converters.export import export_tflite

    export_tflite = export or export_tflite

    if not any(is_recurrent(m) and lowerable(m) is None for m in model.modules()):
        return export_tflite(model, feature_dim, quantize=quantize, calibration=calibration, **chunking)
    if quantize not in (None, "int8"):
        raise ValueError(f"TFLite export supports quantize=None or 'int8', got {quantize!r}")
    data, spec = export_tflite(lower_recurrent(model), feature_dim, quantize=None, **chunking)
    data = short_tensor_names(data)
    return (int8_weights_tflite(data) if quantize == "int8" else data), spec


def export_stateful_tflite(
    model,
    feature_dim: int,
    plan: StreamPlan,
    spec,
    quantize: Optional[str] = None,
    calibration: Sequence[np.ndarray] = (),
    output_name: str = "log_probs",
):
    """A fixed-shape TFLite model of :func:`stateful_module` (recurrent layers lowered to
    explicit matmuls and gates, unrolled over the chunk's output frames) over windows of left +
    chunk + right frames, with one signature whose inputs and outputs carry the manifest's
    names; and its input spec. ``quantize="int8"``: int8 weights, float activations
    (:func:`int8_weights_tflite`), so the carried state stays float; ``calibration`` is not
    needed."""
    import tempfile
    import warnings
    from pathlib import Path

    torch = import_torch()
    litert_torch = import_litert_torch()

    if quantize not in (None, "int8"):
        raise ValueError(f"TFLite export supports quantize=None or 'int8', got {quantize!r}")
    spec = plan.input_spec(spec)
    window = plan.left_frames + plan.chunk_frames + plan.right_frames
    module = stateful_module(model, plan, fixed_frames=plan.chunk_frames // plan.subsampling, lowered=True)
    tensors = plan.state_tensors()
    names = [spec.name, CHUNK_RANGE_NAME, *(t.input for t in tensors)]

    class Named(torch.nn.Module):  # keyword inputs: the signature's input names are the manifest's
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, **inputs):
            out, *after = self.inner(*(inputs[n] for n in names))
            return {output_name: out, **{t.output: v for t, v in zip(tensors, after)}}

    example = {
        spec.name: torch.zeros(1, window, feature_dim),
        CHUNK_RANGE_NAME: torch.tensor([0, plan.chunk_frames // plan.subsampling], dtype=torch.int32),
        **{t.input: torch.zeros(t.shape) for t in tensors},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = litert_torch.signature("stream", Named().eval(), sample_kwargs=example).convert()
        with tempfile.TemporaryDirectory(prefix="es_tflite_") as tmp:
            path = Path(tmp) / "model.tflite"
            edge.export(str(path))
            data = short_tensor_names(path.read_bytes())
    return (int8_weights_tflite(data) if quantize == "int8" else data), spec
