"""converters.sweep on a local Ray (2 CPUs, loopback): a 6-trial sweep over a tiny conv CTC model
writes the table, the Pareto fronts (equal to a brute-force dominance check), the plot and the
best trial per target under constraints; the trials whose scheme does not exist are recorded
with their error and the sweep finishes; a trial equals the same convert() call made directly."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from converter_models import DSConvCTC, seeded

from edge_speech import Recognizer, converters, features
from edge_speech.converters import sweep as sweeping

pytestmark = [pytest.mark.torch, pytest.mark.ray]

FBANK = features.FeatureConfig.preset("kaldi-fbank")
TOKENS = ["<blk>", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
SWEEP_YAML = """\
search:
  prune: [null, 0.5]
  quantize: [int8, float, int3]   # int3 does not exist: those trials fail
  calib_size: [2]
constraints:
  max_bytes: 30000
  max_cer_loss: 0.5
"""


@pytest.fixture(scope="module")
def setup(speech_wav):
    model = seeded(DSConvCTC, channels=32, blocks=2)
    example = torch.randn(1, 100, 80, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    calib = [rng.standard_normal(16000).astype(np.float32) * 0.1 for _ in range(2)]
    evaluation = [(str(speech_wav(16000, text)), text) for text in ("turn on the light", "stop the music")]
    return model, example, calib, evaluation


def dominated(row, rows, axis):
    return any(
        other[axis] <= row[axis]
        and other["cer"] <= row["cer"]
        and (other[axis], other["cer"]) != (row[axis], row["cer"])
        for other in rows
    )


def test_a_sweep_writes_the_table_the_pareto_fronts_the_plot_and_the_best_per_target(local_ray, setup, tmp_path):
    model, example, calib, evaluation = setup
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP_YAML)
    out = tmp_path / "sweep"
    result = sweeping.sweep_from_file(sweep_file, model, example, FBANK, TOKENS, calib=calib, eval=evaluation, out=out)

    rows = list(result.rows)
    assert len(rows) == 6
    failed = [row for row in rows if row["error"] is not None]
    assert sorted(row["quantize"] for row in failed) == ["int3", "int3"]
    assert all("int3" in row["error"] and row["cer"] is None for row in failed)
    good = [row for row in rows if row["error"] is None]
    macs_source, _ = converters.count_macs(model, example)
    for row in good:
        model_file = (Path(row["bundle"]) / "model.onnx").stat().st_size
        assert row["bytes"] < model_file < row["bytes"] + 10000  # the file adds the manifest it embeds
        assert row["rtf"] > 0 and 0 <= row["cer"]
        if row["prune"] is None:
            assert row["macs"] == macs_source
        else:
            assert abs(row["macs"] / macs_source - 0.5) <= 0.06  # the asked half, within convert()'s tolerance
        Recognizer.from_bundle(row["bundle"])  # a bundle the runtime loads
    assert min(r["bytes"] for r in good if r["quantize"] == "int8") < min(
        r["bytes"] for r in good if r["quantize"] == "float"
    )

    # The table: CSV and JSON hold the same trials.
    with open(out / "results.csv", newline="") as source:
        table = list(csv.DictReader(source))
    assert (
        [r["trial"] for r in table]
        == [r["trial"] for r in rows]
        == [r["trial"] for r in json.loads((out / "results.json").read_text())]
    )
    assert [r["error"] or None for r in table] == [r["error"] for r in rows]

    # The fronts against a brute-force dominance check.
    for axis in ("bytes", "macs"):
        expected = sorted(row["trial"] for row in good if not dominated(row, good, axis))
        assert sorted(result.pareto[axis]) == expected
        assert sorted(json.loads((out / "pareto.json").read_text())[f"cer_vs_{axis}"]) == expected

    # The best trial under the constraints, by brute force.
    source_cer = json.loads((Path(good[0]["bundle"]) / "manifest.json").read_text())["verification"]["steps"][0]["cer"]
    allowed = [r for r in good if r["bytes"] <= 30000 and r["cer"] - source_cer <= 0.5 + 1e-9]
    assert allowed, "the constraints leave at least one trial"
    best = min(allowed, key=lambda r: (r["cer"], r["bytes"]))
    assert result.best["any"]["trial"] == best["trial"]
    assert json.loads((out / "best.json").read_text())["best"]["any"]["trial"] == best["trial"]

    # The plot: a PNG that reads back.
    from matplotlib import image

    picture = image.imread(out / "pareto.png")
    assert picture.ndim == 3 and picture.shape[0] > 200 and picture.shape[1] > 500

    # One trial equals the same convert() call made here.
    trial = next(r for r in good if r["prune"] is None and r["quantize"] == "int8")
    direct = converters.convert(
        model,
        example,
        FBANK,
        TOKENS,
        calib=calib,
        eval=evaluation,
        quantize="int8",
        max_calibration=2,
        out=tmp_path / "direct",
    )
    assert (trial["cer"], trial["wer"]) == (direct.step("quantize")["cer"], direct.step("quantize")["wer"])
    assert trial["bytes"] == direct.step("quantize")["bytes"]
    assert trial["macs"] == direct.step("source")["macs"]


def test_sweep_files_and_arguments_are_checked_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  prune: [0.5]\n  quantise: [int8]\n")
    with pytest.raises(ValueError, match=r"search keys must be among .*'quantise'"):
        sweeping.read_sweep_file(bad)
    bad.write_text("search:\n  prune: 0.5\n")
    with pytest.raises(ValueError, match=r"search\['prune'\] must be a non-empty list"):
        sweeping.read_sweep_file(bad)
    bad.write_text("search: {prune: [0.5]}\nworkerz: 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown keys \['workerz'\]"):
        sweeping.read_sweep_file(bad)
    with pytest.raises(ValueError, match="constraints must be among"):
        sweeping.sweep(None, None, FBANK, TOKENS, search={"prune": [0.5]}, out=tmp_path, constraints={"max_size": 1})
    parser = argparse.ArgumentParser()
    sweeping.add_sweep_arguments(parser)
    assert parser.parse_args(["--sweep", "s.yaml"]).sweep == "s.yaml"


def test_pareto_front_keeps_ties_and_drops_dominated_and_failed_rows():
    rows = [
        {"trial": "a", "bytes": 10, "cer": 0.5, "error": None},
        {"trial": "b", "bytes": 20, "cer": 0.3, "error": None},
        {"trial": "c", "bytes": 20, "cer": 0.4, "error": None},  # b beats it
        {"trial": "d", "bytes": 30, "cer": 0.3, "error": None},  # b beats it (same CER, bigger)
        {"trial": "e", "bytes": 10, "cer": 0.5, "error": None},  # a's twin: both stay
        {"trial": "f", "bytes": 1, "cer": None, "error": "boom"},
    ]
    expected = sorted(r["trial"] for r in rows[:5] if not dominated(r, rows[:5], "bytes"))
    assert sorted(r["trial"] for r in sweeping.pareto_front(rows)) == expected == ["a", "b", "e"]
