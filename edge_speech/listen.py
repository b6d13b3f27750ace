"""Live recognition: audio sources, VAD gating, endpointing, wake phrase and command events.

    from edge_speech import Recognizer, listen
    rec = Recognizer.default()
    for event in listen.listen(rec, listen.MicrophoneSource(), grammar="commands.yaml", wake="hey computer"):
        print(event.to_json())

The acoustic model runs only while the VAD (energy or Silero, :mod:`edge_speech.vad`) hears
speech (plus a short pre-roll): an idle device spends its CPU on the VAD alone. An utterance
ends after ``trailing_silence_s`` of silence or at ``max_utterance_s``. With ``wake``, utterances
are first matched against the wake phrase; after it, commands are recognised for
``wake_window_s`` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional

import numpy as np

from edge_speech import audio
from edge_speech._deps import import_pyaudio
from edge_speech.recognizer import Recognizer, Transcript
from edge_speech.vad import create_vad

__all__ = [
    "ArraySource",
    "DeviceLost",
    "EndpointConfig",
    "Event",
    "MicrophoneSource",
    "WavSource",
    "list_devices",
    "listen",
]


@dataclasses.dataclass(frozen=True)
class Event:
    """``type``: ``partial``, ``final``, ``intent`` or ``wake``; times in seconds of the stream."""

    type: str
    text: str
    start: float
    end: float
    intent: Optional[str] = None
    slots: Optional[Mapping[str, str]] = None
    confidence: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "type": self.type,
                "text": self.text,
                "intent": self.intent,
                "slots": dict(self.slots) if self.slots else None,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "start": round(self.start, 3),
                "end": round(self.end, 3),
            }
        )


@dataclasses.dataclass(frozen=True)
class EndpointConfig:
    """Endpointing rules (Kaldi/sherpa style): an utterance ends after ``trailing_silence_s``
    of silence following speech, or at ``max_utterance_s``; ``pre_roll_s`` of audio before the
    VAD fired is included so word onsets are not clipped."""

    trailing_silence_s: float = 0.6
    max_utterance_s: float = 10.0
    pre_roll_s: float = 0.3
    partial_interval_s: float = 0.25

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{f.name} must be a positive number of seconds, got {value!r}")


class ArraySource:
    """Chunks of float32 (or int16) mono audio from any iterable, at ``sample_rate``."""

    def __init__(self, chunks: Iterable[Any], sample_rate: int):
        self.chunks, self.sample_rate = chunks, int(sample_rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            yield np.asarray(chunk)


class WavSource:
    """A WAV file in chunks of ``chunk_ms``; ``realtime=True`` paces them like a microphone."""

    def __init__(self, path: "str | Path", chunk_ms: float = 20.0, realtime: bool = False):
        self.samples, self.sample_rate = audio.read_wav(path)
        self.chunk = max(1, int(self.sample_rate * chunk_ms / 1000))
        self.realtime = realtime

    def __iter__(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        for i in range(0, len(self.samples), self.chunk):
            if self.realtime:
                delay = start + i / self.sample_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self.samples[i : i + self.chunk]


def _pyaudio():
    return import_pyaudio()


def list_devices() -> List[dict]:
    """Capture devices: index, name, channels, default sample rate."""
    pa = _pyaudio().PyAudio()
    try:
        return [
            {
                "index": i,
                "name": info["name"],
                "channels": int(info["maxInputChannels"]),
                "default_rate": int(info["defaultSampleRate"]),
            }
            for i in range(pa.get_device_count())
            for info in [pa.get_device_info_by_index(i)]
            if info["maxInputChannels"] > 0
        ]
    finally:
        pa.terminate()


class DeviceLost(OSError):
    """The capture device stopped delivering audio mid-stream (unplugged, or a host error)."""


class MicrophoneSource:
    """A capture device through PortAudio (pyaudio), by index or name substring, at its native
    rate (the recognizer resamples). Audio arrives in a bounded queue; when the consumer falls
    behind the oldest chunks are dropped and counted in :attr:`overflows`, never a crash.

    Iteration ends when :meth:`close` is called (from any thread). A device that goes away
    mid-stream (the stream stops, PortAudio reports an error, or no audio arrives for
    ``stall_timeout_s``) raises :class:`DeviceLost` naming it, instead of waiting forever."""

    def __init__(
        self,
        device: "int | str | None" = None,
        sample_rate: Optional[int] = None,
        chunk_ms: float = 20.0,
        max_queued_chunks: int = 100,
        stall_timeout_s: float = 5.0,
    ):
        if sample_rate is not None and (
            isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0
        ):
            raise ValueError(
                f"sample_rate must be a positive int (Hz), or None for the device's own; got {sample_rate!r}"
            )
        if not stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be a positive number of seconds, got {stall_timeout_s!r}")
        pyaudio = _pyaudio()
        devices = list_devices()
        if not devices:
            raise ValueError("no capture device found")
        if device is None:
            chosen = None
        elif isinstance(device, int):
            chosen = next((d for d in devices if d["index"] == device), None)
        else:
            chosen = next((d for d in devices if str(device).lower() in d["name"].lower()), None)
        if device is not None and chosen is None:
            names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
            raise ValueError(f"capture device {device!r} not found; available: {names}")
        self._pa = pyaudio.PyAudio()
        info = (
            self._pa.get_device_info_by_index(chosen["index"]) if chosen else self._pa.get_default_input_device_info()
        )
        self.sample_rate = int(sample_rate or info["defaultSampleRate"])
        self.name = info["name"]
        self.overflows = 0
        self.stall_timeout_s = float(stall_timeout_s)
        self._queue: "queue.Queue[Optional[np.ndarray]]" = queue.Queue(maxsize=max_queued_chunks)
        self._lock = threading.Lock()
        self._closed = False
        self._samples_delivered = 0
        frames = max(1, int(self.sample_rate * chunk_ms / 1000))
        try:
            self._stream = self._pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=self.sample_rate,
                input=True,
                input_device_index=int(info["index"]),
                frames_per_buffer=frames,
                stream_callback=self._callback,
            )
        except (OSError, ValueError) as err:
            self._pa.terminate()
            self._closed = True
            raise ValueError(f"cannot open capture device {self.name!r} at {self.sample_rate} Hz: {err}") from None

    def _callback(self, data, frame_count, time_info, status):
        if status:
            self.overflows += 1
        self._put(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
        return (None, _pyaudio().paContinue)

    def _put(self, item: Optional[np.ndarray]) -> None:
        """Queues without ever blocking: a full queue loses its oldest chunk (an overflow)."""
        with self._lock:
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    self.overflows += item is not None  # the end marker is no lost audio
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass

    def __iter__(self) -> Iterator[np.ndarray]:
        waited = 0.0
        poll_s = min(0.5, self.stall_timeout_s)
        while not self._closed:
            try:
                chunk = self._queue.get(timeout=poll_s)
            except queue.Empty:
                if self._closed:
                    return
                waited += poll_s
                try:
                    active = self._stream.is_active()
                    problem = "the stream stopped" if not active else None
                except OSError as err:  # PortAudio's error for a device that has gone away
                    problem = f"PortAudio: {err}"
                if problem is None and waited >= self.stall_timeout_s:
                    problem = f"no audio for {waited:.1f} s"
                if problem is not None:
                    raise DeviceLost(
                        f"capture device {self.name!r} stopped delivering audio after "
                        f"{self._samples_delivered / self.sample_rate:.2f} s ({problem}); "
                        "was it unplugged?"
                    ) from None
                continue
            if chunk is None:
                return
            waited = 0.0
            self._samples_delivered += len(chunk)
            yield chunk

    def close(self) -> None:
        """Stops capturing and ends iteration; safe to call twice, or after the device is gone."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.stop_stream()
        except OSError:
            pass  # the device is already gone; closing still releases the stream
        try:
            self._stream.close()
        finally:
            self._pa.terminate()
            self._put(None)


def listen(
    recognizer: Recognizer,
    source: Any,
    *,
    grammar: Any = None,
    grammar_threshold: Optional[float] = None,
    wake: Optional[str] = None,
    wake_threshold: Optional[float] = None,
    wake_window_s: float = 5.0,
    endpoint: EndpointConfig = EndpointConfig(),
    vad: str = "energy",
    vad_options: Optional[dict] = None,
) -> Iterator[Event]:
    """Events from a live source: ``partial`` while speaking, ``final`` per utterance, and with a
    grammar ``intent`` (or a final with ``intent`` None when the speech was not a command).

    Thresholds left None take the bundle's calibrated ``grammar_threshold`` (else 0.5).
    ``vad``: ``energy`` (the native energy VAD) or ``silero`` (Silero VAD through ONNX Runtime);
    ``vad_options`` go to its constructor (see :mod:`edge_speech.vad`)."""
    rate = int(source.sample_rate)
    detector = create_vad(vad, rate, vad_options)
    frame_s = detector.frame_seconds
    wake_grammar = None
    if wake:
        phrase = " ".join(wake.lower().split())
        wake_grammar = f'intents:\n  Wake:\n    - "{phrase}"\n'
    awake_until = -1.0
    pre_roll: List[np.ndarray] = []
    pre_roll_samples = int(endpoint.pre_roll_s * rate)
    stream, start_s, silence_s, last_partial, partial_text = None, 0.0, 0.0, 0.0, ""
    for_wake = False  # whether the open utterance is matched against the wake phrase
    t = 0.0  # seconds consumed

    for chunk in _pieces(source, rate):
        decisions = detector.accept(np.ascontiguousarray(chunk, dtype=np.float32))
        t_end = t + len(chunk) / rate
        if stream is None:
            pre_roll.append(chunk)
            while sum(len(c) for c in pre_roll) - len(pre_roll[0]) > pre_roll_samples:
                pre_roll.pop(0)
            if any(decisions):
                for_wake = wake_grammar is not None and t >= awake_until
                stream = recognizer.create_stream(
                    grammar=(wake_grammar if for_wake else grammar),
                    grammar_threshold=(wake_threshold if for_wake else grammar_threshold),
                )
                buffered = np.concatenate(pre_roll)
                start_s = t_end - len(buffered) / rate
                stream.accept_waveform(buffered, rate)
                pre_roll, silence_s, last_partial, partial_text = [], 0.0, t_end, ""
        else:
            stream.accept_waveform(chunk, rate)
            for speaking in decisions:
                silence_s = 0.0 if speaking else silence_s + frame_s
            # until the utterance has a partial, look more often: the first one is what users wait for
            interval = endpoint.partial_interval_s if partial_text else min(0.1, endpoint.partial_interval_s)
            if t_end - last_partial >= interval:
                last_partial = t_end
                text = stream.provisional()  # the exact partial lags by the model's right context
                if text and text != partial_text:
                    partial_text = text
                    yield Event("partial", text, start_s, t_end)
        t = t_end
        if stream is not None and (silence_s >= endpoint.trailing_silence_s or t - start_s >= endpoint.max_utterance_s):
            for event in _final_events(stream, for_wake, start_s, t - silence_s):
                if event.type == "wake":
                    awake_until = t + wake_window_s
                yield event
            stream = None  # the VAD goes on: its noise floor is knowledge of the room, not of the utterance
    if stream is not None:
        yield from _final_events(stream, for_wake, start_s, t)


def _pieces(source: Any, rate: int, piece_s: float = 0.02) -> Iterator[np.ndarray]:
    """The source's audio, validated, in pieces of at most 20 ms: endpointing then acts at that
    granularity whatever chunk sizes the source delivers."""
    step = max(1, int(rate * piece_s))
    for chunk in source:
        chunk = np.asarray(chunk)
        if not chunk.size:
            continue
        chunk = audio.load_audio((chunk, rate), rate, what="audio chunk")
        for i in range(0, len(chunk), step):
            yield chunk[i : i + step]


def _final_events(stream, for_wake: bool, start: float, end: float) -> Iterator[Event]:
    result: Transcript = stream.finish()
    if for_wake:
        if result.intent == "Wake":
            yield Event("wake", result.text, start, end, "Wake", None, result.confidence)
        return
    yield Event("final", result.text, start, end, result.intent, result.slots, result.confidence)
    if result.intent is not None:
        yield Event("intent", result.text, start, end, result.intent, dict(result.slots or {}), result.confidence)
