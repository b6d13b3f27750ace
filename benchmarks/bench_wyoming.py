"""`edge-speech serve --wyoming` vs wyoming-faster-whisper, the server Home Assistant users run today.

    pip install wyoming-faster-whisper faster-whisper      # the peer; not our dependency
    python -m benchmarks.bench_wyoming [--peer-model DIR] [--limit N] [--concurrency K]   # repo root

Every server runs as its own subprocess on a unix socket and is sent ``describe`` until it answers
``info`` (model loading is not timed). Then K clients (``--concurrency``) of the ``wyoming``
package's ``AsyncUnixClient`` take requests from one queue, a new connection each, as Home
Assistant opens one per pipeline run: ``transcribe`` (language en), ``audio-start``, the WAV in
20 ms ``audio-chunk`` events paced at real time (each chunk written when a microphone would have
delivered it; ``--unpaced`` writes them back to back), ``audio-stop``. Latency is the time from
``audio-stop`` written to ``transcript`` received. Peak RSS is the server's VmHWM from
/proc/PID/status after its last request (its model loading included).

Servers: ours with the default model (en-small), with ``--model en-base``, and with the README's
command grammar (``--grammar recipes/default_model/examples/commands.yaml``; only the command set,
since other speech is rejected by design); the peer with the CTranslate2 Whisper model in
``--peer-model`` (int8 compute, as the peer's default models are, ``--cpu-threads`` one per core,
beam 1 as the peer picks on ARM, where Home Assistant voice runs on a Pi; ``--peer-beam-size 0``
lets it pick), skipped with a message when that directory or the package is missing.

Inputs, each WAV sent at its own rate (both servers convert):
  commands  recipes/default_model/examples/*.wav (reference: the file name), repeated ``--repeat``
            times.
  prompts   Debian's asterisk prompts of command length (at most PROMPT_MAX_WORDS words), read
            and normalised by recipes/default_model/evaluate.py, ``--limit`` of them spread evenly
            over the sorted set; skipped when the package is not installed.

WER is corpus WER (``edge_speech.text.error_rates``) after the digits in a transcript are written
as words, as the references are (Whisper writes "10"). Ratios divide each number by the peer's on
the same inputs in the same run, so they hold on a loaded machine where the absolute times do not.
No network is used: the peer is started with ``--local-files-only`` and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncUnixClient
from wyoming.info import Describe

from edge_speech.text import error_rates
from recipes import DATA
from recipes.default_model.evaluate import ASTERISK_TRANSCRIPTS, asterisk_set
from recipes.default_model.evaluate import _digits_to_words as digits_to_words  # the references' own rule

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "recipes" / "default_model" / "examples"
COMMANDS_GRAMMAR = EXAMPLES / "commands.yaml"
DEFAULT_PEER_MODEL = DATA / "whisper-base"  # where recipes.whisper_model.prepare_whisper puts it
PROMPT_MAX_WORDS = 8
CHUNK_S = 0.020
STARTUP_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 120.0
SERVERS = ("en-small", "en-base", "grammar", "peer")


@dataclasses.dataclass(frozen=True)
class Utterance:
    name: str
    reference: str
    audio: bytes  # 16-bit mono PCM
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.audio) / 2 / self.rate


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    label: str
    command: Tuple[str, ...]  # the listening URI follows it
    sets: Tuple[str, ...]  # which input sets it is fed
    is_peer: bool = False


@dataclasses.dataclass(frozen=True)
class Row:
    server: str
    inputs: str
    requests: int
    failures: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    wer: float
    peak_rss_mb: float


def read_wav(path: Path) -> Tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        return w.readframes(w.getnframes()), w.getframerate()


def command_set(repeat: int) -> List[Utterance]:
    items = []
    for path in sorted(EXAMPLES.glob("*.wav")):
        audio, rate = read_wav(path)
        items.append(Utterance(path.stem, path.stem.replace("_", " "), audio, rate))
    return items * repeat


def prompt_set(limit: int) -> List[Utterance]:
    if not ASTERISK_TRANSCRIPTS.exists():
        return []
    pairs = [(p, text) for p, text in asterisk_set() if len(text.split()) <= PROMPT_MAX_WORDS]
    if limit < len(pairs):
        pairs = [pairs[round(i * len(pairs) / limit)] for i in range(limit)]
    items = []
    for path, text in pairs:
        audio, rate = read_wav(Path(path))
        items.append(Utterance(Path(path).stem, text, audio, rate))
    return items


def server_specs(args: argparse.Namespace, work_dir: Path) -> List[ServerSpec]:
    def ours(*options: str) -> Tuple[str, ...]:
        return (sys.executable, "-m", "edge_speech.cli", "serve", "--log-level", "warning", *options, "--wyoming")

    open_sets = ("commands", "prompts")
    specs = {
        "en-small": ServerSpec("ours en-small", ours(), open_sets),
        "en-base": ServerSpec("ours en-base", ours("--model", "en-base"), open_sets),
        "grammar": ServerSpec("ours en-small + grammar", ours("--grammar", str(COMMANDS_GRAMMAR)), ("commands",)),
        "peer": ServerSpec(
            f"wyoming-faster-whisper {args.peer_model.name} int8 beam {args.peer_beam_size}",
            (
                sys.executable,
                "-m",
                "wyoming_faster_whisper",
                "--model",
                str(args.peer_model),
                "--stt-library",
                "faster-whisper",
                "--compute-type",
                "int8",
                "--cpu-threads",
                str(os.cpu_count() or 1),
                "--beam-size",
                str(args.peer_beam_size),
                "--language",
                "en",
                "--local-files-only",
                "--data-dir",
                str(work_dir),
                "--uri",
            ),
            open_sets,
            is_peer=True,
        ),
    }
    return [specs[name] for name in args.servers]


def peer_missing(args: argparse.Namespace) -> Optional[str]:
    if find_spec("wyoming_faster_whisper") is None or find_spec("faster_whisper") is None:
        return "the wyoming-faster-whisper package is not installed (pip install wyoming-faster-whisper)"
    if not (args.peer_model / "model.bin").exists() or not (args.peer_model / "config.json").exists():
        return f"no CTranslate2 Whisper model (model.bin + config.json) in {args.peer_model}"
    return None


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(socket_path: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering describe")
        if os.path.exists(socket_path):
            try:
                async with AsyncUnixClient(socket_path) as client:
                    await client.write_event(Describe().event())
                    event = await asyncio.wait_for(client.read_event(), 30)
                    if event is not None and event.type == "info":
                        return
            except (OSError, asyncio.TimeoutError):
                pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"server did not answer describe within {STARTUP_TIMEOUT_S:.0f} s")


async def request(socket_path: str, item: Utterance, paced: bool) -> Tuple[float, str]:
    """(seconds from audio-stop written to transcript received, transcript text)."""
    step = int(item.rate * CHUNK_S) * 2
    async with AsyncUnixClient(socket_path) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=item.rate, width=2, channels=1).event())
        start = time.perf_counter()
        for index, offset in enumerate(range(0, len(item.audio), step)):
            if paced:  # a microphone delivers chunk i once its last sample has been spoken
                delay = start + (index + 1) * CHUNK_S - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            chunk = item.audio[offset : offset + step]
            await client.write_event(AudioChunk(rate=item.rate, width=2, channels=1, audio=chunk).event())
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        while True:
            event = await client.read_event()
            if event is None:
                raise ConnectionError("server closed the connection before its transcript")
            if event.type == "error":
                raise RuntimeError(f"server error: {event.data}")
            if Transcript.is_type(event.type):
                return time.perf_counter() - stopped, Transcript.from_event(event).text


async def drive(socket_path: str, items: Sequence[Utterance], concurrency: int, paced: bool):
    """Latencies (s) and (reference, hypothesis) pairs of every successful request, and failures."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    latencies: List[float] = []
    pairs: List[Tuple[str, str]] = []
    failures: List[str] = []

    async def client() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            try:
                latency, text = await asyncio.wait_for(request(socket_path, item, paced), REQUEST_TIMEOUT_S)
            except (OSError, RuntimeError, asyncio.TimeoutError) as err:
                failures.append(f"{item.name}: {err!r}")
                continue
            latencies.append(latency)
            pairs.append((item.reference, digits_to_words(text)))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, pairs, failures


def run_server(
    spec: ServerSpec, sets: Dict[str, List[Utterance]], args: argparse.Namespace, work_dir: Path, index: int
) -> List[Row]:
    socket_path = str(work_dir / f"{index}.sock")
    log_path = work_dir / f"{index}.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        spec.command + (f"unix://{socket_path}",), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    rows = []
    try:
        began = time.perf_counter()
        asyncio.run(wait_ready(socket_path, process))
        print(f"# {spec.label}: ready after {time.perf_counter() - began:.1f} s", file=sys.stderr)
        results = {}
        for name in spec.sets:
            if sets[name]:
                results[name] = asyncio.run(drive(socket_path, sets[name], args.concurrency, not args.unpaced))
        rss = peak_rss_mb(process.pid)
        for name, (latencies, pairs, failures) in results.items():
            for failure in failures:
                print(f"# {spec.label} {name}: {failure}", file=sys.stderr)
            if args.show:
                for reference, hypothesis in pairs:
                    print(f"# {spec.label} {name}: {reference!r} -> {hypothesis!r}", file=sys.stderr)
            ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
            rows.append(
                Row(
                    server=spec.label,
                    inputs=name,
                    requests=len(latencies),
                    failures=len(failures),
                    p50_ms=float(np.percentile(ms, 50)),
                    p90_ms=float(np.percentile(ms, 90)),
                    p99_ms=float(np.percentile(ms, 99)),
                    wer=error_rates(pairs)["wer"] if pairs else float("nan"),
                    peak_rss_mb=rss,
                )
            )
    except RuntimeError as err:
        log.flush()
        tail = log_path.read_text(errors="replace")[-2000:]
        print(f"# {spec.label}: {err}\n{tail}", file=sys.stderr)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    return rows


def ratio(row: Row, peer: Optional[Row], field: str) -> str:
    value, base = getattr(row, field), getattr(peer, field, None)
    if base is None or not np.isfinite(value) or not np.isfinite(base) or base == 0:
        return "–"
    share = value / base
    return f"{share:.3f}×" if 0 < share < 0.1 else f"{share:.2f}×"


def table(rows: Sequence[Row], peer_label: Optional[str]) -> str:
    peers = {row.inputs: row for row in rows if row.server == peer_label}
    lines = [
        "| server / model | inputs | requests | p50 | p90 | p99 | WER | peak RSS | p50 / peer | p90 / peer "
        "| p99 / peer | WER / peer | RSS / peer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        peer = peers.get(row.inputs)
        failed = f" ({row.failures} failed)" if row.failures else ""
        lines.append(
            f"| {row.server} | {row.inputs} | {row.requests}{failed} | {row.p50_ms:.0f} ms | {row.p90_ms:.0f} ms "
            f"| {row.p99_ms:.0f} ms "
            f"| {row.wer:.1%} | {row.peak_rss_mb:.0f} MB "
            + "".join(f"| {ratio(row, peer, field)} " for field in ("p50_ms", "p90_ms", "p99_ms", "wer", "peak_rss_mb"))
            + "|"
        )
    return "\n".join(lines)


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peer-model", type=Path, default=DEFAULT_PEER_MODEL, help="CTranslate2 Whisper model dir")
    p.add_argument(
        "--peer-beam-size",
        type=int,
        default=1,
        help="the peer's beam (default 1: what it picks on ARM, where HA voice runs on a Pi; 5 on x86)",
    )
    p.add_argument("--limit", type=int, default=12, help="asterisk prompts to send (0: none)")
    p.add_argument("--repeat", type=int, default=5, help="times the example commands are sent")
    p.add_argument("--concurrency", type=int, default=1, help="clients streaming at once")
    p.add_argument("--unpaced", action="store_true", help="write the chunks back to back, not at real time")
    p.add_argument("--show", action="store_true", help="print every reference and transcript to stderr")
    p.add_argument(
        "--servers",
        type=lambda s: [name for name in s.split(",") if name],
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )
    args = p.parse_args(argv)
    unknown = set(args.servers) - set(SERVERS)
    if unknown or args.concurrency < 1 or args.limit < 0 or args.repeat < 0:
        p.error(f"unknown servers {sorted(unknown)}" if unknown else "counts must be positive")
    if "peer" in args.servers:
        missing = peer_missing(args)
        if missing:
            print(f"# peer skipped: {missing}", file=sys.stderr)
            args.servers.remove("peer")
    sets = {"commands": command_set(args.repeat), "prompts": prompt_set(args.limit)}
    if not sets["prompts"] and args.limit:
        print(f"# prompts skipped: {ASTERISK_TRANSCRIPTS} not found (apt-get install asterisk-core-sounds-en-wav)")
    work_dir = Path(tempfile.mkdtemp(prefix="es-bw-", dir="/tmp"))  # short: unix socket paths are limited
    specs = server_specs(args, work_dir)
    rows: List[Row] = []
    not_started = []
    try:
        for index, spec in enumerate(specs):
            served = run_server(spec, sets, args, work_dir, index)
            rows += served
            if not served:
                not_started.append(spec.label)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    peer_label = next((spec.label for spec in specs if spec.is_peer), None)
    audio_s = {name: sum(u.seconds for u in items) / max(1, len(items)) for name, items in sets.items()}
    print(
        f"{datetime.date.today()}, commit {commit()}, {platform.machine()} {os.cpu_count()} cores, "
        f"load {' / '.join(f'{v:.2f}' for v in os.getloadavg())} (1/5/15 min); "
        f"wyoming {package_version('wyoming')}, wyoming-faster-whisper {package_version('wyoming-faster-whisper')}, "
        f"faster-whisper {package_version('faster-whisper')}, ctranslate2 {package_version('ctranslate2')}"
    )
    print(
        f"concurrency {args.concurrency}, {'unpaced' if args.unpaced else 'real-time'} 20 ms chunks; "
        + ", ".join(f"{name}: {len(items)} requests, {audio_s[name]:.2f} s mean" for name, items in sets.items())
    )
    print()
    print(table(rows, peer_label))
    for label in not_started:
        print(f"\n{label}: did not start (its log is printed on stderr)")
    return 0 if not not_started and all(row.failures == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
