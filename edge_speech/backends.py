"""Model backends: ONNX Runtime and LiteRT; every backend runs the model input (features
[frames, dim], or samples [samples] for waveform models) to outputs [output frames, vocab] behind
one small protocol.

Backends are imported lazily; asking for one that is not installed raises
:class:`BackendUnavailable` naming the pip extra to install.

Thread safety: every backend may be shared by any number of threads, each call independent of
the others. ONNX Runtime's session runs concurrent calls itself; a LiteRT interpreter serves
one call at a time, so :class:`LiteRTBackend` lends each call one from a bounded pool.
A stateful model's recurrent state is passed in and returned by each call, never kept here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import numbers
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np

from edge_speech._deps import BackendUnavailable, import_litert, import_onnxruntime
from edge_speech.bundle import Bundle
from edge_speech.manifest import BundleError, InputSpec, Manifest

if TYPE_CHECKING:
    from edge_speech.targets import Target

LOG = logging.getLogger(__name__)

__all__ = [
    "Backend",
    "BackendUnavailable",
    "InterpreterPool",
    "LiteRTBackend",
    "OnnxBackend",
    "create_backend",
    "create_backend_for_target",
    "engine_cache_dir",
    "import_litert",
    "import_onnxruntime",
    "model_feeds",
    "onnx_provider_options",
    "probe_providers",
    "start_session",
    "tensorrt_profile_shapes",
    "run_stateful",
    "stateful_chunk",
]


class Backend(Protocol):
    """What a recognizer or classifier needs of a model runtime. Implementations are safe to
    share between threads: they keep no per-call state of their own (see the module notes)."""

    name: str
    providers: Sequence[str]
    fixed_window: Optional[int]  # frames of a fixed-shape model's window, None when dynamic

    def run(self, features: np.ndarray) -> np.ndarray:
        """float32 features [frames, dim] (or samples [samples] for waveform input) -> float32
        outputs [output_frames, vocab]."""

    def initial_state(self) -> dict:
        """A stateful model's recurrent state before the first chunk (empty for stateless models)."""

    def run_chunk(self, window: np.ndarray, first: int, end: int, state: dict):
        """A stateful model's outputs for one chunk window, and the state after it."""


class OnnxBackend:
    """ONNX Runtime with the requested execution providers and their options
    (``provider_options``: {provider: {option: value}}, see :func:`onnx_provider_options`).
    A provider that this onnxruntime lacks, that fails to start or that ONNX Runtime silently
    leaves out is skipped for the next one (CPU last) with a warning naming it and why; the
    reasons are in :attr:`fallback`, the providers that loaded in :attr:`providers`.

    Thread safety: one backend may be shared by any number of threads; calls run concurrently
    in the one session (``InferenceSession.run`` is thread-safe) and each builds its own feeds."""

    name = "onnx"

    def __init__(
        self,
        model: bytes,
        input_spec: InputSpec,
        feature_dim: Optional[int],
        subsampling: int = 1,
        threads: Optional[int] = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        source: str = "model",
        provider_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.requested_providers = tuple(providers)
        self.session, notes = start_session(ort, model, options, providers, provider_options or {}, source)
        self.fallback = "; ".join(notes) if notes else None
        if self.fallback:
            loaded = self.session.get_providers()
            warnings.warn(
                f"edge_speech: ONNX Runtime falls back to {loaded[0].replace('ExecutionProvider', '').upper()} "
                f"({self.fallback})",
                RuntimeWarning,
                stacklevel=3,
            )
        self.providers = tuple(self.session.get_providers())
        self.input_spec = input_spec
        self.subsampling = subsampling
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_spec.name not in inputs:
            raise BundleError(f"{source}: the model has no input {input_spec.name!r} (it has {sorted(inputs)})")
        extra = {n for n in (input_spec.length_name, input_spec.mask_name, input_spec.chunk_range_name) if n}
        extra |= {s.input for s in input_spec.state}
        outputs = {o.name for o in self.session.get_outputs()}
        missing = [s.input for s in input_spec.state if s.input not in inputs] + [
            s.output for s in input_spec.state if s.output not in outputs
        ]
        if missing:
            raise BundleError(
                f"{source}: the model has no state tensor(s) {missing} the manifest's input.state names "
                f"(inputs {sorted(inputs)}, outputs {sorted(outputs)})"
            )
        for what, extra_name in (
            ("length", input_spec.length_name),
            ("attention-mask", input_spec.mask_name),
            ("chunk-range", input_spec.chunk_range_name),
        ):
            if extra_name and extra_name not in inputs:
                raise BundleError(f"{source}: the model has no {what} input {extra_name!r} (it has {sorted(inputs)})")
        if set(inputs) - extra - {input_spec.name}:
            raise BundleError(
                f"{source}: the model has inputs {sorted(set(inputs) - extra - {input_spec.name})} the "
                "manifest does not describe; a frame-count input is named by input.length_name, an "
                "attention mask by input.mask_name, recurrent state by input.state"
            )
        self.extra_dtypes = {
            n: np.int32
            if inputs[n].type == "tensor(int32)"
            else np.float32
            if inputs[n].type == "tensor(float)"
            else np.bool_
            if inputs[n].type == "tensor(bool)"
            else np.int64
            for n in extra
        }
        node = inputs[input_spec.name]
        self.input_dtype = np.int8 if node.type == "tensor(int8)" else np.float32
        if self.input_dtype != np.float32:
            raise BundleError(f"{source}: model input type {node.type} is not supported yet (float32 inputs only)")
        self.output_name = self.session.get_outputs()[0].name
        if input_spec.kind == "waveform":
            if len(node.shape) != 2:
                raise BundleError(
                    f"{source}: model input {input_spec.name!r} has shape {node.shape}; a waveform "
                    "model takes [batch, samples]"
                )
            return
        if len(node.shape) != 3:
            raise BundleError(
                f"{source}: model input {input_spec.name!r} has shape {node.shape}; "
                "expected 3 dimensions [batch, frames, dim] or [batch, dim, frames]"
            )
        dim_axis, time_axis = (2, 1) if input_spec.layout == "time_major" else (1, 2)
        model_dim = node.shape[dim_axis]
        if isinstance(model_dim, int) and model_dim != feature_dim:
            raise BundleError(
                f"{source}: model input {input_spec.name!r} has shape {node.shape} ({input_spec.layout}), "
                f"so it takes {model_dim} features per frame; the manifest's feature config gives {feature_dim}"
            )
        fixed = node.shape[time_axis]
        if isinstance(fixed, int):
            _check_fixed_frames(fixed, input_spec, source)

    def run(self, features: np.ndarray) -> np.ndarray:
        if self.input_spec.state:  # a whole utterance from the zero state: one window, every frame
            return self._run_window(features)
        return run_in_chunks(self._run_window, features, self.input_spec, self.subsampling)

    # A dynamic time axis: stateful chunks run in windows cut to what the utterance has.
    fixed_window: Optional[int] = None

    def initial_state(self) -> dict:
        return {s.input: np.zeros(s.shape, dtype=np.float32) for s in self.input_spec.state}

    def run_chunk(self, window: np.ndarray, first: int, end: int, state: dict):
        """A stateful model on one window [frames, dim] whose chunk is output frames
        ``first:end``, from ``state``: (outputs [end - first, vocab], the state after it)."""
        spec = self.input_spec
        feeds = model_feeds(spec, window, self.extra_dtypes)
        range_name = _chunk_range_name(spec)
        feeds[range_name] = np.array([first, end], dtype=self.extra_dtypes[range_name])
        feeds.update(state)
        names = [self.output_name] + [s.output for s in spec.state]
        out, *after = self.session.run(names, feeds)
        out = _unbatched(np.asarray(out, dtype=np.float32), spec, "model")
        return out[: end - first], {s.input: np.asarray(v, dtype=np.float32) for s, v in zip(spec.state, after)}

    def _run_window(self, window: np.ndarray) -> np.ndarray:
        feeds = model_feeds(self.input_spec, window, self.extra_dtypes)
        out = self.session.run([self.output_name], feeds)[0]
        return _unbatched(np.asarray(out, dtype=np.float32), self.input_spec, "model")


class LiteRTBackend:
    """LiteRT (TFLite) with its default XNNPACK delegate. int8/uint8 inputs and outputs are
    quantized and dequantized with the tensors' own scale and zero point. Waveform models
    exported as fixed windows (signatures ``window_<samples>``) run the smallest window that
    holds the utterance (:func:`run_in_windows`).

    Thread safety: one backend may be shared by any number of threads. A LiteRT interpreter
    (with its signature runners and resized inputs) serves one call at a time, so the backend
    keeps a pool of them (:class:`InterpreterPool`): each call borrows one, and a new one is made
    only when every interpreter is busy, up to ``max_interpreters`` (default: the cores, at
    most 4); callers beyond that wait for a free one. Each interpreter holds its own tensor
    arena and repacked weights, and runs ``threads`` threads of its own."""

    name = "tflite"

    def __init__(
        self,
        model: bytes,
        input_spec: InputSpec,
        feature_dim: Optional[int],
        subsampling: int = 1,
        threads: Optional[int] = None,
        source: str = "model",
        max_interpreters: Optional[int] = None,
    ):
        Interpreter = import_litert()

        def new_interpreter():
            interpreter = Interpreter(model_content=model, num_threads=threads or None)
            interpreter.allocate_tensors()
            return interpreter

        try:
            interpreter = new_interpreter()
        except (ValueError, RuntimeError) as err:
            raise BundleError(f"{source}: LiteRT cannot load the model ({str(err).splitlines()[0]})") from None
        self.providers = ("XNNPACK",)
        self.fallback = None
        self.input_spec, self.subsampling = input_spec, subsampling
        self.windows = _waveform_windows(interpreter, input_spec, source)
        self._stateful_signature: Optional[str] = None
        self.pool = InterpreterPool(
            lambda: _Interpreter(new_interpreter()),
            _default_interpreters() if max_interpreters is None else _check_count("max_interpreters", max_interpreters),
            first=_Interpreter(interpreter),
        )
        if self.windows:
            return
        if input_spec.state:
            self._init_stateful(interpreter, feature_dim, source)
            return
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise BundleError(f"{source}: the TFLite model has {len(inputs)} inputs; edge_speech feeds one")
        self.input, self.output = inputs[0], interpreter.get_output_details()[0]
        shape = list(self.input["shape_signature"])
        if input_spec.kind == "waveform":
            if len(shape) != 2:
                raise BundleError(f"{source}: TFLite input has shape {shape}; a waveform model takes [1, samples]")
            self.fixed_frames = shape[1] if shape[1] > 0 else None
            if self.fixed_frames is not None:
                raise BundleError(
                    f"{source}: the TFLite waveform model has a fixed {self.fixed_frames} samples; "
                    "waveform models must keep a dynamic sample axis (whole utterances)"
                )
            return
        if len(shape) != 3:
            raise BundleError(
                f"{source}: TFLite input has shape {shape}; expected [1, frames, dim] or [1, dim, frames]"
            )
        dim_axis, time_axis = (2, 1) if input_spec.layout == "time_major" else (1, 2)
        if shape[dim_axis] != feature_dim:
            raise BundleError(
                f"{source}: the TFLite model takes {shape[dim_axis]} features per frame; the manifest's "
                f"feature config gives {feature_dim}"
            )
        self.fixed_frames = shape[time_axis] if shape[time_axis] > 0 else None
        if self.fixed_frames is not None:
            _check_fixed_frames(self.fixed_frames, input_spec, source)

    def run(self, features: np.ndarray) -> np.ndarray:
        if self.windows:
            return run_in_windows(self._run_padded, features, sorted(self.windows), self.subsampling)
        if self.input_spec.state:
            return run_stateful(self, features, self.input_spec, self.subsampling)
        return run_in_chunks(self._run_window, features, self.input_spec, self.subsampling)

    fixed_window: Optional[int] = None

    @property
    def runners(self) -> dict:
        """{window samples: (signature runner, its tensor details)} made so far by the pool's
        first interpreter, for inspection; running one bypasses the pool."""
        return self.pool.first.runners

    def _init_stateful(self, interpreter, feature_dim: Optional[int], source: str) -> None:
        """A stateful TFLite model: one signature whose inputs are the features window, the
        chunk range and the state tensors, by the manifest's names."""
        spec = self.input_spec
        signatures = interpreter.get_signature_list()
        wanted = {spec.name, _chunk_range_name(spec), *(s.input for s in spec.state)}
        found = [n for n, io in signatures.items() if set(io["inputs"]) == wanted]
        if len(found) != 1:
            raise BundleError(
                f"{source}: the stateful TFLite model needs one signature with inputs {sorted(wanted)}; it "
                f"has {signatures}"
            )
        self._stateful_signature = found[0]
        runner = self.pool.first.stateful_runner(found[0])
        self.details = {**runner.get_input_details(), **runner.get_output_details()}
        missing = [s.output for s in spec.state if s.output not in self.details]
        if missing:
            raise BundleError(f"{source}: the stateful TFLite model has no state output(s) {missing}")
        self.logits_name = next(
            (n for n in signatures[found[0]]["outputs"] if n not in {s.output for s in spec.state}), None
        )
        shape = list(self.details[spec.name]["shape"])
        if len(shape) != 3 or shape[2] != feature_dim:
            raise BundleError(
                f"{source}: the stateful TFLite model takes features {shape}; expected [1, frames, {feature_dim}]"
            )
        self.fixed_window = self.fixed_frames = shape[1]
        _check_fixed_frames(self.fixed_window, spec, source)

    def initial_state(self) -> dict:
        return {s.input: np.zeros(s.shape, dtype=np.float32) for s in self.input_spec.state}

    def run_chunk(self, window: np.ndarray, first: int, end: int, state: dict):
        """As :meth:`OnnxBackend.run_chunk`, on the fixed window (zero-padded to it)."""
        spec = self.input_spec
        if self.fixed_window is None or self._stateful_signature is None:
            raise RuntimeError("run_chunk runs a stateful model; this one is stateless")
        padded = np.zeros((self.fixed_window, window.shape[1]), dtype=np.float32)
        padded[: len(window)] = window
        range_name = _chunk_range_name(spec)
        feeds = {
            spec.name: _quantize(padded[None], self.details[spec.name]),
            range_name: np.array([first, end], dtype=self.details[range_name]["dtype"]),
        }
        for s in spec.state:
            feeds[s.input] = _quantize(state[s.input], self.details[s.input])
        with self.pool.borrow() as slot:
            outputs = slot.stateful_runner(self._stateful_signature)(**feeds)
        out = _unbatched(_dequantize(outputs[self.logits_name], self.details[self.logits_name]), spec, "TFLite")
        after = {s.input: _dequantize(outputs[s.output], self.details[s.output]).reshape(s.shape) for s in spec.state}
        return out[: end - first], after

    def _window_runner(self, slot: "_Interpreter", window: int):
        """One interpreter's signature runner of one window, made on first use: each allocates
        its own tensors, and a 32 s window's attention needs far more memory than a 1 s one."""
        if window not in slot.runners:
            runner = slot.interpreter.get_signature_runner(self.windows[window])
            details = {**runner.get_input_details(), **runner.get_output_details()}
            shape = list(details[self.input_spec.name]["shape"])
            if shape != [1, window]:
                raise BundleError(
                    f"TFLite signature {self.windows[window]} takes input shape {shape}, not [1, {window}]"
                )
            slot.runners[window] = runner, details
        return slot.runners[window]

    def _run_padded(self, samples: np.ndarray, window: int) -> np.ndarray:
        padded = np.zeros((1, window), dtype=np.float32)
        padded[0, : len(samples)] = samples
        length_name = self.input_spec.length_name
        if length_name is None:  # _waveform_windows refuses window signatures without one
            raise BundleError("a TFLite waveform model with fixed windows needs input.length_name")
        with self.pool.borrow() as slot:
            runner, details = self._window_runner(slot, window)
            outputs = runner(
                **{
                    self.input_spec.name: _quantize(padded, details[self.input_spec.name]),
                    length_name: np.array([len(samples)], dtype=np.int32),
                }
            )
        frames = next(v for v in outputs.values() if v.ndim == 1)
        logits_name, logits = next((k, v) for k, v in outputs.items() if v.ndim == 3)
        out = _dequantize(logits, details[logits_name])[0]
        return out[: int(frames[0])]

    def _run_window(self, window: np.ndarray) -> np.ndarray:
        x = _quantize(model_feeds(self.input_spec, window)[self.input_spec.name], self.input)
        with self.pool.borrow() as slot:
            interpreter = slot.interpreter
            if self.fixed_frames is None and slot.input_shape != x.shape:
                interpreter.resize_tensor_input(self.input["index"], list(x.shape))
                interpreter.allocate_tensors()
                slot.input_shape = x.shape
            interpreter.set_tensor(self.input["index"], x)
            interpreter.invoke()
            y = interpreter.get_tensor(self.output["index"])  # a copy, safe after the interpreter is handed back
        return _unbatched(_dequantize(y, self.output), self.input_spec, "TFLite")


class _Interpreter:
    """One LiteRT interpreter and what is made from it (signature runners, the input shape it is
    allocated for); used by one thread at a time, lent by :class:`InterpreterPool`."""

    def __init__(self, interpreter) -> None:
        self.interpreter = interpreter
        self.runners: dict = {}  # window samples -> (signature runner, tensor details)
        self.input_shape: Optional[tuple] = None  # a dynamic input's current shape
        self._stateful: Optional[tuple] = None  # (signature, runner)

    def stateful_runner(self, signature: str):
        if self._stateful is None or self._stateful[0] != signature:
            self._stateful = signature, self.interpreter.get_signature_runner(signature)
        return self._stateful[1]


class InterpreterPool:
    """Objects that serve one caller at a time, made on demand up to ``limit``: :meth:`borrow`
    hands out an idle one, makes a new one when none is idle and fewer than ``limit`` exist, and
    otherwise waits for one to come back. The most recently returned is lent first, so a
    lightly used pool keeps using the same few (warm caches, no new arenas)."""

    def __init__(self, create: Callable[[], "_Interpreter"], limit: int, first: Optional["_Interpreter"] = None):
        if limit < 1:
            raise ValueError(f"an interpreter pool needs a limit of at least 1, got {limit}")
        self._create, self.limit = create, limit
        self._lock = threading.Condition()
        self._idle: list = []
        self._made = 0  # made, or being made
        self.first = first if first is not None else create()
        self._release(self.first, made=True)

    @property
    def size(self) -> int:
        """Interpreters made so far."""
        with self._lock:
            return self._made

    @contextlib.contextmanager
    def borrow(self) -> Iterator["_Interpreter"]:
        with self._lock:
            while not self._idle and self._made >= self.limit:
                self._lock.wait()
            item = self._idle.pop() if self._idle else None
            if item is None:
                self._made += 1  # reserved before the (slow) construction, outside the lock
        if item is None:
            try:
                item = self._create()
            except BaseException:
                with self._lock:
                    self._made -= 1
                    self._lock.notify()
                raise
        try:
            yield item
        finally:
            self._release(item)

    def _release(self, item: "_Interpreter", made: bool = False) -> None:
        with self._lock:
            self._made += made
            self._idle.append(item)
            self._lock.notify()


def _check_fixed_frames(fixed: int, spec: InputSpec, source: str) -> None:
    """A fixed-shape model must take exactly the frames the manifest feeds it: a classifier's
    clip, or a chunk with its contexts."""
    if spec.clip_frames is not None:
        if fixed != spec.clip_frames:
            raise BundleError(
                f"{source}: the model takes a fixed {fixed} frames, but the manifest's clip is "
                f"{spec.clip_frames} frames (input.clip_frames)"
            )
        return
    window = spec.chunk_frames and spec.left_context_frames + spec.chunk_frames + spec.right_context_frames
    if window != fixed:
        raise BundleError(
            f"{source}: the model input has a fixed {fixed} frames, but the manifest's chunking gives "
            f"windows of {window}; fixed-shape models need input.chunk_frames and contexts that add up "
            "to the model's frame count"
        )


def _chunk_range_name(spec: InputSpec) -> str:
    """The chunk-range input of a stateful model (InputSpec requires one beside state)."""
    if spec.chunk_range_name is None:
        raise BundleError("a stateful input (input.state) needs chunk_range_name and chunk_frames")
    return spec.chunk_range_name


def _stateful_chunk_frames(spec: InputSpec) -> int:
    """The chunk length of a stateful model (InputSpec requires it beside state)."""
    if spec.chunk_frames is None:
        raise BundleError("a stateful input (input.state) needs chunk_range_name and chunk_frames")
    return spec.chunk_frames


def _unbatched(out: np.ndarray, spec: InputSpec, what: str) -> np.ndarray:
    """One output without its batch axis: [frames, vocab], or [classes] for a classifier."""
    rank = 2 if spec.clip_frames is not None else 3
    if out.ndim != rank or out.shape[0] != 1:
        expected = "[1, classes]" if rank == 2 else "[1, frames, vocab]"
        raise BundleError(f"{what} output has shape {out.shape}; expected {expected}")
    return out[0]


WINDOW_SIGNATURE = "window_"


def _waveform_windows(interpreter, spec: InputSpec, source: str) -> dict:
    """For a waveform model exported as fixed windows (signatures ``window_<samples>``, see
    converters.export_tflite_waveform): {samples: signature name}. Empty for other models."""
    signatures = {n: io for n, io in interpreter.get_signature_list().items() if n.startswith(WINDOW_SIGNATURE)}
    if not signatures:
        return {}
    if spec.kind != "waveform" or not spec.length_name:
        raise BundleError(
            f"{source}: the TFLite model runs fixed waveform windows ({', '.join(signatures)}); its "
            "manifest input must be kind 'waveform' with a length_name"
        )
    windows = {}
    for name, io in signatures.items():
        samples = name[len(WINDOW_SIGNATURE) :]
        if not samples.isdigit() or int(samples) < 1:
            raise BundleError(f"{source}: TFLite signature {name!r} does not name its window in samples")
        if set(io["inputs"]) != {spec.name, spec.length_name} or len(io["outputs"]) != 2:
            raise BundleError(
                f"{source}: TFLite signature {name} has inputs {sorted(io['inputs'])} and "
                f"{len(io['outputs'])} outputs; expected inputs {spec.name!r} and {spec.length_name!r}, "
                "and the logits and frame count as outputs"
            )
        windows[int(samples)] = name
    return windows


def run_in_windows(
    run_padded: Callable[[np.ndarray, int], np.ndarray],
    samples: np.ndarray,
    windows: Sequence[int],
    samples_per_frame: int,
) -> np.ndarray:
    """Runs ``samples`` in the smallest of ``windows`` (sorted sample counts) that holds them,
    which equals a whole-utterance run. Longer audio is cut into windows of the largest size
    that overlap by a quarter; each output frame comes from the window in which it lies
    farthest from an edge (a full-attention model is then no longer exactly offline).
    ``run_padded(samples, window)`` returns the valid output frames of one window."""
    if len(samples) == 0:
        raise ValueError("no samples to run")
    fitting = [w for w in windows if w >= len(samples)]
    if fitting:
        return run_padded(samples, fitting[0])
    window = windows[-1]
    step = max(samples_per_frame, (window * 3 // 4) // samples_per_frame * samples_per_frame)
    last = (len(samples) - window + samples_per_frame - 1) // samples_per_frame * samples_per_frame
    starts = list(range(0, last, step)) + [last]
    pieces: list[tuple[np.ndarray, int]] = []
    for k, start in enumerate(starts):
        out = run_padded(samples[start : start + window], window)
        first_frame = start // samples_per_frame
        # Hand over to the next window halfway through the overlap.
        begin = 0 if k == 0 else (pieces[-1][1] - first_frame)
        if k == len(starts) - 1:
            end = len(out)
        else:
            next_frame = starts[k + 1] // samples_per_frame
            end = (next_frame + first_frame + len(out)) // 2 - first_frame
        pieces.append((out[begin:end], first_frame + end))
    return np.concatenate([p for p, _ in pieces])


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if y.dtype == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def model_feeds(spec: InputSpec, x: np.ndarray, extra_dtypes: Optional[dict] = None) -> dict:
    """The model's input feed for one utterance (or window) as ``spec`` describes it: features
    [frames, dim] in its layout, or samples [samples] as [1, samples]; plus the length input
    (frames or samples) and the attention mask (ones) when the spec names them."""
    if spec.kind == "waveform":
        batch = x[None]
    else:
        batch = x[None] if spec.layout == "time_major" else x.T[None]
    feeds = {spec.name: np.ascontiguousarray(batch, dtype=np.float32)}
    dtypes = extra_dtypes or {}
    if spec.state:  # a whole utterance from the zero state
        range_name = _chunk_range_name(spec)
        feeds[range_name] = np.array([0, np.iinfo(np.int32).max], dtype=dtypes.get(range_name, np.int64))
        feeds.update({s.input: np.zeros(s.shape, dtype=np.float32) for s in spec.state})
    if spec.length_name:
        feeds[spec.length_name] = np.array([len(x)], dtype=dtypes.get(spec.length_name, np.int64))
    if spec.mask_name:
        feeds[spec.mask_name] = np.ones(batch.shape[:2], dtype=dtypes.get(spec.mask_name, np.int64))
    return feeds


def run_in_chunks(
    run_window: Callable[[np.ndarray], np.ndarray], features: np.ndarray, spec: InputSpec, subsampling: int
) -> np.ndarray:
    """Runs a whole utterance, or, for fixed-shape models, windows of left + chunk + right
    frames, keeping from each the outputs its context makes exact. The first window starts at
    the utterance start and the last ends at its end, so the model's own edge padding applies
    there as in a whole-utterance run; only utterances shorter than a window are zero-padded.
    Returns ceil(frames / subsampling) output frames."""
    if spec.chunk_frames is None:
        if spec.max_frames is not None and len(features) > spec.max_frames:
            return _run_in_overlapping_windows(run_window, features, spec, subsampling)
        return run_window(features)
    left, right = spec.left_context_frames, spec.right_context_frames
    window = left + spec.chunk_frames + right
    if window % subsampling or left % subsampling:
        raise BundleError(
            f"chunking ({left}+{spec.chunk_frames}+{right}) must be in multiples of the model's "
            f"subsampling ({subsampling})"
        )
    frames = len(features)
    wanted = -(-frames // subsampling)
    padded_frames = max(wanted * subsampling, window)
    padded = features
    if padded_frames != frames:
        padded = np.zeros((padded_frames, features.shape[1]), dtype=np.float32)
        padded[:frames] = features
    last_start = padded_frames - window
    pieces, done = [], 0
    while done < padded_frames:
        start = min(max(0, done - left), last_start)
        keep_until = padded_frames if start == last_start else start + window - right
        out = run_window(padded[start : start + window])
        if len(out) * subsampling != window:
            raise BundleError(
                f"the model gave {len(out)} output frames for a {window}-frame window; with "
                f"subsampling {subsampling} it must give {window // subsampling}"
            )
        pieces.append(out[(done - start) // subsampling : (keep_until - start) // subsampling])
        done = keep_until
    return np.concatenate(pieces)[:wanted]


def stateful_chunk(
    done: int, total: int, final: bool, spec: InputSpec, subsampling: int, fixed_window: Optional[int] = None
) -> Optional[Tuple[int, int, int, int]]:
    """The window of a stateful model's chunk that starts at input frame ``done``: (start,
    stop) in input frames (``stop`` may pass ``total`` for a fixed window, zero-padded) and
    the chunk's output frames (first, end) within it; None while the frames it needs have not
    all arrived (``total`` frames so far; ``final``: there will be no more). Offline runs and
    streams cut the same windows, so they carry the same state."""
    if done >= total:
        return None
    left, chunk, right = spec.left_context_frames, _stateful_chunk_frames(spec), spec.right_context_frames
    chunk_end = done + chunk
    if fixed_window is None:
        if not final and chunk_end + right > total:
            return None
        start, stop = max(0, done - left), min(total, chunk_end + right)
    else:
        if final:  # the last window ends at the (subsampling-padded) end, as a whole run's edge
            padded = max(-(-total // subsampling) * subsampling, fixed_window)
            start = max(0, min(done - left, padded - fixed_window))
            start -= start % subsampling  # output frames stay on the utterance's grid
        else:
            start = max(0, done - left)
            if start + fixed_window > total:
                return None
        stop = start + fixed_window
    first = (done - start) // subsampling
    return start, stop, first, first + -(-(min(chunk_end, total) - done) // subsampling)


def run_stateful(backend, features: np.ndarray, spec: InputSpec, subsampling: int) -> np.ndarray:
    """A stateful model over a whole utterance chunk by chunk from the zero state, as a stream
    runs it (``backend.run_chunk``, :func:`stateful_chunk`)."""
    state, done, pieces = backend.initial_state(), 0, []
    total, chunk = len(features), _stateful_chunk_frames(spec)
    while True:
        cut = stateful_chunk(done, total, True, spec, subsampling, backend.fixed_window)
        if cut is None:
            break
        start, stop, first, end = cut
        out, state = backend.run_chunk(features[start : min(stop, total)], first, end, state)
        pieces.append(out)
        done += chunk
    return np.concatenate(pieces)[: -(-total // subsampling)]


def _run_in_overlapping_windows(
    run_window: Callable[[np.ndarray], np.ndarray], features: np.ndarray, spec: InputSpec, subsampling: int
) -> np.ndarray:
    """A dynamic model with a longest input (``spec.max_frames``) over a longer utterance:
    windows of at most max_frames overlapping by a context each side (the stream context, at
    most a quarter window), keeping each window's middle, as streaming does."""
    if spec.max_frames is None:
        raise ValueError("overlapping windows need the model's longest input (input.max_frames)")
    limit = spec.max_frames - spec.max_frames % subsampling
    context = min(spec.stream_context_frames or limit // 8, limit // 4)
    context -= context % subsampling
    chunk = limit - 2 * context
    frames = len(features)
    wanted = -(-frames // subsampling)
    pieces, done = [], 0
    while done < frames:
        start = max(0, done - context)
        stop = min(frames, start + limit)
        keep_until = frames if stop == frames else min(stop - context, done + chunk)
        out = run_window(features[start:stop])
        pieces.append(out[(done - start) // subsampling : -(-(keep_until - start) // subsampling)])
        done = keep_until
    return np.concatenate(pieces)[:wanted]


def create_backend(
    bundle: Bundle,
    backend: str = "auto",
    threads: Optional[int] = None,
    providers: Optional[Sequence[str]] = None,
    preferred: str = "onnx",
    max_interpreters: Optional[int] = None,
    provider_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Backend:
    """The backend for a bundle: ``"onnx"``, ``"tflite"``, or ``"auto"``: ``preferred`` (a
    target profile's choice) when the bundle has that model and its runtime is installed, else
    the other one. ``max_interpreters`` bounds the LiteRT backend's pool of interpreters (the
    threads it runs at once; default: the cores, at most 4); ONNX Runtime needs no pool.
    ``provider_options``: ONNX Runtime options per provider (see :func:`onnx_provider_options`)."""
    manifest = bundle.manifest
    if backend not in ("auto", "onnx", "tflite"):
        raise ValueError(f"backend must be 'auto', 'onnx' or 'tflite', got {backend!r}")
    if backend == "auto":
        backend = _pick_backend(bundle, preferred)
    if backend not in bundle.model_bytes:
        raise BundleError(f"{bundle.source}: the bundle has no {backend} model (it has {sorted(bundle.model_bytes)})")
    threads = threads if threads is not None else _default_threads()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(
            f"threads must be an int in 1..{MAX_THREADS}, got {threads!r} (this machine has {_default_threads()} cores)"
        )  # 100000 once hung in ORT's pool
    if backend == "tflite":
        return LiteRTBackend(
            bundle.model_bytes["tflite"],
            manifest.input_for("tflite"),
            manifest.input_dim,
            subsampling=manifest.subsampling_factor,
            threads=threads,
            source=bundle.source,
            max_interpreters=max_interpreters,
        )
    if not providers:  # CPU; XNNPACK first when this onnxruntime build has it (most PyPI builds do not)
        has_xnnpack = "XnnpackExecutionProvider" in import_onnxruntime().get_available_providers()
        providers = ("XnnpackExecutionProvider",) * has_xnnpack + ("CPUExecutionProvider",)
    return OnnxBackend(
        bundle.model_bytes["onnx"],
        manifest.input_for("onnx"),
        manifest.input_dim,
        subsampling=manifest.subsampling_factor,
        threads=threads,
        providers=providers,
        source=bundle.source,
        provider_options=provider_options,
    )


def create_backend_for_target(
    bundle: Bundle,
    target: Optional[str] = None,
    backend: str = "auto",
    threads: Optional[int] = None,
    max_interpreters: Optional[int] = None,
) -> Backend:
    """:func:`create_backend` with a device profile's (``edge-speech targets``) preferred
    backend, execution providers with their options (:func:`onnx_provider_options`) and thread
    count; ``threads`` overrides the profile's."""
    providers, preferred, options = None, "onnx", None
    if target is not None:
        from edge_speech.targets import get_target

        profile = get_target(target)
        providers, preferred = profile.onnx_providers, profile.backend
        options = onnx_provider_options(bundle, providers, profile)
        if threads is None and profile.threads:
            threads = profile.threads
    return create_backend(
        bundle,
        backend=backend,
        threads=threads,
        providers=providers,
        preferred=preferred,
        max_interpreters=max_interpreters,
        provider_options=options,
    )


CPU_PROVIDER = "CPUExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def start_session(
    ort,
    model: bytes,
    options,
    providers: Sequence[str],
    provider_options: Mapping[str, Mapping[str, Any]],
    source: str = "model",
) -> Tuple[Any, List[str]]:
    """An ``InferenceSession`` on the first of ``providers`` (then the rest, CPU always last)
    that starts: those this onnxruntime lacks are left out, one that raises is dropped and the
    rest retried, and one ONNX Runtime silently leaves out (a CUDA/TensorRT library it could not
    load) is noted. Returns (session, notes: one "provider: why" per provider that did not load),
    each also logged as a warning. Raises :class:`BundleError` only when CPU cannot load the model."""
    available = set(ort.get_available_providers())
    notes = []
    candidates = []
    for provider in dict.fromkeys(providers):  # in order, once each
        if provider in available:
            candidates.append(provider)
        else:
            notes.append(f"{provider}: not available in this onnxruntime (it has {', '.join(sorted(available))})")
    if CPU_PROVIDER not in candidates:
        candidates.append(CPU_PROVIDER)
    for provider in candidates:  # engine caches live in per-user folders made on first use
        for key in ("trt_engine_cache_path", "trt_timing_cache_path"):
            folder = provider_options.get(provider, {}).get(key)
            if folder:
                Path(str(folder)).mkdir(parents=True, exist_ok=True)
    while True:
        try:
            session = ort.InferenceSession(
                model,
                sess_options=options,
                providers=candidates,
                provider_options=[dict(provider_options.get(p, {})) for p in candidates],
            )
            break
        except Exception as err:  # onnxruntime's own exception types
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if candidates == [CPU_PROVIDER]:
                raise BundleError(f"{source}: ONNX Runtime cannot load the model ({reason})") from None
            notes.append(f"{candidates[0]}: failed to start ({reason})")
            candidates = candidates[1:]
    loaded = session.get_providers()
    notes += [
        f"{p}: ONNX Runtime did not load it (usually a missing CUDA, cuDNN or TensorRT library; its log says)"
        for p in candidates
        if p not in loaded
    ]
    for note in notes:
        LOG.warning("execution provider %s", note)
    return session, notes


# A one-node model (Relu on float32 [1]) that every provider can run: starting a session on it
# shows which providers load here without a bundle (edge-speech targets --detect).
PROBE_MODEL = (
    b'\x08\x08\x12\x00:3\n\x0c\n\x01x\x12\x01y"\x04Relu\x12\x01pZ\x0f\n\x01x\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08'
    b"\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\r"
)


def probe_providers(providers: Sequence[str]) -> Tuple[Tuple[str, ...], List[str]]:
    """(the providers that load, in ONNX Runtime's order; a note per one that does not) for
    ``providers`` (CPU is added last), found by starting a session on a one-node model."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the probe's own failures are reported in the notes
    session, notes = start_session(ort, PROBE_MODEL, options, providers, {}, "provider probe")
    return tuple(session.get_providers()), notes


def engine_cache_dir(model: bytes, shapes: Mapping[str, str]) -> Path:
    """The per-user folder of TensorRT engines for one model and optimisation profile:
    ``$XDG_CACHE_HOME/edge_speech/trt/<model sha256>-<profile hash>`` (``~/.cache`` without
    XDG_CACHE_HOME). Engines depend on both, so a new bundle or profile never reuses a stale one."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    profile = hashlib.sha256(repr(sorted(shapes.items())).encode()).hexdigest()[:8]
    return base / "edge_speech" / "trt" / f"{hashlib.sha256(model).hexdigest()[:16]}-{profile}"


def tensorrt_profile_shapes(
    manifest: Manifest, spec: InputSpec, opt_seconds: float = 10.0, max_seconds: float = 30.0
) -> Dict[str, str]:
    """TensorRT's optimisation profile for a bundle's model, as ONNX Runtime takes it:
    {"trt_profile_min_shapes" | "trt_profile_opt_shapes" | "trt_profile_max_shapes":
    "name:1x500x80,..."}, so one engine serves every input the runtime feeds and is built once.

    Fixed-shape (chunked) models: the window (left + chunk + right frames) everywhere. Dynamic
    models: from one output frame (``subsampling_factor`` frames or samples) through
    ``opt_seconds`` of audio (what the engine is tuned for) to ``input.max_frames`` or
    ``max_seconds``. Length, mask, chunk-range and state inputs follow the manifest's names."""
    if not 0 < opt_seconds <= max_seconds:
        raise ValueError(f"need 0 < opt_seconds <= max_seconds, got {opt_seconds} and {max_seconds}")
    step = manifest.subsampling_factor
    per_second = (
        manifest.sample_rate
        if spec.kind == "waveform" or manifest.features is None
        else manifest.sample_rate / manifest.features.frame_shift(manifest.sample_rate)
    )

    def frames(seconds: float) -> int:
        return max(step, int(seconds * per_second) // step * step)

    if spec.chunk_frames is not None and not spec.state:
        window = spec.left_context_frames + spec.chunk_frames + spec.right_context_frames
        lengths = (window, window, window)
    else:
        longest = spec.max_frames if spec.max_frames is not None else frames(max_seconds)
        lengths = (step, min(frames(opt_seconds), longest), longest)
    dim = manifest.input_dim or 0  # None only for waveform input, which has no feature axis
    shapes: Dict[str, List[str]] = {"min": [], "opt": [], "max": []}
    for key, length in zip(shapes, lengths):
        if spec.kind == "waveform":
            main = [1, length]
        else:
            main = [1, length, dim] if spec.layout == "time_major" else [1, dim, length]
        dims = {spec.name: main}
        if spec.length_name:
            dims[spec.length_name] = [1]
        if spec.mask_name:
            dims[spec.mask_name] = main[:2]
        if spec.state:
            dims[_chunk_range_name(spec)] = [2]
            dims.update({s.input: list(s.shape) for s in spec.state})
        shapes[key] = [f"{name}:{'x'.join(str(d) for d in value)}" for name, value in dims.items()]
    return {f"trt_profile_{key}_shapes": ",".join(value) for key, value in shapes.items()}


def onnx_provider_options(
    bundle: Bundle, providers: Sequence[str], target: "Optional[Target]" = None
) -> Dict[str, Dict[str, Any]]:
    """ONNX Runtime options for each of ``providers`` on this bundle: the target profile's
    ([runtime.provider_options]), and for TensorRT the optimisation profile from the manifest
    (:func:`tensorrt_profile_shapes`) and, when the engine cache is on, its per-user folder
    (:func:`engine_cache_dir`); options the profile sets itself are kept."""
    given = dict(target.provider_options) if target is not None else {}
    result = {p: dict(given.get(p, {})) for p in providers if given.get(p)}
    if TENSORRT_PROVIDER in providers and "onnx" in bundle.model_bytes:
        trt = result.setdefault(TENSORRT_PROVIDER, {})
        opt_s, max_s = (target.profile_opt_seconds, target.profile_max_seconds) if target else (10.0, 30.0)
        shapes = tensorrt_profile_shapes(bundle.manifest, bundle.manifest.input_for("onnx"), opt_s, max_s)
        for key, value in shapes.items():
            trt.setdefault(key, value)
        if trt.get("trt_engine_cache_enable") in (True, 1, "1", "True", "true"):
            folder = str(engine_cache_dir(bundle.model_bytes["onnx"], shapes))
            trt.setdefault("trt_engine_cache_path", folder)
            if trt.get("trt_timing_cache_enable") in (True, 1, "1", "True", "true"):
                trt.setdefault("trt_timing_cache_path", folder)
    return result


def _pick_backend(bundle: Bundle, preferred: str) -> str:
    order = [preferred] + [f for f in ("onnx", "tflite") if f != preferred]
    available = [f for f in order if f in bundle.model_bytes]
    for fmt in available:
        try:
            import_onnxruntime() if fmt == "onnx" else import_litert()
            return fmt
        except BackendUnavailable:
            continue
    if not available:
        raise BundleError(f"{bundle.source}: the bundle has no model")
    raise BackendUnavailable(
        f"no runtime for this bundle's models ({', '.join(available)}): "
        "pip install 'edge-speech[onnx]' or 'edge-speech[tflite]'"
    )


MAX_THREADS = 256
DEFAULT_MAX_INTERPRETERS = 4  # a LiteRT pool's default bound (each interpreter has its own arena)


def _default_interpreters() -> int:
    return min(DEFAULT_MAX_INTERPRETERS, _default_threads())


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_THREADS:
        raise ValueError(f"{name} must be an int in 1..{MAX_THREADS}, got {value!r}")
    return int(value)


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
