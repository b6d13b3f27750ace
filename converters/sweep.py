"""Conversion sweeps on Ray: every combination of prune ratio, quantization scheme, calibration size
and target through the one :func:`~edge_speech.converters.convert` path, in parallel.

    from edge_speech.converters.sweep import sweep
    result = sweep(model, example, feature_config, tokens, calib="calib/", eval=pairs,
                   search={"prune": [None, 0.3, 0.5], "quantize": ["int8", "float"], "target": ["rpi4"]},
                   constraints={"max_bytes": 2_000_000, "max_cer_loss": 0.02}, out="sweep/")
    result.best["rpi4"]["bundle"]

Each trial is one ``convert()`` call (``calib_size`` is its ``max_calibration``) writing its
bundle under ``out/trials/``; its row holds the settings, CER and WER of the final ONNX model on
``eval`` and the ONNX model's bytes (from the conversion report), its MACs, and its real-time factor
measured by loading the bundle in the runtime's :class:`Recognizer` (one thread) and transcribing
the evaluation audio (the calibration audio without ``eval``). A trial that raises gets a row
with its ``error``; the sweep goes on. ``out`` receives ``results.csv`` and ``results.json``
(every trial), ``pareto.json`` (trials no other beats on both CER and size, and on both CER and
MACs), ``pareto.png`` and ``best.json``: per target, the lowest-CER trial within the
constraints (``max_bytes``, ``max_macs``, ``max_rtf``, ``max_cer_loss``: CER points above the
unconverted model's).

The trials are plain Ray tasks, not Ray Tune: a grid of full conversions needs neither Tune's
search algorithms nor its early stopping, and on a 2-core machine Tune took 7.5 s for 4 trivial
trials against 0.4 s as tasks, writing experiment folders besides. The model is pickled to the
workers, so its class must be importable there: a local Ray started here gets this process's
``sys.path``; on a cluster, install the model's package on the nodes (or use a Ray
``runtime_env``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["SEARCH_KEYS", "SweepResult", "add_sweep_arguments", "pareto_front", "read_sweep_file", "sweep"]

LOG = logging.getLogger(__name__)
RAY_EXTRA = "pip install 'edge-speech[ray]'"
# The searched settings and what a search without them uses (convert()'s own defaults).
SEARCH_KEYS = {"prune": None, "quantize": "int8", "calib_size": 64, "target": None}
CONSTRAINT_KEYS = ("max_bytes", "max_macs", "max_rtf", "max_cer_loss")
COLUMNS = (
    "trial",
    "prune",
    "quantize",
    "calib_size",
    "target",
    "cer",
    "wer",
    "cer_loss",
    "bytes",
    "macs",
    "rtf",
    "seconds",
    "bundle",
    "error",
)
_FRONT_AXES = ("bytes", "macs")
_SWEEP_FILE_KEYS = {"search", "constraints", "ray_address", "workers"}
_MAX_SWEEP_FILE_CHARS = 100_000
_MAX_SWEEP_FILE_NODES = 10_000


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Every trial's row, the Pareto fronts (trial ids, by axis), the best row per target, and
    the files written."""

    rows: Tuple[dict, ...]
    pareto: Mapping[str, Tuple[str, ...]]
    best: Mapping[str, Optional[dict]]
    files: Mapping[str, str]

    def row(self, trial: str) -> dict:
        return next(row for row in self.rows if row["trial"] == trial)

    def to_dict(self) -> dict:
        return {
            "trials": len(self.rows),
            "failed": sum(row["error"] is not None for row in self.rows),
            "pareto": {axis: list(ids) for axis, ids in self.pareto.items()},
            "best": dict(self.best),
            "files": dict(self.files),
        }


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(f"conversion sweeps run on Ray: {RAY_EXTRA}") from None
    return ray


# -- the grid ---------------------------------------------------------------------------------
def _grid(search: Mapping[str, Sequence[Any]]) -> List[dict]:
    unknown = sorted(set(search) - set(SEARCH_KEYS))
    if unknown:
        raise ValueError(f"search keys must be among {sorted(SEARCH_KEYS)}, got {unknown}")
    axes = {}
    for key, default in SEARCH_KEYS.items():
        values = search.get(key, [default])
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"search[{key!r}] must be a non-empty list of values, got {values!r}")
        axes[key] = list(values)
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def _trial_id(number: int, settings: Mapping[str, Any]) -> str:
    prune = "none" if settings["prune"] is None else f"{settings['prune']:g}"
    quantize = settings["quantize"] or "float"
    return f"t{number:03d}-prune{prune}-{quantize}-calib{settings['calib_size']}-{settings['target'] or 'any'}"


# -- one trial (runs in a Ray worker) ---------------------------------------------------------
def run_trial(
    trial: str,
    settings: Mapping[str, Any],
    model,
    example_input,
    feature_config,
    tokens: Sequence[str],
    calib,
    evaluation,
    out: str,
    convert_options: Mapping[str, Any],
) -> dict:
    """One conversion and its measurements as a row; an exception becomes the row's ``error``."""
    started = time.perf_counter()
    row: Dict[str, Any] = {column: None for column in COLUMNS}
    row.update(trial=trial, **settings)
    try:
        import torch

        from edge_speech.converters import convert

        torch.set_num_threads(1)  # one CPU per trial: Ray gives each task one
        quantize = settings["quantize"]
        report = convert(
            model,
            example_input,
            feature_config,
            tokens,
            calib=calib,
            eval=evaluation,
            prune=settings["prune"],
            quantize=None if quantize in (None, "float") else quantize,
            max_calibration=int(settings["calib_size"]),
            target=settings["target"],
            out=out,
            name=trial,
            **convert_options,
        )
        row.update(_measurements(report, evaluation, calib))
    except Exception as err:  # the trial's row says what went wrong; the sweep goes on
        row["error"] = f"{type(err).__name__}: {err}"
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _measurements(report, evaluation, calib) -> dict:
    steps = report.steps
    scored = [step for step in steps if step.get("cer") is not None]
    source = report.step("source")
    pruned = next((step for step in steps if step["step"] == "prune"), None)
    onnx_steps = [step for step in steps if step["step"] in ("export_onnx", "quantize")]
    cer = scored[-1]["cer"] if scored else None
    return {
        "cer": cer,
        "wer": scored[-1]["wer"] if scored else None,
        "cer_loss": round(cer - source["cer"], 4) if cer is not None and source.get("cer") is not None else None,
        "bytes": onnx_steps[-1]["bytes"] if onnx_steps else None,  # the model without the manifest it embeds
        "macs": pruned["macs_after"] if pruned else source["macs"],
        "rtf": _measured_rtf(report.bundle, evaluation, calib),
        "bundle": report.bundle,
    }


def _measured_rtf(bundle: str, evaluation, calib) -> Optional[float]:
    """Processing over audio seconds of the bundle in the runtime, one thread, on the evaluation
    audio (else up to 8 calibration items)."""
    from edge_speech import Recognizer

    recognizer = Recognizer.from_bundle(bundle, threads=1)
    if evaluation:
        audio = [item for item, _ in evaluation]
    elif calib is not None and not isinstance(calib, (str, os.PathLike)):
        audio = list(itertools.islice(calib, 8))
    elif calib is not None:
        audio = sorted(str(p) for p in Path(calib).glob("*.wav"))[:8]
    else:
        return None
    rate = recognizer.manifest.sample_rate
    busy = seconds = 0.0
    for item in audio:
        result = recognizer.transcribe(item if isinstance(item, (str, os.PathLike)) else (item, rate))
        busy += result.rtf * result.duration_s
        seconds += result.duration_s
    return round(busy / seconds, 5) if seconds else None


# -- the results ------------------------------------------------------------------------------
def pareto_front(rows: Sequence[dict], x: str = "bytes", y: str = "cer") -> List[dict]:
    """The rows no other row beats, minimising both ``x`` and ``y`` (rows missing either, or
    failed, are left out). Rows with equal values are all kept."""
    usable = sorted(
        (row for row in rows if row.get("error") is None and row.get(x) is not None and row.get(y) is not None),
        key=lambda row: (row[x], row[y]),
    )
    front: List[dict] = []
    best_y = best_x = None
    for row in usable:  # by x ascending: a row is on the front when its y beats every smaller x's
        if best_y is None or row[y] < best_y:
            front.append(row)
            best_y, best_x = row[y], row[x]
        elif row[y] == best_y and row[x] == best_x:  # the same point twice
            front.append(row)
    return front


def _within(row: dict, constraints: Mapping[str, float]) -> bool:
    if row["error"] is not None or row["cer"] is None:
        return False
    limits = {"max_bytes": "bytes", "max_macs": "macs", "max_rtf": "rtf", "max_cer_loss": "cer_loss"}
    for key, limit in constraints.items():
        value = row[limits[key]]
        if value is None or value > limit:
            return False
    return True


def _best_per_target(rows: Sequence[dict], constraints: Mapping[str, float]) -> Dict[str, Optional[dict]]:
    best: Dict[str, Optional[dict]] = {}
    for row in rows:
        target = row["target"] or "any"
        best.setdefault(target, None)
        if not _within(row, constraints):
            continue
        current = best[target]
        if current is None or (row["cer"], row["bytes"] or 0) < (current["cer"], current["bytes"] or 0):
            best[target] = row
    return best


def _plot(rows: Sequence[dict], fronts: Mapping[str, List[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(_FRONT_AXES), figsize=(11, 4.2))
    labels = {"bytes": "model size (KB)", "macs": "MACs per example input (M)"}
    scales = {"bytes": 1e3, "macs": 1e6}
    good = [row for row in rows if row["error"] is None and row["cer"] is not None]
    for axis, name in zip(axes, _FRONT_AXES):
        schemes = sorted({row["quantize"] or "float" for row in good})
        for scheme in schemes:
            points = [row for row in good if (row["quantize"] or "float") == scheme and row[name] is not None]
            axis.scatter([r[name] / scales[name] for r in points], [r["cer"] for r in points], label=scheme, alpha=0.7)
        front = fronts[name]
        axis.step(
            [r[name] / scales[name] for r in front],
            [r["cer"] for r in front],
            "k--",
            where="post",
            label="Pareto front",
        )
        axis.set_xlabel(labels[name])
        axis.set_ylabel("CER")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    failed = len(rows) - len(good)
    figure.suptitle(f"Conversion sweep: {len(good)} trials" + (f" ({failed} failed, not shown)" if failed else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


def _write_results(rows: List[dict], constraints: Mapping[str, float], out: Path) -> SweepResult:
    fronts = {axis: pareto_front(rows, x=axis, y="cer") for axis in _FRONT_AXES}
    best = _best_per_target(rows, constraints)
    files = {
        name: str(out / name) for name in ("results.csv", "results.json", "pareto.json", "best.json", "pareto.png")
    }
    with open(files["results.csv"], "w", newline="", encoding="utf-8") as sink:
        writer = csv.DictWriter(sink, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    Path(files["results.json"]).write_text(json.dumps(rows, indent=2, default=float))
    pareto = {axis: tuple(row["trial"] for row in front) for axis, front in fronts.items()}
    Path(files["pareto.json"]).write_text(json.dumps({f"cer_vs_{axis}": list(ids) for axis, ids in pareto.items()}))
    Path(files["best.json"]).write_text(json.dumps({"constraints": dict(constraints), "best": best}, indent=2))
    _plot(rows, fronts, Path(files["pareto.png"]))
    return SweepResult(tuple(rows), pareto, best, files)


# -- the sweep --------------------------------------------------------------------------------
def _connect(ray, ray_address: Optional[str], workers: Optional[int]) -> bool:
    """Joins or starts Ray; True when this call started it. A local Ray gets this process's
    ``sys.path``, so the workers unpickle a model whose class lives beside the caller."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    if ray_address in (None, "local"):
        search_path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        ray.init(
            address="local" if ray_address == "local" else None,
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": search_path}},
        )
    else:
        ray.init(address=ray_address, log_to_driver=False)
    return True


def sweep(
    model,
    example_input,
    cfg,
    tokens: Sequence[str],
    *,
    calib=None,
    eval: Optional[Sequence[Tuple[Any, str]]] = None,
    search: Mapping[str, Sequence[Any]],
    out: "str | os.PathLike",
    constraints: Optional[Mapping[str, float]] = None,
    ray_address: Optional[str] = None,
    workers: Optional[int] = None,
    convert_options: Optional[Mapping[str, Any]] = None,
) -> SweepResult:
    """Runs every combination of ``search`` (keys ``prune``, ``quantize`` — ``"float"`` or None
    for none —, ``calib_size``, ``target``; a missing key takes convert()'s default) as one
    :func:`convert` call on Ray, and writes the table, the Pareto fronts, the plot and the best
    trial per target under ``constraints`` to ``out``. ``model``, ``example_input``, ``cfg``,
    ``tokens``, ``calib`` and ``eval`` are those of :func:`convert`; ``convert_options`` its
    other keyword arguments (``formats``, ``finetune_epochs``, ...). ``ray_address`` and
    ``workers`` as in :func:`edge_speech.batch.transcribe_dataset`; each trial takes one CPU."""
    constraints = dict(constraints or {})
    unknown = sorted(set(constraints) - set(CONSTRAINT_KEYS))
    if unknown:
        raise ValueError(f"constraints must be among {list(CONSTRAINT_KEYS)}, got {unknown}")
    grid = _grid(search)
    options = dict(convert_options or {})
    clash = sorted(set(options) & {*SEARCH_KEYS, "max_calibration", "out", "name", "calib", "eval"})
    if clash:
        raise ValueError(f"convert_options may not set {clash}: the sweep sets them per trial")
    if calib is not None and not isinstance(calib, (str, os.PathLike)):
        calib = list(calib)  # shipped to every trial once
    evaluation = list(eval) if eval is not None else None
    ray = _import_ray()
    out = Path(out).absolute()  # the workers write there, whatever their working directory
    (out / "trials").mkdir(parents=True, exist_ok=True)
    started_ray = _connect(ray, ray_address, workers)
    try:
        shared = [ray.put(value) for value in (model, example_input, cfg, list(tokens), calib, evaluation)]
        task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        pending = {}
        for number, settings in enumerate(grid):
            trial = _trial_id(number, settings)
            ref = task.remote(trial, settings, *shared, str(out / "trials" / trial), options)
            pending[ref] = (number, trial, settings)
        rows: List[Optional[dict]] = [None] * len(grid)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            number, trial, settings = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except ray.exceptions.RayError as err:  # the worker itself died (out of memory, a crash)
                row = {column: None for column in COLUMNS}
                row.update(trial=trial, **settings, error=f"{type(err).__name__}: {err}")
            rows[number] = row
            LOG.info(
                "sweep: %s: %s",
                trial,
                row["error"] or f"CER {row['cer']}, {row['bytes']} bytes, {row['macs']} MACs, RTF {row['rtf']}",
            )
    finally:
        if started_ray:
            ray.shutdown()
    return _write_results([row for row in rows if row is not None], constraints, out)


# -- the command line -------------------------------------------------------------------------
def read_sweep_file(path: "str | os.PathLike") -> dict:
    """A sweep file: YAML with ``search`` (required), ``constraints``, ``ray_address``, ``workers``."""
    from edge_speech import yaml_reading

    what = os.fspath(path)
    text = Path(path).read_text(encoding="utf-8")
    spec = yaml_reading.load(text, what, _MAX_SWEEP_FILE_CHARS, _MAX_SWEEP_FILE_NODES)
    if not isinstance(spec, dict) or not isinstance(spec.get("search"), dict):
        raise ValueError(f"{what}: a sweep file is a mapping with a 'search' mapping (prune, quantize, ...)")
    unknown = sorted(set(spec) - _SWEEP_FILE_KEYS)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; a sweep file has {sorted(_SWEEP_FILE_KEYS)}")
    if not isinstance(spec.get("constraints", {}), dict):
        raise ValueError(f"{what}: 'constraints' must be a mapping (max_bytes, max_cer_loss, ...)")
    _grid(spec["search"])  # its errors now, naming the file
    return spec


def add_sweep_arguments(parser) -> None:
    """``--sweep SWEEP.yaml`` for ``edge-speech convert`` (the same line sits in the CLI, which
    must not import the converter to build its parser)."""
    parser.add_argument(
        "--sweep",
        metavar="SWEEP.yaml",
        help="run a conversion sweep on Ray instead of one conversion: a YAML file with 'search' "
        "(lists of prune, quantize, calib_size, target), optional 'constraints' (max_bytes, max_macs, "
        "max_rtf, max_cer_loss), 'ray_address' and 'workers'; --output is the sweep's folder",
    )


def sweep_from_file(
    path: "str | os.PathLike", model, example_input, cfg, tokens, *, calib=None, eval=None, out, **convert_options
) -> SweepResult:
    """:func:`sweep` with the settings of a sweep file (what ``edge-speech convert --sweep`` runs)."""
    spec = read_sweep_file(path)
    return sweep(
        model,
        example_input,
        cfg,
        tokens,
        calib=calib,
        eval=eval,
        search=spec["search"],
        out=out,
        constraints=spec.get("constraints"),
        ray_address=spec.get("ray_address"),
        workers=spec.get("workers"),
        convert_options=convert_options,
    )
