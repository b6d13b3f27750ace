"""The HTTP and WebSocket API driven by real client libraries (aiohttp's client, and OpenAI's own
SDK where installed) on 127.0.0.1: transcripts equal Recognizer.transcribe on the same file in
every response format, a request's prompt, hotwords and grammar act as the same options of
Recognizer.transcribe, streamed events equal `edge-speech listen --json` on the same audio,
Prometheus metrics count what was served, an A/B split keeps its weights and tags every result,
hot reload under load fails no request, and bad clients get errors while everyone else is served."""

from __future__ import annotations

import asyncio
import io
import json
import os
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

aiohttp = pytest.importorskip("aiohttp")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tiny_bundles import make_bundle  # noqa: E402

from edge_speech import Recognizer, listen  # noqa: E402
from edge_speech.bundle import pack_bundle  # noqa: E402
from edge_speech.grammars import Grammar  # noqa: E402
from edge_speech.serving.engine import ServeConfig, ServeLimits, SpeechService  # noqa: E402
from edge_speech.serving.http_server import HttpServer  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "recipes" / "default_model" / "examples"
COMMANDS = EXAMPLES / "commands.yaml"
TIMER = EXAMPLES / "set_a_timer_for_ten_minutes.wav"
TIMEOUT = 60.0


class ServerThread:
    """An HttpServer on its own event loop in a background thread, on a free loopback port."""

    def __init__(self, service: SpeechService):
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.server = HttpServer(service, "127.0.0.1:0")
        started = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(TIMEOUT)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.service.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


@pytest.fixture(scope="module")
def reference():
    return Recognizer.default(threads=1)


@pytest.fixture(scope="module")
def open_server():
    server = ServerThread(SpeechService(ServeConfig(workers=2)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def command_server():
    server = ServerThread(SpeechService(ServeConfig(grammar=str(COMMANDS), workers=2)))
    yield server
    server.stop()


def stereo_wav(path: Path, rate: int, out: Path) -> Path:
    """The mono 16-bit WAV ``path`` resampled by sox to ``rate`` and duplicated into two channels."""
    subprocess.run(["sox", str(path), "-r", str(rate), "-c", "2", str(out)], check=True)
    return out


async def post_file(url: str, data: bytes, filename: str = "audio.wav", **fields):
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type="audio/wav")
    for name, value in fields.items():
        form.add_field(name, str(value))
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "/v1/audio/transcriptions", data=form) as response:
            body = await response.read()
            return response.status, dict(response.headers), body


def transcribe(url: str, path: Path, **fields):
    status, headers, body = run(post_file(url, Path(path).read_bytes(), **fields))
    return status, headers, body


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def scrape(url: str) -> str:
    async def get():
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/metrics") as response:
                assert response.status == 200 and response.content_type == "text/plain"
                return await response.text()

    return run(get())


# -- transcription ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, channels", [(16000, 1), (8000, 1), (44100, 2), (48000, 2)])
def test_transcriptions_equal_recognizer_transcribe(open_server, reference, speech_wav, tmp_path, rate, channels):
    path = speech_wav(rate) if channels == 1 else stereo_wav(speech_wav(16000), rate, tmp_path / "stereo.wav")
    expected = reference.transcribe(path)
    status, headers, body = transcribe(open_server.url, path)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["text"] == expected.text and expected.text
    assert answer["model"] == headers["X-Edge-Speech-Model"] == "en-small"
    assert answer["bundle"] == headers["X-Edge-Speech-Bundle"] == reference.manifest.name


def test_text_and_verbose_json_formats_carry_the_same_result(open_server, reference):
    expected = reference.transcribe(TIMER).to_dict()
    status, _, body = transcribe(open_server.url, TIMER, response_format="text")
    assert status == 200 and body.decode() == expected["text"] + "\n"
    status, _, body = transcribe(open_server.url, TIMER, response_format="verbose_json", language="en")
    verbose = json.loads(body)
    assert verbose["text"] == expected["text"] and verbose["task"] == "transcribe" and verbose["language"] == "en"
    assert [(w["word"], w["start"], w["end"]) for w in verbose["words"]] == [
        (w["text"], w["start"], w["end"]) for w in expected["words"]
    ]
    assert verbose["segments"][0]["text"] == expected["text"]
    assert verbose["duration"] == pytest.approx(reference.transcribe(TIMER).duration_s, abs=1e-3)


def test_the_openai_sdk_talks_to_the_server(open_server, reference):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=open_server.url + "/v1", api_key="unused", timeout=TIMEOUT, max_retries=0)
    with open(TIMER, "rb") as f:
        answer = client.audio.transcriptions.create(model="whisper-1", file=f)  # its default model name
    assert answer.text == reference.transcribe(TIMER).text
    with open(TIMER, "rb") as f:
        text = client.audio.transcriptions.create(model="en-small", file=f, response_format="text")
    assert text.strip() == reference.transcribe(TIMER).text
    assert [m.id for m in client.models.list()] == ["en-small"]


def test_prompt_and_hotwords_bias_like_recognizer_hotwords(open_server, reference, speech_wav):
    path = speech_wav(16000)
    config = open_server.service.config
    status, _, body = transcribe(open_server.url, path, prompt="quick brown, lazy dogs", hotwords="jumped:4")
    expected = reference.transcribe(path, hotwords={"quick brown": config.terms_boost, "lazy dogs": 2.0, "jumped": 4.0})
    assert status == 200 and json.loads(body)["text"] == expected.text


def test_a_request_grammar_gives_the_intents_recognizer_gives(open_server, reference):
    yaml_text = COMMANDS.read_text()
    expected = reference.transcribe(TIMER, grammar=Grammar.from_yaml(yaml_text))
    assert expected.intent == "Timer"
    status, _, body = transcribe(open_server.url, TIMER, grammar=yaml_text)
    answer = json.loads(body)
    assert status == 200 and (answer["intent"], answer["slots"], answer["text"]) == (
        expected.intent,
        dict(expected.slots),
        expected.text,
    )
    jsgf = "#JSGF V1.0;\ngrammar g;\npublic <cmd> = set a timer for (five | ten) minutes | turn on the light;\n"
    expected = reference.transcribe(TIMER, grammar=Grammar.from_jsgf(jsgf))
    status, _, body = transcribe(open_server.url, TIMER, grammar=jsgf)
    assert status == 200 and json.loads(body)["text"] == expected.text == "set a timer for ten minutes"
    status, _, body = transcribe(open_server.url, TIMER, grammar="intents: [unclosed")
    assert status == 400 and json.loads(body)["error"]["code"] == "bad-grammar"


def test_home_assistant_sentences_in_a_request(open_server, reference):
    pytest.importorskip("hassil")
    from edge_speech import ha_sentences

    sentences = (
        "language: en\nintents:\n  HassStartTimer:\n    data:\n      - sentences:\n"
        "          - set a timer for {minutes} minutes\nlists:\n  minutes:\n    values:\n"
        "      - in: five\n        out: 5\n      - in: ten\n        out: 10\n"
    )
    expected = reference.transcribe(TIMER, grammar=ha_sentences.from_text(sentences))
    status, _, body = transcribe(open_server.url, TIMER, sentences=sentences)
    answer = json.loads(body)
    assert status == 200 and (answer["intent"], answer["slots"]) == (expected.intent, dict(expected.slots))
    assert answer["slots"] == {"minutes": 10}  # Home Assistant's out value, typed as written


def test_server_grammar_intents_and_text_matching(command_server, reference):
    grammar = Grammar.from_yaml(COMMANDS.read_text())
    expected = reference.transcribe(TIMER, grammar=grammar)
    status, _, body = transcribe(command_server.url, TIMER)
    answer = json.loads(body)
    assert (answer["intent"], answer["slots"], answer["confidence"]) == (
        expected.intent,
        dict(expected.slots),
        expected.confidence,
    )

    async def intents(text):
        async with aiohttp.ClientSession() as session:
            async with session.post(command_server.url + "/v1/intents", json={"text": text}) as response:
                return response.status, await response.json()

    for text in ("set a timer for five minutes", "sing me a song"):
        status, answer = run(intents(text))
        match = grammar.match(text)
        assert status == 200 and (answer["intent"], answer["slots"]) == ((match[0], match[1]) if match else (None, {}))


# -- streaming -------------------------------------------------------------------------------------


def pcm16_of(path: Path):
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()


async def stream_events(url: str, path: Path, chunk_ms: float = 37.0, **query):
    data, rate, channels = pcm16_of(path)
    step = int(rate * chunk_ms / 1000) * 2 * channels
    params = {"rate": str(rate), "channels": str(channels), **query}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/v1/stream", params=params) as ws:
            tags = (ws._response.headers.get("X-Edge-Speech-Model"), ws._response.headers.get("X-Edge-Speech-Bundle"))
            for i in range(0, len(data), step):
                await ws.send_bytes(data[i : i + step])
            await ws.send_str(json.dumps({"type": "end"}))
            events = [json.loads(msg.data) async for msg in ws if msg.type == aiohttp.WSMsgType.TEXT]
            return events, tags


def command_session(tmp_path: Path) -> Path:
    """Two commands with silence around them, as one 16 kHz WAV (sox)."""
    out = tmp_path / "session.wav"
    other = EXAMPLES / "turn_on_the_kitchen_light.wav"
    parts = [str(p) for p in (TIMER, other) if p.exists()]
    subprocess.run(["sox", *parts, "-r", "16000", "-c", "1", "-b", "16", str(out), "pad", "0.5", "1.0"], check=True)
    return out


def test_stream_events_equal_listen_json(command_server, tmp_path):
    session = command_session(tmp_path)
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "listen",
            "--wav",
            str(session),
            "--grammar",
            str(COMMANDS),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    assert any(e["type"] == "intent" for e in expected)
    events, tags = run(stream_events(command_server.url, session, chunk_ms=37.0))  # chunks off the 20-ms grid
    assert events == expected
    assert tags == ("en-small", command_server.service.models["en-small"].bundle_name)


def test_stream_open_vocabulary_equals_listen(open_server, reference, speech_wav):
    path = speech_wav(16000)
    expected = [json.loads(e.to_json()) for e in listen.listen(reference, listen.WavSource(path))]
    events, _ = run(stream_events(open_server.url, path, chunk_ms=100.0))
    assert events == expected and [e["type"] for e in events][-1] == "final"


# -- metrics, models, health -------------------------------------------------------------------------


def test_metrics_count_requests_audio_and_rejections(reference, speech_wav):
    server = ServerThread(SpeechService(ServeConfig(grammar=str(COMMANDS), workers=1)))
    try:
        bundle = reference.manifest.name
        labels = dict(protocol="http", model="en-small", bundle=bundle)
        for path in (TIMER, TIMER, speech_wav(16000)):  # two commands, one sentence outside the grammar
            assert transcribe(server.url, path)[0] == 200
        assert transcribe(server.url, TIMER, response_format="srt")[0] == 400
        text = scrape(server.url)
        assert metric(text, "edge_speech_requests_total", outcome="ok", **labels) == 2
        assert metric(text, "edge_speech_requests_total", outcome="rejected", **labels) == 1
        assert metric(text, "edge_speech_grammar_rejections_total", **labels) == 1
        seconds = 2 * reference.transcribe(TIMER).duration_s + reference.transcribe(speech_wav(16000)).duration_s
        assert metric(text, "edge_speech_audio_seconds_total", **labels) == pytest.approx(seconds, abs=1e-3)
        assert metric(text, "edge_speech_latency_seconds_count", **labels) == 3
        assert metric(text, "edge_speech_rtf_count", **labels) == 3
        assert metric(text, "edge_speech_refusals_total", protocol="http", code="bad-request") == 1
        assert metric(text, "edge_speech_queue_depth") == 0 and metric(text, "edge_speech_sessions") == 0

        async def get(path):
            async with aiohttp.ClientSession() as session:
                async with session.get(server.url + path) as response:
                    return response.status, await response.json()

        status, health = run(get("/healthz"))
        assert status == 200 and health["status"] == "ok" and health["models"] == {"en-small": bundle}
        status, models = run(get("/v1/models"))
        assert [m["id"] for m in models["data"]] == ["en-small"] and models["ab"] is None
        status, missing = run(get("/v1/nothing"))
        assert status == 404 and missing["error"]["code"] == "bad-request"
    finally:
        server.stop()


# -- A/B and hot reload ---------------------------------------------------------------------------


def test_ab_split_keeps_its_weights_and_tags_results_and_metrics(tmp_path, speech):
    a = make_bundle(tmp_path / "a", name="tiny-a")
    b = make_bundle(tmp_path / "b", name="tiny-b")
    service = SpeechService(ServeConfig(models=(str(a),), ab=f"{a}=90,{b}=10", workers=2, reload_interval_s=0))
    server = ServerThread(service)
    try:
        wav = tmp_path / "speech.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
            w.writeframes((np.clip(speech(16000)[:16000], -1, 1) * 32767).astype("<i2").tobytes())
        tags = []
        for _ in range(20):
            status, headers, body = transcribe(server.url, wav)
            assert status == 200
            tags.append((json.loads(body)["bundle"], headers["X-Edge-Speech-Bundle"]))
        assert all(x == y for x, y in tags)
        assert sorted(x for x, _ in tags).count("tiny-a") == 18 and [x for x, _ in tags].count("tiny-b") == 2
        text = scrape(server.url)
        assert metric(text, "edge_speech_requests_total", bundle="tiny-a", outcome="ok") == 18
        assert metric(text, "edge_speech_requests_total", bundle="tiny-b", outcome="ok") == 2
        status, _, body = transcribe(server.url, wav, model="b")  # a client may pin a model
        assert json.loads(body)["bundle"] == "tiny-b"
        assert service.ab_split() == {"a": 0.9, "b": 0.1}
    finally:
        server.stop()


def test_hot_reload_under_load_fails_no_request(tmp_path, speech):
    served = tmp_path / "served.zip"
    pack_bundle(make_bundle(tmp_path / "a", name="tiny-a"), served)
    good = pack_bundle(make_bundle(tmp_path / "b", name="tiny-b"), tmp_path / "b.zip")
    broken = make_bundle(tmp_path / "c", name="tiny-c")
    weights = bytearray((broken / "model.onnx").read_bytes())
    weights[len(weights) // 2] ^= 0xFF  # the manifest's checksum no longer holds
    (broken / "model.onnx").write_bytes(bytes(weights))
    corrupt = pack_bundle(broken, tmp_path / "corrupt.zip")
    service = SpeechService(ServeConfig(models=(str(served),), workers=2, reload_interval_s=0.1))
    server = ServerThread(service)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(speech(16000)[:16000], -1, 1) * 32767).astype("<i2").tobytes())
    data = buffer.getvalue()
    results, failures, stop = [], [], threading.Event()

    async def client_loop():
        while not stop.is_set():
            started = time.monotonic()
            status, _, body = await post_file(server.url, data)
            (results if status == 200 else failures).append((started, status, body))

    async def scenario():
        loops = [asyncio.ensure_future(client_loop()) for _ in range(3)]
        await asyncio.sleep(0.5)
        os.replace(good, served)
        while not any(r["ok"] for r in service.reloads):
            await asyncio.sleep(0.05)
        swapped_at = time.monotonic()
        await asyncio.sleep(0.5)
        os.replace(corrupt, served)
        while not any(not r["ok"] for r in service.reloads):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*loops)
        return swapped_at

    try:
        swapped_at = run(scenario())
    finally:
        stop.set()
        server.stop()
    assert failures == []
    assert [r["ok"] for r in service.reloads] == [True, False]
    bundles = [(started, json.loads(body)["bundle"]) for started, _, body in results]
    assert {b for t, b in bundles if t > swapped_at} == {
        "tiny-b"
    }  # new requests: the new bundle, after the corrupt one too
    assert {b for t, b in bundles if t < swapped_at - 0.3} == {"tiny-a"}
    assert len(results) >= 6


# -- bad clients -------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def raw_request(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_bad_clients_get_errors_and_the_server_keeps_serving(reference, speech_wav):
    limits = ServeLimits(max_upload_bytes=2_000_000, max_chunk_bytes=64_000, max_text_bytes=10_000)
    service = SpeechService(ServeConfig(workers=2, limits=limits))
    server = ServerThread(service)
    port = server.server.port
    try:
        # garbage and broken HTTP: aiohttp's own 400
        for garbage in (
            b"GARBAGE\x01\x02 nonsense\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        ):
            assert raw_request(port, garbage).split(b"\r\n")[0] in (
                b"HTTP/1.0 400 Bad Request",
                b"HTTP/1.1 400 Bad Request",
            )
        cases = [  # (fields, file bytes, status, code, words of the message)
            ({}, b"\0" * 3_000_000, 413, "too-large", "limit of 2000000 bytes"),
            ({}, b"this is not audio", 400, "bad-audio", "cannot decode"),
            ({}, b"RIFF\x10\0\0\0WAVEfmt ", 400, "bad-audio", "no fmt chunk"),
            ({"response_format": "srt"}, TIMER.read_bytes(), 400, "bad-request", "response_format"),
            ({"model": "nope"}, TIMER.read_bytes(), 404, "unknown-model", "no model named"),
            ({"language": "de"}, TIMER.read_bytes(), 400, "unsupported-language", "not served"),
            ({"grammar": "x" * 20_000}, TIMER.read_bytes(), 413, "too-large", "over 10000 bytes"),
            ({"hotwords": "a:b"}, TIMER.read_bytes(), 400, "bad-request", "bad boost"),
        ]
        for fields, data, status, code, words in cases:
            got, _, body = run(post_file(server.url, data, **fields))
            error = json.loads(body)["error"]
            assert (got, error["code"]) == (status, code) and words in error["message"], (fields, body[:300])

        async def no_file():
            async with aiohttp.ClientSession() as session:
                async with session.post(server.url + "/v1/audio/transcriptions", data=b"{}") as r:
                    return r.status, await r.json()

        status, body = run(no_file())
        assert status == 400 and "multipart" in body["error"]["message"]

        async def stream_abuse():
            answers = []
            async with aiohttp.ClientSession() as session:
                for query, message in (
                    ({}, b"\0\0\0"),  # half a frame
                    ({}, b"\0" * 100_000),  # over max_chunk_bytes
                    ({}, "hello"),  # text that is not a control message
                ):
                    async with session.ws_connect(server.url + "/v1/stream", params=query) as ws:
                        await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
                        answers.append([json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT])
                for query in ({"rate": "7"}, {"rate": "fast"}, {"wake": "1"}, {"channels": "99"}):
                    async with session.get(server.url + "/v1/stream", params=query) as r:
                        answers.append((r.status, (await r.json())["error"]["code"]))
                for _ in range(5):  # disconnects mid-stream
                    ws = await session.ws_connect(server.url + "/v1/stream")
                    await ws.send_bytes(b"\0" * 32000)
                    await ws.close()
            return answers

        answers = run(stream_abuse())
        assert [a[-1]["code"] for a in answers[:3]] == ["bad-format", "too-large", "bad-event"]
        assert answers[3:] == [(400, "bad-format"), (400, "bad-format"), (400, "no-wake"), (400, "bad-format")]

        # 1,000 idle connections: everyone else is still served, memory stays flat
        before = rss_mb()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
        try:
            status, _, body = transcribe(server.url, speech_wav(16000))
            assert status == 200 and json.loads(body)["text"] == reference.transcribe(speech_wav(16000)).text
            assert rss_mb() - before < 40, (before, rss_mb())
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 10
        while service.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.sessions == 0
    finally:
        server.stop()


def test_a_full_pool_answers_429_with_retry_after(speech_wav, reference):
    service = SpeechService(ServeConfig(workers=1, limits=ServeLimits(queue=0)))
    server = ServerThread(service)
    try:
        gate = threading.Event()
        assert service.pool.try_submit(gate.wait, TIMEOUT) is not None  # the one worker is taken
        status, headers, body = transcribe(server.url, TIMER)
        assert status == 429 and headers["Retry-After"] == "1" and json.loads(body)["error"]["code"] == "server-busy"
        gate.set()
        deadline = time.monotonic() + 10
        while service.pool.load and time.monotonic() < deadline:
            time.sleep(0.01)
        status, _, body = transcribe(server.url, TIMER)
        assert status == 200 and json.loads(body)["text"] == reference.transcribe(TIMER).text
    finally:
        server.stop()


# -- the command line ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_wyoming_and_http_from_one_process(reference):
    pytest.importorskip("wyoming")
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe, Info

    http_port, wyoming_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_speech.cli",
            "serve",
            "--http",
            f"127.0.0.1:{http_port}",
            "--wyoming",
            f"tcp://127.0.0.1:{wyoming_port}",
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
                socket.create_connection(("127.0.0.1", http_port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                time.sleep(0.1)
        status, _, body = transcribe(f"http://127.0.0.1:{http_port}", TIMER)
        assert status == 200 and json.loads(body)["text"] == reference.transcribe(TIMER).text

        async def describe():
            async with AsyncTcpClient("127.0.0.1", wyoming_port) as client:
                await client.write_event(Describe().event())
                return Info.from_event(await client.read_event())

        assert [m.name for m in run(describe()).asr[0].models] == ["en-small"]
        text = scrape(f"http://127.0.0.1:{http_port}")
        assert metric(text, "edge_speech_requests_total", protocol="http", outcome="ok") == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
    bad = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "serve", "--http", "localhost"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        timeout=TIMEOUT,
    )
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    none = subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", "serve"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert none.returncode == 2 and "--wyoming URI, --http ADDRESS, or both" in none.stderr
