"""Hugging Face CTC encoders beyond Wav2Vec2ForCTC — HubertForCTC, WavLMForCTC,
Data2VecAudioForCTC and Wav2Vec2ConformerForCTC — through the documented call
(``converters.convert_wav2vec2``), offline: tiny random-weight models built with transformers'
config classes, saved with save_pretrained plus a hand-written vocab, compared against
transformers' own forward pass on synthesised speech.

The random encoders get a head that behaves like a trained one (see ``_unit_head``): scaling a
random head cannot make int8 agree with float, since scaling multiplies the rounding error and the
margin between the two best classes alike (measured: the top-2 margin of a random HuBERT's head is
1.8x the int8 error on speech frames, whatever the scale)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from the hub
import transformers  # noqa: E402

from edge_speech import Recognizer, converters  # noqa: E402
from edge_speech.converters.verification import edit_distance, greedy_tokens  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.slow]

LETTERS = "ETAONIHSRDLUMWCFGYPBVKXJQZ'"
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate(LETTERS)}}
# Real strides (320 samples per frame), tiny widths. conv_bias as in the large checkpoints
# (wav2vec2-large-lv60, hubert-large, wavlm-large): without it a random feature encoder maps
# digital silence to an all-but-constant vector whose per-frame LayerNorm then amplifies rounding.
COMMON = dict(
    vocab_size=len(VOCAB),
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    conv_dim=(32, 32, 32, 32),
    conv_kernel=(10, 8, 4, 4),
    conv_stride=(5, 4, 4, 4),
    conv_bias=True,
    pad_token_id=0,
)
POSITIONAL_CONV = dict(num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def _config(family: str, **changes):
    if family == "hubert":
        config = transformers.HubertConfig(**COMMON, **POSITIONAL_CONV)
    elif family == "wavlm":  # few buckets so that a 1-4 s input reaches the logarithmic ones
        config = transformers.WavLMConfig(**COMMON, **POSITIONAL_CONV, num_buckets=32, max_bucket_distance=64)
    elif family == "data2vec-audio":
        config = transformers.Data2VecAudioConfig(
            **COMMON, num_conv_pos_embeddings=2, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=4
        )
    elif family == "wav2vec2-conformer":
        config = transformers.Wav2Vec2ConformerConfig(**COMMON, **POSITIONAL_CONV, conv_depthwise_kernel_size=7)
    else:
        raise KeyError(family)
    for key, value in changes.items():
        setattr(config, key, value)
    return config


CTC_CLASS = {
    "hubert": transformers.HubertForCTC,
    "wavlm": transformers.WavLMForCTC,
    "data2vec-audio": transformers.Data2VecAudioForCTC,
    "wav2vec2-conformer": transformers.Wav2Vec2ConformerForCTC,
}
FAMILIES = tuple(CTC_CLASS)


def _normalised(samples: np.ndarray) -> np.ndarray:
    return ((samples - samples.mean()) / (samples.std() + 1e-7)).astype(np.float32)


def _unit_head(model, samples: np.ndarray, units: int = 5, spread: float = 6.0):
    """Replaces ``model``'s random CTC head by one that is confident like a trained model's: the
    encoder's features on ``samples`` are clustered (k-means, ``units`` clusters, like HuBERT's
    pretraining targets), each cluster speaks for one token (the first for the blank) and the
    head scores a frame by its distance to the cluster centres, scaled so the logits spread about
    ``spread`` (std over the classes). Each frame then has a clear winner, and neighbouring frames
    of the same sound share it."""
    with torch.no_grad():
        features = model.base_model(torch.from_numpy(_normalised(samples))[None]).last_hidden_state[0].double().numpy()
    rng = np.random.default_rng(0)
    centres = features[rng.choice(len(features), units, replace=False)]
    for _ in range(25):
        labels = ((features[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([features[labels == k].mean(0) if (labels == k).any() else centres[k] for k in range(units)])
    classes = np.concatenate([[0], rng.choice(np.arange(5, len(VOCAB)), units - 1, replace=False)])
    # argmax_k -|f - c_k|^2 = argmax_k 2 c_k . f - |c_k|^2: a linear head
    weight = np.zeros((len(VOCAB), features.shape[1]))
    bias = np.full(len(VOCAB), -((centres**2).sum(1)).max() - 50.0)
    weight[classes], bias[classes] = 2 * centres, -(centres**2).sum(1)
    scale = spread / float((features @ weight.T + bias).std(1).mean())
    with torch.no_grad():
        model.lm_head.weight.copy_(torch.from_numpy(weight * scale))
        model.lm_head.bias.copy_(torch.from_numpy(bias * scale))
    return model


def _save(model, root):
    model.save_pretrained(root)
    (root / "vocab.json").write_text(json.dumps(VOCAB))
    (root / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "sampling_rate": 16000, "feature_size": 1, "padding_value": 0.0})
    )
    return root


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory, speech):
    made = {}

    def make(family: str):
        if family not in made:
            torch.manual_seed(0)
            model = _unit_head(CTC_CLASS[family](_config(family)).eval(), speech(16000))
            made[family] = _save(model, tmp_path_factory.mktemp(family))
        return made[family]

    return make


def _hf_logits(family: str, directory, samples: np.ndarray) -> np.ndarray:
    """transformers' own pipeline: its feature extractor's normalisation, then the model."""
    extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True)
    values = extractor(samples, sampling_rate=16000, return_tensors="pt").input_values
    model = CTC_CLASS[family].from_pretrained(directory, local_files_only=True).eval()
    with torch.no_grad():
        return model(values).logits[0].numpy()


def _agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """1 - greedy-token edit distance / reference tokens."""
    ref, cand = greedy_tokens(reference), greedy_tokens(candidate)
    return 1.0 - edit_distance(ref, cand) / max(1, len(ref))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_converts_to_onnx_and_tflite_in_float_and_int8(family, family_dir, tmp_path, speech):
    samples = speech(16000)
    calib = [samples[i : i + 16000] for i in range(0, len(samples) - 16000, 8000)]
    out = tmp_path / "bundle"
    report = converters.convert_wav2vec2(
        family_dir(family),
        calib=calib,
        quantize="int8",
        formats=("onnx", "tflite"),
        tflite_window_seconds=(4.0,),
        out=out,
    )
    assert report.step("export_onnx")["vs_torch"]["cosine"] > 0.9999

    # float ONNX: transformers' logits
    float_rec = Recognizer.from_bundle(tmp_path / "bundle-fp32")
    assert float_rec.manifest.input.kind == "waveform" and float_rec.manifest.subsampling_factor == 320
    reference = _hf_logits(family, family_dir(family), samples)
    ours = float_rec.backend.run(float_rec._front_end(samples))
    assert ours.shape == reference.shape
    assert float(np.abs(ours - reference).max()) < 1e-4 * (1 + float(np.abs(reference).max()))

    # int8 ONNX: smaller, same greedy tokens on speech
    quant_rec = Recognizer.from_bundle(out)
    assert quant_rec.manifest.quantization["scheme"] == "int8"
    ratio = (tmp_path / "bundle-fp32" / "model.onnx").stat().st_size / (out / "model.onnx").stat().st_size
    float_log_probs = float_rec.log_probs(samples)
    int8_agreement = _agreement(float_log_probs, quant_rec.log_probs(samples))

    # int8 TFLite (one 4 s window holds the utterance): loads, and agrees with float
    tflite_rec = Recognizer.from_bundle(out, backend="tflite")
    tflite_agreement = _agreement(float_log_probs, tflite_rec.log_probs(samples))
    print(
        f"{family}: int8 ONNX {ratio:.2f}x smaller, greedy agreement int8 ONNX {int8_agreement:.3f}, "
        f"int8 TFLite {tflite_agreement:.3f}"
    )
    assert ratio >= 3.5
    # convert()'s agreement guard: int8 below 95% agreement with float on the calibration audio
    # gets its costliest activations left float (int8 weights kept) until it agrees
    guard = report.step("quantize")["agreement_guard"]
    print(f"{family}: agreement guard {guard}")
    assert guard["min_agreement"] == 0.95 and guard.get("met", True)
    tflite_guard = report.step("export_tflite").get("agreement_guard")
    print(f"{family}: TFLite agreement guard {tflite_guard}")
    if tflite_guard is not None:  # static int8 fell below the bound: weights-only int8 if it agrees better
        assert tflite_guard["static_int8"] < 0.95
        chosen = "weights only" if tflite_guard["weights_only_int8"] > tflite_guard["static_int8"] else None
        assert report.step("export_tflite").get("int8") == chosen
    onnx_floor, tflite_floor = INT8_AGREEMENT_FLOORS[family]
    assert int8_agreement >= onnx_floor
    assert tflite_agreement >= tflite_floor


# Greedy-token agreement of int8 with float on the espeak sentence (int8 ONNX, int8 TFLite), as
# measured on an AVX2 x86 machine, both through convert()'s agreement guard (the calibration
# audio is this sentence's 1 s windows). int8 ONNX: HuBERT 1.000, WavLM 0.950, data2vec-audio
# 0.988, Conformer 0.973 (0.899, 0.887, 0.887, 0.813 as statically quantized, which the guard
# measured on the calibration audio, 0.80-0.93, and fixed by leaving 1-8 of 34-55 activations
# float). int8 TFLite: 1.000 for all four (static int8 was 0.848, 0.975, 0.912, 0.813; below 0.95
# on the calibration audio the guard takes int8 weights dequantized for float kernels). The floor
# is issue 15's 0.9. Static int8 loses where the sentence is silent: espeak's pauses are digital
# zeros (17% of the frames), which a random feature encoder turns into near-constant vectors that
# a per-frame LayerNorm then scales up, rounding included (in development a HuBERT of this
# configuration agreed on 97% of the speech frames and on none of the silent ones); with the
# feature encoder's activations in float the ONNX output SNR went from 22 to 55 dB.
# Size ratios measured (fp32 ONNX / int8 ONNX): 3.83, 3.95, 3.87, 3.80.
INT8_AGREEMENT_FLOORS = {family: (0.9, 0.9) for family in FAMILIES}


@pytest.mark.parametrize(
    "family,changes",
    [
        ("hubert", {}),
        ("hubert", {"do_stable_layer_norm": True, "feat_extract_norm": "layer", "conv_pos_batch_norm": True}),
        ("wavlm", {}),
        ("wavlm", {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}),
        ("data2vec-audio", {}),
        ("wav2vec2-conformer", {}),
        ("wav2vec2-conformer", {"position_embeddings_type": "rotary"}),
    ],
)
def test_the_fixed_window_forward_equals_an_unpadded_run(family, changes):
    """What the TFLite model computes: padding to a window changes nothing in the valid frames
    (masked group norm, zeros before every convolution over time, no attention to padded keys,
    positions of an unpadded run)."""
    from edge_speech.converters.wav2vec2 import ctc_logits_module, dynamic_positions, window_module

    torch.manual_seed(3)
    hf = CTC_CLASS[family](_config(family, **changes)).eval()
    with torch.no_grad():  # random biases everywhere (zero ones would hide a misplaced term)
        for name, p in hf.named_parameters():
            if name.endswith("bias") or "pos_bias" in name:
                p.normal_(0, 0.1)
    model = ctc_logits_module()(dynamic_positions(hf)).eval()
    window = window_module()(model).eval()
    for samples in (400, 5000, 23456, 32000):
        x = 0.3 * torch.randn(1, samples)
        padded = torch.zeros(1, 32000)
        padded[0, :samples] = x
        with torch.no_grad():
            reference = model(x)[0]
            logits, frames = window(padded, torch.tensor([samples], dtype=torch.int32))
        assert int(frames) == reference.shape[0]
        assert float((logits[0, : int(frames)] - reference).abs().max()) < 1e-5, samples


def test_conformer_positions_equal_transformers_and_follow_the_length():
    """Conformer's relative and rotary tables are recomputed from the length (transformers' rotary
    module returns its cached table when the length repeats, which a trace would bake in; its
    relative one holds a 2 x 5000-position table): same outputs as transformers, an ONNX export
    right at other lengths, and no table in the file."""
    from edge_speech.converters.wav2vec2 import ctc_logits_module, dynamic_positions

    for kind in ("relative", "rotary"):
        torch.manual_seed(0)
        hf = transformers.Wav2Vec2ConformerForCTC(_config("wav2vec2-conformer", position_embeddings_type=kind)).eval()
        x = 0.3 * torch.randn(1, 12345)
        with torch.no_grad():
            expected = hf(x).logits
            model = ctc_logits_module()(dynamic_positions(hf)).eval()
            model(x)  # a cache would now hold this length
            assert torch.equal(model(x), expected)
        example = 0.3 * torch.randn(1, 12345)
        onnx_model = converters.export_onnx(model, example, input_name="waveform", output_name="logits")  # 3 lengths
        parameter_bytes = 4 * sum(p.numel() for p in model.parameters())
        assert len(onnx_model) < 1.25 * parameter_bytes, (kind, len(onnx_model), parameter_bytes)


def test_wavlm_distance_buckets_equal_transformers():
    """The fixed-window model computes WavLM's buckets in Python; they must be transformers'."""
    from edge_speech.converters.wav2vec2 import _wavlm_bucket

    for buckets, distance in ((320, 800), (32, 64)):
        attention = transformers.models.wavlm.modeling_wavlm.WavLMAttention(
            64, 4, num_buckets=buckets, max_distance=distance
        )
        distances = torch.arange(-3000, 3001)
        expected = attention._relative_positions_bucket(distances).tolist()
        assert [_wavlm_bucket(int(d), buckets, distance) for d in distances] == expected


class _PositionedAttention(torch.nn.Module):
    """Index arithmetic written the usual ways: WavLM-style log-bucketed distances looked up in a
    bias table, a sinusoidal table computed from the length, and an additive mask of the future."""

    def __init__(self, width: int = 32, buckets: int = 16):
        super().__init__()
        self.proj = torch.nn.Linear(width, width)
        self.table = torch.nn.Embedding(buckets, 1)
        self.out = torch.nn.Linear(width, 5)
        self.buckets = buckets

    def forward(self, x):
        frames = x.shape[1]
        positions = torch.arange(frames)
        distance = (positions[None, :] - positions[:, None]).abs()
        large = (torch.log(distance.float() / 4) / np.log(8) * 4).to(torch.long) + 4  # log(0) = -inf, then discarded
        bucket = torch.where(distance < 4, distance, torch.clamp(large, max=self.buckets - 1))
        angles = positions[:, None].float() * torch.exp(-torch.arange(0, x.shape[2], 2).float())
        sinusoids = torch.stack((angles.sin(), angles.cos()), -1).reshape(frames, -1)
        h = self.proj(x + sinusoids)
        scores = h @ h.transpose(1, 2) / h.shape[2] ** 0.5 + self.table(bucket)[..., 0]
        future = torch.where(positions[None, :] > positions[:, None] + 20, -1e9, 0.0)
        return self.out(torch.softmax(scores + future, -1) @ h)


def test_index_arithmetic_stays_float_in_static_int8(monkeypatch):
    """Static int8 used to quantize the float steps of index arithmetic (WavLM's log-bucketed
    distances: log(0) = -inf, calibrated into a NaN scale), so ONNX Runtime gathered at index
    -2^63 and failed; the nodes are found from the graph, whatever the model."""
    import onnx

    from edge_speech.converters import quantization
    from edge_speech.converters.verification import onnx_runner

    torch.manual_seed(0)
    model = _PositionedAttention().eval()
    fp32 = converters.export_onnx(model, torch.randn(1, 50, 32))
    graph = onnx.load_from_string(fp32)
    quantization.name_nodes(graph)
    excluded = set(quantization.index_arithmetic_nodes(graph))
    nodes = {node.name: node for node in graph.graph.node}
    for op in ("Range", "Log", "Cast", "Sin", "Cos", "Where", "Gather"):
        assert any(nodes[n].op_type == op for n in excluded), op
    weights = {t.name for t in graph.graph.initializer}
    projections = [n for n, node in nodes.items() if node.op_type in ("MatMul", "Gemm") and weights & set(node.input)]
    assert len(projections) == 2 and not excluded & set(projections)  # their weights still go to int8
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal((n, 32)).astype(np.float32) for n in (40, 60, 80)]
    float_run, int8_run = onnx_runner(fp32), onnx_runner(quantization.quantize(fp32, calib, scheme="int8"))
    for frames in (30, 77):  # other lengths than the calibration's: the index arithmetic follows them
        x = rng.standard_normal((frames, 32)).astype(np.float32)
        a, b = float_run(x), int8_run(x)
        # measured 0.964 and 0.949 (a random model's attention, int8 throughout)
        assert np.all(np.isfinite(b)) and float(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9
    monkeypatch.setattr(quantization, "index_arithmetic_nodes", lambda model: [])
    monkeypatch.setattr(quantization, "activation_product_nodes", lambda model: [])  # every op quantized, as before
    with pytest.raises(Exception, match="indices element out of data bounds"):  # what it did before
        onnx_runner(quantization.quantize(fp32, calib, scheme="int8"))(calib[0])


def test_directories_that_are_not_ctc_encoders_are_refused_with_the_alternative(tmp_path, family_dir):
    import shutil

    bert = tmp_path / "w2v_bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "wav2vec2-bert"}))
    with pytest.raises(ValueError, match="log-mel features.*convert_onnx"):
        converters.load_wav2vec2(bert)
    sew = tmp_path / "sew"
    sew.mkdir()
    (sew / "config.json").write_text(json.dumps({"model_type": "sew"}))
    with pytest.raises(ValueError, match="supported model_types.*'wavlm'.*WavLMForCTC"):
        converters.load_wav2vec2(sew)
    xvector = tmp_path / "xvector"
    shutil.copytree(family_dir("wavlm"), xvector)
    config = json.loads((xvector / "config.json").read_text())
    (xvector / "config.json").write_text(json.dumps({**config, "architectures": ["WavLMForXVector"]}))
    with pytest.raises(ValueError, match="WavLMForXVector, not a WavLMForCTC"):
        converters.load_wav2vec2(xvector)
    source = converters.load_wav2vec2(family_dir("wavlm"))
    assert source.architecture == "WavLMForCTC" and source.tokens[4] == " " and source.blank_id == 0
