"""An HTTP and WebSocket API on aiohttp (the ``serve`` extra), beside or instead of Wyoming:

- ``POST /v1/audio/transcriptions``: the OpenAI-style request (multipart ``file``, ``model``,
  ``language``, ``prompt`` (its comma- or line-separated phrases become hotwords),
  ``response_format`` ``json`` / ``text`` / ``verbose_json`` (with words)), plus ``hotwords``
  (``phrase:boost`` lines), ``grammar`` (YAML intents or JSGF text), ``sentences`` (Home
  Assistant sentence templates) and ``grammar_threshold``. The text is exactly
  ``Recognizer.transcribe`` on the uploaded file.
- ``WS /v1/stream?rate=16000&channels=1``: binary messages of 16-bit little-endian PCM in,
  text messages out: the JSON events of ``edge-speech listen --json`` (partials, finals, intents
  with the server's grammar; ``wake=1`` for the server's wake phrase). The text message
  ``{"type": "end"}`` ends the audio; the server sends the last events and closes.
- ``POST /v1/intents`` (``{"text": ...}``): the intent and slots of typed text in the grammar.
- ``GET /v1/models``, ``GET /healthz``, ``GET /metrics`` (Prometheus).

Errors are JSON ``{"error": {"message", "type", "code"}}`` with the status of the Wyoming error
code (``server-busy`` is 429: the worker pool and the stream limit are bounded, never a queue
without end). Every result names the model and bundle that made it (``model``, ``bundle`` fields,
``X-Edge-Speech-Model`` / ``X-Edge-Speech-Bundle`` headers), so an A/B split can be followed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import WSMsgType, web

from edge_speech import audio, listen
from edge_speech.decoding.hotwords import parse_hotwords
from edge_speech.grammars import Grammar
from edge_speech.serving.engine import (
    LiveSession,
    ServedModel,
    ServeError,
    SpeechService,
    check_format,
)

__all__ = ["HttpServer", "parse_address"]

LOG = logging.getLogger("edge_speech.serve")

STATUS = {
    "bad-request": 400,
    "bad-format": 400,
    "bad-audio": 400,
    "bad-grammar": 400,
    "bad-event": 400,
    "unsupported-language": 400,
    "no-grammar": 400,
    "no-wake": 400,
    "unknown-model": 404,
    "too-large": 413,
    "server-busy": 429,
    "internal": 500,
}
RESPONSE_FORMATS = ("json", "text", "verbose_json")
OPENAI_DEFAULT_MODELS = ("whisper-1",)  # what OpenAI clients send unless told: served by the default model
_PHRASES = re.compile(r"[,;\n]+")  # a prompt's vocabulary: "Kitchen light, Hallway; thermostat"


def parse_address(address: str) -> Tuple[str, Any]:
    """``("tcp", (host, port))`` for ``HOST:PORT`` / ``tcp://HOST:PORT``, ``("unix", path)`` for
    ``unix://PATH``."""
    if address.startswith("unix://"):
        return "unix", address[len("unix://") :]
    host, sep, port = address.removeprefix("tcp://").rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--http takes HOST:PORT (e.g. 127.0.0.1:8080) or unix://PATH, got {address!r}")
    return "tcp", (host.strip("[]") or "0.0.0.0", int(port))


def _error_response(code: str, text: str, status: Optional[int] = None) -> web.Response:
    response = web.json_response(
        {"error": {"message": text, "type": code, "code": code}}, status=status or STATUS.get(code, 400)
    )
    if code == "server-busy":
        response.headers["Retry-After"] = "1"
    return response


class HttpServer:
    """Serves a :class:`SpeechService` over HTTP and WebSocket at ``address`` (see
    :func:`parse_address`; port 0 picks a free port, read back from :attr:`port`)."""

    def __init__(self, service: SpeechService, address: str):
        self.service = service
        self.kind, self.where = parse_address(address)
        self.limits = service.config.limits
        self._runner: Optional[web.AppRunner] = None
        self._streams = 0  # WebSocket connections open
        self.port: Optional[int] = None

    # -- lifecycle ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_upload_bytes, middlewares=[self._errors])
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_get("/v1/stream", self.stream)
        app.router.add_post("/v1/intents", self.intents)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        """Starts listening and returns (for tests and embedding)."""
        self._runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=self.limits.idle_timeout_s)
        await self._runner.setup()
        site: web.BaseSite
        if self.kind == "unix":
            site = web.UnixSite(self._runner, self.where)
        else:
            site = web.TCPSite(self._runner, *self.where)
        await site.start()
        if self.kind == "tcp":
            self.port = self._runner.addresses[0][1]
        LOG.info(
            "serving HTTP at %s", f"unix://{self.where}" if self.kind == "unix" else f"{self.where[0]}:{self.port}"
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """ServeError and aiohttp's own refusals as JSON errors; a server fault as a 500 (logged)."""
        protocol = "websocket" if request.path == "/v1/stream" else "http"
        try:
            return await handler(request)
        except ServeError as err:
            self.service.metrics.refusal(protocol, err.code)
            LOG.info("client error (%s): %s", err.code, err.text)
            return _error_response(err.code, err.text)
        except web.HTTPRequestEntityTooLarge:
            self.service.metrics.refusal(protocol, "too-large")
            return _error_response(
                "too-large", f"the request body is over the server's limit of {self.limits.max_upload_bytes} bytes"
            )
        except web.HTTPException as err:  # 404, 405 ...: aiohttp's answer, as JSON
            if err.status >= 400:
                return _error_response("bad-request", err.reason, status=err.status)
            raise
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as err:
            LOG.exception("%s %s failed", request.method, request.path)
            self.service.metrics.refusal(protocol, "internal")
            return _error_response("internal", f"the server failed: {type(err).__name__}: {err}")

    # -- requests -------------------------------------------------------------------------
    def _model(self, name: Optional[str]) -> ServedModel:
        return self.service.model(None if name in OPENAI_DEFAULT_MODELS else name)

    @staticmethod
    def _tags(model: ServedModel, recognizer: Any) -> Dict[str, str]:
        return {"X-Edge-Speech-Model": model.name, "X-Edge-Speech-Bundle": recognizer.manifest.name}

    async def transcriptions(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            raise ServeError(
                "bad-request",
                "send multipart/form-data with the audio in a 'file' field (the OpenAI audio API's request)",
            )
        form = await request.post()  # bounded by client_max_size
        fields: Dict[str, str] = {}
        for name in ("model", "language", "prompt", "response_format", "hotwords", "grammar", "sentences"):
            value = form.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ServeError("bad-request", f"the field {name!r} must be text, not a file")
            if len(value) > self.limits.max_text_bytes:
                raise ServeError("too-large", f"the field {name!r} is over {self.limits.max_text_bytes} bytes")
            fields[name] = value
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise ServeError("bad-request", "no audio: send the file in a multipart field named 'file'")
        data = upload.file.read()
        response_format = fields.get("response_format", "json")
        if response_format not in RESPONSE_FORMATS:
            raise ServeError(
                "bad-request", f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}"
            )
        if fields.get("grammar") and fields.get("sentences"):
            raise ServeError("bad-request", "send a grammar or sentence templates, not both")
        threshold = _optional_float(form.get("grammar_threshold"), "grammar_threshold")
        model = self._model(fields.get("model"))
        language = self.service.check_language(fields.get("language"))
        hotwords = self._hotwords(fields)
        recognizer = model.recognizer  # pinned for this request
        self.service.open_session()
        try:
            ended = time.perf_counter()
            future = self.service.pool.try_submit(
                self._transcribe_job, recognizer, data, upload.filename or "file", hotwords, fields, threshold
            )
            if future is None:
                raise ServeError(
                    "server-busy", f"all {self.service.pool.workers} workers are busy and the queue is full; try again"
                )
            result, grammar_used = await asyncio.wrap_future(future)
        finally:
            self.service.close_session()
        self.service.metrics.result(
            "http", model.name, recognizer.manifest.name, result, time.perf_counter() - ended, grammar=grammar_used
        )
        headers = self._tags(model, recognizer)
        if response_format == "text":
            return web.Response(text=result.text + "\n", headers=headers)
        body: Dict[str, Any] = {"text": result.text, "model": model.name, "bundle": recognizer.manifest.name}
        if grammar_used:
            body.update(intent=result.intent, slots=dict(result.slots or {}), confidence=result.confidence)
        if response_format == "verbose_json":
            spans = result.to_dict()["words"]
            body.update(
                task="transcribe",
                language=language,
                duration=round(result.duration_s, 3),
                words=[{"word": w["text"], **{k: w[k] for k in ("start", "end", "confidence")}} for w in spans],
                segments=[
                    {
                        "id": 0,
                        "start": spans[0]["start"] if spans else 0.0,
                        "end": spans[-1]["end"] if spans else round(result.duration_s, 3),
                        "text": result.text,
                    }
                ]
                if result.text
                else [],
            )
        return web.json_response(body, headers=headers)

    def _hotwords(self, fields: Dict[str, str]) -> Dict[str, float]:
        """The server's hotwords, the prompt's phrases (as a client's biasing terms) and the
        request's own ``phrase:boost`` lines."""
        terms = [p for p in _PHRASES.split(fields.get("prompt", "")) if p.strip()]
        table = self.service.request_hotwords(None, terms)
        if fields.get("hotwords"):
            try:
                table.update(parse_hotwords(fields["hotwords"], "the hotwords field"))
            except ValueError as err:
                raise ServeError("bad-request", str(err)) from None
        return table

    def _transcribe_job(
        self,
        recognizer: Any,
        data: bytes,
        filename: str,
        hotwords: Dict[str, float],
        fields: Dict[str, str],
        threshold: Optional[float],
    ) -> Tuple[Any, bool]:
        """A worker's job: decode the upload, compile a request's grammar, transcribe."""
        try:
            samples, rate = audio.decode_audio(data, f"the uploaded file {filename!r}")
        except ValueError as err:
            raise ServeError("bad-audio", str(err)) from None
        grammar = _request_grammar(fields)
        try:
            result = self.service.transcribe(recognizer, samples, rate, hotwords, grammar, threshold)
        except ValueError as err:  # audio the runtime refuses (too long, a rate out of range ...)
            raise ServeError("bad-audio", str(err)) from None
        return result, grammar is not None or self.service.grammar is not None

    async def intents(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            raise ServeError("bad-request", 'send JSON: {"text": "turn on the light"}') from None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or len(text) > 10_000:
            raise ServeError("bad-request", 'send JSON with a "text" string (at most 10,000 characters)')
        match = self.service.recognize_text(text)
        intent, slots = match if match is not None else (None, {})
        return web.json_response({"text": text, "intent": intent, "slots": dict(slots)})

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {
                "id": m.name,
                "object": "model",
                "owned_by": "edge-speech",
                "bundle": m.bundle_name,
                "language": self.service.config.language,
                "default": m.name == self.service.default_model,
                "generation": m.generation,
            }
            for m in self.service.models.values()
        ]
        return web.json_response({"object": "list", "data": data, "ab": self.service.ab_split()})

    async def health(self, request: web.Request) -> web.Response:
        pool = self.service.pool
        return web.json_response(
            {
                "status": "ok",
                "models": {m.name: m.bundle_name for m in self.service.models.values()},
                "sessions": self.service.sessions,
                "busy_workers": min(pool.load, pool.workers),
                "queue_depth": max(0, pool.load - pool.workers),
            }
        )

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.service.metrics.render())
        response.headers["Content-Type"] = self.service.metrics.CONTENT_TYPE
        return response

    # -- streaming ------------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        rate = _int_param(query.get("rate", "16000"), "rate")
        channels = _int_param(query.get("channels", "1"), "channels")
        rate, width, channels = check_format(rate, 2, channels, self.limits)
        wake = query.get("wake", "0") not in ("0", "", "false")
        if wake and not self.service.config.wake:
            raise ServeError("no-wake", "this server has no wake phrase (start it with --wake PHRASE)")
        model = self._model(query.get("model"))
        if self._streams >= self.limits.max_connections:
            raise ServeError("server-busy", f"the server is at its limit of {self.limits.max_connections} streams")
        self.service.open_session()
        self._streams += 1
        self.service.metrics.connections.labels("websocket").inc()
        try:
            return await self._stream(request, model, rate, width, channels, wake)
        finally:
            self._streams -= 1
            self.service.metrics.connections.labels("websocket").dec()
            self.service.close_session()

    async def _stream(
        self, request: web.Request, model: ServedModel, rate: int, width: int, channels: int, wake: bool
    ) -> web.StreamResponse:
        # aiohttp closes a connection whose message is over twice the limit; up to that, the error is ours
        ws = web.WebSocketResponse(max_msg_size=2 * self.limits.max_chunk_bytes, receive_timeout=None)
        loop = asyncio.get_running_loop()
        events: "asyncio.Queue[Optional[listen.Event]]" = asyncio.Queue()
        config = self.service.config
        session = LiveSession(
            self.service,
            model,
            rate,
            width,
            channels,
            lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
            grammar=self.service.grammar,
            grammar_threshold=config.grammar_threshold,
            wake=config.wake if wake else None,
            wake_threshold=config.wake_threshold if wake else None,
            voice_events=False,  # the events are listen's own
        )
        ws.headers.update(self._tags(model, session.recognizer))
        await ws.prepare(request)
        finals: List[listen.Event] = []
        sender = asyncio.ensure_future(self._send_events(ws, events, finals))
        finished = False
        try:
            finished = await self._receive_audio(ws, session, rate, width, channels)
            if finished:
                await loop.run_in_executor(None, session.finish)
                await asyncio.sleep(0)  # the events the thread scheduled are queued before the end marker
                events.put_nowait(None)
                await sender
                bundle = session.recognizer.manifest.name
                for event in finals:
                    rejected = self.service.grammar is not None and event.intent is None
                    self.service.metrics.utterance("websocket", model.name, bundle, rejected)
                self.service.metrics.audio_seconds.labels("websocket", model.name, bundle).inc(session.samples / rate)
        except ServeError as err:
            self.service.metrics.refusal("websocket", err.code)
            await _send_quietly(ws, {"type": "error", "code": err.code, "message": err.text})
        finally:
            if not finished:
                session.abandon()
            sender.cancel()
            await ws.close()
        return ws

    async def _receive_audio(
        self, ws: web.WebSocketResponse, session: LiveSession, rate: int, width: int, ch: int
    ) -> bool:
        """Feeds the client's audio to the session until its end message (True) or a disconnect
        (False). Raises ServeError for what the client must be told."""
        while True:
            try:
                msg = await ws.receive(timeout=self.limits.idle_timeout_s)
            except asyncio.TimeoutError:
                raise ServeError("idle", f"no audio for {self.limits.idle_timeout_s:g} s; closing") from None
            if msg.type == WSMsgType.BINARY:
                if len(msg.data) > self.limits.max_chunk_bytes:
                    raise ServeError("too-large", f"an audio message is over {self.limits.max_chunk_bytes} bytes")
                # faster than real time (a file): wait for recognition, so TCP slows the client down
                waited = 0.0
                while not session.has_room(len(msg.data)):
                    if waited > self.limits.idle_timeout_s:
                        raise ServeError("server-busy", "recognition made no progress; closing")
                    await asyncio.sleep(0.01)
                    waited += 0.01
                session.add(msg.data, rate, width, ch)
            elif msg.type == WSMsgType.TEXT:
                try:
                    message = json.loads(msg.data)
                except ValueError:
                    message = None
                if isinstance(message, dict) and message.get("type") == "end":
                    return True
                raise ServeError(
                    "bad-event",
                    'text messages are control messages: {"type": "end"} ends the audio; send audio as binary',
                )
            else:  # close, error (a message over aiohttp's own limit included)
                return False

    @staticmethod
    async def _send_events(
        ws: web.WebSocketResponse, events: "asyncio.Queue[Optional[listen.Event]]", finals: List[listen.Event]
    ) -> None:
        while True:
            event = await events.get()
            if event is None:
                return
            if event.type == "final":
                finals.append(event)
            if not await _send_quietly(ws, event.to_json()):
                return


async def _send_quietly(ws: web.WebSocketResponse, message: Any) -> bool:
    """Sends text (a dict as JSON); False when the client is gone."""
    try:
        await ws.send_str(message if isinstance(message, str) else json.dumps(message))
        return True
    except (ConnectionError, RuntimeError):
        return False


def _request_grammar(fields: Dict[str, str]) -> Optional[Grammar]:
    """A request's own grammar (``grammar``: YAML intents or JSGF; ``sentences``: Home Assistant
    templates), compiled under the runtime's grammar limits."""
    try:
        if fields.get("grammar"):
            text = fields["grammar"]
            if text.lstrip().startswith("#JSGF") or re.match(r"\s*(grammar|public)\b", text):
                return Grammar.from_jsgf(text if text.lstrip().startswith("#JSGF") else "#JSGF V1.0;\n" + text)
            return Grammar.from_yaml(text)
        if fields.get("sentences"):
            from edge_speech import ha_sentences

            return ha_sentences.from_text(fields["sentences"], what="the sentences field")
    except ImportError as err:
        raise ServeError("bad-grammar", f"sentence templates need hassil on the server: {err}") from None
    except (ValueError, RecursionError) as err:
        raise ServeError("bad-grammar", f"the request's grammar: {err}") from None
    return None


def _optional_float(value: Any, name: str) -> Optional[float]:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ServeError("bad-request", f"{name} must be a number, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ServeError("bad-request", f"{name} must be within 0..1, got {number}")
    return number


def _int_param(value: str, name: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise ServeError("bad-format", f"{name} must be a positive integer, got {value!r}")
    return int(value)
