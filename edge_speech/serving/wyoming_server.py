"""A Wyoming server (Home Assistant's protocol for voice services) on the ``wyoming`` package.

One handler per connection:

- ``describe`` -> ``info``: the ASR program with the served models and their language
  (``supports_transcript_streaming``), the wake program when a wake phrase is set, the intent
  program when a grammar is loaded.
- ``transcribe`` (``name``, ``language``, ``transcript_names``/``transcript_terms`` as hotwords)
  then ``audio-start`` / ``audio-chunk`` / ``audio-stop`` at any rate, width and channel count
  -> ``transcript`` (preceded by ``transcript-start`` / ``-chunk`` / ``-stop`` partials unless the
  server runs with streaming off). With a grammar the transcript's ``context`` holds ``intent``,
  ``slots`` and ``confidence``, and speech outside the grammar gives an empty text.
- ``detect`` then audio -> ``detection`` per wake phrase heard, ``not-detected`` at the end if none.
- ``voice-started`` / ``voice-stopped`` while audio streams (the runtime's VAD).
- ``recognize`` (text) -> ``intent`` (name, entities) or ``not-recognized``, with the same grammar.

Refusals are ``error`` events with a ``code``: ``bad-event`` (unparseable input: the connection is
then closed), ``too-large``, ``bad-format``, ``server-busy`` (worker pool or stream limit full),
``unknown-model``, ``unsupported-language``, ``no-grammar``, ``no-wake``, ``idle``, ``internal``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any, Optional, Set

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    Info,
    IntentModel,
    IntentProgram,
    WakeModel,
    WakeProgram,
)
from wyoming.intent import Entity, Intent, NotRecognized, Recognize
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detect, Detection, NotDetected

from edge_speech import __version__
from edge_speech.serving.engine import AsrSession, ServeError, SpeechService, WakeSession, check_format

__all__ = ["WyomingHandler", "WyomingServer", "build_info"]

LOG = logging.getLogger("edge_speech.serve")
ATTRIBUTION = Attribution(name="edge_speech", url="")  # the project has no public address yet
PROGRAM = "edge-speech"


def build_info(service: SpeechService) -> Info:
    config = service.config
    languages = [config.language]
    models = [
        AsrModel(
            name=m.name,
            attribution=ATTRIBUTION,
            installed=True,
            version=__version__,
            description=f"{m.bundle_name} ({'embedded' if m.path is None else m.path})",
            languages=languages,
        )
        for m in service.models.values()
    ]
    info = Info(
        asr=[
            AsrProgram(
                name=PROGRAM,
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                description="edge_speech offline CTC recognition"
                + (" constrained by a command grammar" if service.grammar else ""),
                models=models,
                supports_transcript_streaming=config.streaming,
            )
        ]
    )
    if config.wake:
        phrase = " ".join(config.wake.split())
        info.wake.append(
            WakeProgram(
                name=PROGRAM,
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                description="wake phrase recognised by the ASR model through a one-phrase grammar",
                models=[
                    WakeModel(
                        name=phrase,
                        attribution=ATTRIBUTION,
                        installed=True,
                        version=__version__,
                        description=f"wake phrase {phrase!r}",
                        languages=languages,
                        phrase=phrase,
                    )
                ],
            )
        )
    if service.grammar is not None:
        info.intent.append(
            IntentProgram(
                name=PROGRAM,
                attribution=ATTRIBUTION,
                installed=True,
                version=__version__,
                description="intents of the loaded command grammar",
                models=[
                    IntentModel(
                        name=str(service.grammar_source),
                        attribution=ATTRIBUTION,
                        installed=True,
                        version=__version__,
                        description="command grammar",
                        languages=languages,
                    )
                ],
            )
        )
    return info


class _ProtocolViolation(Exception):
    """Input that cannot be a Wyoming event (or exceeds the limits): answered, then disconnected."""

    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code = code


class _GuardedReader:
    """The stream reader as ``wyoming.event.async_read_event`` sees it, with limits: a header line
    over ``max_header_bytes`` (asyncio's line limit) or a data block or payload over
    ``max_chunk_bytes`` is refused before it is read, and unparseable lines are told apart from
    the end of the stream."""

    def __init__(self, reader: asyncio.StreamReader, max_header: int, max_payload: int):
        self._reader, self._max_header, self._max_payload = reader, max_header, max_payload
        self.eof = False

    async def readline(self) -> bytes:
        try:
            line = await self._reader.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise _ProtocolViolation("too-large", f"an event header is longer than {self._max_header} bytes") from None
        if not line:
            self.eof = True
        elif not line.endswith(b"\n"):
            self.eof = True  # the peer closed mid-line
        return line

    async def readexactly(self, n: int) -> bytes:
        # the data block and the payload both come through here; either may be up to the payload limit
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _ProtocolViolation("bad-event", f"bad length {n!r}")
        if n > self._max_payload:
            raise _ProtocolViolation(
                "too-large", f"an event's data or payload of {n} bytes is over the limit of {self._max_payload}"
            )
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            self.eof = True
            raise _ProtocolViolation("bad-event", "the connection closed in the middle of an event") from None


class WyomingHandler(AsyncEventHandler):
    """One connection's state: the pending request, the open audio session."""

    def __init__(self, server: "WyomingServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.server, self.service = server, server.service
        self.limits = self.service.config.limits
        self._request: Optional[Event] = None  # transcribe or detect, waiting for audio
        self._session: Any = None  # AsrSession or WakeSession
        self._session_open = False
        self._partial: Optional[asyncio.Future] = None
        self._streaming_started = False
        self._writes: Set[asyncio.Future] = set()
        self._discarding = False  # a refused stream's remaining audio is dropped until its audio-stop
        self._skip_stream = False  # the request was refused: so is the audio stream that follows it
        self._closed = False

    # -- reading with limits --------------------------------------------------------------
    async def run(self) -> None:
        guarded = _GuardedReader(self.reader, self.limits.max_header_bytes, self.limits.max_chunk_bytes)
        try:
            if not self.server.admit(self):
                await self._error(
                    "server-busy", f"the server is at its limit of {self.limits.max_connections} connections"
                )
                return
            while not self._closed:
                try:
                    # wyoming annotates a StreamReader but only calls readline/readexactly, which the guard wraps
                    event = await asyncio.wait_for(
                        async_read_event(guarded),  # type: ignore[arg-type]
                        self.limits.idle_timeout_s,
                    )
                except asyncio.TimeoutError:
                    await self._error("idle", f"no event for {self.limits.idle_timeout_s:g} s; closing")
                    return
                except _ProtocolViolation as err:
                    if not guarded.eof:
                        await self._error(err.code, str(err))
                    return
                except Exception as err:  # JSON that is not an event object, a missing "type", ...
                    await self._error("bad-event", f"not a Wyoming event: {type(err).__name__}: {err}")
                    return
                if event is None:
                    if not guarded.eof:
                        await self._error("bad-event", "not a Wyoming event (a JSON header line was expected)")
                    return
                if not isinstance(event.type, str) or not isinstance(event.data, dict):
                    await self._error("bad-event", "an event needs a string 'type' and an object 'data'")
                    return
                try:
                    keep = await self.handle_event(event)
                except ServeError as err:
                    self._refuse_stream(event)
                    keep = await self._error(err.code, err.text)
                except (KeyError, TypeError, ValueError) as err:
                    self._refuse_stream(event)
                    keep = await self._error(
                        "bad-event", f"malformed {event.type!r} event: {type(err).__name__}: {err}"
                    )
                except (ConnectionError, BrokenPipeError):
                    raise
                except Exception as err:  # a server fault: reported, logged, and this connection closed
                    LOG.exception("handling a %r event failed", event.type)
                    await self._error("internal", f"the server failed: {type(err).__name__}: {err}")
                    return
                if not keep:
                    return
        except (ConnectionError, BrokenPipeError):
            pass  # the client went away; nothing to answer
        except Exception:
            LOG.exception("connection handler failed")
        finally:
            self._end_session(abandon=True)
            self.server.release(self)
            await self.disconnect()
            self.writer.close()

    def _refuse_stream(self, event: Event) -> None:
        """After an error inside an audio stream, its remaining chunks are not a new request."""
        in_stream = self._session is not None or AudioStart.is_type(event.type) or AudioChunk.is_type(event.type)
        self._end_session(abandon=True)
        self._request = None
        self._discarding = in_stream and not AudioStop.is_type(event.type)
        self._skip_stream = Transcribe.is_type(event.type) or Detect.is_type(event.type)

    async def _error(self, code: str, text: str) -> bool:
        LOG.info("client error (%s): %s", code, text)
        self.service.metrics.refusal("wyoming", code)
        try:
            await self.write_event(Error(text=text, code=code).event())
        except (ConnectionError, BrokenPipeError, RuntimeError):
            return False
        return True

    async def stop(self) -> None:
        self._closed = True
        await super().stop()

    # -- events ---------------------------------------------------------------------------
    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(build_info(self.service).event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif Transcribe.is_type(event.type):
            self._skip_stream = False
            request = Transcribe.from_event(event)
            self.service.model(request.name)
            self.service.check_language(request.language)
            self._request = event
        elif Detect.is_type(event.type):
            self._skip_stream = False
            if not self.service.config.wake:
                raise ServeError("no-wake", "this server has no wake phrase (start it with --wake PHRASE)")
            names = Detect.from_event(event).names
            phrase = " ".join(self.service.config.wake.split())
            if names and phrase not in names and PROGRAM not in names:
                raise ServeError("no-wake", f"no wake phrase among {names}; this server detects {phrase!r}")
            self._request = event
        elif AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._discarding, self._skip_stream = self._skip_stream, False
            self._end_session(abandon=True)
            if self._discarding:
                return True
            self._open_session(*check_format(start.rate, start.width, start.channels, self.limits))
        elif AudioChunk.is_type(event.type):
            if not self._discarding:
                await self._audio_chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if self._discarding:
                self._discarding = False  # the error already answered this stream
            else:
                await self._audio_stop()
        elif Recognize.is_type(event.type):
            recognize = Recognize.from_event(event)
            if not isinstance(recognize.text, str):
                raise ServeError("bad-event", "recognize needs a text")
            match = self.service.recognize_text(recognize.text)
            if match is None:
                await self.write_event(NotRecognized(text=recognize.text).event())
            else:
                intent, slots = match
                await self.write_event(
                    Intent(
                        name=intent, entities=[Entity(name=k, value=v) for k, v in slots.items()], text=recognize.text
                    ).event()
                )
        else:
            LOG.debug("ignoring a %r event", event.type)  # the protocol's rule for unknown events
        return True

    def _open_session(self, rate: int, width: int, channels: int) -> None:
        self.service.open_session()
        self._session_open = True
        request, self._request = self._request, None
        try:
            if request is not None and Detect.is_type(request.type):
                loop = asyncio.get_running_loop()
                self._session = WakeSession(
                    self.service,
                    self.service.model(None),
                    rate,
                    width,
                    channels,
                    lambda e: loop.call_soon_threadsafe(self._detected, e),
                )
                return
            transcribe = Transcribe.from_event(request) if request is not None else Transcribe()
            context = transcribe.context if isinstance(transcribe.context, dict) else {}
            streaming = self.service.config.streaming and context.get("transcript_streaming", True) is not False
            self._session = AsrSession(
                self.service,
                self.service.model(transcribe.name),
                rate,
                width,
                channels,
                self.service.check_language(transcribe.language),
                self.service.request_hotwords(
                    getattr(transcribe, "transcript_names", None), getattr(transcribe, "transcript_terms", None)
                ),
                streaming,
            )
            self._streaming_started = False
        except BaseException:
            self._end_session(abandon=True)
            raise

    def _end_session(self, abandon: bool) -> None:
        session, self._session = self._session, None
        if isinstance(session, WakeSession) and abandon:
            session.abandon()
        if self._session_open:
            self._session_open = False
            self.service.close_session()
        self._partial = None

    def _detected(self, event) -> None:
        if self._closed or self.writer.is_closing():
            return
        wake = self.service.config.wake
        if wake is None:  # wake sessions open only when a wake phrase is configured
            raise RuntimeError("a wake detection arrived with no wake phrase configured")
        phrase = " ".join(wake.split())
        detection = Detection(
            name=phrase,
            timestamp=int(1000 * event.end),
            context={"confidence": None if event.confidence is None else round(event.confidence, 4)},
        )
        self._spawn_write([detection.event()])

    async def _write_quietly(self, event: Event) -> None:
        try:
            await self.write_event(event)
        except (ConnectionError, BrokenPipeError, RuntimeError):
            pass

    async def _audio_chunk(self, chunk: AudioChunk) -> None:
        fmt = check_format(chunk.rate, chunk.width, chunk.channels, self.limits)
        if self._session is None:  # audio without audio-start: start from the chunk's format
            self._open_session(*fmt)
        session = self._session
        for kind, ms in session.add(chunk.audio, *fmt):
            voice = VoiceStarted(timestamp=ms) if kind == "started" else VoiceStopped(timestamp=ms)
            await self.write_event(voice.event())
        idle = self._partial is None or self._partial.done()  # one partial job at a time per session
        if isinstance(session, AsrSession) and idle and session.partial_due():
            # partials use idle workers only: they never queue ahead of a final result
            future = self.service.pool.try_submit(session.partial_job, session.take_unfed(), spare_only=True)
            if future is not None:
                self._partial = asyncio.wrap_future(future)
                self._partial.add_done_callback(partial(self._partial_ready, session))

    def _partial_ready(self, session: AsrSession, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None or session is not self._session or session.ended:
            return
        piece = session.partial_delta(future.result())
        if piece:
            events = []
            if not self._streaming_started:
                self._streaming_started = True
                events.append(TranscriptStart(language=session.language).event())
            events.append(TranscriptChunk(text=piece).event())
            self._spawn_write(events)

    def _spawn_write(self, events) -> None:
        task = asyncio.ensure_future(self._write_in_order(events))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_in_order(self, events) -> None:
        for event in events:
            await self._write_quietly(event)

    async def _flush_writes(self) -> None:
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def _audio_stop(self) -> None:
        session = self._session
        if session is None:
            if self._request is not None and Detect.is_type(self._request.type):
                self._request = None
                await self.write_event(NotDetected().event())
                return
            self._request = None
            await self.write_event(Transcript(text="", language=self.service.config.language).event())
            return
        if isinstance(session, WakeSession):
            detections = await asyncio.get_running_loop().run_in_executor(None, session.finish)
            await asyncio.sleep(0)  # the detection callbacks scheduled by the thread run first
            await self._flush_writes()
            self._end_session(abandon=False)
            if not detections:
                await self.write_event(NotDetected().event())
            return
        session.ended = True  # a partial still running is dropped: the final result does not wait for it
        stopped = time.perf_counter()
        await self._flush_writes()
        future = self.service.pool.try_submit(session.final_job)
        if future is None:
            raise ServeError(
                "server-busy",
                f"all {self.service.pool.workers} workers are busy and "
                f"{self.service.pool.capacity - self.service.pool.workers} jobs are "
                "waiting; try again shortly",
            )
        try:
            result = await asyncio.wrap_future(future)
        except ValueError as err:
            raise ServeError("bad-audio", str(err)) from None
        except Exception as err:
            LOG.exception("transcription failed")
            raise ServeError("internal", f"transcription failed: {type(err).__name__}: {err}") from None
        text = result.text if result is not None else ""
        context = session.context(result)
        if session.streaming:
            piece = session.final_delta(text)
            if not self._streaming_started:
                await self.write_event(TranscriptStart(language=session.language).event())
            if piece:
                await self.write_event(TranscriptChunk(text=piece).event())
            await self.write_event(TranscriptStop().event())
        await self.write_event(Transcript(text=text, language=session.language, context=context).event())
        self.service.metrics.result(
            "wyoming",
            session.model_name,
            session.recognizer.manifest.name,
            result,
            time.perf_counter() - stopped,
            grammar=self.service.grammar is not None,
        )
        self._end_session(abandon=False)


class WyomingServer:
    """Serves a :class:`SpeechService` at a ``tcp://host:port`` or ``unix://path`` URI."""

    def __init__(self, service: SpeechService, uri: str):
        self.service, self.uri = service, uri
        self._server = _server_for(uri)
        self._handlers: Set[WyomingHandler] = set()

    def admit(self, handler: WyomingHandler) -> bool:
        if len(self._handlers) >= self.service.config.limits.max_connections:
            return False
        self._handlers.add(handler)
        self.service.metrics.connections.labels("wyoming").inc()
        return True

    def release(self, handler: WyomingHandler) -> None:
        if handler in self._handlers:
            self._handlers.discard(handler)
            self.service.metrics.connections.labels("wyoming").dec()

    @property
    def connections(self) -> int:
        return len(self._handlers)

    def _handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> WyomingHandler:
        return WyomingHandler(self, reader, writer)

    async def start(self) -> None:
        """Starts listening and returns (for tests and embedding)."""
        await self._server.start(self._handler)

    async def run(self) -> None:
        """Serves until cancelled or SIGTERM."""
        LOG.info(
            "serving Wyoming at %s: models %s%s%s",
            self.uri,
            ", ".join(self.service.models),
            f", grammar {self.service.grammar_source}" if self.service.grammar is not None else "",
            f", wake phrase {self.service.config.wake!r}" if self.service.config.wake else "",
        )
        await self._server.run(self._handler)

    async def stop(self) -> None:
        await self._server.stop()
        self.service.close()


def check_uri(uri: str) -> None:
    """A ValueError naming the problem for an address ``AsyncServer`` cannot serve."""
    _server_for(uri)


def _server_for(uri: str) -> AsyncServer:
    if not uri.startswith(("tcp://", "unix://")):
        raise ValueError(f"--wyoming takes tcp://HOST:PORT or unix://PATH, got {uri!r}")
    return AsyncServer.from_uri(uri)


async def register_zeroconf(name: str, port: int, host: Optional[str] = None) -> Any:
    """Announces the server the way Home Assistant discovers Wyoming services (needs the
    ``zeroconf`` package)."""
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError:
        raise ImportError("--zeroconf needs the zeroconf package: pip install zeroconf") from None
    announcer = HomeAssistantZeroconf(port=port, name=name, host=host)
    await announcer.register_server()
    return announcer
