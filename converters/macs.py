"""Multiply-accumulates of one forward pass, right for every layer type speech models use.

Counted from the operators that actually run (``torch.utils.flop_counter``: convolutions of any
groups, linear layers, matmuls, attention's score and value products) plus an explicit count for
recurrent layers, whose fused CPU kernels the operator counter cannot see (and which
torch-pruning's counter overcounts about 194x). Element-wise work (activations, norms, gates,
biases) is not counted, as in every MAC count.
"""

from __future__ import annotations

from typing import Tuple

from edge_speech.converters._deps import import_torch


def recurrent_macs(module, frames: int, batch: int = 1) -> int:
    """MACs of an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` over ``frames`` steps: per layer and
    direction, every gate multiplies the layer's input and the previous hidden state by its
    weights (plus an LSTM's output projection when ``proj_size`` is set)."""
    torch = import_torch()
    gates = {torch.nn.LSTM: 4, torch.nn.GRU: 3, torch.nn.RNN: 1}[type(module)]
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    state = getattr(module, "proj_size", 0) or hidden  # what h_t is (the projection's width when there is one)
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else state * directions
        per_step = gates * hidden * (inputs + state) + (hidden * state if state != hidden else 0)
        total += directions * per_step
    return total * frames * batch


def count_macs(model, example_input) -> Tuple[int, int]:
    """(multiply-accumulates, parameters) of one forward pass on ``example_input``."""
    torch = import_torch()
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    # CPU's fused attention kernel has no formula of its own; it computes what the others do.
    counter = FlopCounterMode(
        display=False, custom_mapping={aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    )
    recurrent = [m for m in model.modules() if type(m) in (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN)]
    extra = {"macs": 0, "seen_flops": 0}
    starts = {}

    def before(module, args):
        starts[module] = counter.get_total_flops()

    def after(module, args, output):
        x = args[0]
        if isinstance(x, torch.nn.utils.rnn.PackedSequence):
            frames, batch = int(x.batch_sizes.sum()), 1
        else:
            time_axis = 0 if (x.dim() == 3 and not module.batch_first) or x.dim() == 2 else 1
            frames = x.shape[time_axis]
            batch = 1 if x.dim() == 2 else x.shape[1 - time_axis]
        # Whatever the operator counter saw inside (GRU decomposes on CPU, LSTM does not) is replaced.
        extra["seen_flops"] += counter.get_total_flops() - starts.pop(module)
        extra["macs"] += recurrent_macs(module, frames, batch)

    hooks = [h for m in recurrent for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # The fused transformer fast path is one opaque kernel; the regular path shows every matmul.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad(), counter:
            model(example_input)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for hook in hooks:
            hook.remove()
    macs = (counter.get_total_flops() - extra["seen_flops"]) // 2 + extra["macs"]
    params = sum(p.numel() for p in model.parameters())
    return int(macs), int(params)


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)
