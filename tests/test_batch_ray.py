"""edge_speech.batch on a local Ray (2 CPUs, loopback): rows equal the serial Recognizer's results
file by file, failures included; a worker killed mid-job loses and duplicates nothing; a second
run skips what the first wrote; evaluation's rates equal edge_speech.text.error_rates of the
serial transcripts; without Ray the entry points name the extra."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from edge_speech import Recognizer, batch
from edge_speech._deps import MissingDependency
from edge_speech.text import error_rates

TEXTS = [
    "turn on the kitchen light",
    "set a timer for five minutes",
    "what is the weather today",
    "play some music in the garage",
    "close the bedroom window",
    "call my sister tomorrow",
]
IGNORED = {"rtf"}  # the only field that depends on the run (its timing)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech_wav):
    """A folder with speech WAVs (one at 8 kHz, resampled by the recognizer), a corrupt WAV, and a
    JSONL manifest (relative paths) that also names a missing file."""
    folder = tmp_path_factory.mktemp("corpus")
    rows = []
    for number, text in enumerate(TEXTS):
        name = f"utt{number}.wav"
        shutil.copy(speech_wav(8000 if number == 2 else 16000, text), folder / name)
        rows.append({"audio": name, "text": text})
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    rows.insert(3, {"audio": "corrupt.wav", "text": "nothing"})
    rows.append({"audio": "missing.wav", "text": "never written"})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder, manifest, [(str(folder / row["audio"]), row["text"]) for row in rows]


@pytest.fixture(scope="module")
def serial(corpus):
    """The reference: each file through one Recognizer.transcribe call, in this process."""
    recognizer = Recognizer.default(threads=1)
    expected = {}
    for path, _ in corpus[2]:
        try:
            result = recognizer.transcribe(path)
        except (ValueError, OSError) as err:
            expected[path] = {"error": str(err)}
        else:
            expected[path] = {**result.to_dict(), "duration_s": round(result.duration_s, 3), "error": None}
    assert sum(row["error"] is not None for row in expected.values()) == 2  # the corrupt and the missing file
    return expected


def read_rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def assert_rows_match(rows, serial):
    assert sorted(row["file"] for row in rows) == sorted(serial), "each file exactly once"
    for row in rows:
        expected = serial[row["file"]]
        assert set(row) == {"file", *batch.RESULT_FIELDS} | ({"reference"} if "reference" in row else set())
        if expected["error"] is not None:
            assert row["error"] == expected["error"]
            assert all(row[field] is None for field in batch.RESULT_FIELDS if field != "error")
        else:
            assert {k: v for k, v in row.items() if k not in IGNORED | {"file", "reference"}} == {
                k: v for k, v in expected.items() if k not in IGNORED
            }


def test_batch_rows_equal_serial_transcribe_file_by_file_including_failures(local_ray, corpus, serial, tmp_path):
    _, manifest, _ = corpus
    out = tmp_path / "out.jsonl"
    summary = batch.transcribe_dataset(
        manifest, out=out, workers=2, batch_size=2, parquet=tmp_path / "out.parquet", progress=None
    )
    rows = read_rows(out)
    assert_rows_match(rows, serial)
    assert summary["files"] == len(serial) and summary["failed"] == 2 and summary["skipped"] == 0
    audio_s = sum(row["duration_s"] for row in serial.values() if row["error"] is None)
    assert summary["audio_hours"] == pytest.approx(audio_s / 3600, abs=1e-6)
    assert summary["audio_hours_per_wall_hour"] == pytest.approx(
        summary["audio_hours"] / (summary["wall_s"] / 3600), rel=0.02
    )
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    table = pyarrow_parquet.read_table(tmp_path / "out.parquet").to_pylist()
    assert table == [{**row, "reference": None} for row in rows]  # every field, words included


def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(local_ray, corpus, serial, tmp_path):
    _, manifest, _ = corpus
    killed = []
    workers = lambda: [
        a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("edge-speech")
    ]
    earlier = [a["name"] for a in workers()]  # earlier jobs' workers, if any are still going away

    def kill_a_worker(summary):  # after the first batch is written, while others are in flight
        if killed:
            return
        victim = sorted((a for a in workers() if a["name"] not in earlier), key=lambda a: a["name"])[0]
        ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
        killed.append((victim["name"], summary["files"]))

    out = tmp_path / "out.jsonl"
    summary = batch.transcribe_dataset(manifest, out=out, workers=2, batch_size=1, progress=kill_a_worker)
    assert killed and killed[0][1] < len(serial), "the worker was killed before the job ended"
    assert summary["worker_deaths"] == 1
    assert_rows_match(read_rows(out), serial)
    assert summary["files"] == len(serial)


def test_a_second_run_skips_the_files_already_in_the_output(local_ray, corpus, serial, tmp_path):
    folder, _, items = corpus
    copy = tmp_path / "corpus"
    shutil.copytree(folder, copy)
    first, rest = items[:3], items[3:]
    local = lambda pairs: [(str(copy / os.path.basename(path)), text) for path, text in pairs]
    out = tmp_path / "out.jsonl"
    summary = batch.transcribe_dataset(local(first), out=out, workers=2, batch_size=2)
    assert summary["files"] == 3
    first_rows = out.read_text()
    # Proof that the second run does not redo them: their audio is now garbage, so redoing would
    # write errors. And a line cut short by an interrupted write is dropped and its file redone.
    for path, _ in local(first):
        open(path, "wb").write(b"garbage")
    with open(out, "a") as sink:
        sink.write(json.dumps({"file": local(rest)[0][0], "text": "half"})[:30])
    summary = batch.transcribe_dataset(local(items), out=out, workers=2, batch_size=2)
    assert summary["skipped"] == 3 and summary["files"] == len(rest)
    assert out.read_text().startswith(first_rows)
    rows = read_rows(out)
    assert len({row["file"] for row in rows}) == len(rows) == len(items)
    as_original = lambda text: text.replace(str(copy), str(folder)) if text else text  # the serial run's paths
    assert_rows_match(
        [{**row, "file": as_original(row["file"]), "error": as_original(row["error"])} for row in rows], serial
    )


def test_evaluate_rates_equal_error_rates_of_the_serial_transcripts_and_the_cli_prints_them(
    local_ray, corpus, serial, tmp_path, capsys
):
    _, manifest, items = corpus
    parser = argparse.ArgumentParser()
    batch.register_cli(parser.add_subparsers(dest="command"))
    out = tmp_path / "eval.jsonl"
    args = parser.parse_args(["batch", "evaluate", str(manifest), "--out", str(out), "--workers", "2"])
    assert args.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    pairs = [(text, serial[path]["text"]) for path, text in items if serial[path]["error"] is None]
    expected = error_rates(pairs)
    assert {k: summary[k] for k in expected} == expected
    assert summary["unscored"] == 2 and expected["utterances"] == len(items) - 2
    rows = read_rows(out)
    assert {row["file"]: row["reference"] for row in rows} == dict(items)
    assert_rows_match(rows, serial)


def test_bad_inputs_are_refused_by_name(local_ray, corpus, tmp_path):
    folder, _, _ = corpus
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"audio": "a.wav", "text": "x"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not a JSON object"):
        batch.transcribe_dataset(broken, out=tmp_path / "a.jsonl", workers=1)
    with pytest.raises(ValueError, match="evaluation needs a transcript for every file"):
        batch.evaluate_dataset(folder, out=tmp_path / "b.jsonl", workers=1)
    tsv = tmp_path / "no_tab.tsv"
    tsv.write_text("a.wav\tfine\nb.wav only a path\n")
    with pytest.raises(ValueError, match=r"no_tab\.tsv:2: expected 'audio path<TAB>transcript'"):
        list(batch.iter_inputs(tsv))
    with pytest.raises(ValueError, match="'no/such/bundle': no such file or directory, and not an embedded model"):
        batch.transcribe_dataset(folder, "no/such/bundle", out=tmp_path / "d.jsonl", workers=1)
    (tmp_path / "empty_bundle").mkdir()
    with pytest.raises(ValueError, match=r"a batch worker could not load the bundle .*empty_bundle.*: \S"):
        batch.transcribe_dataset(folder, tmp_path / "empty_bundle", out=tmp_path / "e.jsonl", workers=1)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        batch.transcribe_dataset(folder, out=tmp_path / "c.jsonl", workers=0)


def test_inputs_list_directories_globs_and_tsv_files_in_order(corpus, tmp_path):
    folder, _, items = corpus
    wavs = sorted(str(p) for p in folder.glob("*.wav"))
    assert [item.file for item in batch.iter_inputs(folder)] == wavs
    assert sorted(item.file for item in batch.iter_inputs(str(folder / "utt*.wav"))) == wavs[1:]  # all but corrupt
    tsv = folder / "list.tsv"
    tsv.write_text("".join(f"{os.path.basename(path)}\t{text}\n" for path, text in items))
    assert [(item.file, item.text) for item in batch.iter_inputs(tsv)] == items


def test_without_ray_the_entry_points_name_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(MissingDependency, match=r"pip install 'edge-speech\[ray\]'"):
        batch.transcribe_dataset(tmp_path, out=tmp_path / "out.jsonl")
    with pytest.raises(ImportError, match=r"edge-speech\[ray\]"):
        batch.evaluate_dataset(tmp_path, out=tmp_path / "out.jsonl")
