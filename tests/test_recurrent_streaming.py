"""Recurrent models in the runtime: unidirectional ones stream carrying their state (h, c) from
chunk to chunk, so a stream equals the offline run on real speech; bidirectional ones keep the
chunk + context path; GRUs reach int8 TFLite through an export-time lowering to matmuls and
gates. The manifest's ``input.state`` is validated and in the JSON schema."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from converter_models import CRNNKeywordSpotter, DeepSpeech2, GRUStack, confident, seeded

from edge_speech import Recognizer, audio, converters, features
from edge_speech.backends import run_stateful, stateful_chunk
from edge_speech.bundle import Bundle, BundleError, InputSpec, Manifest, StateTensor
from edge_speech.converters import recurrent
from edge_speech.converters.verification import edit_distance, greedy_tokens

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
SCHEMA = Path(features.__file__).parent / "schema" / "manifest.schema.json"
CALIB_TEXT = "Please open the garage door and play some quiet music in the bedroom."


class CausalConvLSTM(nn.Module):
    """A causal conv front end (left padding only, x2 subsampling) and a two-layer LSTM."""

    def __init__(self, dim: int = 80, channels: int = 48, hidden: int = 64, vocab: int = 29):
        super().__init__()
        self.conv = nn.Conv1d(dim, channels, 5, stride=2)
        self.rnn = nn.LSTM(channels, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, features):
        x = torch.relu(self.conv(nn.functional.pad(features.transpose(1, 2), (4, 0)))).transpose(1, 2)
        x, _ = self.rnn(x)
        return self.head(x).log_softmax(-1)


class GRUThenTimeConv(nn.Module):
    """A GRU followed by a symmetric conv over time: not streamable with state alone."""

    def __init__(self, dim: int = 80, hidden: int = 32, vocab: int = 29):
        super().__init__()
        self.rnn = nn.GRU(dim, hidden, batch_first=True)
        self.post = nn.Conv1d(hidden, vocab, 9, padding=4)

    def forward(self, features):
        x, _ = self.rnn(features)
        return self.post(x.transpose(1, 2)).transpose(1, 2).log_softmax(-1)


def test_the_stream_plan_measures_context_and_keeps_bidirectional_or_cross_frame_models_on_chunks():
    plan, why = recurrent.stream_plan(seeded(GRUStack), torch.randn(1, 101, 80), 2, 64)
    # Conv1d(k=4, stride 2, padding 1): output j reads input frames 2j-1 .. 2j+2.
    assert why is None and plan.layers == ("rnn",) and (plan.left_frames, plan.right_frames) == (2, 2)
    assert plan.state_shapes == (((2, 1, 48),),)
    plan, why = recurrent.stream_plan(seeded(CausalConvLSTM), torch.randn(1, 101, 80), 2, 64)
    assert why is None and plan.left_frames == 4 and plan.right_frames == 0
    assert [t.input for t in plan.state_tensors()] == ["state_in_0_h", "state_in_0_c"]
    plan, why = recurrent.stream_plan(seeded(DeepSpeech2), torch.randn(1, 101, 80), 2, 64)
    assert plan is None and "bidirectional" in why
    plan, why = recurrent.stream_plan(seeded(GRUThenTimeConv), torch.randn(1, 101, 80), 1, 64)
    assert plan is None and "differs from the whole-utterance run" in why


@pytest.mark.parametrize(
    "layer",
    [
        nn.GRU(12, 16, num_layers=2, batch_first=True),
        nn.LSTM(12, 16, num_layers=2, bidirectional=True),
        nn.RNN(12, 16, batch_first=True, bidirectional=True),
    ],
)
def test_lowered_recurrent_layers_equal_torchs_own(layer):
    torch.manual_seed(0)
    lowered = recurrent.explicit_recurrent_type()(layer.eval())
    x = torch.randn(7, 1, 12) if not layer.batch_first else torch.randn(1, 7, 12)
    with torch.no_grad():
        expected, expected_state = layer(x)
        got, got_state = lowered(x)
    assert torch.allclose(got, expected, atol=1e-5)
    for a, b in zip(
        got_state if isinstance(got_state, tuple) else (got_state,),
        expected_state if isinstance(expected_state, tuple) else (expected_state,),
    ):
        assert torch.allclose(a, b, atol=1e-5)


def stateful_manifest(**changes) -> Manifest:
    spec = InputSpec(
        chunk_frames=32,
        left_context_frames=2,
        right_context_frames=2,
        chunk_range_name="chunk_range",
        state=(StateTensor("state_in_0_h", "state_out_0_h", (2, 1, 48)),),
    )
    fields = dict(
        kind="ctc",
        sample_rate=16000,
        features=features.FeatureConfig.preset("kaldi-fbank"),
        tokens=tuple(TOKENS),
        models={"onnx": "model.onnx"},
        subsampling_factor=2,
        input=spec,
    )
    fields.update(changes)
    return Manifest(**fields)


def test_a_stateful_manifest_round_trips_validates_against_the_schema_and_needs_version_3():
    manifest = stateful_manifest()
    data = json.loads(manifest.to_json())
    assert data["schema_version"] == 3
    assert data["input"]["state"] == [{"input": "state_in_0_h", "output": "state_out_0_h", "shape": [2, 1, 48]}]
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert Manifest.from_dict(data) == manifest
    plain = json.loads(stateful_manifest(input=InputSpec()).to_json())  # older bundles are written as before
    assert plain["schema_version"] == 1 and "state" not in plain["input"] and "chunk_range_name" not in plain["input"]
    jsonschema.validate(plain, json.loads(SCHEMA.read_text()))
    data["schema_version"] = 2
    with pytest.raises(BundleError, match="needs schema_version 3"):
        Manifest.from_dict(data)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda i: i.pop("chunk_range_name"), "needs chunk_range_name and chunk_frames"),
        (lambda i: i["state"][0].update(shape=[2, 0, 48]), "shape must be a list of positive ints"),
        (lambda i: i["state"][0].pop("output"), "objects with input, output and shape"),
        (lambda i: i["state"][0].update(input="features"), "must be distinct"),
        (lambda i: i.update(left_context_frames=3), "multiples of the subsampling factor"),
    ],
)
def test_bad_state_sections_say_what_is_wrong(edit, message):
    data = json.loads(stateful_manifest().to_json())
    edit(data["input"])
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(data)


@pytest.fixture(scope="module")
def speech_pair(speech_wav):
    evaluation, _ = audio.read_wav(speech_wav(16000))
    calibration, _ = audio.read_wav(speech_wav(16000, CALIB_TEXT))
    return evaluation, [calibration[i : i + 16000] for i in range(0, len(calibration) - 8000, 16000)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory, speech_pair):
    """A GRU stack (conv with one frame of lookahead, two GRU layers) converted with int8 ONNX
    and int8 TFLite, confident on the speech as a trained model is."""
    evaluation, calib = speech_pair
    cfg = features.FeatureConfig.preset("kaldi-fbank")
    feats = torch.from_numpy(features.compute(evaluation, 16000, cfg))[None]
    model = confident(seeded(GRUStack, channels=64, hidden=64), feats)
    out = tmp_path_factory.mktemp("gru") / "bundle"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = converters.convert(
            model,
            torch.randn(1, 101, 80),
            cfg,
            TOKENS,
            calib=calib,
            quantize="int8",
            formats=("onnx", "tflite"),
            out=out,
            tflite_chunk_frames=32,
        )
    return {
        "report": report,
        "model": model,
        "speech": evaluation,
        "cfg": cfg,
        "feats": feats,
        "seconds": time.perf_counter() - start,
    }


def torch_log_probs(converted) -> np.ndarray:
    with torch.no_grad():
        return converted["model"](converted["feats"])[0].numpy()


BUNDLES = [("onnx", True), ("onnx", False), ("tflite", False)]


@pytest.mark.parametrize("backend, fp32", BUNDLES, ids=["onnx-fp32", "onnx-int8", "tflite-int8"])
def test_a_unidirectional_gru_bundle_streams_with_its_state_and_equals_offline_on_speech(converted, backend, fp32):
    report = converted["report"]
    path = report.fp32_bundle if fp32 else report.bundle
    manifest = Bundle.load(path).manifest
    spec = manifest.input_for(backend)
    assert manifest.schema_version == 3 and [s.input for s in spec.state] == ["state_in_0_h"]
    rec = Recognizer.from_bundle(path, backend=backend)
    samples = converted["speech"]
    offline = rec.log_probs(samples)
    offline_tokens = rec.transcribe((samples, 16000), beam=1).tokens
    assert len(offline_tokens) >= 10
    # The runtime's stream path (chunks carrying the state) against its offline path, log-probs.
    feats = features.compute(samples, 16000, rec.manifest.features)
    stepped = run_stateful(rec.backend, feats, spec, manifest.subsampling_factor)
    assert stepped.shape == offline.shape
    assert np.abs(stepped - offline).max() <= (1e-4 if fp32 or backend == "tflite" else 0.05) * (
        1 + np.abs(offline).max()
    )
    for size in (160, 509, 1777, len(samples)):  # odd chunk sizes: the same tokens as offline
        stream = rec.create_stream(beam=1)
        for i in range(0, len(samples), size):
            stream.accept_waveform(samples[i : i + size], 16000)
        early = stream.provisional()  # the waiting frames run now from the carried state, not committed
        final = stream.finish()
        assert final.tokens == offline_tokens
        assert early == final.text == stream.provisional()
    # The state is what carries the memory: chunks from a zero state each time differ.
    zero = rec.backend.initial_state()
    pieces, done = [], 0
    while done < len(feats):
        start, stop, first, end = stateful_chunk(done, len(feats), True, spec, 2, rec.backend.fixed_window)
        pieces.append(rec.backend.run_chunk(feats[start : min(stop, len(feats))], first, end, zero)[0])
        done += spec.chunk_frames
    assert np.abs(np.concatenate(pieces)[: len(offline)] - offline).max() > 0.1


@pytest.mark.parametrize("backend, fp32", BUNDLES, ids=["onnx-fp32", "onnx-int8", "tflite-int8"])
def test_stateful_bundles_agree_with_torch_on_speech(converted, backend, fp32):
    report = converted["report"]
    rec = Recognizer.from_bundle(report.fp32_bundle if fp32 else report.bundle, backend=backend)
    reference = greedy_tokens(torch_log_probs(converted))
    got = greedy_tokens(rec.log_probs(converted["speech"]))
    assert 1 - edit_distance(reference, got) / len(reference) >= (0.95 if fp32 else 0.90)


def test_int8_tflite_holds_the_gru_weights_as_int8_and_is_smaller_than_float(converted):
    from ai_edge_litert import schema_py_generated as schema

    report = converted["report"]
    int8 = (Path(report.bundle) / "model.tflite").read_bytes()
    plan, _ = recurrent.stream_plan(report.model, torch.randn(1, 101, 80), 2, 32)
    float_model, _ = recurrent.export_stateful_tflite(report.model, 80, plan, InputSpec())
    assert len(int8) < 0.75 * len(float_model), (len(int8), len(float_model))
    root = schema.ModelT.InitFromPackedBuf(bytearray(int8), 0)
    graph = root.subgraphs[0]
    weights = {}  # every constant of the size of a GRU weight matrix: int8
    for tensor in graph.tensors:
        data = root.buffers[tensor.buffer].data
        if data is not None and tuple(tensor.shape) in ((192, 64),):
            weights[tensor.buffer] = tensor.type
    assert weights and set(weights.values()) == {schema.TensorType.INT8}


def test_int8_tflite_of_a_gru_is_no_longer_refused_and_unlowerable_layers_are(converted):
    assert converted["report"].step("export_tflite")["scheme"] == "int8"
    assert "error" not in converted["report"].step("export_tflite")

    class Projected(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(80, 32, proj_size=16, batch_first=True)
            self.head = nn.Linear(16, 29)

        def forward(self, x):
            return self.head(self.rnn(x)[0]).log_softmax(-1)

    from edge_speech.converters.preflight import preflight

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"'rnn' \(nn.LSTM, proj_size\).*formats=\('onnx',\)"):
        preflight(Projected().eval(), torch.randn(1, 50, 80), ("onnx", "tflite"), tflite_int8=True, subsampling=1)
    assert time.perf_counter() - start < 10
    preflight(seeded(GRUStack), torch.randn(1, 101, 80), ("onnx", "tflite"), tflite_int8=True, subsampling=2)


def test_a_classifier_gru_reaches_int8_tflite_through_the_lowering(speech_pair):
    evaluation, _ = speech_pair
    cfg = features.FeatureConfig.preset("kaldi-fbank").replace(num_mel_bins=40)
    feats = features.compute(evaluation, 16000, cfg)
    model = confident(seeded(CRNNKeywordSpotter, channels=8, hidden=32), torch.from_numpy(feats[:48])[None])
    float_model, spec = recurrent.export_tflite_lowered(
        model, 40, chunk_frames=48, left_context_frames=0, right_context_frames=0
    )
    int8, _ = recurrent.export_tflite_lowered(
        model, 40, quantize="int8", chunk_frames=48, left_context_frames=0, right_context_frames=0
    )
    assert len(int8) < len(float_model)
    from edge_speech.backends import import_litert

    clips = [feats[i : i + 48] for i in range(0, len(feats) - 48, 12)]
    interpreter = import_litert()(model_content=int8)
    interpreter.allocate_tensors()
    hits = 0
    for clip in clips:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip[None].astype(np.float32))
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        with torch.no_grad():
            hits += int(got.argmax() == model(torch.from_numpy(clip)[None]).argmax())
    assert hits / len(clips) >= 0.9
