"""Verification of a converted model against its reference: logits agreement (cosine, SNR),
greedy-token agreement, accuracy on labelled audio, size and latency."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from edge_speech.text import edit_distance, error_rates, greedy_ids

Runner = Callable[[np.ndarray], np.ndarray]  # features [frames, dim] -> outputs [frames', vocab]


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    cosine: float  # mean over utterances of the cosine of flattened outputs
    snr_db: float  # 10 log10(|ref|^2 / |ref - test|^2), over all outputs
    frame_agreement: float  # share of frames (classifiers: inputs) with the same argmax
    greedy_token_agreement: float  # 1 - token edit distance / reference length, greedy decoding
    reference_latency_ms: float  # mean per utterance
    candidate_latency_ms: float
    utterances: int

    def to_dict(self) -> dict:
        # NaN (no token agreement for classifiers) is not JSON; None is.
        return {
            k: (None if v != v else round(v, 5)) if isinstance(v, float) else v
            for k, v in dataclasses.asdict(self).items()
        }


def verify(reference: Runner, candidate: Runner, inputs: Sequence[np.ndarray], blank_id: int = 0) -> VerifyReport:
    """Runs both on every feature array in ``inputs`` and compares their outputs."""
    if not inputs:
        raise ValueError("verify needs at least one input")
    cosines, signal, noise, agree, frames, token_scores = [], 0.0, 0.0, 0, 0, []
    times = {"ref": 0.0, "cand": 0.0}
    for x in inputs:
        t0 = time.perf_counter()
        ref = np.asarray(reference(x), dtype=np.float64)
        t1 = time.perf_counter()
        out = np.asarray(candidate(x), dtype=np.float64)
        t2 = time.perf_counter()
        times["ref"] += t1 - t0
        times["cand"] += t2 - t1
        if ref.shape != out.shape:
            raise ValueError(f"output shapes differ: reference {ref.shape}, candidate {out.shape}")
        a, b = ref.ravel(), out.ravel()
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30)))
        signal += float(a @ a)
        noise += float((a - b) @ (a - b))
        if ref.ndim == 2:
            agree += int((ref.argmax(1) == out.argmax(1)).sum())
            frames += len(ref)
            r, c = greedy_ids(ref, blank_id), greedy_ids(out, blank_id)
            token_scores.append(1.0 - edit_distance(r, c) / max(1, len(r)))
        elif ref.ndim == 1:  # a classifier's scores: one decision per input
            agree += int(ref.argmax() == out.argmax())
            frames += 1
    n = len(inputs)
    return VerifyReport(
        cosine=float(np.mean(cosines)),
        snr_db=float(10 * np.log10(signal / max(noise, 1e-30))),
        frame_agreement=agree / frames if frames else float("nan"),
        greedy_token_agreement=float(np.mean(token_scores)) if token_scores else float("nan"),
        reference_latency_ms=1e3 * times["ref"] / n,
        candidate_latency_ms=1e3 * times["cand"] / n,
        utterances=n,
    )


# edge_speech.text's greedy collapse under this module's older name (edit_distance is re-exported as imported)
greedy_tokens = greedy_ids


def error_rate(references: Sequence[str], hypotheses: Sequence[str], unit: str = "char") -> float:
    """CER (unit='char') or WER (unit='word') over a corpus, on the texts as given (not normalised)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return error_rates(zip(references, hypotheses), normalize=False)["cer" if unit == "char" else "wer"]


def onnx_runner(model: bytes, input_name: str = "features", threads: int = 1, input_spec=None) -> Runner:
    """A runner over ONNX bytes with onnxruntime on CPU; ``input_spec`` for channel-major models
    or ones with a frame-count input. One raw window per call, fed as the runtime feeds it (its
    ``model_feeds``); not the runtime's ``OnnxBackend``, which checks the model against a bundle's
    manifest (feature width, window, output rank) that a model being converted does not have yet."""
    from edge_speech.backends import import_onnxruntime, model_feeds
    from edge_speech.converters.quantization import _default_spec

    ort = import_onnxruntime()
    spec = input_spec or _default_spec(input_name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name
    return lambda x: session.run([output], model_feeds(spec, np.asarray(x, dtype=np.float32)))[0][0]


def within_max_frames(run: Runner, spec, subsampling: int) -> Runner:
    """``run`` over inputs longer than ``spec.max_frames`` (a model with a longest input, e.g.
    Whisper's 30 s) in the runtime's overlapping windows, as the Recognizer runs them."""
    if spec is None or spec.max_frames is None:
        return run
    from edge_speech.backends import run_in_chunks

    return lambda x: run_in_chunks(run, np.asarray(x, dtype=np.float32), spec, subsampling)


def torch_runner(model) -> Runner:
    import torch

    model = model.eval()

    def run(x):
        with torch.no_grad():
            return model(torch.from_numpy(np.asarray(x, dtype=np.float32))[None])[0].numpy()

    return run


def tflite_runner(model: bytes, spec, subsampling: int, threads: int = 1) -> Runner:
    """A runner over a TFLite model with the runtime's LiteRT backend (chunked as the manifest says)."""
    from edge_speech.backends import LiteRTBackend

    feature_dim = None if spec.kind == "waveform" else _tflite_feature_dim(model)
    interpreter = LiteRTBackend(model, spec, feature_dim, subsampling=subsampling, threads=threads)
    return interpreter.run


def _tflite_feature_dim(model: bytes) -> int:
    from edge_speech._deps import import_litert

    interpreter = import_litert()(model_content=model)
    return int(interpreter.get_input_details()[0]["shape"][2])
