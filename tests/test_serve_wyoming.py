"""The Wyoming server driven through the wyoming package's own client, over a unix socket and TCP
on 127.0.0.1: transcripts equal Recognizer.transcribe on the same audio at any rate and channel
count, grammar intents and rejection, wake detection, recognize, describe/info, bad clients, a
full worker pool, and hot reload while clients stream (zero failed requests, a corrupt bundle
refused)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from tiny_bundles import make_bundle
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize
from wyoming.wake import Detect, Detection, NotDetected

from edge_speech import Recognizer, audio
from edge_speech.bundle import pack_bundle
from edge_speech.serving.engine import ServeConfig, ServeLimits, SpeechService
from edge_speech.serving.wyoming_server import WyomingServer

EXAMPLES = Path(__file__).resolve().parents[1] / "recipes" / "default_model" / "examples"
COMMANDS = EXAMPLES / "commands.yaml"
TIMEOUT = 30.0


# -- harness -------------------------------------------------------------------------------------


class ServerThread:
    """A WyomingServer on its own event loop in a background thread (in-process)."""

    def __init__(self, service: SpeechService, uri: str):
        self.service, self.uri = service, uri
        self.loop = asyncio.new_event_loop()
        self.server = WyomingServer(service, uri)
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(TIMEOUT)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def sock_dir():
    path = Path(tempfile.mkdtemp(prefix="es-wy-", dir="/tmp"))  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def reference():
    return Recognizer.default(threads=1)


@pytest.fixture(scope="module")
def command_server(sock_dir):
    """en-small with the README's command grammar and a wake phrase, on a unix socket."""
    service = SpeechService(ServeConfig(grammar=str(COMMANDS), wake="hey computer", workers=2))
    server = ServerThread(service, f"unix://{sock_dir}/commands.sock")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_server(sock_dir):
    """en-small, open vocabulary, on a unix socket."""
    service = SpeechService(ServeConfig(workers=2))
    server = ServerThread(service, f"unix://{sock_dir}/open.sock")
    yield server
    server.stop()


def client_for(uri: str):
    if uri.startswith("unix://"):
        return AsyncUnixClient(uri[len("unix://") :], connect_timeout=TIMEOUT, read_timeout=TIMEOUT)
    host, port = uri[len("tcp://") :].rsplit(":", 1)
    return AsyncTcpClient(host, int(port), connect_timeout=TIMEOUT, read_timeout=TIMEOUT)


def pcm16(path: Path, channels: int = 1):
    """(bytes, rate) of a mono 16-bit WAV, its samples duplicated into ``channels``."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return np.repeat(data, channels).astype("<i2").tobytes(), rate


def speech_bytes(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


async def audio_events(
    client, data: bytes, rate: int, width: int = 2, channels: int = 1, chunk_s: float = 0.1, pace_s: float = 0.0
):
    frame = width * channels
    step = max(frame, int(rate * chunk_s) * frame)
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    for i in range(0, len(data), step):
        await client.write_event(
            AudioChunk(rate=rate, width=width, channels=channels, audio=data[i : i + step]).event()
        )
        if pace_s:
            await asyncio.sleep(pace_s)
    await client.write_event(AudioStop().event())


async def read_until(client, types, limit: int = 2000, into=None):
    """Events up to and including the first whose type is in ``types`` (bounded)."""
    events = [] if into is None else into
    for _ in range(limit):
        event = await client.read_event()
        assert event is not None, f"the server closed the connection after {[e.type for e in events]}"
        events.append(event)
        if event.type in types:
            return events
    raise AssertionError(f"no {types} in {limit} events")


async def transcribe(uri: str, data: bytes, rate: int, channels: int = 1, **request):
    async with client_for(uri) as client:
        await client.write_event(Transcribe(**request).event())
        await audio_events(client, data, rate, channels=channels)
        return await read_until(client, ("transcript", "error"))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


# -- transcription -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_transcripts_equal_recognizer_transcribe_at_any_rate_mono_and_stereo(open_server, reference, speech_wav, rate):
    path = speech_wav(rate)
    expected = reference.transcribe(path).text
    assert expected
    for channels in (1, 2):
        data, _ = pcm16(path, channels)
        events = run(transcribe(open_server.uri, data, rate, channels=channels, language="en"))
        final = Transcript.from_event(events[-1])
        assert events[-1].type == "transcript", events[-1]
        assert final.text == expected, (rate, channels)
        assert final.context["model"] == "en-small" and final.language == "en"
        types = [e.type for e in events]
        # streamed partials come first, in order, and their chunks add up to the final text
        assert types.index("transcript-start") < types.index("transcript-stop") < types.index("transcript")
        streamed = "".join(e.data["text"] for e in events if e.type == "transcript-chunk")
        assert streamed == expected
        assert "voice-started" in types


def test_partials_stream_while_the_audio_is_still_arriving(open_server, speech_wav, reference):
    data, rate = pcm16(speech_wav(16000))
    step = rate // 10 * 2  # 100 ms chunks, sent at 5x real time
    reading_events = []

    async def session():
        async with client_for(open_server.uri) as client:
            reading = asyncio.ensure_future(read_until(client, ("transcript",), into=reading_events))
            await client.write_event(Transcribe().event())
            await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            for i in range(0, len(data), step):
                await client.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=data[i : i + step]).event())
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            arrived = len(reading_events)
            await client.write_event(AudioStop().event())
            events = await reading
            return events[:arrived], events[arrived:]

    early, rest = run(session())
    chunks = [e.data["text"] for e in early if e.type == "transcript-chunk"]
    assert chunks, [e.type for e in early]  # words streamed before the end of the audio
    assert early[[e.type for e in early].index("transcript-start")].type == "transcript-start"
    final = Transcript.from_event(rest[-1]).text
    assert final == reference.transcribe(speech_wav(16000)).text
    streamed = "".join(chunks + [e.data["text"] for e in rest if e.type == "transcript-chunk"])
    assert streamed == final


def test_transcript_streaming_can_be_declined_and_hotwords_are_accepted(open_server, speech_wav, reference):
    data, rate = pcm16(speech_wav(16000))
    events = run(
        transcribe(
            open_server.uri,
            data,
            rate,
            context={"transcript_streaming": False},
            transcript_names=["Kitchen"],
            transcript_terms=["timer", "five minutes", 3, ""],
        )
    )
    assert [e.type for e in events if e.type.startswith("transcript")] == ["transcript"]
    assert (
        Transcript.from_event(events[-1]).text
        == reference.transcribe(speech_wav(16000), hotwords={"kitchen": 3.0, "timer": 2.0, "five minutes": 2.0}).text
    )


def test_unknown_model_and_language_are_refused_with_an_error(open_server, speech_wav):
    data, rate = pcm16(speech_wav(16000))

    async def refused_then_served(**request):
        async with client_for(open_server.uri) as client:
            await client.write_event(Transcribe(**request).event())
            await audio_events(client, data[:3200], rate)  # the refused request's audio gets no answer
            await client.write_event(Transcribe().event())
            await audio_events(client, data, rate)
            return [e for e in await read_until(client, ("transcript",)) if e.type in ("error", "transcript")]

    for request, code in (
        ({"name": "no-such-model"}, "unknown-model"),
        ({"language": "de-DE"}, "unsupported-language"),
    ):
        error, transcript = run(refused_then_served(**request))
        assert Error.from_event(error).code == code
        assert Transcript.from_event(transcript).text  # the same connection serves the next request


def test_grammar_intents_travel_in_the_context_and_other_speech_is_rejected(command_server, reference, speech_wav):
    for name, intent, slots in [
        ("turn_on_the_kitchen_light.wav", "LightOn", {"room": "kitchen"}),
        ("set_a_timer_for_ten_minutes.wav", "Timer", {"minutes": "ten"}),
    ]:
        expected = reference.transcribe(EXAMPLES / name, grammar=COMMANDS)
        assert (expected.intent, dict(expected.slots)) == (intent, slots)
        data, rate = pcm16(EXAMPLES / name)
        final = Transcript.from_event(run(transcribe(command_server.uri, data, rate))[-1])
        assert final.text == expected.text
        assert final.context["intent"] == intent and final.context["slots"] == slots
        assert final.context["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
    other = speech_wav(16000, "The quick brown fox jumps over the lazy dog near the river bank.")
    data, rate = pcm16(other)
    final = Transcript.from_event(run(transcribe(command_server.uri, data, rate))[-1])
    assert final.text == "" and final.context["intent"] is None


def test_recognize_matches_text_against_the_same_grammar(command_server):
    async def ask(text):
        async with client_for(command_server.uri) as client:
            await client.write_event(Recognize(text=text).event())
            return (await read_until(client, ("intent", "not-recognized", "error")))[-1]

    event = run(ask("Turn on the living room light."))
    intent = Intent.from_event(event)
    assert intent.name == "LightOn" and {e.name: e.value for e in intent.entities} == {"room": "living room"}
    event = run(ask("please switch on the GARAGE light"))
    assert Intent.from_event(event).entities[0].value == "garage"
    assert Intent.from_event(run(ask("what is the weather today"))).name == "Weather"
    assert NotRecognized.is_type(run(ask("open the pod bay doors")).type)
    assert NotRecognized.is_type(run(ask("turn on the kitchen")).type)  # a prefix is not a sentence


def test_home_assistant_sentences_give_out_values_in_transcripts_and_recognize(sock_dir, reference, speech_wav):
    folder = Path(__file__).parent / "data" / "ha_sentences" / "home"
    service = SpeechService(ServeConfig(sentences=str(folder), workers=1))
    server = ServerThread(service, f"unix://{sock_dir}/sentences.sock")
    try:
        path = speech_wav(16000, "turn on the living room lights")
        expected = reference.transcribe(path, grammar=service.grammar)
        assert (expected.intent, dict(expected.slots)) == ("HassTurnOn", {"area": "living_room", "domain": "light"})
        data, rate = pcm16(path)
        final = Transcript.from_event(run(transcribe(server.uri, data, rate))[-1])
        assert final.text == expected.text and final.context["slots"] == {"area": "living_room", "domain": "light"}

        async def ask(text):
            async with client_for(server.uri) as client:
                await client.write_event(Recognize(text=text).event())
                return (await read_until(client, ("intent", "not-recognized", "error")))[-1]

        for text, slots in (
            ("Please switch on the sleeping room lights.", {"area": "bedroom", "domain": "light"}),
            ("set the kitchen light to fifty percent", {"area": "kitchen", "brightness": 50}),
        ):
            intent = Intent.from_event(run(ask(text)))
            assert (intent.name, {e.name: e.value for e in intent.entities}) == service.grammar.match(text)
            assert {e.name: e.value for e in intent.entities} == slots  # out values and numbers, as HA expects
        assert NotRecognized.is_type(run(ask("turn on the garage door")).type)
    finally:
        server.stop()


def test_wake_phrase_is_detected_and_other_speech_is_not(command_server, speech_wav):
    quiet = np.zeros(8000, dtype=np.float32)

    async def detect(path):
        samples, rate = audio.read_wav(path)
        data = speech_bytes(np.concatenate([quiet, samples, quiet, quiet, quiet]))
        async with client_for(command_server.uri) as client:
            await client.write_event(Detect(names=["hey computer"]).event())
            await audio_events(client, data, rate, chunk_s=0.05)
            return await read_until(client, ("detection", "not-detected", "error"))

    events = run(detect(speech_wav(16000, "hey computer")))
    detection = Detection.from_event(events[-1])
    assert detection.name == "hey computer" and detection.timestamp > 500
    assert [e.type for e in events if e.type.startswith("voice")][:2] == ["voice-started", "voice-stopped"]
    events = run(detect(speech_wav(16000, "The quick brown fox jumps over the lazy dog.")))
    assert NotDetected.is_type(events[-1].type)


def test_describe_lists_the_asr_wake_and_intent_programs(command_server, open_server):
    async def describe(uri):
        async with client_for(uri) as client:
            await client.write_event(Describe().event())
            return Info.from_event((await read_until(client, ("info",)))[-1])

    info = run(describe(command_server.uri))
    (asr,) = info.asr
    assert asr.supports_transcript_streaming and [m.name for m in asr.models] == ["en-small"]
    assert asr.models[0].languages == ["en"] and asr.models[0].installed
    assert info.wake[0].models[0].phrase == "hey computer"
    assert info.intent and info.intent[0].models[0].languages == ["en"]
    info = run(describe(open_server.uri))
    assert info.asr and not info.wake and not info.intent


# -- bad clients and a full pool -----------------------------------------------------------------


def parse_events(received: bytes) -> list:
    """The complete events in raw bytes (header line, data block, payload), as dicts."""
    events, pos = [], 0
    while b"\n" in received[pos:]:
        end = received.index(b"\n", pos)
        head = json.loads(received[pos:end])
        size = head.get("data_length") or 0
        if len(received) < end + 1 + size + (head.get("payload_length") or 0):
            break
        data = dict(head.get("data") or {})
        if size:
            data.update(json.loads(received[end + 1 : end + 1 + size]))
        pos = end + 1 + size + (head.get("payload_length") or 0)
        events.append({"type": head["type"], "data": data})
    return events


def raw_exchange(path: str, payload: bytes, timeout: float = 10.0):
    """Sends raw bytes on a unix socket; (the events answered up to the first error, whether the
    server then closed the connection)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(payload)
        received = b""
        while not any(e["type"] == "error" for e in parse_events(received)):
            part = s.recv(65536)
            assert part, f"closed without an error event after {received!r}"
            received += part
        # still serving? A ping must get its pong; a hang-up shows as end of file or a reset
        # (a generous timeout: a loaded machine may take seconds to close)
        s.settimeout(timeout)
        rest = b""
        try:
            s.sendall(header(Event("ping", {"text": "still there"})))
            while b'"pong"' not in rest:
                part = s.recv(65536)
                if not part:
                    break
                rest += part
            closed = b'"pong"' not in rest
        except (ConnectionResetError, BrokenPipeError):
            closed = True
    return parse_events(received), closed


def header(event: Event, **extra) -> bytes:
    body = json.dumps(event.data).encode()
    head = {"type": event.type, "data_length": len(body), **extra}
    return json.dumps(head).encode() + b"\n" + body


def test_bad_clients_get_errors_and_the_server_keeps_serving(open_server, speech_wav, reference):
    path = open_server.uri[len("unix://") :]
    start = AudioStart(rate=16000, width=2, channels=1).event()
    chunk_header = AudioChunk(rate=16000, width=2, channels=1, audio=b"").event()
    cases = [  # (payload, error code, whether the server hangs up: only when the byte stream is unusable)
        (b"this is not json\n", "bad-event", True),
        (b'["a list"]\n', "bad-event", True),
        (b"{" + b" " * 70000 + b"}\n", "too-large", True),
        (header(chunk_header, payload_length=10**9), "too-large", True),
        (header(AudioStart(rate=16000, width=5, channels=1).event()), "bad-format", False),
        (header(start) + header(chunk_header, payload_length=3) + b"abc", "bad-format", False),
        (header(Event("audio-start", {"rate": "fast", "width": 2, "channels": 1})), "bad-format", False),
        (header(Event("audio-start", {})), "bad-event", False),
        (header(Event("recognize", {"text": "turn on the light"})), "no-grammar", False),
        (header(Event("detect", {})), "no-wake", False),
    ]
    for payload, code, hangs_up in cases:
        answers, closed = raw_exchange(path, payload, timeout=20.0)
        assert [a["type"] for a in answers] == ["error"] and answers[0]["data"]["code"] == code, (code, answers)
        assert closed == hangs_up, (code, closed)

    # disconnects mid-stream and many idle connections
    async def abusers():
        idle = [client_for(open_server.uri) for _ in range(1000)]
        for c in idle:
            await c.connect()
        for _ in range(5):
            async with client_for(open_server.uri) as client:
                await client.write_event(Transcribe().event())
                await client.write_event(start)
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=b"\0" * 32000).event())
        data, rate = pcm16(speech_wav(16000))
        events = await transcribe(open_server.uri, data, rate)
        for c in idle:
            try:
                await c.disconnect()
            except OSError:  # the client's own teardown racing the server's hang-up (EINVAL seen under load)
                pass
        return events

    events = run(abusers())
    assert Transcript.from_event(events[-1]).text == reference.transcribe(speech_wav(16000)).text
    deadline = time.monotonic() + 10
    while (open_server.service.sessions or open_server.server.connections) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_server.service.sessions == 0 and open_server.server.connections == 0


def test_a_full_pool_answers_busy_instead_of_queueing(sock_dir, speech_wav, reference):
    data, rate = pcm16(speech_wav(16000))
    limits = ServeLimits(queue=0, max_sessions=2, max_audio_s=1.5 * len(data) / 2 / rate)
    service = SpeechService(ServeConfig(workers=1, streaming=False, limits=limits))
    server = ServerThread(service, f"unix://{sock_dir}/busy.sock")
    try:
        gate = threading.Event()
        assert service.pool.try_submit(gate.wait, TIMEOUT) is not None  # the one worker is taken
        assert service.pool.try_submit(gate.wait, TIMEOUT) is None
        events = run(transcribe(server.uri, data, rate))
        assert Error.from_event(events[-1]).code == "server-busy"
        gate.set()
        deadline = time.monotonic() + 10
        while service.pool.load and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (
            Transcript.from_event(run(transcribe(server.uri, data, rate))[-1]).text
            == reference.transcribe(speech_wav(16000)).text
        )

        async def three_streams():  # max_sessions=2: the third open stream is refused
            clients = [client_for(server.uri) for _ in range(3)]
            answers = []
            for c in clients:
                await c.connect()
                await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await clients[2].write_event(Describe().event())
            answers = await read_until(clients[2], ("error", "info"))
            for c in clients:
                await c.disconnect()
            return answers

        assert Error.from_event(run(three_streams())[0]).code == "server-busy"

        async def too_long_then_short():  # twice the speech is over max_audio_s: the rest of that stream is dropped
            async with client_for(server.uri) as client:
                await client.write_event(Transcribe().event())
                await audio_events(client, data + data, rate)
                await client.write_event(Transcribe().event())
                await audio_events(client, data[: 2 * rate], rate)  # 1 s
                return [e for e in await read_until(client, ("transcript",)) if e.type in ("error", "transcript")]

        error, transcript = run(too_long_then_short())
        assert Error.from_event(error).code == "too-large" and Transcript.is_type(transcript.type)
    finally:
        server.stop()


# -- hot reload ----------------------------------------------------------------------------------


def test_hot_reload_swaps_good_bundles_for_new_sessions_and_refuses_corrupt_ones(sock_dir, tmp_path, speech, caplog):
    served = tmp_path / "served.zip"
    pack_bundle(make_bundle(tmp_path / "a", name="tiny-a"), served)
    good = pack_bundle(make_bundle(tmp_path / "b", name="tiny-b"), tmp_path / "b.zip")
    broken = make_bundle(tmp_path / "c", name="tiny-c")
    model = bytearray((broken / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF  # one flipped byte in the weights: the manifest's checksum no longer holds
    (broken / "model.onnx").write_bytes(bytes(model))
    corrupt = pack_bundle(broken, tmp_path / "corrupt.zip")
    service = SpeechService(ServeConfig(models=(str(served),), workers=2, reload_interval_s=0.1))
    server = ServerThread(service, f"unix://{sock_dir}/reload.sock")
    data = speech_bytes(speech(16000)[:16000])
    results, failures, stop = [], [], threading.Event()

    async def client_loop():
        while not stop.is_set():
            async with client_for(server.uri) as client:
                await client.write_event(Transcribe().event())
                await audio_events(client, data, 16000, chunk_s=0.1, pace_s=0.005)
                event = (await read_until(client, ("transcript", "error")))[-1]
            (results if event.type == "transcript" else failures).append((time.monotonic(), event))

    async def scenario():
        loop_tasks = [asyncio.ensure_future(client_loop()) for _ in range(3)]
        # a session that starts before the swap and finishes after it
        pinned = client_for(server.uri)
        await pinned.connect()
        await pinned.write_event(Transcribe().event())
        await pinned.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await pinned.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=data[:16000]).event())
        await asyncio.sleep(0.5)
        os.replace(good, served)
        for _ in range(1000):
            if any(r["ok"] for r in service.reloads):
                break
            await asyncio.sleep(0.05)
        swapped_at = time.monotonic()
        await pinned.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=data[16000:]).event())
        await pinned.write_event(AudioStop().event())
        pinned_result = (await read_until(pinned, ("transcript", "error")))[-1]
        await pinned.disconnect()
        await asyncio.sleep(0.5)
        os.replace(corrupt, served)
        for _ in range(1000):
            if any(not r["ok"] for r in service.reloads):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*loop_tasks)
        return pinned_result, swapped_at

    try:
        pinned_result, swapped_at = run(scenario())
    finally:
        stop.set()
        server.stop()
    assert failures == []
    assert [r["ok"] for r in service.reloads] == [True, False]
    assert "sha256 mismatch" in service.reloads[1]["error"]
    assert "hot reload of" in caplog.text and "refused" in caplog.text  # and logged
    assert Transcript.from_event(pinned_result).context["bundle"] == "tiny-a"  # in flight: kept its bundle
    bundles_after = {Transcript.from_event(e).context["bundle"] for t, e in results if t > swapped_at + 0.3}
    assert bundles_after == {"tiny-b"}  # new sessions: the new bundle, and still after the corrupt one
    assert len(results) >= 6


# -- the command line over TCP -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_over_tcp_without_importing_torch(speech_wav, reference):
    port = free_port()
    uri = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "edge_speech.cli",
            "serve",
            "--wyoming",
            uri,
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=tempfile.gettempdir(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                time.sleep(0.1)
        data, rate = pcm16(speech_wav(44100))
        t0 = time.perf_counter()
        events = run(transcribe(uri, data, rate))
        assert Transcript.from_event(events[-1]).text == reference.transcribe(speech_wav(44100)).text
        assert time.perf_counter() - t0 < 20
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=TIMEOUT)
    bad = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "serve", "--wyoming", "stdio://"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=TIMEOUT,
    )
    assert bad.returncode == 2 and "tcp://HOST:PORT or unix://PATH" in bad.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")]
    assert "wyoming" in imported and "edge_speech.serving.engine" in imported
    assert not [name for name in imported if name == "torch" or name.startswith("torch.")]


def test_sentences_option_compiles_templates_once_for_transcribe_and_serve(monkeypatch, capsys, tmp_path):
    """--sentences goes through edge_speech.grammars.load_sentences (Home Assistant templates);
    here a stand-in loader returns the YAML grammar, to prove the plumbing of the CLI and the server."""
    from edge_speech import cli, grammars

    calls = []

    def load_sentences(path):
        calls.append(str(path))
        return grammars.Grammar.from_yaml(COMMANDS.read_text())

    monkeypatch.setattr(grammars, "load_sentences", load_sentences, raising=False)
    wav = EXAMPLES / "set_a_timer_for_ten_minutes.wav"
    assert cli.main(["transcribe", "--sentences", str(tmp_path), "--json", str(wav)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert (line["intent"], line["slots"]) == ("Timer", {"minutes": "ten"}) and calls == [str(tmp_path)]
    service = SpeechService(ServeConfig(sentences=str(tmp_path), workers=1))
    try:
        assert service.recognize_text("set a timer for five minutes") == ("Timer", {"minutes": "five"})
    finally:
        service.close()
    monkeypatch.delattr(grammars, "load_sentences")
    assert cli.main(["transcribe", "--sentences", str(tmp_path), str(wav)]) == 2
    assert "load_sentences" in capsys.readouterr().err


def test_zeroconf_announces_the_service_as_home_assistant_discovers_it():
    import zeroconf  # optional for serving (--zeroconf), required by the tests (the test extra installs it)

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "serve",
            "--wyoming",
            f"tcp://127.0.0.1:{port}",
            "--zeroconf",
            f"edge-speech-test-{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
        cwd=tempfile.gettempdir(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                time.sleep(0.1)
        browser = zeroconf.Zeroconf()
        try:
            info = browser.get_service_info(
                "_wyoming._tcp.local.", f"edge-speech-test-{port}._wyoming._tcp.local.", timeout=5000
            )
        finally:
            browser.close()
        assert info is not None and info.port == port
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
