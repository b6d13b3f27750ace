"""Structured channel pruning with torch-pruning: by a channel ratio, or down to a MAC target.

The output layer (whose width is the vocabulary or the class count) is never pruned; layers
torch-pruning cannot prune safely are left alone and named in the report. The caller's model is
not modified: :func:`prune` works on a deep copy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Iterable, Optional, Sequence, Tuple

from edge_speech.converters._deps import import_torch, import_torch_pruning


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


def count_macs(model, example_input) -> Tuple[int, int]:
    """(multiply-accumulates, parameters) of one forward pass on ``example_input``."""
    tp = import_torch_pruning()
    torch = import_torch()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_input)
    return int(macs), int(params)


def prune(model, example_input, ratio: Optional[float] = None, *, target_macs_ratio: Optional[float] = None,
          importance: str = "magnitude", calibration: Optional[Iterable] = None, round_to: Optional[int] = None,
          ignored_layers: Sequence = (), max_steps: int = 64):
    """Returns ``(pruned_copy, PruneReport)``.

    ``ratio``: fraction of channels removed from every prunable layer group. ``target_macs_ratio``:
    remove this fraction of MACs instead (pruned in small global steps until reached, within a
    few percent). ``importance``: ``"magnitude"`` (L2 of weights) or ``"taylor"`` (first-order,
    gradients of a self-distillation loss over ``calibration`` feature batches). ``round_to``
    keeps channel counts multiples of this (SIMD-friendly widths).
    """
    torch = import_torch()
    tp = import_torch_pruning()
    if (ratio is None) == (target_macs_ratio is None):
        raise ValueError("prune needs exactly one of ratio= or target_macs_ratio=")
    goal = ratio if ratio is not None else target_macs_ratio
    if not 0.0 < goal < 0.95:
        raise ValueError(f"the pruning ratio must be in (0, 0.95), got {goal}")
    if importance not in ("magnitude", "taylor"):
        raise ValueError(f"importance must be 'magnitude' or 'taylor', got {importance!r}")
    if importance == "taylor" and calibration is None:
        raise ValueError("Taylor importance needs calibration= feature batches (tensors [batch, frames, dim])")
    pruned = copy.deepcopy(model).eval()
    macs_before, params_before = count_macs(pruned, example_input)
    with torch.no_grad():
        output = pruned(example_input)
    ignored, notes = _output_layers(pruned, output), []
    name_of = {m: n for n, m in pruned.named_modules()}
    ignored += [_same_module(pruned, model, m) for m in ignored_layers]
    num_heads = {}
    for name, module in pruned.named_modules():
        if isinstance(module, torch.nn.MultiheadAttention):
            num_heads[module] = module.num_heads
            notes.append(f"{name}: {module.num_heads} heads kept, head dims pruned evenly")
    multiple = math.lcm(*num_heads.values()) if num_heads else 1
    if multiple > 1:
        round_to = math.lcm(round_to or 1, multiple)
    for module, why in _unsafe_layers(pruned, example_input, ignored, multiple):
        ignored.append(module)
        notes.append(f"{name_of[module]}: left unpruned: {why}")
    imp = tp.importance.TaylorImportance() if importance == "taylor" else tp.importance.MagnitudeImportance(p=2)
    if target_macs_ratio is None:
        pruner = tp.pruner.MetaPruner(pruned, example_input, importance=imp, pruning_ratio=ratio,
                                      ignored_layers=ignored, round_to=round_to, num_heads=num_heads)
        _step(pruner, pruned, importance, calibration, torch)
    else:
        target = macs_before * (1.0 - target_macs_ratio)
        pruner = tp.pruner.MetaPruner(pruned, example_input, importance=imp, pruning_ratio=0.9,
                                      global_pruning=True, iterative_steps=max_steps, ignored_layers=ignored,
                                      round_to=round_to, num_heads=num_heads)
        for _ in range(max_steps):
            _step(pruner, pruned, importance, calibration, torch)
            if count_macs(pruned, example_input)[0] <= target:
                break
        else:
            notes.append(f"stopped after {max_steps} steps before reaching the MAC target")
    with torch.no_grad():
        try:
            after = pruned(example_input)
        except Exception as err:  # a layer torch-pruning rewired inconsistently
            raise RuntimeError(f"the pruned model no longer runs ({err}); pass the offending layer in "
                               "ignored_layers=") from None
    if after.shape[-1] != output.shape[-1]:
        raise RuntimeError("pruning changed the output width; pass the output layer in ignored_layers=")
    macs_after, params_after = count_macs(pruned, example_input)
    report = PruneReport(macs_before, macs_after, params_before, params_after, importance,
                         f"ratio={ratio}" if ratio is not None else f"target_macs_ratio={target_macs_ratio}",
                         tuple(name_of.get(m, type(m).__name__) for m in ignored), tuple(notes))
    return pruned, report


def _step(pruner, model, importance: str, calibration, torch) -> None:
    if importance == "taylor":
        model.zero_grad()
        with torch.enable_grad():
            for batch in calibration:
                out = model(batch)
                # Self-distillation proxy: confidence of the model's own best path.
                loss = -out.log_softmax(-1).max(-1).values.mean()
                loss.backward()
    pruner.step()


def _unsafe_layers(model, example_input, ignored, multiple: int) -> list:
    """Layers whose output channels cannot be removed without breaking the model: those feeding a
    GLU (whose halves must stay paired, which the dependency graph cannot see), and those for which
    removing ``multiple`` channels from a copy makes the forward pass fail."""
    torch = import_torch()
    tp = import_torch_pruning()
    unsafe = [(m, "its output feeds a GLU, whose halves must stay paired") for m in _glu_feeders(model, example_input)]
    names = {m: n for n, m in model.named_modules()}
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    for module in list(model.modules()):
        if module in ignored or module in dict(unsafe) or module not in graph.module2node:
            continue
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            if module.groups > 1 and module.groups == module.in_channels:
                continue  # depthwise: pruned together with its input's group
            prune_fn, width = tp.prune_conv_out_channels, module.out_channels
        elif isinstance(module, torch.nn.Linear):
            prune_fn, width = tp.prune_linear_out_channels, module.out_features
        else:
            continue
        if width <= multiple:
            continue
        trial = copy.deepcopy(model)
        target = dict(trial.named_modules())[names[module]]
        try:
            trial_graph = tp.DependencyGraph().build_dependency(trial, example_inputs=example_input)
            group = trial_graph.get_pruning_group(target, prune_fn, idxs=list(range(multiple)))
            if not trial_graph.check_pruning_group(group):
                continue
            group.prune()
            with torch.no_grad():
                trial(example_input)
        except Exception as err:  # any failure means this layer must stay whole
            unsafe.append((module, str(err).splitlines()[0][:120]))
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
        outputs.setdefault(id(output), module)

    hooks = [m.register_forward_hook(remember)
             for m in model.modules() if isinstance(m, (torch.nn.modules.conv._ConvNd, torch.nn.Linear))]
    try:
        with torch.no_grad(), RecordGlu():
            model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
    return [outputs[i] for i in glu_inputs if i in outputs]


def _output_layers(model, output) -> list:
    """The last Linear/Conv whose width equals the output width: pruning it would change the vocab."""
    torch = import_torch()
    width = output.shape[-1]
    candidates = [m for m in model.modules()
                  if (isinstance(m, torch.nn.Linear) and m.out_features == width)
                  or (isinstance(m, torch.nn.modules.conv._ConvNd) and m.out_channels == width)]
    return candidates[-1:] if candidates else []


def _same_module(copy_root, original_root, module):
    """The copy's counterpart of a module given from the caller's (original) model."""
    names = {m: n for n, m in original_root.named_modules()}
    if module not in names:
        raise ValueError("ignored_layers must be modules of the model being pruned")
    return dict(copy_root.named_modules())[names[module]]


