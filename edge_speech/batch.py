"""Many files on Ray: batch transcription and evaluation across the cores of one machine or a cluster.

    from edge_speech import batch
    summary = batch.transcribe_dataset("corpus/", out="transcripts.jsonl")       # every *.wav below
    summary = batch.evaluate_dataset("test.jsonl", "en-base", out="eval.jsonl")  # + corpus CER/WER

Inputs are a JSONL manifest (``{"audio": path, "text": ...}``; relative paths from its folder), a
TSV (``path<TAB>transcript``), a directory (every ``*.wav`` below it), a glob, an audio file, or a
list of any of these. They are listed lazily: the driver keeps the names of the files done (to
skip them, and duplicates) and a bounded window of work in flight, never the listing's rows.

Workers are Ray actors, each loading the bundle once and keeping a :class:`Recognizer`. The
driver alone writes the output, one JSON line per file (the fields of ``edge-speech transcribe
--json`` plus ``duration_s`` and ``error``), appended and flushed batch by batch. That makes a
job resumable (files already in the output are skipped) and exactly-once: a worker that dies
loses only its batches in flight, which the driver gives to a fresh worker; a file that kills a
worker on its own is recorded with an error instead of killing the job. A bad file never fails
the job: its row carries ``error`` and the other fields are None.

Plain actors with a bounded queue, not Ray Data: on a 2-core machine the same worker class under
Ray Data's ``map_batches`` (actor pool of 2) took 8.3 s for the 568 asterisk prompts against 3.1 s
here with en-small, 13.8 s against 10.8 s with en-base (``benchmarks/bench_batch.py
--ray-data``); it wants the listing as a dataset (a list in the driver for ``from_items``); and
exactly-once writes resting on the driver are simpler to prove than on its retries. The same
actors run on a cluster unchanged (``ray_address="auto"``).

Ray is an optional dependency (``pip install 'edge-speech[ray]'``); importing this module never
imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import itertools
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from edge_speech._deps import MissingDependency
from edge_speech.manifest import BundleError
from edge_speech.text import error_rates

__all__ = ["BatchItem", "evaluate_dataset", "iter_inputs", "register_cli", "transcribe_dataset"]

LOG = logging.getLogger(__name__)
RAY_EXTRA = "pip install 'edge-speech[ray]'"
WORKER_NAME_PREFIX = "edge-speech-batch"  # actor names: <prefix>-<job id>-<worker index>-<generation>
# Fields of a row besides "file": those of Transcript.to_dict(), the audio length, and the error.
RESULT_FIELDS = ("text", "words", "intent", "slots", "confidence", "rtf", "duration_s", "error")
_GLOB_CHARACTERS = set("*?[")
_WORKER_DEATHS_PER_FILE = 2  # a lone file that kills this many workers is recorded as failed

InputArg = Union[str, os.PathLike, Iterable[Union[str, os.PathLike, Tuple[str, Optional[str]]]]]


@dataclasses.dataclass(frozen=True)
class BatchItem:
    """One input: an audio path and, from a manifest or TSV, its reference transcript."""

    file: str
    text: Optional[str] = None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependency(f"batch transcription runs on Ray: {RAY_EXTRA}") from None
    return ray


# -- inputs -----------------------------------------------------------------------------------
def iter_inputs(inputs: InputArg) -> Iterator[BatchItem]:
    """The audio files of ``inputs``, lazily, in a stable order (directories walked sorted).

    A string or path is a ``.jsonl`` manifest, a ``.tsv`` file, a directory, a glob, or one
    audio file; a list may mix them, and may hold ``(path, transcript)`` pairs."""
    if isinstance(inputs, (str, os.PathLike)):
        yield from _iter_one(os.fspath(inputs))
        return
    for entry in inputs:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not isinstance(entry[0], (str, os.PathLike)):
                raise ValueError(f"an input pair must be (audio path, transcript), got {entry!r}")
            yield BatchItem(os.fspath(entry[0]), entry[1])
        elif isinstance(entry, (str, os.PathLike)):
            yield from _iter_one(os.fspath(entry))
        else:
            raise TypeError(f"inputs must be paths, globs, manifests or (path, transcript) pairs, got {entry!r}")


def _iter_one(spec: str) -> Iterator[BatchItem]:
    if spec.endswith(".jsonl"):
        yield from _iter_jsonl(spec)
    elif spec.endswith(".tsv"):
        yield from _iter_tsv(spec)
    elif os.path.isdir(spec):
        for folder, subfolders, names in os.walk(spec):
            subfolders.sort()
            for name in sorted(names):
                if name.lower().endswith(".wav"):
                    yield BatchItem(os.path.join(folder, name))
    elif _GLOB_CHARACTERS & set(spec):
        for path in glob.iglob(spec, recursive=True):
            if os.path.isfile(path):
                yield BatchItem(path)
    else:  # one audio file; a missing one becomes an error row like any other bad file
        yield BatchItem(spec)


def _iter_jsonl(path: str) -> Iterator[BatchItem]:
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            audio_path = row.get("audio", row.get("audio_filepath"))
            text = row.get("text")
            if not isinstance(audio_path, str) or not (text is None or isinstance(text, str)):
                raise ValueError(f'{path}:{number}: needs a string "audio" (or "audio_filepath") and a string "text"')
            yield BatchItem(os.path.join(folder, audio_path), text)


def _iter_tsv(path: str) -> Iterator[BatchItem]:
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            audio_path, tab, text = line.partition("\t")
            if not tab or not audio_path:
                raise ValueError(f"{path}:{number}: expected 'audio path<TAB>transcript'")
            yield BatchItem(os.path.join(folder, audio_path), text)


# -- the worker -------------------------------------------------------------------------------
def _error_text(err: BaseException) -> str:
    """A file's error for its row: the message of an input error, the kind too for anything else."""
    message = str(err).strip() or "(no message)"
    if isinstance(err, (ValueError, TypeError, OSError)):
        return message
    return f"{type(err).__name__}: {message}"


def _failed_row(item: BatchItem, error: str) -> dict:
    return {"file": item.file, **{field: None for field in RESULT_FIELDS}, "error": error}


def _is_embedded(name: str) -> bool:
    from edge_speech.recognizer import EMBEDDED_MODELS

    return name in EMBEDDED_MODELS


def load_recognizer(bundle: Optional[str], threads: Optional[int] = None, backend: str = "auto"):
    """The Recognizer a worker keeps: None is the embedded default model, an embedded model's
    name (``en-small``, ``en-base``) that model, anything else a bundle path."""
    from edge_speech.recognizer import EMBEDDED_MODELS, Recognizer

    if bundle is None or bundle in EMBEDDED_MODELS:
        return Recognizer.default(bundle, threads=threads, backend=backend)
    return Recognizer.from_bundle(bundle, threads=threads, backend=backend)


class TranscribeWorker:
    """What each Ray actor runs: one Recognizer, loaded once, transcribing batches of files."""

    def __init__(self, bundle: Optional[str], threads: Optional[int], backend: str, options: Dict[str, Any]):
        self.recognizer = load_recognizer(bundle, threads, backend)
        self.options = options

    def transcribe(self, items: Sequence[BatchItem]) -> List[dict]:
        rows = []
        for item in items:
            try:
                result = self.recognizer.transcribe(item.file, **self.options)
            except Exception as err:  # recorded in the file's row; the batch goes on
                rows.append(_failed_row(item, _error_text(err)))
                continue
            rows.append(
                {"file": item.file, **result.to_dict(), "duration_s": round(result.duration_s, 3), "error": None}
            )
        return rows


# -- the output -------------------------------------------------------------------------------
def _read_done(out: Path) -> Set[str]:
    """The files already in ``out``. A last line cut short (the driver killed mid-write) is cut
    off the file, so its file runs again."""
    done: Set[str] = set()
    if not out.exists():
        return done
    good_bytes = 0
    with open(out, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.endswith(b"\n"):
                break
            try:
                row = json.loads(raw)
                file = row["file"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f'{out}:{number}: not a row of a batch output (a JSON object with "file")') from None
            done.add(file)
            good_bytes += len(raw)
    if good_bytes != out.stat().st_size:
        LOG.warning("batch: %s ends in a partial line (an interrupted write); it is dropped and its file redone", out)
        with open(out, "r+b") as handle:
            handle.truncate(good_bytes)
    return done


def _read_rows(out: Path) -> Iterator[dict]:
    with open(out, encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _write_parquet(out: Path, path: "str | os.PathLike", chunk_rows: int = 10_000) -> None:
    """Every row of the JSONL output as Parquet, streamed in chunks under one fixed schema."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependency(f"Parquet output needs pyarrow: {RAY_EXTRA}") from None
    word = pa.struct(
        [("text", pa.string()), ("start", pa.float64()), ("end", pa.float64()), ("confidence", pa.float64())]
    )
    fields = [
        ("file", pa.string()),
        ("text", pa.string()),
        ("words", pa.list_(word)),
        ("intent", pa.string()),
        ("slots", pa.map_(pa.string(), pa.string())),
        ("confidence", pa.float64()),
        ("rtf", pa.float64()),
        ("duration_s", pa.float64()),
        ("error", pa.string()),
        ("reference", pa.string()),
    ]
    schema = pa.schema(fields)
    rows = _read_rows(out)
    with pq.ParquetWriter(os.fspath(path), schema) as writer:
        while True:
            chunk = list(itertools.islice(rows, chunk_rows))
            if not chunk:
                break
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


# -- the driver -------------------------------------------------------------------------------
@dataclasses.dataclass
class _Progress:
    started: float
    skipped: int = 0
    files: int = 0
    failed: int = 0
    audio_s: float = 0.0
    worker_deaths: int = 0
    last_log: float = 0.0

    def summary(self, workers: int) -> dict:
        wall = time.perf_counter() - self.started
        audio_hours = self.audio_s / 3600
        return {
            "files": self.files,
            "failed": self.failed,
            "skipped": self.skipped,
            "audio_hours": round(audio_hours, 6),
            "wall_s": round(wall, 3),
            "audio_hours_per_wall_hour": round(audio_hours / (wall / 3600), 2) if wall > 0 else None,
            "workers": workers,
            "worker_deaths": self.worker_deaths,
        }


def _connect(ray, ray_address: Optional[str], workers: Optional[int]) -> bool:
    """Joins or starts Ray; True when this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")  # no network beyond the cluster
    if ray_address in (None, "local"):
        ray.init(
            address="local" if ray_address == "local" else None,
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
        )
    else:
        ray.init(address=ray_address, log_to_driver=False)
    return True


def _run(
    inputs: InputArg,
    bundle: "str | os.PathLike | None",
    out: "str | os.PathLike",
    ray_address: Optional[str],
    workers: Optional[int],
    batch_size: int,
    threads: Optional[int],
    backend: str,
    options: Dict[str, Any],
    parquet: "str | os.PathLike | None",
    progress: Optional[Callable[[dict], None]],
    evaluate: bool,
) -> dict:
    ray = _import_ray()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    bundle = None if bundle is None else os.fspath(bundle)
    if (
        bundle is not None
        and ray_address in (None, "local")
        and not _is_embedded(bundle)
        and not os.path.exists(bundle)
    ):
        raise ValueError(f"bundle {bundle!r}: no such file or directory, and not an embedded model's name")
    job = _Job(
        bundle=bundle,
        threads=threads,
        backend=backend,
        options=options,
        batch_size=batch_size,
        evaluate=evaluate,
    )
    out = Path(out)
    done = _read_done(out)
    started_ray = _connect(ray, ray_address, workers)
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        state = _Progress(started=time.perf_counter())
        with open(out, "a", encoding="utf-8") as sink:
            _drive(ray, job, iter_inputs(inputs), workers, done, sink, state, progress)
        summary = state.summary(workers)
    finally:
        if started_ray:
            ray.shutdown()
    LOG.info("batch: done: %s", json.dumps(summary))
    if parquet is not None:
        _write_parquet(out, parquet)
    return summary


@dataclasses.dataclass(frozen=True)
class _Job:
    bundle: Optional[str]
    threads: Optional[int]
    backend: str
    options: Dict[str, Any]
    batch_size: int
    evaluate: bool


@dataclasses.dataclass
class _Batch:
    items: List[BatchItem]
    worker_deaths: int = 0  # workers that died while it was in flight


_IN_FLIGHT_PER_WORKER = 2  # one running, one queued: a worker never waits for the driver


def _drive(ray, job: _Job, listing: Iterator[BatchItem], workers: int, done, sink, state: _Progress, progress) -> None:
    """The scheduling loop: a bounded number of batches in flight per worker, results written as they come."""
    worker_class = ray.remote(num_cpus=1, max_restarts=0)(TranscribeWorker)
    job_id = uuid.uuid4().hex[:8]
    generations = [0] * workers

    def start(index: int):
        name = f"{WORKER_NAME_PREFIX}-{job_id}-{index}-{generations[index]}"
        generations[index] += 1
        return worker_class.options(name=name).remote(job.bundle, job.threads, job.backend, job.options)

    actors = [start(i) for i in range(workers)]
    seen = set(done)
    retry: List[_Batch] = []  # given out before new files
    in_flight: Dict[Any, Tuple[int, Any, _Batch]] = {}  # ObjectRef -> (worker index, actor, batch)
    load = [0] * workers

    def next_batch() -> Optional[_Batch]:
        if retry:
            return retry.pop(0)
        items: List[BatchItem] = []
        for item in listing:
            if item.file in seen:  # done in an earlier run, or listed twice
                state.skipped += item.file in done
                continue
            if job.evaluate and item.text is None:
                raise ValueError(
                    f"{item.file}: evaluation needs a transcript for every file (a JSONL manifest with "
                    '"text", a TSV, or (path, transcript) pairs)'
                )
            seen.add(item.file)
            items.append(item)
            if len(items) == job.batch_size:
                break
        return _Batch(items) if items else None

    def fill() -> None:
        for index in range(workers):
            while load[index] < _IN_FLIGHT_PER_WORKER:
                batch = next_batch()
                if batch is None:
                    return
                actor = actors[index]
                in_flight[actor.transcribe.remote(batch.items)] = (index, actor, batch)
                load[index] += 1

    try:
        fill()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            index, actor, batch = in_flight.pop(ready[0])
            load[index] -= 1
            try:
                rows = ray.get(ready[0])
            except ray.exceptions.RayActorError as err:
                if getattr(err, "actor_init_failed", False):  # its constructor raised: every worker would
                    reason = [line for line in str(err).splitlines() if line.strip()][-1:]  # the worker's exception
                    raise BundleError(
                        f"a batch worker could not load the bundle {job.bundle!r}: {' '.join(reason).strip()}"
                    ) from None
                if actors[index] is actor:  # the first of its batches to come back: replace it
                    LOG.warning("batch: worker %d died (%s); its batches go to a fresh one", index, type(err).__name__)
                    state.worker_deaths += 1
                    actors[index] = start(index)
                rows = _after_worker_death(batch, retry)
            if rows:
                if job.evaluate:
                    references = {item.file: item.text for item in batch.items}
                    rows = [{**row, "reference": references[row["file"]]} for row in rows]
                _write(sink, rows, done, state)
                if progress is not None:
                    progress(state.summary(workers))
            _log_progress(state, workers)
            fill()
    finally:
        for actor in actors:
            ray.kill(actor)


def _after_worker_death(batch: _Batch, retry: List[_Batch]) -> List[dict]:
    """Requeues a lost batch, file by file so that a file that kills workers is found alone; such a
    file, after killing ``_WORKER_DEATHS_PER_FILE`` workers, gets an error row instead."""
    deaths = batch.worker_deaths + 1
    if len(batch.items) > 1:
        retry.extend(_Batch([item], deaths) for item in batch.items)
    elif deaths < _WORKER_DEATHS_PER_FILE:
        retry.append(_Batch(batch.items, deaths))
    else:
        return [_failed_row(batch.items[0], f"the worker process died {deaths} times transcribing it")]
    return []


def _log_progress(state: _Progress, workers: int) -> None:
    now = time.perf_counter()
    if now - state.last_log < 10:
        return
    state.last_log = now
    summary = state.summary(workers)
    LOG.info(
        "batch: %d files (%d failed, %d skipped), %.3f audio hours in %.0f s: %s audio-h per wall-h",
        summary["files"],
        summary["failed"],
        summary["skipped"],
        summary["audio_hours"],
        summary["wall_s"],
        summary["audio_hours_per_wall_hour"],
    )


def _write(sink, rows: List[dict], done: Set[str], state: _Progress) -> None:
    fresh = [row for row in rows if row["file"] not in done]  # never a file twice, whatever comes back
    for row in fresh:
        done.add(row["file"])
        state.files += 1
        state.failed += row["error"] is not None
        state.audio_s += row["duration_s"] or 0.0
    sink.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in fresh))
    sink.flush()


# -- the entry points -------------------------------------------------------------------------
def transcribe_dataset(
    inputs: InputArg,
    bundle: "str | os.PathLike | None" = None,
    *,
    out: "str | os.PathLike",
    ray_address: Optional[str] = None,
    workers: Optional[int] = None,
    batch_size: int = 8,
    threads: Optional[int] = 1,
    backend: str = "auto",
    parquet: "str | os.PathLike | None" = None,
    progress: Optional[Callable[[dict], None]] = None,
    **options: Any,
) -> dict:
    """Transcribes every file of ``inputs`` on Ray into the JSONL file ``out``; returns a summary.

    ``bundle``: None (the embedded default model), an embedded model's name (``"en-base"``) or a
    bundle path. ``ray_address``: None (Ray's default: ``RAY_ADDRESS``, else a new local Ray),
    ``"local"``, ``"auto"`` (the running cluster) or an address; a Ray already initialised in
    this process is used as it is. ``workers``: actors (default: the cluster's CPUs), each with
    ``threads`` model threads. ``options`` go to :meth:`Recognizer.transcribe` (``beam``,
    ``lm``, ``hotwords``, ``grammar``...). ``parquet``: also write every row of ``out`` there at
    the end. ``progress(summary)`` is called in this process after each batch is written.

    The summary: ``files`` transcribed now, ``failed`` among them, ``skipped`` (already in
    ``out``), ``audio_hours``, ``wall_s``, ``audio_hours_per_wall_hour``, ``workers`` and
    ``worker_deaths``."""
    return _run(
        inputs, bundle, out, ray_address, workers, batch_size, threads, backend, options, parquet, progress, False
    )


def evaluate_dataset(
    inputs: InputArg,
    bundle: "str | os.PathLike | None" = None,
    *,
    out: "str | os.PathLike",
    ray_address: Optional[str] = None,
    workers: Optional[int] = None,
    batch_size: int = 8,
    threads: Optional[int] = 1,
    backend: str = "auto",
    parquet: "str | os.PathLike | None" = None,
    progress: Optional[Callable[[dict], None]] = None,
    normalize: bool = True,
    **options: Any,
) -> dict:
    """:func:`transcribe_dataset` over files with transcripts, plus corpus CER and WER.

    Rows carry ``reference`` besides the transcription. The summary adds ``cer``, ``wer``,
    ``utterances``, ``chars`` and ``words`` of :func:`edge_speech.text.error_rates` over every
    file of the output (this run's and earlier ones'), and ``unscored``: files that failed or
    whose row has no reference. Failed files are left out of the rates."""
    summary = _run(
        inputs, bundle, out, ray_address, workers, batch_size, threads, backend, options, parquet, progress, True
    )
    unscored = [0]

    def scored_pairs() -> Iterator[Tuple[str, str]]:  # streamed from the output: every run's rows
        for row in _read_rows(Path(out)):
            if row.get("error") is not None or row.get("reference") is None or row.get("text") is None:
                unscored[0] += 1
                continue
            yield row["reference"], row["text"]

    rates = error_rates(scored_pairs(), normalize=normalize)
    return {**summary, **rates, "unscored": unscored[0]}


# -- the command line -------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    """Adds ``edge-speech batch transcribe|evaluate`` to the CLI's subparsers."""
    from edge_speech.recognizer import EMBEDDED_MODELS

    batch = subparsers.add_parser(
        "batch", help="transcribe or evaluate many files on Ray (pip install 'edge-speech[ray]')"
    )
    verbs = batch.add_subparsers(dest="batch_command", required=True)
    for verb, help_text in (
        ("transcribe", "transcribe a corpus into a JSONL file (resumable: files already in it are skipped)"),
        ("evaluate", "transcribe a corpus with transcripts and report CER and WER"),
    ):
        p = verbs.add_parser(verb, help=help_text)
        p.add_argument(
            "inputs",
            nargs="+",
            help='JSONL manifests ({"audio": ..., "text": ...}), TSV files (path<TAB>transcript), '
            "directories (every *.wav below), globs (quote them) or audio files",
        )
        p.add_argument("--out", required=True, help="JSONL output, appended to; files already in it are skipped")
        p.add_argument("--parquet", help="also write every row of --out as Parquet here at the end (needs pyarrow)")
        which = p.add_mutually_exclusive_group()
        which.add_argument("--bundle", help="bundle directory, .zip or .onnx (default: an embedded model, see --model)")
        which.add_argument("--model", choices=sorted(EMBEDDED_MODELS), help="embedded model (default: en-small)")
        p.add_argument(
            "--ray-address",
            help="'local' (a new Ray on this machine), 'auto' (the running cluster) or host:port "
            "(default: RAY_ADDRESS, else a new local Ray)",
        )
        p.add_argument("--workers", type=int, help="worker actors (default: the cluster's CPUs)")
        p.add_argument("--batch-size", type=int, default=8, help="files per task (default: 8)")
        p.add_argument("--threads", type=int, default=1, help="model threads per worker (default: 1)")
        p.add_argument("--backend", default="auto", choices=["auto", "onnx", "tflite"])
        p.add_argument("--beam", type=int, help="beam width; 1 is greedy decoding (default: the bundle's)")
        p.add_argument("--no-lm", action="store_true", help="do not use the bundle's own LM")
        p.set_defaults(run=run_cli, batch_verb=verb)


def run_cli(args: argparse.Namespace) -> int:
    """The handler of ``edge-speech batch``: runs the job and prints its summary as JSON."""
    options: Dict[str, Any] = {}
    if args.beam is not None:
        options["beam"] = args.beam
    if args.no_lm:
        options["lm"] = False
    entry = evaluate_dataset if args.batch_verb == "evaluate" else transcribe_dataset
    summary = entry(
        args.inputs,
        args.bundle or args.model,
        out=args.out,
        ray_address=args.ray_address,
        workers=args.workers,
        batch_size=args.batch_size,
        threads=args.threads,
        backend=args.backend,
        parquet=args.parquet,
        **options,
    )
    print(json.dumps(summary))
    return 0
