"""The protocol-independent side of serving: the served models (with hot reload), a bounded
worker pool, the per-request sessions (audio conversion, limits, VAD events, streamed partials,
wake phrases) and text-to-intent matching with the loaded grammar.

Everything that recognises speech is the runtime's own: :meth:`Recognizer.transcribe` for
transcripts (a request's result is exactly what ``Recognizer.transcribe`` gives on the same
audio), :meth:`RecognizerStream.provisional` for streamed partials, :func:`listen.listen` for
wake phrases, :func:`vad.create_vad` for voice activity. A protocol adapter (Wyoming today)
turns its events into calls here.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge_speech import audio, listen
from edge_speech import limits as runtime_limits
from edge_speech.decoding.hotwords import read_hotwords
from edge_speech.grammars import Grammar
from edge_speech.recognizer import DEFAULT_MODEL, EMBEDDED_MODELS, Recognizer, RecognizerStream, Transcript
from edge_speech.serving.metrics import ServeMetrics
from edge_speech.vad import KINDS as VAD_KINDS
from edge_speech.vad import create_vad

__all__ = [
    "AsrSession",
    "LiveSession",
    "ServeConfig",
    "ServeError",
    "ServeLimits",
    "ServedModel",
    "SpeechService",
    "VoiceActivity",
    "WakeSession",
    "WorkerPool",
    "pcm_to_float",
]

LOG = logging.getLogger("edge_speech.serve")
_WORD = re.compile(r"[^\w']+")  # splits a client's biasing terms into words

PCM_WIDTHS = (1, 2, 3, 4)  # bytes per sample: unsigned 8-bit, signed 16/24/32-bit little-endian (Wyoming's widths)


class ServeError(Exception):
    """A request the server refuses; ``code`` is a short machine-readable reason
    (``bad-format``, ``too-large``, ``server-busy``, ``unknown-model`` ...)."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code, self.text = code, text


@dataclasses.dataclass(frozen=True)
class ServeLimits:
    """What one client may ask of the server (all of it untrusted input). The runtime's own
    limits (:mod:`edge_speech.limits`: sample rates, audio length) apply as well.

    ``max_sessions`` (audio streams open at once, live WebSocket streams included) defaults to
    16 per worker (a live en-small stream costs ~0.04 of a core: benchmarks/bench_http.py), and
    ``queue`` (jobs waiting for a worker) to 8 per worker (a job waits at most about 8 jobs'
    time: ~0.3 s with en-small commands); beyond them a request is answered ``server-busy``."""

    max_audio_s: float = 30.0  # audio of one transcription request
    max_chunk_bytes: int = 1 << 20  # payload of one audio chunk
    max_rate: int = 96_000  # Hz: with max_audio_s, bounds a request's buffer (11.5 MB float32)
    max_header_bytes: int = 64 * 1024  # an event's JSON header line, and its separate data block
    max_channels: int = 8
    idle_timeout_s: float = 300.0  # a connection that sends nothing for this long is closed
    max_connections: int = 2048
    max_sessions: Optional[int] = None
    queue: Optional[int] = None
    max_wake_backlog_s: float = 5.0  # audio a live (wake or stream) session may have waiting before it is refused
    max_upload_bytes: int = 16 << 20  # an HTTP request body: a file upload and its form fields
    max_text_bytes: int = 1 << 20  # a grammar or sentence file sent with a request

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("max_sessions", "queue"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                if not (f.name == "queue" and value == 0):
                    raise ValueError(f"ServeLimits.{f.name} must be a positive number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """What ``edge-speech serve`` serves. ``models``: embedded model names (``en-small``,
    ``en-base``) or bundle paths (directory, .zip, .onnx), the first being the default; bundle
    paths are watched and hot-reloaded every ``reload_interval_s`` (0: never)."""

    models: Tuple[str, ...] = (DEFAULT_MODEL,)
    language: str = "en"
    grammar: Optional[str] = None  # YAML intents or JSGF file
    sentences: Optional[str] = None  # Home Assistant sentence templates (a folder or file)
    grammar_threshold: Optional[float] = None
    wake: Optional[str] = None  # wake phrase, e.g. "hey computer"
    wake_threshold: Optional[float] = None
    hotwords: Optional[str] = None  # file: one phrase per line, optionally 'phrase:boost'
    names_boost: float = 3.0  # boost of a client's transcript_names
    terms_boost: float = 2.0  # boost of a client's transcript_terms
    vad: str = "energy"
    trailing_silence_s: float = 0.6  # silence after speech that makes voice-stopped
    streaming: bool = True  # transcript-start/-chunk/-stop partials
    partial_interval_s: float = 0.3  # audio time between partials
    workers: Optional[int] = None  # None: one per core
    backend: str = "auto"
    target: Optional[str] = None
    threads: int = 1  # model threads per job; the pool gives the parallelism
    reload_interval_s: float = 2.0
    ab: Optional[Tuple[Tuple[str, float], ...]] = None  # (model name or source, weight): splits new sessions
    limits: ServeLimits = ServeLimits()

    def __post_init__(self) -> None:
        if isinstance(self.models, str) or not self.models:
            raise ValueError("ServeConfig.models must be a non-empty sequence of model names or bundle paths")
        object.__setattr__(self, "models", tuple(str(m) for m in self.models))
        if self.grammar and self.sentences:
            raise ValueError("give a grammar or sentence templates, not both")
        if self.vad not in VAD_KINDS:
            raise ValueError(f"unknown VAD {self.vad!r}; choose one of {', '.join(VAD_KINDS)}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"workers must be a positive int, got {self.workers!r}")
        if not self.reload_interval_s >= 0:
            raise ValueError(f"reload_interval_s must be >= 0, got {self.reload_interval_s!r}")
        if self.wake is not None and not self.wake.split():
            raise ValueError("the wake phrase is empty")
        if self.ab is not None:
            object.__setattr__(self, "ab", parse_ab(self.ab))


def parse_ab(spec: "str | Sequence[Tuple[str, float]]") -> Tuple[Tuple[str, float], ...]:
    """An A/B split, ``"bundleA=90,bundleB=10"`` or pairs: two or more distinct models (served
    names, bundle paths or embedded names) with positive weights."""
    if isinstance(spec, str):
        pairs: List[Tuple[str, Any]] = []
        for item in spec.split(","):
            name, sep, text = item.strip().rpartition("=")
            if not sep or not name:
                raise ValueError(f"A/B split {spec!r}: write MODEL=WEIGHT,MODEL=WEIGHT (e.g. en-small=90,new=10)")
            try:
                pairs.append((name.strip(), float(text)))
            except ValueError:
                raise ValueError(f"A/B split {spec!r}: weight {text!r} of {name!r} is not a number") from None
    else:
        pairs = [(str(name), weight) for name, weight in spec]
    for name, weight in pairs:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < 1e9:
            raise ValueError(f"A/B weight of {name!r} must be a positive number, got {weight!r}")
    names = [name for name, _ in pairs]
    if len(pairs) < 2 or len(set(names)) != len(names):
        raise ValueError(f"an A/B split needs two or more different models, got {names}")
    return tuple((name, float(weight)) for name, weight in pairs)


# -- worker pool -------------------------------------------------------------------------------


class WorkerPool:
    """A thread pool of ``workers`` with at most ``queue`` jobs waiting: :meth:`try_submit`
    returns None instead of queueing more (the caller answers "busy")."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.capacity = int(workers), int(workers) + int(queue)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="edge-speech-worker")
        self._lock = threading.Lock()
        self._active = 0
        self.rejected = 0

    @property
    def load(self) -> int:
        """Jobs running or waiting."""
        return self._active

    def try_submit(self, fn: Callable, *args: Any, spare_only: bool = False, **kwargs: Any) -> Optional[Future]:
        """Runs ``fn`` on a worker; None when the queue is full, or with ``spare_only`` (work that
        may be skipped, such as partial results) when no worker is idle."""
        with self._lock:
            if self._active >= (self.workers if spare_only else self.capacity):
                self.rejected += not spare_only
                return None
            self._active += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except RuntimeError:  # shut down
            self._finished(None)
            return None
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future) -> None:
        with self._lock:
            self._active -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- models and hot reload ---------------------------------------------------------------------


def _signature(path: Path) -> Optional[tuple]:
    """What changes when a bundle is rewritten: names, sizes and mtimes of its files."""
    try:
        if path.is_dir():
            return tuple(
                sorted(
                    (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                    for p in path.rglob("*")
                    if p.is_file()
                )
            )
        st = path.stat()
        return (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return None


class ServedModel:
    """One served model: a name, its current :class:`Recognizer`, and for a bundle path the
    watch that swaps in a rewritten bundle once it loads, verifies and runs. Sessions take
    :attr:`recognizer` when they start and keep it, so a swap never touches one in flight."""

    def __init__(self, source: str, options: Mapping[str, Any]):
        self.source = source
        self._options = dict(options)
        if source in EMBEDDED_MODELS:
            self.name, self.path = source, None
            self.recognizer = Recognizer.default(source, **self._options)
        else:
            self.path = Path(source)
            self.name = self.path.stem if self.path.suffix.lower() in (".zip", ".onnx", ".tflite") else self.path.name
            self.recognizer = _load_verified(self.path, self._options)
        self.signature = _signature(self.path) if self.path else None
        self.generation = 0
        self._seen: Optional[tuple] = None  # a new signature, waiting one poll for writes to settle
        self._refused: Optional[tuple] = None  # the last signature that failed to load

    @property
    def bundle_name(self) -> str:
        return self.recognizer.manifest.name

    def poll(self) -> Optional[dict]:
        """Checks the bundle once; returns a record when it tried a reload (ok or refused)."""
        if self.path is None:
            return None
        sig = _signature(self.path)
        if sig is None or sig == self.signature or sig == self._refused:
            self._seen = None
            return None
        if sig != self._seen:  # changed since the last look: let the writer finish
            self._seen = sig
            return None
        self._seen = None
        record = {"model": self.name, "path": str(self.path), "time": time.time()}
        try:
            recognizer = _load_verified(self.path, self._options)
        except Exception as err:  # any failure keeps the serving model: the refusal is the report
            self._refused = sig
            LOG.error("hot reload of %s refused (the previous bundle keeps serving): %s", self.path, err)
            return {**record, "ok": False, "error": f"{type(err).__name__}: {err}"}
        self.recognizer, self.signature, self._refused = recognizer, sig, None
        self.generation += 1
        LOG.info(
            "hot reload: %s now serves bundle %r (generation %d) for new sessions",
            self.name,
            recognizer.manifest.name,
            self.generation,
        )
        return {**record, "ok": True, "bundle": recognizer.manifest.name, "generation": self.generation}


def _load_verified(path: Path, options: Mapping[str, Any]) -> Recognizer:
    """Loads a bundle (checksums, schema and feature config are checked by Bundle.load) and runs
    it once on half a second of quiet noise, so a model that loads but cannot run is refused."""
    recognizer = Recognizer.from_bundle(path, **options)
    rate = recognizer.manifest.sample_rate
    probe = (1e-3 * np.random.default_rng(0).standard_normal(rate // 2)).astype(np.float32)
    recognizer.transcribe((probe, rate), beam=1, lm=False)
    return recognizer


# -- audio -------------------------------------------------------------------------------------


def check_format(rate: Any, width: Any, channels: Any, limits: ServeLimits) -> Tuple[int, int, int]:
    """Validated (rate, width, channels) of an audio event, or ServeError("bad-format")."""
    for name, value in (("rate", rate), ("width", width), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ServeError("bad-format", f"audio {name} must be an integer, got {value!r}")
    runtime = runtime_limits.current()
    highest = min(limits.max_rate, runtime.max_sample_rate)
    if not runtime.min_sample_rate <= rate <= highest:
        raise ServeError("bad-format", f"audio rate {rate} Hz is outside {runtime.min_sample_rate}..{highest} Hz")
    if width not in PCM_WIDTHS:
        raise ServeError("bad-format", f"audio width {width} is not one of {PCM_WIDTHS} bytes (PCM)")
    if not 1 <= channels <= limits.max_channels:
        raise ServeError("bad-format", f"audio channels {channels} is outside 1..{limits.max_channels}")
    return rate, width, channels


def pcm_to_float(payload: bytes, width: int, channels: int) -> np.ndarray:
    """Wyoming's audio (interleaved little-endian PCM) as float32 mono with :func:`audio.read_wav`'s
    scaling, so a WAV streamed here gives the samples ``Recognizer.transcribe`` reads from the file."""
    frame = width * channels
    if len(payload) % frame:
        raise ServeError(
            "bad-format", f"{len(payload)} bytes is not a whole number of {channels}-channel {8 * width}-bit frames"
        )
    return audio.pcm_to_float(payload, width, channels)


class VoiceActivity:
    """``voice-started`` / ``voice-stopped`` moments (ms of the stream) from the runtime's VAD."""

    def __init__(self, kind: str, rate: int, trailing_silence_s: float):
        self._vad = create_vad(kind, rate)
        self._frame_ms = 1000.0 * self._vad.frame_seconds
        self._trailing_ms = 1000.0 * trailing_silence_s
        self._frames = 0
        self.speaking = False
        self._silence_ms = 0.0

    def accept(self, samples: np.ndarray) -> List[Tuple[str, int]]:
        out = []
        for decision in self._vad.accept(samples):
            self._frames += 1
            now = int(self._frames * self._frame_ms)
            if decision:
                self._silence_ms = 0.0
                if not self.speaking:
                    self.speaking = True
                    out.append(("started", int(now - self._frame_ms)))
            elif self.speaking:
                self._silence_ms += self._frame_ms
                if self._silence_ms >= self._trailing_ms:
                    self.speaking = False
                    out.append(("stopped", int(now - self._silence_ms)))
        return out


# -- sessions ----------------------------------------------------------------------------------


class AsrSession:
    """One transcription request: audio in any PCM format, a pinned recognizer, streamed
    partials. Methods without ``_job`` run on the protocol's thread; ``*_job`` run in the pool
    (one at a time per session: the handler waits for one before starting the next)."""

    def __init__(
        self,
        service: "SpeechService",
        model: ServedModel,
        rate: int,
        width: int,
        channels: int,
        language: str,
        hotwords: Optional[Dict[str, float]],
        streaming: bool,
    ):
        self.service, self.model_name = service, model.name
        self.recognizer = model.recognizer  # pinned: a hot reload affects new sessions only
        self.rate, self.width, self.channels = rate, width, channels
        self.language, self.hotwords, self.streaming = language, hotwords, streaming
        self.max_samples = int(service.config.limits.max_audio_s * rate)
        self.samples = 0
        self._chunks: List[np.ndarray] = []
        self._unfed: List[np.ndarray] = []  # audio not yet in the partial stream
        self._stream: Optional[RecognizerStream] = None
        self.vad = VoiceActivity(service.config.vad, rate, service.config.trailing_silence_s)
        self._last_partial_samples = 0
        self._previous_words: List[str] = []
        self.sent_words: List[str] = []
        self._no_partials = False  # a model that cannot stream (waveform input): the final result only
        self.ended = False  # audio-stop came: late partials are dropped

    def add(self, payload: bytes, rate: int, width: int, channels: int) -> List[Tuple[str, int]]:
        """Adds one chunk; returns VAD moments. Raises ServeError on a format change or too much audio."""
        if (rate, width, channels) != (self.rate, self.width, self.channels):
            raise ServeError(
                "bad-format",
                f"audio format changed mid-stream from {self.rate} Hz/{self.width} "
                f"bytes/{self.channels} ch to {rate} Hz/{width} bytes/{channels} ch",
            )
        x = pcm_to_float(payload, width, channels)
        if not len(x):
            return []
        if self.samples + len(x) > self.max_samples:
            raise ServeError(
                "too-large", f"more than {self.service.config.limits.max_audio_s:g} s of audio in one request"
            )
        self.samples += len(x)
        self._chunks.append(x)
        if self.streaming:
            self._unfed.append(x)
        return self.vad.accept(x)

    def partial_due(self) -> bool:
        interval = int(self.service.config.partial_interval_s * self.rate)
        return self.streaming and not self._no_partials and self.samples - self._last_partial_samples >= interval

    def take_unfed(self) -> List[np.ndarray]:
        self._last_partial_samples = self.samples
        chunks, self._unfed = self._unfed, []
        return chunks

    def partial_job(self, chunks: List[np.ndarray]) -> str:
        """Feeds the new audio to the session's stream and returns its provisional text."""
        if self._stream is None:
            try:
                self._stream = self.recognizer.create_stream(beam=1, lm=False)
            except NotImplementedError:
                self._no_partials = True
                return ""
        for x in chunks:
            self._stream.accept_waveform(x, self.rate)
        return self._stream.provisional()

    def partial_delta(self, text: str) -> Optional[str]:
        """Text to stream as a transcript-chunk: the words two provisional results in a row agree
        on (the last word may still be growing), beyond those already sent. None: nothing new."""
        words = text.split()
        agreed = []
        for a, b in zip(words[:-1], self._previous_words):
            if a != b:
                break
            agreed.append(a)
        self._previous_words = words
        if agreed[: len(self.sent_words)] != self.sent_words or len(agreed) <= len(self.sent_words):
            return None
        new = agreed[len(self.sent_words) :]
        piece = (" " if self.sent_words else "") + " ".join(new)
        self.sent_words = agreed
        return piece

    def final_delta(self, text: str) -> Optional[str]:
        """The rest of the final text after the streamed words (None when they disagree)."""
        words = text.split()
        if words[: len(self.sent_words)] != self.sent_words or len(words) == len(self.sent_words):
            return None
        new = words[len(self.sent_words) :]
        self.sent_words = words
        return (" " if len(words) > len(new) else "") + " ".join(new)

    def final_job(self) -> Optional[Transcript]:
        """The transcript of all the audio: exactly ``Recognizer.transcribe`` on it (None when no
        audio came)."""
        if not self.samples:
            return None
        samples = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        return self.service.transcribe(self.recognizer, samples, self.rate, self.hotwords)

    def context(self, result: Optional[Transcript]) -> dict:
        """What a result carries besides its text: the model and bundle that made it and, with a
        grammar, the intent, slots and confidence (intent None: outside the grammar)."""
        ctx: Dict[str, Any] = {"model": self.model_name, "bundle": self.recognizer.manifest.name}
        if result is not None:
            ctx["duration_s"] = round(result.duration_s, 3)
            if self.service.grammar is not None:
                ctx["intent"] = result.intent
                ctx["slots"] = dict(result.slots) if result.slots else {}
                ctx["confidence"] = None if result.confidence is None else round(float(result.confidence), 4)
        return ctx


class _QueueSource:
    """A listen() source fed from another thread; ends at the None marker."""

    def __init__(self, items: "queue.Queue[Optional[np.ndarray]]", rate: int):
        self._items, self.sample_rate = items, rate

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._items.get()
            if item is None:
                return
            yield item


class LiveSession:
    """:func:`listen.listen` over pushed audio (partials, finals, intents, wake phrases), in a
    thread of its own: it blocks waiting for audio, so it does not hold a pool worker. The audio
    is cut into 20-ms pieces before it reaches ``listen``, so the events equal ``listen`` over
    the same audio read from a WAV (``edge-speech listen --wav``) whatever chunk sizes a client
    sends. ``on_event`` runs on the session's thread for every event."""

    PIECE_S = 0.02  # listen.WavSource's default chunk

    def __init__(
        self,
        service: "SpeechService",
        model: ServedModel,
        rate: int,
        width: int,
        channels: int,
        on_event: Callable[[listen.Event], object],
        *,
        wake: Optional[str] = None,
        wake_threshold: Optional[float] = None,
        grammar: Optional[Grammar] = None,
        grammar_threshold: Optional[float] = None,
        voice_events: bool = True,
    ):
        config = service.config
        self.rate, self.width, self.channels = rate, width, channels
        self.model_name = model.name
        self.recognizer = model.recognizer  # pinned: a hot reload affects new sessions only
        # voice-started/-stopped for protocols that send them (listen's own VAD gates recognition)
        self.vad = VoiceActivity(config.vad, rate, config.trailing_silence_s) if voice_events else None
        self.samples = 0
        self.error: Optional[BaseException] = None
        self._piece = max(1, int(rate * self.PIECE_S))
        self._carry = np.zeros(0, dtype=np.float32)
        largest_chunk = -(-config.limits.max_chunk_bytes // (width * channels * self._piece))  # in pieces
        backlog = max(4, int(config.limits.max_wake_backlog_s / self.PIECE_S), largest_chunk + 1)
        self._items: "queue.Queue[Optional[np.ndarray]]" = queue.Queue(maxsize=backlog)
        self._on_event = on_event
        options = dict(
            wake=wake,
            wake_threshold=wake_threshold,
            grammar=grammar,
            grammar_threshold=grammar_threshold,
            vad=config.vad,
        )
        if wake:
            options["wake_window_s"] = 1e-3  # every utterance is checked for the phrase
        self._thread = threading.Thread(target=self._run, name="edge-speech-live", daemon=True, kwargs=options)
        self._thread.start()

    def add(self, payload: bytes, rate: int, width: int, channels: int) -> List[Tuple[str, int]]:
        """Queues one chunk for the session's thread; returns VAD moments. ServeError when the
        format changes, the session failed, or the thread falls ``max_wake_backlog_s`` behind."""
        if (rate, width, channels) != (self.rate, self.width, self.channels):
            raise ServeError("bad-format", "audio format changed mid-stream")
        x = pcm_to_float(payload, width, channels)
        if not len(x):
            return []
        if self.error is not None:
            raise ServeError("internal", f"recognition failed: {self.error}")
        x = np.concatenate((self._carry, x)) if len(self._carry) else x
        whole = len(x) - len(x) % self._piece
        pieces, self._carry = x[:whole], x[whole:]
        try:
            for k in range(0, whole, self._piece):
                self._items.put_nowait(pieces[k : k + self._piece])
        except queue.Full:
            raise ServeError("server-busy", "recognition is falling behind the audio") from None
        self.samples += len(x) - len(self._carry)
        return self.vad.accept(x[:whole]) if whole and self.vad is not None else []

    def has_room(self, payload_bytes: int) -> bool:
        """Whether a chunk of ``payload_bytes`` fits the backlog now: a client that sends faster
        than real time waits for this (back-pressure) instead of being refused."""
        pieces = (len(self._carry) + payload_bytes // (self.width * self.channels)) // self._piece
        return self._items.maxsize - self._items.qsize() >= pieces

    def _run(self, **options: Any) -> None:
        try:
            for event in listen.listen(self.recognizer, _QueueSource(self._items, self.rate), **options):
                self._on_event(event)
        except Exception as err:  # reported to the client by the next add() or finish()
            self.error = err
            LOG.exception("live recognition failed")
            while self._items.get() is not None:  # drain so a pusher never blocks
                pass

    def finish(self, timeout: float = 30.0) -> None:
        """Ends the audio and waits for the last utterance's events (blocking)."""
        if len(self._carry):
            self._items.put(self._carry)
            self.samples += len(self._carry)
            self._carry = self._carry[:0]
        self._items.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise ServeError("internal", f"recognition did not finish within {timeout:g} s")
        if self.error is not None:
            raise ServeError("internal", f"recognition failed: {self.error}")

    def abandon(self) -> None:
        """The client went away: end the thread without waiting."""
        try:
            self._items.put_nowait(None)
        except queue.Full:
            threading.Thread(target=self._items.put, args=(None,), daemon=True).start()


class WakeSession(LiveSession):
    """Wake phrase detection over pushed audio: a :class:`LiveSession` with the server's wake
    phrase; ``on_detection`` gets the wake events."""

    def __init__(
        self,
        service: "SpeechService",
        model: ServedModel,
        rate: int,
        width: int,
        channels: int,
        on_detection: Callable[[listen.Event], object],
    ):
        self.detections = 0

        def detected(event: listen.Event) -> None:
            if event.type == "wake":
                self.detections += 1
                on_detection(event)

        config = service.config
        super().__init__(
            service, model, rate, width, channels, detected, wake=config.wake, wake_threshold=config.wake_threshold
        )

    def finish(self, timeout: float = 30.0) -> int:  # type: ignore[override]
        """Ends the audio, waits for the last utterance; the number of detections (blocking)."""
        super().finish(timeout)
        return self.detections


# -- grammar and text --------------------------------------------------------------------------


def load_grammar(path: "str | Path") -> Grammar:
    """A YAML intent file or a JSGF grammar, compiled."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".gram", ".jsgf"):
        return Grammar.from_jsgf(text if text.lstrip().startswith("#JSGF") else "#JSGF V1.0;\n" + text)
    return Grammar.from_yaml(text)


def load_sentence_templates(path: "str | Path") -> Grammar:
    """Home Assistant sentence templates through ``edge_speech.grammars.load_sentences``."""
    from edge_speech import grammars

    loader = getattr(grammars, "load_sentences", None)
    if loader is None:
        raise ValueError(
            "this edge_speech has no Home Assistant sentence support yet (edge_speech.grammars.load_sentences)"
        )
    return loader(path)


# -- the service -------------------------------------------------------------------------------


class SpeechService:
    """The models, grammar, wake phrase, worker pool and hot reload behind a server."""

    def __init__(self, config: ServeConfig):
        self.config = config
        workers = config.workers or os.cpu_count() or 1
        limits = config.limits
        self.max_sessions = limits.max_sessions or 16 * workers
        options = {"target": config.target, "backend": config.backend, "threads": config.threads}
        self.models: Dict[str, ServedModel] = {}
        for source in config.models:
            model = ServedModel(source, options)
            if model.name in self.models:
                raise ValueError(f"two models are named {model.name!r}; serve them from paths with different names")
            self.models[model.name] = model
        self.default_model = next(iter(self.models))
        self._ab: List[List[Any]] = []  # [name, weight, running credit]: smooth weighted round robin
        for key, weight in config.ab or ():
            served = next((m for m in self.models.values() if key in (m.name, m.source)), None)
            if served is None:  # a bundle or embedded model named only in the split
                served = ServedModel(key, options)
                if served.name in self.models:
                    raise ValueError(f"A/B model {key!r} is named {served.name!r} like another served model")
                self.models[served.name] = served
            self._ab.append([served.name, weight, 0.0])
        self.grammar: Optional[Grammar] = None
        self.grammar_source: Optional[str] = None
        if config.grammar:
            self.grammar, self.grammar_source = load_grammar(config.grammar), str(config.grammar)
        elif config.sentences:
            self.grammar, self.grammar_source = load_sentence_templates(config.sentences), str(config.sentences)
        # Home Assistant sentence grammars match text themselves (with their out values); others walk the automaton
        self._match: Optional[Callable[[str], Any]] = None
        if self.grammar is not None:
            self._match = self.grammar.match
        self.hotwords = read_hotwords(config.hotwords) if config.hotwords else {}
        create_vad(config.vad, 16000)  # a VAD that cannot run (Silero without its model) fails here, not per request
        self.pool = WorkerPool(workers, limits.queue if limits.queue is not None else 8 * workers)
        self.metrics = ServeMetrics(
            queue_depth=lambda: max(0, self.pool.load - self.pool.workers),
            busy_workers=lambda: min(self.pool.load, self.pool.workers),
            sessions=lambda: self._sessions,
        )
        self.reloads: "collections.deque[dict]" = collections.deque(maxlen=200)
        self._sessions = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        if config.reload_interval_s > 0 and any(m.path is not None for m in self.models.values()):
            self._watcher = threading.Thread(target=self._watch, name="edge-speech-reload", daemon=True)
            self._watcher.start()

    # -- requests -------------------------------------------------------------------------
    def model(self, name: Optional[str]) -> ServedModel:
        """The model a request names; None or the program's name: the default, or with an A/B
        split the next model of the split (weights kept exactly over every run of sessions)."""
        if name in (None, "", "edge-speech"):
            if not self._ab:
                return self.models[self.default_model]
            with self._lock:
                total = sum(entry[1] for entry in self._ab)
                for entry in self._ab:
                    entry[2] += entry[1]
                chosen = max(self._ab, key=lambda entry: entry[2])
                chosen[2] -= total
            return self.models[chosen[0]]
        if name not in self.models:
            raise ServeError("unknown-model", f"no model named {name!r}; this server has {sorted(self.models)}")
        return self.models[name]

    def ab_split(self) -> Optional[Dict[str, float]]:
        """The A/B split as {model name: share of new sessions}, None without one."""
        if not self._ab:
            return None
        total = sum(entry[1] for entry in self._ab)
        return {entry[0]: entry[1] / total for entry in self._ab}

    def check_language(self, language: Optional[str]) -> str:
        if not language:
            return self.config.language
        if language.lower().replace("_", "-").split("-")[0] != self.config.language.split("-")[0].lower():
            raise ServeError(
                "unsupported-language",
                f"language {language!r} is not served; this server recognises {self.config.language!r}",
            )
        return language

    def request_hotwords(self, names: Optional[Sequence[Any]], terms: Optional[Sequence[Any]]) -> Dict[str, float]:
        """The server's hotwords plus a client's biasing names and terms (names boosted more)."""
        table = dict(self.hotwords)
        for values, boost in ((terms, self.config.terms_boost), (names, self.config.names_boost)):
            if not isinstance(values, (list, tuple)):
                continue
            for value in values[:200]:
                if isinstance(value, str) and 0 < len(value) <= 100:
                    phrase = " ".join(_WORD.sub(" ", value.lower()).split())
                    if phrase:
                        table[phrase] = max(boost, table.get(phrase, 0.0))
        return table

    def open_session(self) -> None:
        with self._lock:
            if self._sessions >= self.max_sessions:
                raise ServeError(
                    "server-busy", f"the server is at its limit of {self.max_sessions} audio streams; try again shortly"
                )
            self._sessions += 1

    def close_session(self) -> None:
        with self._lock:
            self._sessions = max(0, self._sessions - 1)

    @property
    def sessions(self) -> int:
        return self._sessions

    def transcribe(
        self,
        recognizer: Recognizer,
        samples: np.ndarray,
        rate: int,
        hotwords: Optional[Dict[str, float]] = None,
        grammar: Optional[Grammar] = None,
        grammar_threshold: Optional[float] = None,
    ) -> Transcript:
        """``Recognizer.transcribe`` with the request's grammar, else the server's, else the
        hotwords (a worker's job)."""
        if grammar is not None or self.grammar is not None:
            threshold = grammar_threshold if grammar_threshold is not None else self.config.grammar_threshold
            return recognizer.transcribe((samples, rate), grammar=grammar or self.grammar, grammar_threshold=threshold)
        if hotwords:
            try:
                return recognizer.transcribe((samples, rate), hotwords=hotwords)
            except ValueError as err:  # a phrase the model cannot spell: serve without the client's biasing
                LOG.warning("hotwords refused by the decoder (%s); transcribing without them", err)
        return recognizer.transcribe((samples, rate))

    def recognize_text(self, text: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """(intent, slots) of typed text in the loaded grammar, None when outside it."""
        if self._match is None:
            raise ServeError(
                "no-grammar", "intent recognition needs a grammar: start the server with --grammar or --sentences"
            )
        return self._match(text)

    # -- hot reload -----------------------------------------------------------------------
    def poll_reloads(self) -> List[dict]:
        """One look at every watched bundle (the watcher thread calls this)."""
        records = []
        for model in list(self.models.values()):
            record = model.poll()
            if record is not None:
                records.append(record)
                self.reloads.append(record)
                self.metrics.reload(record)
        return records

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_interval_s):
            try:
                self.poll_reloads()
            except Exception:  # the watcher must outlive any one failure
                LOG.exception("bundle watch failed")

    def close(self) -> None:
        self._stop.set()
        self.pool.shutdown()
