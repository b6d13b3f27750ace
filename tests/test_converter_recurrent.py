"""Recurrent and other common edge architectures in the converter: the MAC counter equals
hand-computed MACs for every layer type; LSTM/GRU stacks (multi-layer, bidirectional) prune
structurally to a MAC target; pruning keeps the model's interface (input features, vocabulary)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from converter_models import CRNNKeywordSpotter, DeepSpeech2, GRUStack, QuartzNet, seeded

from edge_speech import converters
from edge_speech.converters.verification import onnx_runner, torch_runner

pytestmark = pytest.mark.torch

T = 20  # frames in the MAC examples


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x):
        return self.attention(x, x, x, need_weights=False)[0]


def lstm_macs(inputs, hidden, layers, directions, frames, gates=4):
    total = 0
    for layer in range(layers):
        width = inputs if layer == 0 else hidden * directions
        total += directions * gates * hidden * (width + hidden) * frames
    return total


# (module, input, MACs by hand)
LAYERS = {
    "conv1d": (nn.Conv1d(16, 24, 5, padding=2), torch.randn(1, 16, T), 24 * 16 * 5 * T),
    "conv1d strided": (nn.Conv1d(16, 24, 4, stride=2), torch.randn(1, 16, T), 24 * 16 * 4 * ((T - 4) // 2 + 1)),
    "conv1d depthwise": (nn.Conv1d(16, 16, 7, padding=3, groups=16), torch.randn(1, 16, T), 16 * 7 * T),
    "conv2d": (nn.Conv2d(1, 8, 3), torch.randn(1, 1, T, 12), 8 * 9 * (T - 2) * 10),
    "conv2d depthwise": (nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.randn(1, 8, T, 12), 8 * 9 * T * 12),
    "linear": (nn.Linear(16, 24), torch.randn(1, T, 16), T * 16 * 24),
    "lstm": (nn.LSTM(16, 8, batch_first=True), torch.randn(1, T, 16), lstm_macs(16, 8, 1, 1, T)),
    "lstm 2-layer bidirectional": (
        nn.LSTM(16, 8, num_layers=2, bidirectional=True, batch_first=True),
        torch.randn(1, T, 16),
        lstm_macs(16, 8, 2, 2, T),
    ),
    "gru 2-layer": (nn.GRU(16, 8, num_layers=2, batch_first=True), torch.randn(1, T, 16), lstm_macs(16, 8, 2, 1, T, 3)),
    "gru bidirectional time-major": (
        nn.GRU(16, 8, bidirectional=True),
        torch.randn(T, 1, 16),
        lstm_macs(16, 8, 1, 2, T, 3),
    ),
    # q, k, v and output projections, then scores (T x T x d) and the weighted sum (T x T x d).
    "multihead attention": (Attention(16, 4), torch.randn(1, T, 16), 4 * T * 16 * 16 + 2 * T * T * 16),
    "transformer encoder layer": (
        nn.TransformerEncoderLayer(16, 4, 32, batch_first=True).eval(),
        torch.randn(1, T, 16),
        4 * T * 16 * 16 + 2 * T * T * 16 + 2 * T * 16 * 32,
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_mac_counter_equals_hand_computed_macs_per_layer_type(name):
    module, example, expected = LAYERS[name]
    macs, params = converters.count_macs(module.eval(), example)
    assert macs == expected
    assert params == sum(p.numel() for p in module.parameters())


def _kill_units(layer, dead, head=None):
    """Zero every weight and bias of ``dead`` hidden units in every layer and direction, and the
    head's columns that read them: such a unit's state stays 0, so removing it changes nothing."""
    gates = {nn.LSTM: 4, nn.GRU: 3}[type(layer)]
    hidden, directions = layer.hidden_size, 2 if layer.bidirectional else 1
    with torch.no_grad():
        for index in range(layer.num_layers):
            for direction in range(directions):
                sfx = f"_l{index}" + ("_reverse" if direction else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    tensor = getattr(layer, name + sfx)
                    for g in range(gates):
                        tensor[[g * hidden + u for u in dead]] = 0
                getattr(layer, "weight_hh" + sfx)[:, dead] = 0
                if index + 1 < layer.num_layers:
                    for d in range(directions):
                        getattr(layer, f"weight_ih_l{index + 1}" + ("_reverse" if d else ""))[
                            :, [d * hidden + u for u in dead]
                        ] = 0
        if head is not None:
            head.weight[:, [d * hidden + u for d in range(directions) for u in dead]] = 0


class RecurrentOnly(nn.Module):
    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 10)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.mark.parametrize(
    "rnn",
    [
        nn.LSTM(12, 16, num_layers=2, bidirectional=True, batch_first=True),
        nn.GRU(12, 16, num_layers=3, batch_first=True),
    ],
    ids=["bilstm", "gru"],
)
def test_pruning_a_recurrent_stack_removes_its_weakest_units_exactly(rnn):
    """The independent reference: units whose weights are all zero contribute nothing, so the
    pruned model must compute exactly what the unpruned one does, with 4 units fewer."""
    torch.manual_seed(0)
    model = RecurrentOnly(rnn).eval()
    _kill_units(model.rnn, [1, 6, 9, 14], model.head)
    example = torch.randn(1, 30, 12)
    pruned, report = converters.prune(model, example, ratio=0.25)
    assert pruned.rnn.hidden_size == 12
    assert pruned.rnn.input_size == 12 and pruned.head.out_features == 10  # the interface is kept
    with torch.no_grad():
        torch.testing.assert_close(pruned(example), model(example), rtol=1e-5, atol=1e-6)
    assert report.macs_after == converters.count_macs(pruned, example)[0] < report.macs_before


@pytest.mark.parametrize("model_class, dim", [(DeepSpeech2, 80), (GRUStack, 80), (CRNNKeywordSpotter, 40)])
def test_recurrent_models_reach_half_the_macs_and_still_export(model_class, dim):
    model = seeded(model_class)
    example = torch.randn(1, 101, dim)
    pruned, report = converters.prune(model, example, target_macs_ratio=0.5)
    assert abs(report.mac_reduction - 0.5) <= 0.05, report
    rnn = pruned.rnn
    assert rnn.hidden_size < model.rnn.hidden_size  # the recurrent layer itself lost units
    with torch.no_grad():
        assert pruned(example).shape == model(example).shape
    onnx_bytes = converters.export_onnx(pruned, example)
    probe = torch.randn(77, dim).numpy()
    np.testing.assert_allclose(onnx_runner(onnx_bytes)(probe), torch_runner(pruned)(probe), rtol=1e-3, atol=1e-4)


def test_a_depthwise_conv_over_the_input_features_keeps_the_input_channels():
    model = seeded(QuartzNet)
    example = torch.randn(1, 101, 80)
    pruned, report = converters.prune(model, example, target_macs_ratio=0.5)
    assert pruned.input_depthwise.in_channels == pruned.input_depthwise.out_channels == 80
    assert "input_depthwise" in report.ignored_layers
    assert abs(report.mac_reduction - 0.5) <= 0.05, report
    with torch.no_grad():
        assert pruned(example).shape == model(example).shape


@pytest.fixture(scope="module")
def speech_features(speech):
    from edge_speech import features

    samples = speech(16000)
    config = features.FeatureConfig.preset("kaldi-fbank")
    return [features.compute(samples[i : i + 24000], 16000, config) for i in range(0, len(samples) - 8000, 12000)]


@pytest.mark.parametrize("model_class", [DeepSpeech2, GRUStack])
def test_int8_onnx_stores_recurrent_weights_in_int8_per_row(model_class, speech_features):
    import onnx
    from onnx import numpy_helper

    model = seeded(model_class)
    fp32 = converters.export_onnx(model, torch.randn(1, 101, 80))
    int8 = converters.quantize(fp32, speech_features)
    assert len(fp32) / len(int8) >= 3.5
    graph = onnx.load_from_string(int8).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    rnn = next(n for n in graph.node if n.op_type in ("LSTM", "GRU"))
    layer = model.rnn
    for position, prefix in ((1, "weight_ih_l0"), (2, "weight_hh_l0")):
        reshape = producers[rnn.input[position]]
        dequantize = producers[reshape.input[0]]
        assert dequantize.op_type == "DequantizeLinear"
        stored, scale = constants[dequantize.input[0]], constants[dequantize.input[1]]
        assert stored.dtype == np.int8
        # Independent reference: torch's own weight, rows within half a step of the int8 value.
        # (ONNX orders LSTM gates i,o,f,c and GRU z,r,h; compare the set of rows, order-free.)
        reference = getattr(layer, prefix).detach().numpy()
        restored = (stored.astype(np.float32) * scale[:, None])[: reference.shape[0]]
        assert np.abs(np.sort(restored, axis=0) - np.sort(reference, axis=0)).max() <= scale.max() / 2 + 1e-6
    from edge_speech.converters.quantization import quantize_recurrent_weights

    out_fp32 = onnx_runner(fp32)(speech_features[0])
    out_weights_only = onnx_runner(quantize_recurrent_weights(fp32))(speech_features[0])
    assert np.corrcoef(out_fp32.ravel(), out_weights_only.ravel())[0, 1] > 0.9999
    out_int8 = onnx_runner(int8)(speech_features[0])
    assert np.corrcoef(out_fp32.ravel(), out_int8.ravel())[0, 1] > 0.98
