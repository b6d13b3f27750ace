"""The conversion report in the bundle: ``report/report.json``, ``report/report.md`` and PNG plots
(size, latency and accuracy per step; accuracy against MACs for a pruning sweep).

Plots need matplotlib (in the converter and test extras); without it the report is written
without them and says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

REPORT_FOLDER = "report"
# (key in a step summary, axis label, file name)
STEP_PLOTS = (
    ("bytes", "model size (MB)", "size.png"),
    ("latency_ms", "latency (ms, host, 1 thread)", "latency.png"),
    ("cer", "CER (%)", "accuracy.png"),
)


def step_summary(step: Mapping) -> dict:
    """The comparable numbers of one pipeline step: bytes, latency_ms, cer, macs, params (those
    the step recorded). Latency is the step's verification run of its own model."""
    check = step.get("vs_fp32") or step.get("vs_torch") or {}
    summary = {
        "step": step["step"],
        "bytes": step.get("bytes"),
        "latency_ms": check.get("candidate_latency_ms"),
        "cer": step.get("cer"),
        "macs": step.get("macs_after", step.get("macs")),
        "params": step.get("params_after", step.get("params")),
    }
    return {k: v for k, v in summary.items() if v is not None}


def write_report(
    steps: Sequence[Mapping],
    folder: "str | Path",
    sweep: Optional[Sequence[Mapping]] = None,
    title: str = "Conversion report",
) -> Path:
    """Writes report.json, report.md and the plots into ``folder``; returns report.md's path.
    ``sweep``: pruning-sweep points ``{"macs": ..., "cer": ...}`` for the accuracy-vs-MACs plot."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps({"steps": list(steps), "sweep": list(sweep or [])}, indent=2, default=float) + "\n"
    )
    rows = [step_summary(s) for s in steps]
    lines = [
        f"# {title}",
        "",
        "| step | params | MACs | bytes | latency ms | CER % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [f"{r[k]:,}" if k in r else "" for k in ("params", "macs", "bytes")]
        cells.append(f"{r['latency_ms']:.2f}" if "latency_ms" in r else "")
        cells.append(f"{100 * r['cer']:.2f}" if "cer" in r else "")
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    try:
        plots = plot_steps(rows, folder)
        if sweep:
            plots.append(plot_sweep(sweep, folder))
        missing = None
    except ImportError as err:
        plots, missing = [], str(err)
    lines.append("")
    if missing:
        lines.append(f"Plots: not drawn: {missing}")
    for path in plots:
        lines.append(f"![{path.stem}]({path.name})")
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_steps(rows: Sequence[Mapping], folder: "str | Path") -> List[Path]:
    """One bar chart per metric (size, latency, CER) over the steps that recorded it."""
    figure = _figure_class()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label, name in STEP_PLOTS:
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if not points:
            continue
        scale = {"bytes": 1e-6, "cer": 100.0}.get(key, 1.0)
        fig = figure(figsize=(5, 3), dpi=80)
        ax = fig.subplots()
        bars = ax.bar([p[0] for p in points], [p[1] * scale for p in points], color="#4c72b0")
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelsize=8, rotation=15)
        fig.tight_layout()
        fig.savefig(folder / name)
        written.append(folder / name)
    return written


def plot_sweep(points: Sequence[Mapping], folder: "str | Path") -> Path:
    """CER against MACs for models pruned to different MAC budgets."""
    ordered = sorted(points, key=lambda p: p["macs"])
    fig = _figure_class()(figsize=(5, 3), dpi=80)
    ax = fig.subplots()
    ax.plot([p["macs"] / 1e6 for p in ordered], [100 * p["cer"] for p in ordered], "o-")
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("CER (%)")
    fig.tight_layout()
    path = Path(folder) / "accuracy_vs_macs.png"
    fig.savefig(path)
    return path


def _figure_class():
    """matplotlib's Figure, used without pyplot so the caller's backend and state stay untouched."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("matplotlib is not installed (pip install 'edge-speech[converter]')") from None
    return Figure
