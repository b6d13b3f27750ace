"""Structured channel pruning with torch-pruning: by a channel ratio, or down to a MAC target.

The output layer (whose width is the vocabulary or the class count) is never pruned; layers
torch-pruning cannot prune safely are left alone and named in the report. Hugging Face style
attention (separate q/k/v/out projections with a fixed ``head_dim``, as in wav2vec2) loses whole
heads; ``torch.nn.MultiheadAttention`` keeps its heads and loses head dimensions evenly. The caller's model is
not modified: :func:`prune` works on a deep copy.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from typing import Iterable, Mapping, Optional, Sequence, Tuple

from edge_speech.converters import recurrent
from edge_speech.converters._deps import import_torch, import_torch_pruning
from edge_speech.converters.macs import count_macs


@dataclasses.dataclass(frozen=True)
class PruneReport:
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    importance: str
    requested: str
    ignored_layers: Tuple[str, ...]
    notes: Tuple[str, ...] = ()

    @property
    def mac_reduction(self) -> float:
        """Fraction of MACs removed."""
        return 1.0 - self.macs_after / self.macs_before

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "mac_reduction": round(self.mac_reduction, 4)}


def prune(
    model,
    example_input,
    ratio: Optional[float] = None,
    *,
    target_macs_ratio: Optional[float] = None,
    importance: str = "magnitude",
    calibration: Optional[Iterable] = None,
    round_to: Optional[int] = None,
    ignored_layers: Sequence = (),
    max_steps: int = 64,
    layer_ratios: Optional[Mapping[str, float]] = None,
):
    """Returns ``(pruned_copy, PruneReport)``.

    ``ratio``: fraction of channels removed from every prunable layer group; ``layer_ratios``
    (with ``ratio``) overrides it per layer, by module name as ``model.named_modules()`` gives it
    (e.g. ``{"blocks.0.pointwise": 0.1}`` to spare a sensitive layer). ``target_macs_ratio``:
    remove this fraction of MACs instead (pruned in small global steps until reached, within a
    few percent). ``importance``: ``"magnitude"`` (L2 of weights) or ``"taylor"`` (first-order,
    gradients of a self-distillation loss over ``calibration`` feature batches). ``round_to``
    keeps channel counts multiples of this (SIMD-friendly widths).
    """
    torch = import_torch()
    import_torch_pruning()  # fails early, naming what to install
    if (ratio is None) == (target_macs_ratio is None):
        raise ValueError("prune needs exactly one of ratio= or target_macs_ratio=")
    goal = ratio if ratio is not None else target_macs_ratio
    if not 0.0 < goal < 0.95:
        raise ValueError(f"the pruning ratio must be in (0, 0.95), got {goal}")
    if importance not in ("magnitude", "taylor"):
        raise ValueError(f"importance must be 'magnitude' or 'taylor', got {importance!r}")
    if importance == "taylor" and calibration is None:
        raise ValueError("Taylor importance needs calibration= feature batches (tensors [batch, frames, dim])")
    if layer_ratios and ratio is None:
        raise ValueError(
            "layer_ratios= refines ratio= (the ratio of every other layer); a MAC target chooses "
            "per-layer ratios itself"
        )
    pruned = copy.deepcopy(model).eval()
    modules = dict(pruned.named_modules())
    unknown = [n for n in (layer_ratios or {}) if n not in modules]
    if unknown:
        raise ValueError(
            f"layer_ratios names no module {unknown[0]!r}; names are those of model.named_modules(), "
            f"e.g. {[n for n in modules if n][:4]}"
        )
    bad = {n: r for n, r in (layer_ratios or {}).items() if not 0.0 <= r < 0.95}
    if bad:
        raise ValueError(f"layer_ratios must be in [0, 0.95), got {bad}")
    ratio_dict = {modules[n]: r for n, r in (layer_ratios or {}).items()}
    macs_before, params_before = count_macs(pruned, example_input)
    with torch.no_grad():
        output = pruned(example_input)
    ignored, notes = _output_layers(pruned, output), []
    name_of = {m: n for n, m in pruned.named_modules()}
    ignored += [_same_module(pruned, model, m) for m in ignored_layers]
    num_heads, head_options = {}, {}
    for name, module in pruned.named_modules():
        if isinstance(module, torch.nn.MultiheadAttention):
            num_heads[module] = module.num_heads
            notes.append(f"{name}: {module.num_heads} heads kept, head dims pruned evenly")
    fused = fused_qkv_attention(pruned, example_input)
    for attention in fused:
        notes.append(
            f"{attention.qkv}/{attention.out}: fused q/k/v attention, {attention.heads} heads kept, head dims "
            "pruned evenly with the residual width (our rule: torch-pruning cannot map the (3, heads, "
            "head_dim) reshape)"
        )
    multiple = math.lcm(*num_heads.values(), *(a.heads for a in fused)) if num_heads or fused else 1
    if multiple > 1:
        round_to = math.lcm(round_to or 1, multiple)
    whole_heads = _whole_head_attention(pruned)
    if whole_heads:
        if num_heads:
            raise ValueError("models mixing nn.MultiheadAttention and q/k/v-projection attention are not supported")
        for attention in whole_heads:
            for projection in (attention.q_proj, attention.k_proj, attention.v_proj):
                num_heads[projection] = attention.num_heads
        head_options = {
            "prune_num_heads": True,
            "prune_head_dims": False,
            "head_pruning_ratio": ratio if ratio is not None else 0.9,
        }
        notes.append(f"{len(whole_heads)} attention modules: whole heads pruned (head_dim kept)")
    skip = {m for a in whole_heads for m in (a.q_proj, a.k_proj, a.v_proj, a.out_proj)}
    # The fused projections' output channels are the rule's (sync_fused_attention), never torch-pruning's.
    own = [a.modules(pruned)[0] for a in fused]
    for module, why in _unsafe_layers(pruned, example_input, ignored, multiple, skip | set(own), fused):
        ignored.append(module)
        notes.append(f"{name_of[module]}: left unpruned: {why}")
    reported = len(ignored)
    ignored = ignored + own
    imp = recurrent.importance(importance)
    if (whole_heads or num_heads or fused) and target_macs_ratio is not None:
        # Attention models reach a MAC target by bisecting a uniform ratio: torch-pruning's global
        # ranking compares groups of unlike sizes and would take one width (often the feed-forward)
        # near zero while the residual and attention widths stay whole; and its global head schedule
        # fails on steps that remove no head (its threshold is left unset).
        target = macs_before * (1.0 - target_macs_ratio)
        pruned, steps = _bisect_uniform_ratio(
            pruned, example_input, target, imp, ignored, round_to, importance, calibration, max_steps, fused
        )
        notes.append(
            f"MAC target reached by a uniform ratio over {steps} trials ("
            + ("heads" if whole_heads else "attention, feed-forward and residual widths")
            + " alike)"
        )
    elif target_macs_ratio is None:
        pruner = _meta_pruner(
            pruned,
            example_input,
            importance=imp,
            pruning_ratio=ratio,
            pruning_ratio_dict=ratio_dict or None,
            ignored_layers=ignored,
            round_to=round_to,
            num_heads=num_heads,
            **head_options,
        )
        _step(pruner, pruned, importance, calibration, torch, whole_heads, fused)
    else:
        target = macs_before * (1.0 - target_macs_ratio)
        pruner = _meta_pruner(
            pruned,
            example_input,
            importance=imp,
            pruning_ratio=0.9,
            global_pruning=True,
            iterative_steps=max_steps,
            ignored_layers=ignored,
            round_to=round_to,
            num_heads=num_heads,
            **head_options,
        )
        for _ in range(max_steps):
            _step(pruner, pruned, importance, calibration, torch, whole_heads, fused)
            if count_macs(pruned, example_input)[0] <= target:
                break
        else:
            notes.append(f"stopped after {max_steps} steps before reaching the MAC target")
    with torch.no_grad():
        try:
            after = pruned(example_input)
        except Exception as err:  # a layer torch-pruning rewired inconsistently
            raise RuntimeError(
                f"the pruned model no longer runs ({err}); pass the offending layer in ignored_layers="
            ) from None
    if after.shape[-1] != output.shape[-1]:
        raise RuntimeError("pruning changed the output width; pass the output layer in ignored_layers=")
    macs_after, params_after = count_macs(pruned, example_input)
    report = PruneReport(
        macs_before,
        macs_after,
        params_before,
        params_after,
        importance,
        (f"ratio={ratio}" + (f", layer_ratios={dict(layer_ratios)}" if layer_ratios else ""))
        if ratio is not None
        else f"target_macs_ratio={target_macs_ratio}",
        tuple(name_of.get(m, type(m).__name__) for m in ignored[:reported]),
        tuple(notes),
    )
    return pruned, report


def _meta_pruner(model, example_input, *, ignored_layers, num_heads=None, pruning_ratio_dict=None, **options):
    """torch-pruning's MetaPruner with our rules for recurrent layers (any depth, bidirectional)
    and for channels flattened with frequencies (conv2d front ends)."""
    tp = import_torch_pruning()
    torch = import_torch()
    with recurrent.opaque_recurrent_layers(model) as leaves:
        leaf_of = {layer: leaf for leaf, layer in leaves.items()}
        ignored = [leaf_of.get(m, m) for m in ignored_layers]
        ratios = {leaf_of.get(m, m): r for m, r in (pruning_ratio_dict or {}).items()}
        if not options.get("global_pruning"):
            # torch-pruning names a local ranking scope after its group's first module, and roots an
            # attention group at a downstream layer (the feed-forward's first Linear), whose own group
            # then takes the same scope and replaces it: the residual width behind
            # nn.MultiheadAttention would never be pruned. A ratio of its own gives it its own scope.
            ratios.update(
                {
                    m: options["pruning_ratio"]
                    for m in model.modules()
                    if isinstance(m, torch.nn.MultiheadAttention) and m not in ratios and m not in ignored
                }
            )
        ratios = ratios or None
        # Fresh dicts: torch-pruning updates its mutable defaults in place.
        groups = {leaf: 2 for leaf, layer in leaves.items() if layer.bidirectional}
        pruner = tp.pruner.MetaPruner(
            model,
            example_input,
            ignored_layers=ignored,
            pruning_ratio_dict=ratios,
            num_heads=dict(num_heads or {}),
            out_channel_groups=groups,
            in_channel_groups={},
            customized_pruners=recurrent.pruners(),
            root_module_types=[torch.nn.modules.conv._ConvNd, torch.nn.Linear, recurrent.leaf_type()],
            **options,
        )
    _map_flattened_channels(pruner.DG)
    return pruner


def _dependency_graph(model, example_input):
    """A dependency graph with the same rules as :func:`_meta_pruner`; {layer: graph node key}."""
    tp = import_torch_pruning()
    with recurrent.opaque_recurrent_layers(model) as leaves:
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_input, customized_pruners=recurrent.pruners()
        )
    _map_flattened_channels(graph)
    return graph, {layer: leaf for leaf, layer in leaves.items()}


def _map_flattened_channels(graph) -> None:
    """torch-pruning maps channels through a reshape only when a whole 4-D tensor is flattened;
    speech front ends flatten a conv2d's channels with its frequencies and keep time apart
    ([B, C, F, T] -> [B, C*F, T], or [B, T, C, F] -> [B, T, C*F]). There channel c becomes
    c*F ... c*F+F-1, which is what this sets wherever the reshape's input shows C then F."""
    tp = import_torch_pruning()
    from torch_pruning.dependency import shape_infer
    from torch_pruning.dependency.index_mapping import _FlattenIndexMapping

    for node in list(graph.module2node.values()):
        if node.type != tp.ops.OPTYPE.RESHAPE or any(m is not None for d in node.dependencies for m in d.index_mapping):
            continue
        sizes = tuple(getattr(node.grad_fn, "_saved_self_sym_sizes", ()) or ())
        if len(sizes) != 4:
            continue
        channels_in = next(
            (c for n in node.inputs if (c := shape_infer.infer_out_channels_recursively(graph, n, [0])) is not None),
            None,
        )
        channels_out = next(
            (c for n in node.outputs if (c := shape_infer.infer_in_channels_recursively(graph, n, [0])) is not None),
            None,
        )
        if not channels_in or not channels_out or channels_out <= channels_in or channels_out % channels_in:
            continue
        stride = channels_out // channels_in
        if not any(sizes[a] == channels_in and sizes[a + 1] == stride for a in range(1, 3)):
            continue
        for producer in node.inputs:
            for dep in node.dependencies:
                if dep.target == producer:
                    dep.index_mapping[0] = _FlattenIndexMapping(stride=stride, reverse=True)
            for dep in producer.dependencies:
                if dep.target == node:
                    dep.index_mapping[0] = _FlattenIndexMapping(stride=stride, reverse=False)


def _step(pruner, model, importance: str, calibration, torch, whole_heads=(), fused=()) -> None:
    if importance == "taylor":
        model.zero_grad()
        with torch.enable_grad():
            for batch in calibration:
                out = model(batch)
                # Self-distillation proxy: confidence of the model's own best path.
                loss = -out.log_softmax(-1).max(-1).values.mean()
                loss.backward()
    pruner.step()
    for attention in whole_heads:  # the module's own bookkeeping; its forward views by head_dim
        attention.num_heads = attention.q_proj.out_features // attention.head_dim
        attention.embed_dim = attention.num_heads * attention.head_dim
    sync_fused_attention(model, fused)


def _bisect_uniform_ratio(
    model, example_input, target_macs: float, imp, ignored, round_to, importance, calibration, max_trials: int, fused=()
):
    """The copy of ``model`` pruned by the uniform ratio (channels, head dims or whole heads) whose
    MACs come closest to ``target_macs`` from a bisection over the ratio; (pruned copy, trials)."""
    torch = import_torch()
    names = {m: n for n, m in model.named_modules()}
    ignored_names = [names[m] for m in ignored]
    lo, hi, best, trials = 0.0, 0.95, None, 0
    for trials in range(1, min(max_trials, 12) + 1):  # noqa: B007  (the count is returned)
        ratio = (lo + hi) / 2
        trial = copy.deepcopy(model)
        modules = dict(trial.named_modules())
        heads = _whole_head_attention(trial)
        num_heads = {p: a.num_heads for a in heads for p in (a.q_proj, a.k_proj, a.v_proj)}
        num_heads.update({m: m.num_heads for m in trial.modules() if isinstance(m, torch.nn.MultiheadAttention)})
        options = {"prune_num_heads": True, "prune_head_dims": False, "head_pruning_ratio": ratio} if heads else {}
        pruner = _meta_pruner(
            trial,
            example_input,
            importance=imp,
            pruning_ratio=ratio,
            ignored_layers=[modules[n] for n in ignored_names],
            round_to=round_to,
            num_heads=num_heads,
            **options,
        )
        _step(pruner, trial, importance, calibration, torch, heads, fused)
        macs = count_macs(trial, example_input)[0]
        if best is None or abs(macs - target_macs) < abs(best[1] - target_macs):
            best = (trial, macs)
        if abs(macs - target_macs) <= 0.01 * target_macs:
            break
        lo, hi = (ratio, hi) if macs > target_macs else (lo, ratio)
    return best[0], trials


def _whole_head_attention(model) -> list:
    """Attention modules with separate q/k/v/out projections and a fixed ``head_dim`` (Hugging
    Face's wav2vec2, HuBERT, BERT-style): heads are removed whole, keeping each head's width."""
    torch = import_torch()
    found = []
    for module in model.modules():
        parts = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj", "out_proj")]
        if (
            all(isinstance(p, torch.nn.Linear) for p in parts)
            and isinstance(getattr(module, "head_dim", None), int)
            and isinstance(getattr(module, "num_heads", None), int)
        ):
            found.append(module)
    return found


def _unsafe_layers(model, example_input, ignored, multiple: int, skip=frozenset(), fused=()) -> list:
    """Layers whose output channels cannot be removed without breaking the model: those feeding a
    GLU (whose halves must stay paired, which the dependency graph cannot see), those whose weight
    is parametrized (weight norm, as in wav2vec2's positional convolution: torch-pruning would cut
    the computed weight, not the parameters behind it), and those for which removing ``multiple``
    channels from a copy makes the forward pass fail. ``skip``: layers pruned by whole heads or
    by our fused-attention rule; ``fused``: those attentions, whose head dims follow each trial."""
    torch = import_torch()
    tp = import_torch_pruning()
    from torch.nn.utils import parametrize

    with torch.no_grad():
        reference = model(example_input)
    unsafe = [(m, "its output feeds a GLU, whose halves must stay paired") for m in _glu_feeders(model, example_input)]
    unsafe += [
        (
            m,
            "its weight is parametrized (weight norm), which torch-pruning cannot rewrite; this keeps the "
            "model width it feeds (the residual stream) whole",
        )
        for m in model.modules()
        if parametrize.is_parametrized(m) and m not in ignored
    ]
    names = {m: n for n, m in model.named_modules()}
    graph, leaf_of = _dependency_graph(model, example_input)
    for module in list(model.modules()):
        node_key = leaf_of.get(module, module)
        if module in ignored or module in dict(unsafe) or module in skip or node_key not in graph.module2node:
            continue
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            # Depthwise convs are tried too: one straight over the input features (QuartzNet) would
            # take input channels with it, which the trial run refuses.
            prune_fn, width = tp.prune_conv_out_channels, module.out_channels
        elif isinstance(module, torch.nn.Linear):
            prune_fn, width = tp.prune_linear_out_channels, module.out_features
        elif recurrent.is_recurrent(module):
            prune_fn, width = None, module.hidden_size
        else:
            continue
        if width <= multiple:
            continue
        trial = copy.deepcopy(model)
        target = dict(trial.named_modules())[names[module]]
        try:
            trial_graph, trial_leaf_of = _dependency_graph(trial, example_input)
            idxs = list(range(multiple))
            if prune_fn is None:  # a recurrent layer: the same units in each direction
                idxs = [i + d * width for d in range(2 if module.bidirectional else 1) for i in idxs]
                target = trial_leaf_of[target]
                prune_fn = trial_graph.get_pruner_of_module(target).prune_out_channels
            group = trial_graph.get_pruning_group(target, prune_fn, idxs=idxs)
            if not trial_graph.check_pruning_group(group):
                continue
            group.prune()
            sync_fused_attention(trial, fused)
            with torch.no_grad():
                out = trial(example_input)
            if out.shape != reference.shape:
                raise ValueError(f"it changes the model's output shape {tuple(reference.shape)} to {tuple(out.shape)}")
        except Exception as err:  # any failure means this layer must stay whole
            unsafe.append((module, " ".join(str(err).split())[:300] or type(err).__name__))
    return unsafe


def _glu_feeders(model, example_input) -> list:
    """Modules whose output tensor goes straight into torch.nn.functional.glu."""
    torch = import_torch()
    from torch.overrides import TorchFunctionMode

    glu_inputs, outputs = set(), {}

    class RecordGlu(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.glu and args:
                glu_inputs.add(id(args[0]))
            return func(*args, **(kwargs or {}))

    def remember(module, _inputs, output):
        # The tensor is kept alive with its module: a freed tensor's id would be reused by a later
        # one, and the GLU's input would then be blamed on an unrelated layer.
        outputs[id(output)] = (module, output)

    hooks = [
        m.register_forward_hook(remember)
        for m in model.modules()
        if isinstance(m, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))
    ]
    try:
        with torch.no_grad(), RecordGlu():
            model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
    return [outputs[i][0] for i in glu_inputs if i in outputs]


def _output_layers(model, output) -> list:
    """The last Linear/Conv whose width equals the output width: pruning it would change the vocab."""
    torch = import_torch()
    width = output.shape[-1]
    candidates = [
        m
        for m in model.modules()
        if (isinstance(m, torch.nn.Linear) and m.out_features == width)
        or (isinstance(m, torch.nn.modules.conv._ConvNd) and m.out_channels == width)
    ]
    return candidates[-1:] if candidates else []


def _same_module(copy_root, original_root, module):
    """The copy's counterpart of a module given from the caller's (original) model."""
    names = {m: n for n, m in original_root.named_modules()}
    if module not in names:
        raise ValueError("ignored_layers must be modules of the model being pruned")
    return dict(copy_root.named_modules())[names[module]]


@dataclasses.dataclass
class FusedAttention:
    """Hand-written attention over one fused q/k/v projection (ESPnet, NeMo, timm style):
    ``qkv`` [.., 3 * heads * head_dim] is reshaped to (3, heads, head_dim) (``layout="3hd"``) or
    (heads, 3, head_dim) (``"h3d"``), and ``out`` projects the heads back. torch-pruning cannot
    map channels through that reshape; the rule here removes head dimensions itself, the same
    number from every head, in q and k alike (their dot product) and in v and ``out``'s inputs
    alike, so that the inner width keeps its share of the residual width feeding ``qkv`` (a
    forward() that takes the head size from its input's width, ``d // heads``, needs exactly that)."""

    qkv: str  # module names in the model
    out: str
    heads: int
    layout: str
    residual: int  # qkv.in_features before pruning
    inner: int  # heads * head_dim before pruning

    def modules(self, model):
        modules = dict(model.named_modules())
        return modules[self.qkv], modules[self.out]


def fused_qkv_attention(model, example_input) -> list:
    """The :class:`FusedAttention` modules of ``model``, found by running it once: a Linear
    whose output is reshaped to (3, heads, head_dim) or (heads, 3, head_dim), and the first
    Linear that reads a tensor computed from it (the output projection)."""
    torch = import_torch()
    from torch.overrides import TorchFunctionMode

    linear_outputs, tags, keep, found = {}, {}, [], {}
    reshapes = {torch.Tensor.reshape, torch.Tensor.view, torch.reshape, torch.Tensor.unflatten, torch.unflatten}

    def tensors(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from tensors(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from tensors(item)

    class Trace(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            inputs = list(tensors(args)) + list(tensors(kwargs or {}))
            origin = None
            if func in reshapes and inputs and id(inputs[0]) in linear_outputs:
                module, tensor = linear_outputs[id(inputs[0])]
                if tensor is inputs[0] and isinstance(result, torch.Tensor):
                    layout = _qkv_layout(tuple(tensor.shape), tuple(result.shape), module.out_features)
                    if layout:
                        origin = (module, None, layout)
            if origin is None:  # the latest attention a tensor comes from
                origin = next((tags[id(t)] for t in reversed(inputs) if id(t) in tags and tags[id(t)][1] is t), None)
            if origin is not None:
                for t in tensors(result):
                    tags[id(t)] = (origin[0], t, origin[2])
                    keep.append(t)
            return result

    def remember(module, _inputs, output):
        linear_outputs[id(output)] = (module, output)

    def consumer(module, inputs):
        tag = tags.get(id(inputs[0])) if inputs and isinstance(inputs[0], torch.Tensor) else None
        if tag and tag[1] is inputs[0] and tag[0] is not module and tag[0] not in found:
            found[tag[0]] = (module, tag[2])

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    hooks = [m.register_forward_hook(remember) for m in linears] + [
        m.register_forward_pre_hook(consumer) for m in linears
    ]
    try:
        with torch.no_grad(), Trace():
            model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
    names = {m: n for n, m in model.named_modules()}
    attentions = []
    for qkv, (out, layout) in found.items():
        heads, inner = layout[1], qkv.out_features // 3
        if out.in_features == inner and qkv.out_features == 3 * inner:
            attentions.append(FusedAttention(names[qkv], names[out], heads, layout[0], qkv.in_features, inner))
    return attentions


def _qkv_layout(before: tuple, after: tuple, width: int):
    """("3hd" | "h3d", heads) when ``after`` splits the last axis (``width``) of ``before`` into
    (3, heads, head_dim) or (heads, 3, head_dim); else None."""
    if len(after) < 3 or before[:-1] != after[:-3] or after[-3] * after[-2] * after[-1] != width or width % 3:
        return None
    if after[-3] == 3 and after[-2] > 1:
        return "3hd", after[-2]
    if after[-2] == 3 and after[-3] > 1:
        return "h3d", after[-3]
    return None


def _qkv_rows(layout: str, inner: int, head_dim: int, part: int, head: int, dims):
    """Rows of a fused q/k/v weight holding ``dims`` of ``head``'s q (part 0), k (1) or v (2)."""
    torch = import_torch()
    dims = torch.as_tensor(dims, dtype=torch.long)
    if layout == "3hd":
        return part * inner + head * head_dim + dims
    return head * 3 * head_dim + part * head_dim + dims


def sync_fused_attention(model, attentions) -> None:
    """Prunes each attention's head dimensions so that its inner width keeps its original share
    of the (already pruned) residual width feeding ``qkv``: per head, the weakest dimensions go,
    by the L2 norms of their q and k rows (q.k pairs) and of their v row and output column."""
    torch = import_torch()
    for attention in attentions:
        qkv, out = attention.modules(model)
        heads, inner = attention.heads, out.in_features
        wanted = round(attention.inner * qkv.in_features / attention.residual / heads) * heads
        wanted = min(inner, max(heads, wanted))
        if wanted == inner:
            continue
        head_dim, new_dim = inner // heads, wanted // heads
        rows = functools.partial(_qkv_rows, attention.layout, inner, head_dim)
        weight = qkv.weight.detach()
        full = torch.cat([weight, qkv.bias.detach()[:, None]], 1) if qkv.bias is not None else weight
        all_dims = torch.arange(head_dim)
        keep_rows, keep_cols = [[], [], []], []
        for head in range(heads):
            q_norm, k_norm, v_norm = (full[rows(part, head, all_dims)].norm(dim=1) for part in range(3))
            qk = q_norm * k_norm
            v = v_norm * out.weight.detach()[:, head * head_dim + all_dims].norm(dim=0)
            qk_keep = qk.argsort(descending=True)[:new_dim].sort().values
            v_keep = v.argsort(descending=True)[:new_dim].sort().values
            keep_rows[0].append(rows(0, head, qk_keep))
            keep_rows[1].append(rows(1, head, qk_keep))
            keep_rows[2].append(rows(2, head, v_keep))
            keep_cols.append(head * head_dim + v_keep)
        if attention.layout == "3hd":
            order = torch.cat([torch.cat(part) for part in keep_rows])
        else:
            order = torch.cat([torch.cat([keep_rows[p][h] for p in range(3)]) for h in range(heads)])
        qkv.weight = torch.nn.Parameter(qkv.weight.data[order].contiguous())
        if qkv.bias is not None:
            qkv.bias = torch.nn.Parameter(qkv.bias.data[order].contiguous())
        qkv.out_features = len(order)
        out.weight = torch.nn.Parameter(out.weight.data[:, torch.cat(keep_cols)].contiguous())
        out.in_features = wanted
