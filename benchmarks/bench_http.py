"""`edge-speech serve --http`: latency and throughput of the HTTP and WebSocket API, driven by aiohttp's client.

    python -m benchmarks.bench_http [--model en-base] [--grammar [FILE]] [--quick]   # repo root

Every server runs as its own subprocess (``python -m edge_speech.cli serve --http 127.0.0.1:PORT
--workers 2 --log-level warning``, embedded en-small unless ``--model`` says otherwise; repeat
``--model`` for one run per model; ``--grammar`` adds a run of the first model with the README's
command grammar, fed only the commands since other speech is rejected by design) and is polled
on ``/healthz`` until it answers (model loading is not timed). ``--max-sessions 64`` is passed so
that the stream ramp measures recognition, not the admission limit (the default of 8 per worker
would refuse a 17th stream); ``--max-sessions 0`` keeps the server's default.

1. ``POST /v1/audio/transcriptions`` at 1, 4 and 16 clients (``--clients``): the clients take
   ``--requests`` uploads per level from one queue on one keep-alive connection pool; latency is
   from the request sent to the response body read. Inputs: *commands*, the example WAVs under
   recipes/default_model/examples (reference: the file name), and *prompts*, ``--limit``
   command-length asterisk prompts (8 kHz, one real speaker; skipped when the package is not
   installed). Corpus WER by ``edge_speech.text.error_rates`` after digits are written as words.
2. ``WS /v1/stream`` with K streams at once (``--streams``, 1 2 4 8 16 32; the ramp stops after
   the first K that does not keep up). Each stream sends 16 kHz PCM16 in 20 ms binary messages at
   real time (each when a microphone would have delivered it): a command, 1 s of room noise
   (1 LSB, the examples' own floor), repeated for ``--stream-seconds``; streams start spread over
   one such cycle, as independent speakers would. An utterance's *final latency* is from the
   moment the client sent the end of its speech plus the endpoint silence
   (``listen.EndpointConfig.trailing_silence_s``; speech end: the last 20 ms above -40 dBFS) to
   its ``final`` event received; *after endpoint* is the same from the server's own speech end
   (the final's ``end``, which carries the energy VAD's hangover) plus the endpoint silence: the
   server's processing and delivery alone (the difference, ~0.25 s, is the VAD's hangover: the
   endpoint silence starts counting after it). K *keeps up* when no stream gets an error event,
   every utterance gets its final, and every final latency is at most 1 s.
3. The server's CPU (utime + stime from /proc/PID/stat, all threads) over each HTTP level, and
   for streams over the window in which all K send (the staggered start and the drain left out):
   CPU-seconds per audio second, cores used (CPU-s / wall-s); "streams per core" is the largest K
   that kept up divided by the cores it used. The client's CPU and everyone else's (/proc/stat
   less server and client) over the same window are printed beside it. Peak RSS is VmHWM after each level (model loading included).
   At the end ``/metrics`` is scraped: ``edge_speech_requests_total`` must equal the answers the
   client got (HTTP 200s; websocket finals) and ``edge_speech_refusals_total`` its refusals; a
   mismatch is reported as an error (exit 1).

The client runs on the same machine and takes CPU too (its own CPU-s per wall-s is printed); the
load average before and after each run is printed with the results, since other work shares the
machine. No network beyond 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import itertools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import wave
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from edge_speech.listen import EndpointConfig
from edge_speech.text import error_rates
from recipes.default_model.evaluate import ASTERISK_TRANSCRIPTS, asterisk_set
from recipes.default_model.evaluate import _digits_to_words as digits_to_words  # the references' own rule

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "recipes" / "default_model" / "examples"
COMMANDS_GRAMMAR = EXAMPLES / "commands.yaml"
PROMPT_MAX_WORDS = 8
STREAM_RATE = 16000
CHUNK_S = 0.020
GAP_S = 1.0  # silence after each command of a stream
MIN_STEADY_S = 1.0  # shortest window with every stream on for the CPU measure; else the whole level counts
KEEP_UP_S = 1.0  # a final later than this after speech end + endpoint silence: not keeping up
ENDPOINT_S = EndpointConfig().trailing_silence_s
SPEECH_FLOOR = 0.01  # -40 dBFS: a 20 ms frame above it is speech (for the client's own speech end)
STARTUP_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 120.0
CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Clip:
    name: str
    reference: str
    file_bytes: bytes  # the WAV as uploaded
    pcm: np.ndarray  # int16 mono
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate

    @property
    def speech_end_s(self) -> float:
        """End of the last 20 ms frame above SPEECH_FLOOR (the clip's own trailing silence excluded)."""
        frame = int(self.rate * CHUNK_S)
        x = self.pcm[: len(self.pcm) - len(self.pcm) % frame].astype(np.float64) / 32768.0
        rms = np.sqrt((x.reshape(-1, frame) ** 2).mean(axis=1))
        loud = np.flatnonzero(rms > SPEECH_FLOOR)
        return (loud[-1] + 1) * CHUNK_S if len(loud) else self.seconds


@dataclasses.dataclass(frozen=True)
class HttpRow:
    server: str
    inputs: str
    clients: int
    requests: int
    failures: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests_per_s: float
    audio_s_per_s: float
    wer: float
    cpu_per_audio_s: float
    cores_used: float
    client_cores: float
    others_cores: float
    peak_rss_mb: float


@dataclasses.dataclass(frozen=True)
class StreamRow:
    server: str
    streams: int
    kept_up: bool
    why_not: str
    utterances: int
    missing: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    endpoint_p50_ms: float
    endpoint_p99_ms: float
    wer: float
    cpu_per_stream_s: float
    cores_used: float
    client_cores: float
    others_cores: float
    client_lag_ms: float  # the client's worst lateness sending a chunk (its own load)
    peak_rss_mb: float


@dataclasses.dataclass
class Served:
    """What a server's client saw, to check its /metrics against."""

    http_ok: int = 0
    http_refused: int = 0
    ws_finals: int = 0
    ws_refused: int = 0
    errors: List[str] = dataclasses.field(default_factory=list)


# -- inputs ------------------------------------------------------------------------------------


def read_clip(path: Path, reference: str) -> Clip:
    data = path.read_bytes()
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return Clip(path.stem, reference, data, pcm, w.getframerate())


def command_clips() -> List[Clip]:
    clips = [read_clip(p, p.stem.replace("_", " ")) for p in sorted(EXAMPLES.glob("*.wav"))]
    if not clips:
        raise ValueError(f"no example WAVs in {EXAMPLES}")
    for clip in clips:
        if clip.rate != STREAM_RATE:
            raise ValueError(f"{clip.name}: the stream phase sends {STREAM_RATE} Hz audio, this clip is {clip.rate} Hz")
    return clips


def prompt_clips(limit: int) -> List[Clip]:
    if not limit or not ASTERISK_TRANSCRIPTS.exists():
        return []
    pairs = [(p, text) for p, text in asterisk_set() if len(text.split()) <= PROMPT_MAX_WORDS]
    if limit < len(pairs):
        pairs = [pairs[round(i * len(pairs) / limit)] for i in range(limit)]
    return [read_clip(Path(path), text) for path, text in pairs]


# -- the server process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S  # utime, stime (fields 14, 15)


def machine_busy_s() -> float:
    """CPU-seconds every process on the machine has used (from /proc/stat; guest time is in user)."""
    with open("/proc/stat", encoding="ascii") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) * CLOCK_TICK_S


@dataclasses.dataclass(frozen=True)
class CpuUse:
    wall_s: float
    server_s: float
    client_s: float  # this process: the load generator
    others_s: float  # every other process: work that shares the machine


class CpuMeter:
    """CPU used between its creation and :meth:`stop` by the server, the client and everyone else."""

    def __init__(self, pid: int):
        self.pid = pid
        self._start = self._read()

    def _read(self) -> Tuple[float, float, float, float]:
        return time.perf_counter(), cpu_seconds(self.pid), time.process_time(), machine_busy_s()

    def stop(self) -> CpuUse:
        wall, server, client, busy = (b - a for a, b in zip(self._start, self._read()))
        return CpuUse(wall, server, client, max(0.0, busy - server - client))


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering /healthz")
            try:
                async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s")


def percentiles(values_s: Sequence[float], *qs: float) -> List[float]:
    if not values_s:
        return [float("nan")] * len(qs)
    ms = np.array(values_s) * 1000
    return [float(np.percentile(ms, q)) for q in qs]


# -- 1. POST /v1/audio/transcriptions -----------------------------------------------------------


async def transcribe_once(session: aiohttp.ClientSession, url: str, clip: Clip) -> Tuple[float, int, dict]:
    """(seconds from request sent to response read, status, JSON body)."""
    form = aiohttp.FormData()
    form.add_field("file", clip.file_bytes, filename=clip.name + ".wav", content_type="audio/wav")
    form.add_field("response_format", "json")
    began = time.perf_counter()
    async with session.post(url + "/v1/audio/transcriptions", data=form) as response:
        body = await response.read()
    elapsed = time.perf_counter() - began
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {"error": {"message": body[:200].decode(errors="replace")}}
    return elapsed, response.status, answer


async def http_level(url: str, clips: Sequence[Clip], clients: int, requests: int):
    """Latencies (s), (reference, hypothesis) pairs, failures and wall seconds of one level."""
    queue: asyncio.Queue = asyncio.Queue()
    for clip in itertools.islice(itertools.cycle(clips), requests):
        queue.put_nowait(clip)
    latencies: List[float] = []
    pairs: List[Tuple[str, str]] = []
    failures: List[str] = []
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while not queue.empty():
                clip = queue.get_nowait()
                try:
                    elapsed, status, answer = await transcribe_once(session, url, clip)
                except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                    failures.append(f"{clip.name}: {err!r}")
                    continue
                if status != 200:
                    failures.append(f"{clip.name}: HTTP {status} {answer.get('error', answer)}")
                    continue
                latencies.append(elapsed)
                pairs.append((clip.reference, digits_to_words(answer["text"])))

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - began
    return latencies, pairs, failures, wall


# -- 2. WS /v1/stream ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Utterance:
    reference: str
    start_sample: int
    speech_end_sample: int
    stop_sample: int  # end of its gap: the next utterance starts here


@dataclasses.dataclass
class StreamResult:
    utterances: List[Utterance]
    latencies: List[float]  # per utterance that got a final
    after_endpoint: List[float]  # the same from the server's own speech end (VAD hangover excluded)
    pairs: List[Tuple[str, str]]
    missing: int
    late: int
    finals: int
    errors: List[str]
    completed: bool  # closed by the server after our end message, not refused or cut
    error_events: int  # the server's refusals mid-stream (counted in its metrics)
    lag_s: float
    audio_s: float


def stream_plan(clips: Sequence[Clip], first: int, seconds: float, seed: int) -> Tuple[np.ndarray, List[Utterance]]:
    """A stream's audio (int16) and its utterances: commands in turn from ``first``, each followed
    by GAP_S of 1-LSB noise, until ``seconds`` are reached."""
    noise = np.random.default_rng(seed)
    pieces, utterances, at = [], [], 0
    for index in itertools.count(first):
        if at >= seconds * STREAM_RATE and utterances:
            break
        clip = clips[index % len(clips)]
        gap = np.clip(np.round(noise.normal(0, 1, int(GAP_S * STREAM_RATE))), -32768, 32767).astype(np.int16)
        stop = at + len(clip.pcm) + len(gap)
        utterances.append(Utterance(clip.reference, at, at + int(clip.speech_end_s * STREAM_RATE), stop))
        pieces += [clip.pcm, gap]
        at = stop
    return np.concatenate(pieces), utterances


async def run_stream(
    ws: aiohttp.ClientWebSocketResponse, audio: np.ndarray, utterances: List[Utterance], start_at: float
) -> StreamResult:
    step = int(STREAM_RATE * CHUNK_S)
    data = audio.astype("<i2").tobytes()
    chunks = len(audio) // step + (len(audio) % step > 0)
    sent = np.zeros(chunks)
    events: List[Tuple[float, dict]] = []
    closed_cleanly = asyncio.Event()

    async def receive() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                events.append((time.perf_counter(), json.loads(msg.data)))
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                return
        closed_cleanly.set()

    receiver = asyncio.ensure_future(receive())
    lag = 0.0
    errors: List[str] = []
    try:
        for i in range(chunks):
            due = start_at + (i + 1) * CHUNK_S  # a microphone delivers chunk i once its last sample is spoken
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if ws.closed:
                errors.append(f"closed by the server after {i * CHUNK_S:.2f} s of audio")
                break
            await ws.send_bytes(data[i * 2 * step : (i + 1) * 2 * step])
            sent[i] = time.perf_counter()
            lag = max(lag, sent[i] - due)
        else:
            await ws.send_str(json.dumps({"type": "end"}))
        await asyncio.wait_for(receiver, REQUEST_TIMEOUT_S)
    except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError) as err:
        errors.append(repr(err))
    finally:
        receiver.cancel()
    error_events = [f"{e.get('code')}: {e.get('message')}" for _, e in events if e.get("type") == "error"]
    errors += error_events
    finals: Dict[int, List[Tuple[float, dict]]] = {}
    for received, event in events:
        if event.get("type") != "final":
            continue
        end_sample = event["end"] * STREAM_RATE  # the server's speech end, in samples of the stream
        owner = next((j for j, u in enumerate(utterances) if u.start_sample <= end_sample < u.stop_sample), None)
        if owner is None:
            errors.append(f"a final outside every utterance: {event}")
            continue
        finals.setdefault(owner, []).append((received, event))
    latencies, after_endpoint, pairs, missing, late = [], [], [], 0, 0
    endpoint_samples = int(ENDPOINT_S * STREAM_RATE)
    for j, utterance in enumerate(utterances):
        endpoint_chunk = (utterance.speech_end_sample + endpoint_samples - 1) // step
        if j not in finals or endpoint_chunk >= chunks or not sent[endpoint_chunk]:
            missing += 1
            pairs.append((utterance.reference, ""))
            continue
        received, last_final = finals[j][-1]
        latency = received - sent[endpoint_chunk]
        latencies.append(latency)
        fired_chunk = min(chunks - 1, (round(last_final["end"] * STREAM_RATE) + endpoint_samples - 1) // step)
        after_endpoint.append(received - sent[fired_chunk])
        late += latency > KEEP_UP_S
        pairs.append((utterance.reference, digits_to_words(" ".join(e["text"] for _, e in finals[j]))))
    return StreamResult(
        utterances,
        latencies,
        after_endpoint,
        pairs,
        missing,
        late,
        finals=sum(len(f) for f in finals.values()),
        errors=errors,
        completed=closed_cleanly.is_set() and not errors,
        error_events=len(error_events),
        lag_s=lag,
        audio_s=len(audio) / STREAM_RATE,
    )


async def stream_level(url: str, clips: Sequence[Clip], streams: int, seconds: float, pid: int):
    """K concurrent real-time streams: their results, the refusals, and the CPU used."""
    cycle_s = np.mean([c.seconds for c in clips]) + GAP_S
    plans = [stream_plan(clips, k, seconds, seed=k) for k in range(streams)]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        sockets, refusals = [], []
        for _ in range(streams):
            try:
                sockets.append(await session.ws_connect(url + "/v1/stream", params={"rate": str(STREAM_RATE)}))
            except aiohttp.WSServerHandshakeError as err:
                refusals.append(f"HTTP {err.status} {err.message}")
        meter = CpuMeter(pid)
        if not sockets:
            return [], refusals, meter.stop()
        start_at = time.perf_counter() + 0.2
        starts = [start_at + k * cycle_s / streams for k in range(len(sockets))]
        # CPU while every stream is sending: the steady state, without the staggered start and the drain
        all_on, first_off = max(starts), min(t + len(audio) / STREAM_RATE for t, (audio, _) in zip(starts, plans))

        async def steady() -> Optional[CpuUse]:
            if first_off - all_on < MIN_STEADY_S:
                return None
            await asyncio.sleep(all_on - time.perf_counter())
            window = CpuMeter(pid)
            await asyncio.sleep(first_off - time.perf_counter())
            return window.stop()

        steady_use, *results = await asyncio.gather(
            steady(),
            *(run_stream(ws, audio, utterances, t) for t, ws, (audio, utterances) in zip(starts, sockets, plans)),
        )
        use = steady_use or meter.stop()
        for ws in sockets:
            await ws.close()
    return list(results), refusals, use


# -- one server ---------------------------------------------------------------------------------


def server_command(model: str, grammar: Optional[Path], port: int, max_sessions: int) -> List[str]:
    command = [sys.executable, "-m", "edge_speech.cli", "serve", "--http", f"127.0.0.1:{port}", "--workers", "2"]
    command += ["--log-level", "warning", "--model", model]
    if grammar is not None:
        command += ["--grammar", str(grammar)]
    if max_sessions:
        command += ["--max-sessions", str(max_sessions)]
    return command


async def scrape_metrics(url: str) -> Dict[Tuple[str, str], float]:
    """{(sample name, protocol): value summed over the other labels} of /metrics."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/metrics") as response:
            text = await response.text()
    totals: Dict[Tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("protocol", ""))
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def check_metrics(label: str, totals: Dict[Tuple[str, str], float], served: Served) -> List[str]:
    expected = {
        ("edge_speech_requests_total", "http"): served.http_ok,
        ("edge_speech_refusals_total", "http"): served.http_refused,
        ("edge_speech_requests_total", "websocket"): served.ws_finals,
        ("edge_speech_refusals_total", "websocket"): served.ws_refused,
    }
    problems = []
    for (name, protocol), count in expected.items():
        counted = totals.get((name, protocol), 0.0)
        if counted != count:
            problems.append(f"{label}: /metrics {name}{{protocol={protocol}}} = {counted:g}, the client saw {count}")
    return problems


def run_server(label: str, command: List[str], url: str, sets: Dict[str, List[Clip]], args, log_path: Path):
    """The HTTP rows, stream rows, metric problems and start/end load averages of one server."""
    http_rows: List[HttpRow] = []
    stream_rows: List[StreamRow] = []
    served = Served()
    loads = [os.getloadavg()]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            began = time.perf_counter()
            asyncio.run(wait_ready(url, process))
            print(f"# {label}: ready after {time.perf_counter() - began:.1f} s", file=sys.stderr)
            for clients in args.clients:
                for name, clips in sets.items():
                    if not clips:
                        continue
                    meter = CpuMeter(process.pid)
                    latencies, pairs, failures, wall = asyncio.run(http_level(url, clips, clients, args.requests))
                    use = meter.stop()
                    served.http_ok += len(latencies)
                    served.http_refused += sum(" HTTP " in f for f in failures)
                    for failure in failures[:5]:
                        print(f"# {label} {name} x{clients}: {failure}", file=sys.stderr)
                    if args.show:
                        for reference, hypothesis in pairs[: len(clips)]:
                            print(f"# {label} {name}: {reference!r} -> {hypothesis!r}", file=sys.stderr)
                    answered = list(itertools.islice(itertools.cycle(clips), args.requests))
                    audio_s = sum(c.seconds for c in answered) * len(latencies) / max(1, len(answered))
                    p50, p90, p99 = percentiles(latencies, 50, 90, 99)
                    http_rows.append(
                        HttpRow(
                            label,
                            name,
                            clients,
                            len(latencies),
                            len(failures),
                            p50,
                            p90,
                            p99,
                            len(latencies) / wall,
                            audio_s / wall,
                            error_rates(pairs)["wer"] if pairs else float("nan"),
                            use.server_s / audio_s if audio_s else float("nan"),
                            use.server_s / use.wall_s,
                            use.client_s / use.wall_s,
                            use.others_s / use.wall_s,
                            peak_rss_mb(process.pid),
                        )
                    )
                    print(
                        f"# {label} {name} x{clients}: p50 {p50:.0f} ms, {len(latencies) / wall:.1f} req/s",
                        file=sys.stderr,
                    )
            for streams in args.streams:
                row = measure_streams(label, url, sets["commands"], streams, args, process.pid, served)
                stream_rows.append(row)
                print(
                    f"# {label} {streams} streams: {'kept up' if row.kept_up else 'fell behind: ' + row.why_not}, "
                    f"final p50 {row.p50_ms:.0f} ms, p99 {row.p99_ms:.0f} ms, {row.cores_used:.2f} cores",
                    file=sys.stderr,
                )
                if not row.kept_up:
                    break
                time.sleep(1.0)  # let the last sessions wind down before the next level
            problems = check_metrics(label, asyncio.run(scrape_metrics(url)), served)
        except RuntimeError as err:
            log.flush()
            tail = log_path.read_text(errors="replace")[-2000:]
            print(f"# {label}: {err}\n{tail}", file=sys.stderr)
            problems = [f"{label}: {err}"]
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    loads.append(os.getloadavg())
    return http_rows, stream_rows, problems, loads


def measure_streams(label: str, url: str, clips, streams: int, args, pid: int, served: Served) -> StreamRow:
    results, refusals, use = asyncio.run(stream_level(url, clips, streams, args.stream_seconds, pid))
    served.ws_refused += len(refusals) + sum(r.error_events for r in results)
    served.ws_finals += sum(r.finals for r in results if r.completed)
    latencies = [x for r in results for x in r.latencies]
    errors = [e for r in results for e in r.errors]
    missing, late = sum(r.missing for r in results), sum(r.late for r in results)
    why = []
    if refusals:
        why.append(f"{len(refusals)} refused ({refusals[0]})")
    if errors:
        why.append(f"{len(errors)} errors ({errors[0]})")
    if missing:
        why.append(f"{missing} finals missing")
    if late:
        why.append(f"{late} finals over {KEEP_UP_S:g} s")
    for error in errors[:5]:
        print(f"# {label} {streams} streams: {error}", file=sys.stderr)
    stream_s = use.wall_s * len(results)  # the CPU window has every stream on
    p50, p99, worst = percentiles(latencies, 50, 99, 100)
    endpoint_p50, endpoint_p99 = percentiles([x for r in results for x in r.after_endpoint], 50, 99)
    pairs = [p for r in results for p in r.pairs]
    if args.show:
        for reference, hypothesis in pairs[:4]:
            print(f"# {label} stream: {reference!r} -> {hypothesis!r}", file=sys.stderr)
    return StreamRow(
        label,
        streams,
        not why,
        "; ".join(why),
        sum(len(r.utterances) for r in results),
        missing,
        p50,
        p99,
        worst,
        endpoint_p50,
        endpoint_p99,
        error_rates(pairs)["wer"] if pairs else float("nan"),
        use.server_s / stream_s if stream_s else float("nan"),
        use.server_s / use.wall_s,
        use.client_s / use.wall_s,
        use.others_s / use.wall_s,
        1000 * max((r.lag_s for r in results), default=0.0),
        peak_rss_mb(pid),
    )


# -- report ---------------------------------------------------------------------------------------


def http_table(rows: Sequence[HttpRow]) -> str:
    lines = [
        "| server / model | inputs | clients | requests | p50 | p90 | p99 | req/s | audio s / s | WER "
        "| server CPU-s / audio-s | server cores | client / others' cores | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        failed = f" ({r.failures} failed)" if r.failures else ""
        lines.append(
            f"| {r.server} | {r.inputs} | {r.clients} | {r.requests}{failed} | {r.p50_ms:.0f} ms | {r.p90_ms:.0f} ms "
            f"| {r.p99_ms:.0f} ms | {r.requests_per_s:.1f} | {r.audio_s_per_s:.1f} | {r.wer:.1%} "
            f"| {r.cpu_per_audio_s:.3f} | {r.cores_used:.2f} | {r.client_cores:.2f} / {r.others_cores:.2f} "
            f"| {r.peak_rss_mb:.0f} MB |"
        )
    return "\n".join(lines)


def stream_table(rows: Sequence[StreamRow]) -> str:
    lines = [
        "| server / model | streams | keeps up | utterances | final p50 | final p99 | final max "
        "| after endpoint p50 / p99 | WER | server CPU-s / stream-s | server cores | client / others' cores "
        "| client lag | peak RSS |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        kept = "yes" if r.kept_up else f"no: {r.why_not}"
        lines.append(
            f"| {r.server} | {r.streams} | {kept} | {r.utterances} | {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms "
            f"| {r.max_ms:.0f} ms | {r.endpoint_p50_ms:.0f} / {r.endpoint_p99_ms:.0f} ms | {r.wer:.1%} "
            f"| {r.cpu_per_stream_s:.3f} | {r.cores_used:.2f} | {r.client_cores:.2f} / {r.others_cores:.2f} "
            f"| {r.client_lag_ms:.0f} ms | {r.peak_rss_mb:.0f} MB |"
        )
    return "\n".join(lines)


def capacity_lines(rows: Sequence[StreamRow]) -> List[str]:
    lines = []
    for server in dict.fromkeys(r.server for r in rows):
        kept = [r for r in rows if r.server == server and r.kept_up]
        if not kept:
            lines.append(f"- {server}: no level kept up")
            continue
        best = max(kept, key=lambda r: r.streams)
        ramp_end = "the ramp's end" if all(r.kept_up for r in rows if r.server == server) else "the last that kept up"
        lines.append(
            f"- {server}: {best.streams} streams at real time ({ramp_end}) on {best.cores_used:.2f} cores = "
            f"{best.streams / best.cores_used:.1f} streams per core used; {best.cpu_per_stream_s:.3f} CPU-s per "
            f"stream-s (1 core would carry {1 / best.cpu_per_stream_s:.0f} at that cost)"
        )
    return lines


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def counts(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", choices=["en-small", "en-base"], help="embedded model; repeatable")
    p.add_argument(
        "--grammar",
        nargs="?",
        type=Path,
        const=COMMANDS_GRAMMAR,
        help=f"also run the first model with this command grammar (default {COMMANDS_GRAMMAR.relative_to(REPO)})",
    )
    p.add_argument("--clients", type=counts, default=[1, 4, 16], help="concurrent HTTP clients per level")
    p.add_argument("--requests", type=int, default=48, help="HTTP requests per level and input set")
    p.add_argument("--limit", type=int, default=12, help="asterisk prompts to send (0: none)")
    p.add_argument("--streams", type=counts, default=[1, 2, 4, 8, 16, 32], help="concurrent WebSocket streams")
    p.add_argument("--stream-seconds", type=float, default=10.0, help="audio per stream")
    p.add_argument("--max-sessions", type=int, default=64, help="passed to the server (0: its default)")
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    p.add_argument("--show", action="store_true", help="print some references and transcripts to stderr")
    args = p.parse_args(argv)
    if args.requests < 1 or args.limit < 0 or args.stream_seconds <= 0 or args.max_sessions < 0:
        p.error("--requests and --stream-seconds must be positive, --limit and --max-sessions not negative")
    if args.grammar is not None and not args.grammar.is_file():
        p.error(f"--grammar: no file {args.grammar}")
    if args.quick:
        args.clients, args.requests, args.limit = [1, 4], 8, min(args.limit, 4)
        args.streams, args.stream_seconds = [1, 4], 4.0
    models = args.model or ["en-small"]
    sets = {"commands": command_clips(), "prompts": prompt_clips(args.limit)}
    if args.limit and not sets["prompts"]:
        print(f"# prompts skipped: {ASTERISK_TRANSCRIPTS} not found (apt-get install asterisk-core-sounds-en-wav)")
    runs = [(name, name, None, sets) for name in models]
    if args.grammar is not None:
        runs.append((f"{models[0]} + grammar", models[0], args.grammar, {"commands": sets["commands"]}))

    http_rows: List[HttpRow] = []
    stream_rows: List[StreamRow] = []
    problems: List[str] = []
    loads = []
    work_dir = Path(tempfile.mkdtemp(prefix="es-bh-"))
    for index, (label, model, grammar, run_sets) in enumerate(runs):
        port = free_port()
        command = server_command(model, grammar, port, args.max_sessions)
        rows_h, rows_s, found, load = run_server(
            label, command, f"http://127.0.0.1:{port}", run_sets, args, work_dir / f"{index}.log"
        )
        http_rows += rows_h
        stream_rows += rows_s
        problems += found
        loads.append((label, load))

    def load_text(values) -> str:
        return " / ".join(f"{v:.2f}" for v in values)

    print(
        f"{datetime.date.today()}, commit {commit()}, {platform.machine()} {os.cpu_count()} cores, "
        f"aiohttp {package_version('aiohttp')}; load average (1/5/15 min) "
        + "; ".join(f"{label}: {load_text(a)} before, {load_text(b)} after" for label, (a, b) in loads)
    )
    options = shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"    python -m benchmarks.bench_http {options}".rstrip())
    server = shlex.join(["python"] + server_command("MODEL", None, 0, args.max_sessions)[1:])
    inputs = [f"{name}: {len(c)} files, {np.mean([x.seconds for x in c]):.2f} s mean" for name, c in sets.items() if c]
    print(f"server: `{server.replace(':0 ', ':PORT ')}`; " + ", ".join(inputs))
    print()
    print(http_table(http_rows))
    print()
    print(
        f"WebSocket streams at real time (20 ms chunks, command + {GAP_S:g} s noise, {args.stream_seconds:g} s each); "
        f"final latency from speech end + {ENDPOINT_S:g} s endpoint silence sent to `final` received:"
    )
    print()
    print(stream_table(stream_rows))
    print()
    print("\n".join(capacity_lines(stream_rows)))
    if problems:
        print()
        print("\n".join(f"ERROR {problem}" for problem in problems))
    else:
        print("- /metrics: edge_speech_requests_total and edge_speech_refusals_total match what the client saw")
    return 1 if problems or any(r.failures for r in http_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
