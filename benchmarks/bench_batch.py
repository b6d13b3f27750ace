"""Batch transcription throughput on Ray (edge_speech.batch) against the in-process paths, same run.

    pip install 'edge-speech[ray]'
    python -m benchmarks.bench_batch [--corpus DIR] [--model en-small|en-base] [--limit N]   # repository root

The corpus is every WAV under ``--corpus`` (default: Debian's asterisk prompts,
``apt-get install asterisk-core-sounds-en-wav``; 8 kHz, resampled by the recognizer like any
input). Each WAV is read once before timing so every mode finds it in the page cache. Modes:

serial      ``Recognizer.transcribe_many(files, workers=1)``: one thread, one model thread.
threads     ``transcribe_many(files, workers=2)``: the in-process thread pool, one model thread each.
ray xN      ``batch.transcribe_dataset(files, workers=N)`` on a local Ray with N CPUs: N actors,
            each loading the model once, batches of ``--batch-size`` files, results written to
            JSONL by the driver. Its wall time counts actor start and model loading; Ray's own
            start (``ray.init``, once per job) is printed apart.
data xN     (``--ray-data``) the same worker class under Ray Data's ``map_batches`` with an actor
            pool of N, transcripts collected in the driver (nothing written): the engine
            edge_speech.batch did not choose, timed from building the dataset to the last row.

``--driver-ceiling N`` instead times the driver alone: N missing files, each failing at once.

Throughput is audio hours per wall-clock hour; ratios are against serial. For Ray, also the
time until its first batch is written (actors started, models loaded) and the throughput after
it (the steady state a long job sees). Every mode's
transcripts are compared with serial's, file by file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from benchmarks.bench_features import cpu_model, load_average, version  # also pins BLAS/OpenMP pools to 1 thread
from edge_speech import audio, batch

REPO = Path(__file__).resolve().parent.parent
ASTERISK = Path("/usr/share/asterisk/sounds/en")


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def row(mode: str, workers: int, files: int, audio_s: float, wall_s: float, serial_wall: Optional[float]) -> dict:
    return {
        "mode": mode,
        "workers": workers,
        "files": files,
        "audio_hours": round(audio_s / 3600, 4),
        "wall_s": round(wall_s, 2),
        "audio_h_per_wall_h": round(audio_s / wall_s, 1),
        "vs_serial": round(serial_wall / wall_s, 2) if serial_wall else 1.0,
    }


class DataTranscriber:
    """Ray Data's stateful map: the same worker class as edge_speech.batch, one per actor."""

    def __init__(self, model: str):
        self.worker = batch.TranscribeWorker(model, 1, "auto", {})

    def __call__(self, rows: dict) -> dict:
        results = self.worker.transcribe([batch.BatchItem(str(f)) for f in rows["file"]])
        return {"file": [r["file"] for r in results], "text": [r["text"] for r in results]}


def ray_data_transcripts(files: List[str], model: str, workers: int, batch_size: int) -> dict:
    """The same job on Ray Data (map_batches with an actor pool): transcripts by file."""
    import ray.data

    dataset = ray.data.from_items([{"file": f} for f in files]).map_batches(
        DataTranscriber,
        fn_constructor_args=(model,),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    return {row["file"]: row["text"] for row in dataset.iter_rows()}


def driver_ceiling(count: int, workers: int) -> int:
    """Files per second the driver and Ray move when the workers have nothing to do."""
    import ray

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        print(
            f"{datetime.date.today()}, commit {commit()}, {os.cpu_count()} cores ({cpu_model()}), ray {version('ray')}"
        )
        for size in (8, 64):
            files = (f"/nonexistent/{i}.wav" for i in range(count))
            with tempfile.TemporaryDirectory() as scratch:
                summary = batch.transcribe_dataset(
                    files, out=Path(scratch) / "out.jsonl", workers=workers, batch_size=size
                )
            rate = summary["files"] / summary["wall_s"]
            print(f"batches of {size:>2}: {summary['files']} files in {summary['wall_s']:.2f} s: {rate:,.0f} files/s")
    finally:
        ray.shutdown()
    return 0


def table(rows: List[dict]) -> str:
    header = (
        f"{'mode':<10} {'workers':>7} {'files':>6} {'audio h':>8} {'wall s':>8} {'audio-h/wall-h':>15} "
        f"{'vs serial':>10} {'first batch s':>14} {'after it: audio-h/wall-h':>25}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['mode']:<10} {r['workers']:>7} {r['files']:>6} {r['audio_hours']:>8.4f} {r['wall_s']:>8.2f} "
            f"{r['audio_h_per_wall_h']:>15.1f} {r['vs_serial']:>9.2f}x "
            f"{r.get('first_batch_s', ''):>14} {r.get('steady_audio_h_per_wall_h', ''):>25}"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ASTERISK, help="folder of WAVs (searched recursively)")
    parser.add_argument("--model", default="en-small", help="embedded model name or bundle path")
    parser.add_argument("--limit", type=int, help="at most this many files")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-workers", type=int, default=os.cpu_count() or 1, help="largest Ray worker count")
    parser.add_argument("--json", type=Path, help="also write the numbers and the machine here")
    parser.add_argument(
        "--driver-ceiling",
        type=int,
        metavar="N",
        help="instead: push N missing files through batch.transcribe_dataset (each fails at once, so only "
        "scheduling and writing are timed), batches of 8 and 64",
    )
    parser.add_argument(
        "--ray-data",
        action="store_true",
        help="also run the job on Ray Data (map_batches, actor pool) at the most workers",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    import ray

    if args.driver_ceiling:
        return driver_ceiling(args.driver_ceiling, args.max_workers)
    if not args.corpus.is_dir():
        print(
            f"no corpus at {args.corpus}: apt-get install asterisk-core-sounds-en-wav, or pass --corpus",
            file=sys.stderr,
        )
        return 2
    files = [item.file for item in batch.iter_inputs(str(args.corpus))][: args.limit]
    audio_s = 0.0
    for path in files:  # into the page cache, and the corpus length
        try:
            samples, rate = audio.read_wav(path)
            audio_s += len(samples) / rate
        except ValueError:
            pass  # an unreadable file costs every mode the same failed read
    recognizer = batch.load_recognizer(args.model, threads=1)
    rows: List[dict] = []
    transcripts = {}
    for mode, workers in (("serial", 1), ("threads", 2)):
        started = time.perf_counter()
        results = recognizer.transcribe_many(files, workers=workers)
        wall = time.perf_counter() - started
        transcripts[mode] = {f: (r.text if not isinstance(r, Exception) else None) for f, r in zip(files, results)}
        rows.append(row(mode, workers, len(files), audio_s, wall, rows[0]["wall_s"] if rows else None))
    serial_wall = rows[0]["wall_s"]
    init_s = {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in range(1, args.max_workers + 1):
            started = time.perf_counter()
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            init_s[workers] = time.perf_counter() - started
            try:
                out = Path(scratch) / f"ray{workers}.jsonl"
                marks: List[dict] = []
                summary = batch.transcribe_dataset(
                    files,
                    args.model,
                    out=out,
                    workers=workers,
                    batch_size=args.batch_size,
                    threads=1,
                    progress=marks.append,
                )
            finally:
                ray.shutdown()
            transcripts[f"ray x{workers}"] = {r["file"]: r["text"] for r in map(json.loads, open(out))}
            rows.append(row(f"ray x{workers}", workers, summary["files"], audio_s, summary["wall_s"], serial_wall))
            first, last = marks[0], marks[-1]  # after the first batch: actors started, models loaded
            steady = (last["audio_hours"] - first["audio_hours"]) / ((last["wall_s"] - first["wall_s"]) / 3600)
            rows[-1]["steady_audio_h_per_wall_h"] = round(steady, 1)
            rows[-1]["first_batch_s"] = round(first["wall_s"], 2)
        if args.ray_data:
            workers = args.max_workers
            ray.init(
                address="local",
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},  # the workers import this module
            )
            try:
                started = time.perf_counter()
                texts = ray_data_transcripts(files, args.model, workers, args.batch_size)
                wall = time.perf_counter() - started
            finally:
                ray.shutdown()
            transcripts[f"ray data x{workers}"] = texts
            rows.append(row(f"data x{workers}", workers, len(texts), audio_s, wall, serial_wall))
    mismatches = {
        mode: sum(texts.get(f) != transcripts["serial"][f] for f in files)
        for mode, texts in transcripts.items()
        if mode != "serial"
    }
    machine = (
        f"{datetime.date.today()}, commit {commit()}, {platform.machine()} {os.cpu_count()} cores ({cpu_model()}), "
        f"load {load_average()}; ray {version('ray')}, onnxruntime {version('onnxruntime')}"
    )
    print(machine)
    print(
        f"{args.model} on {len(files)} files of {args.corpus} ({audio_s / 3600:.3f} audio hours), "
        f"batches of {args.batch_size}; ray.init took "
        + ", ".join(f"{t:.1f} s ({w} CPU{'s' if w > 1 else ''})" for w, t in init_s.items())
        + " (not in the wall times)"
    )
    print()
    print(table(rows))
    print()
    print("transcripts differing from serial's: " + ", ".join(f"{m} {n}" for m, n in mismatches.items()))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine, "model": args.model, "rows": rows, "ray_init_s": init_s}, indent=2)
        )
    return 0 if not any(mismatches.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
