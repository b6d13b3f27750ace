"""Issue 15's conversion matrix: every architecture in ``converter_models.MATRIX`` (random seeded
weights, a few hundred thousand parameters) through the one documented call

    converters.convert(model, example, cfg, tokens, calib=..., eval=..., prune=0.5, quantize="int8",
                       formats=("onnx", "tflite"), target="rpi4", out=...)

and then checked from the outside: MACs halved (0.5 +- 0.05, counted on the converted torch model
against the original), the int8 model file at least 3.5x smaller than the float one, and both
bundles loaded by the runtime giving the greedy output of the converted torch model on real
synthesized speech (>= 95% of tokens in float, >= 90% in int8; classifiers: the same label), and
the int8 ONNX bundle agreeing with the float one on the calibration audio as convert()'s default
agreement guard promises (>= 95%).
What is not achieved yet is marked xfail (strict) with its cause, so a fix shows up as a pass.
Each architecture is converted once per session and shared by its checks."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converter_models import MATRIX, confident, seeded

from edge_speech import KeywordClassifier, Recognizer, converters, features
from edge_speech.bundle import Bundle
from edge_speech.classifier import clip_features
from edge_speech.converters.verification import edit_distance, greedy_tokens

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
LABELS = ["silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
EVAL_TEXT = "Turn on the kitchen light, then set a timer for five minutes."
CALIB_TEXT = "Please open the garage door and play some quiet music in the bedroom."


def feature_config(dim: int) -> features.FeatureConfig:
    return features.FeatureConfig.preset("kaldi-fbank").replace(num_mel_bins=dim)


def build(name: str, speech: np.ndarray):
    """(seeded model with outputs as confident as a trained one's on ``speech``, example input,
    feature config, labels, classifier?)."""
    model_class, kwargs, dim, classifier = MATRIX[name]
    kwargs = dict(kwargs, **({"dim": dim} if "dim" in model_class.__init__.__code__.co_varnames else {}))
    model = seeded(model_class, **kwargs)
    cfg = feature_config(dim)
    frames = 98 if classifier else 101
    example = torch.randn(1, frames, dim, generator=torch.Generator().manual_seed(1))
    feats = torch.from_numpy(features.compute(speech, 16000, cfg))[None]
    return (
        confident(model, feats[:, :frames] if classifier else feats),
        example,
        cfg,
        LABELS if classifier else TOKENS,
        classifier,
    )


def convert_one(name: str, out: Path, calib, evaluation):
    """(converter report, seconds, original model, example, refusal) of the documented call on
    ``name``; refusal: (message, seconds) when the preflight refused a format, after which the
    call is repeated without it."""
    model, example, cfg, labels, classifier = build(name, np.concatenate(calib))
    if classifier:
        evaluation = [(samples, labels[2]) for samples, _ in evaluation]
    refusal = None
    for formats in (("onnx", "tflite"), ("onnx",)):
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # shortfalls and TFLite failures are in the report, checked below
                report = converters.convert(
                    model,
                    example,
                    cfg,
                    labels,
                    calib=calib,
                    eval=evaluation,
                    prune=0.5,
                    quantize="int8",
                    formats=formats,
                    target="rpi4",
                    out=out,
                )
            break
        except ValueError as err:  # refused up front: what the formats cannot hold; the rest goes on without
            if "int8 TFLite cannot hold" not in str(err):
                raise
            refusal = (str(err), time.perf_counter() - start)
    return report, time.perf_counter() - start, model, example, refusal


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, speech_wav):
    """name -> conversion, converted on first use."""
    from edge_speech import audio

    evaluation, _ = audio.read_wav(speech_wav(16000, EVAL_TEXT))
    calibration, _ = audio.read_wav(speech_wav(16000, CALIB_TEXT))
    calib = [calibration[i : i + 16000] for i in range(0, len(calibration) - 8000, 16000)]
    done = {}

    def get(name: str):
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "bundle"
            report, seconds, model, example, refusal = convert_one(name, out, calib, [(evaluation, EVAL_TEXT)])
            done[name] = {
                "report": report,
                "seconds": seconds,
                "original": model,
                "example": example,
                "speech": evaluation,
                "calib": calib,
                "refusal": refusal,
            }
        return done[name]

    return get


@pytest.mark.parametrize("name", list(MATRIX))
def test_pruning_removes_half_the_macs(matrix, name):
    converted = matrix(name)
    model, example = converted["original"], converted["example"]
    before, _ = converters.count_macs(model, example)
    after, _ = converters.count_macs(converted["report"].model, example)
    assert abs((1 - after / before) - 0.5) <= 0.05, converted["report"].step("prune")


@pytest.mark.parametrize("name", list(MATRIX))
def test_int8_onnx_is_at_least_3_5_times_smaller_than_float(matrix, name):
    report = matrix(name)["report"]
    fp32 = (Path(report.fp32_bundle) / "model.onnx").stat().st_size
    int8 = (Path(report.bundle) / "model.onnx").stat().st_size
    assert fp32 / int8 >= 3.5, (fp32, int8)


def _reference_and_runtime(converted, backend: str, fp32: bool):
    """Outputs of the converted torch model and of the bundle in the runtime on the speech:
    CTC log-probs [frames, vocab] or, for classifiers, one [labels] row per 1 s clip."""
    report, samples = converted["report"], converted["speech"]
    path = report.fp32_bundle if fp32 else report.bundle
    model = report.model
    loader = KeywordClassifier if Bundle.load(path).manifest.kind == "classifier" else Recognizer
    runtime = loader.from_bundle(path, backend=backend)
    cfg = runtime.manifest.features

    def torch_run(feats):
        with torch.no_grad():
            return model(torch.from_numpy(feats)[None])[0].numpy()

    if loader is KeywordClassifier:
        clips = [samples[i : i + 16000] for i in range(0, len(samples) - 16000, 4000)]
        reference = np.stack([torch_run(clip_features(c, cfg, 16000, runtime.clip_frames)) for c in clips])
        return reference, np.stack([runtime.logits(c) for c in clips])
    return torch_run(features.compute(samples, 16000, cfg)), runtime.log_probs(samples)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Greedy-token agreement (1 - edit distance / reference tokens), or for classifier rows the
    share of equal labels."""
    assert reference.shape == candidate.shape
    if reference.shape[-1] == len(LABELS) and len(reference) < 40:  # classifier clips
        return float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
    ref, got = greedy_tokens(reference), greedy_tokens(candidate)
    assert len(ref) >= 10  # confident outputs: a real token sequence to compare
    return 1.0 - edit_distance(ref, got) / len(ref)


# Refused in the preflight: none now. GRUs were (litert-torch's int8 quantizer crashes on them);
# they now reach int8 TFLite lowered to matmuls and gates (recurrent.export_tflite_lowered).
REFUSED_TFLITE = ()
GRU_MODELS = ("GRUStack", "CRNNKeywordSpotter")
# Balanced attention pruning (residual, head and feed-forward widths alike) leaves these random
# models with small top-2 margins (ConformerCTC's median 2.1 -> 0.9 nats; a tenth of its frames
# within 0.1 nats), so any rounding below ~40 dB output SNR flips near-tied tokens. Graphs with
# activation-by-activation products (attention) are quantized on their weight ops (and the ReLU
# after them, folded into their output's range), the products in float
# (converters.quantization). Every static int8 ONNX model then passes convert()'s agreement
# guard (min_agreement=0.95 on the calibration audio: the activations whose rounding costs most
# stay float, on int8 weights): ConformerCTC's int8 ONNX went from 89.8% to 94.4% agreement on the
# evaluation sentence (the folded ReLU; it meets the guard as quantized), DSConvCTC's and
# QuartzNet's activations were partly left float by the guard. TFLite: full-attention models get
# 96-frame window contexts (export.receptive_field_frames) and int8 weights with float activations.
INT8_GAPS: dict = {}


def _int8(name: str, backend: str):
    gap = INT8_GAPS.get((name, backend))
    return pytest.param(
        name,
        backend,
        False,
        0.90,
        id=f"{name}-{backend}-int8",
        marks=[pytest.mark.xfail(reason=gap, strict=True)] if gap else [],
    )


AGREEMENT = [
    *[pytest.param(n, "onnx", True, 0.95, id=f"{n}-onnx-fp32") for n in MATRIX],
    *[_int8(n, "onnx") for n in MATRIX],
    *[_int8(n, "tflite") for n in MATRIX if n not in REFUSED_TFLITE],
]


@pytest.mark.parametrize("name, backend, fp32, needed", AGREEMENT)
def test_bundles_load_in_the_runtime_and_agree_with_torch_on_speech(matrix, name, backend, fp32, needed):
    reference, got = _reference_and_runtime(matrix(name), backend, fp32)
    assert agreement(reference, got) >= needed


def _greedy_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref, got = greedy_tokens(reference), greedy_tokens(candidate)
    return 1.0 - edit_distance(ref, got) / max(1, len(ref))


@pytest.mark.parametrize("name", [n for n in MATRIX if not MATRIX[n][3]])
def test_int8_onnx_agrees_with_float_on_the_calibration_audio_as_the_guard_promises(matrix, name):
    """convert()'s default agreement guard, measured in the runtime: the int8 ONNX bundle's greedy
    tokens against the float bundle's on the first 8 calibration utterances (mean over them)."""
    converted = matrix(name)
    report = converted["report"]
    record = report.step("quantize")["agreement_guard"]
    assert record["min_agreement"] == 0.95 and record.get("met", True)
    int8, fp32 = Recognizer.from_bundle(report.bundle), Recognizer.from_bundle(report.fp32_bundle)
    scores = [_greedy_agreement(fp32.log_probs(c), int8.log_probs(c)) for c in converted["calib"][:8]]
    assert np.mean(scores) >= 0.95, record


@pytest.mark.parametrize("name", GRU_MODELS)
def test_gru_models_are_no_longer_refused_and_reach_int8_tflite(matrix, name):
    converted = matrix(name)
    assert converted["refusal"] is None, converted["refusal"]
    assert set(Bundle.load(converted["report"].bundle).manifest.models) == {"onnx", "tflite"}


@pytest.mark.parametrize("name", list(MATRIX))
def test_the_preflight_takes_seconds(matrix, name):
    """A refusal comes before minutes of work. The < 10 s goal is measured by
    benchmarks/bench_converter_matrix.py (its preflight column); here only a bound that a loaded
    2-core CI machine cannot trip by chance (one preflight took 14.6 s under a load of 7)."""
    assert matrix(name)["report"].step("source")["preflight"]["seconds"] < 60


FULL_ATTENTION = ("ConformerCTC", "TransformerCTC", "ConformerConv2dSub")


@pytest.mark.parametrize("name", [n for n in MATRIX if n not in REFUSED_TFLITE and not MATRIX[n][3]])
def test_tflite_of_full_attention_models_gets_wide_windows_and_int8_weights_in_the_manifest(matrix, name):
    report = matrix(name)["report"]
    spec = Bundle.load(report.bundle).manifest.input_for("tflite")
    wide = name in FULL_ATTENTION
    assert (spec.left_context_frames == spec.right_context_frames == 96) == wide
    step = report.step("export_tflite")
    assert step.get("receptive_field") == ("unbounded" if wide else None)
    assert step.get("int8") == ("weights only" if wide else None)  # static int8 activations flip attention's tokens


class TwoConvs(torch.nn.Module):
    """Two 5-frame convolutions over features [batch, frames, 8]: first frame reaches outputs 0..4."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.Sequential(torch.nn.Conv1d(8, 8, 5, padding=2), torch.nn.Conv1d(8, 8, 5, padding=2))

    def forward(self, x):
        return self.convs(x.transpose(1, 2)).transpose(1, 2)


def test_receptive_field_is_measured_and_full_attention_is_unbounded():
    from edge_speech.converters.export import receptive_field_frames

    assert receptive_field_frames(seeded(TwoConvs), 8) == 5
    for name in FULL_ATTENTION:
        model_class, kwargs, dim, _ = MATRIX[name]
        assert receptive_field_frames(seeded(model_class, dim=dim), dim) is None, name
