"""Hostile inputs (issue 16): each input the issue lists, tried in a fresh process under a
timeout, with its outcome (the first line of the error, or what came back), the time the hostile
call took and the process's peak RSS.

    python -m benchmarks.bench_hostile_inputs            # all cases, a markdown table on stdout
    python -m benchmarks.bench_hostile_inputs --only zip # cases whose name contains "zip"

The inputs are built in a temporary folder (nothing is downloaded or written into the
repository). A case runs in its own interpreter (``--case NAME``) so one input's memory does not
hide another's; the parent reads the child's peak RSS from ``os.wait4`` and kills a child that
runs past ``--timeout`` seconds or ``--max-rss-mb`` of memory, reporting it as unbounded. Peak RSS
includes the interpreter, numpy and edge_speech (the ``baseline`` row) and, for the recognizer
cases, the default model.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "edge_speech" / "models" / "default"
TOKENS = ["<blk>", " ", *string.ascii_lowercase, "'"]
JSGF_HEADER = "#JSGF V1.0;\ngrammar g;\n"
HEAVY_FILES = ("lm_bomb.arpa.gz", "zip_bomb.zip", "zip_liar.zip")
HEAVY_CASES = ("arpa_gzip_bomb", "arpa_gzip_bomb_capped", "zip_bundle_bomb", "zip_bundle_lying_size")


# -- inputs built once by the parent (the large ones) ------------------------------------------


def _zip_with_zeros(path: Path, manifest: dict, member_bytes: int) -> None:
    """A zip bundle whose model.onnx is ``member_bytes`` zeros (deflate level 1: fast to build)."""
    chunk = bytes(16 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        with zf.open("model.onnx", "w", force_zip64=True) as member:
            left = member_bytes
            while left:
                part = chunk[: min(left, len(chunk))]
                member.write(part)
                left -= len(part)


def build_heavy_inputs(workdir: Path) -> None:
    # 204 KB of gzip that inflates to 449 MB of ARPA text, as in the issue.
    (workdir / "lm_bomb.arpa.gz").write_bytes(
        gzip.compress(b"\\data\\\nngram 1=1\n" + b"\n" * (449 << 20), compresslevel=9)
    )
    manifest = _small_manifest()
    _zip_with_zeros(workdir / "zip_bomb.zip", manifest, 5 << 29)  # 2.5 GiB declared, about 12 MB zipped
    manifest["files"]["model.onnx"]["size"] = 1000  # the manifest says 1 KB; the member is 700 MB
    _zip_with_zeros(workdir / "zip_liar.zip", manifest, 700 << 20)


def _default_manifest() -> dict:
    return json.loads((DEFAULT_BUNDLE / "manifest.json").read_text(encoding="utf-8"))


def _small_manifest() -> dict:
    """The default model's manifest, listing model.onnx only (no LM, no TFLite model)."""
    manifest = _default_manifest()
    manifest["models"] = {"onnx": "model.onnx"}
    manifest["files"] = {"model.onnx": manifest["files"]["model.onnx"]}
    manifest["format_inputs"] = {}
    manifest["decoder"] = {k: v for k, v in manifest["decoder"].items() if k not in ("lm", "lexicon")}
    return manifest


def _bundle_with(workdir: Path, manifest_text: str) -> Path:
    """A bundle folder holding only manifest.json: the manifest is validated before any model is read."""
    directory = workdir / "bundle"
    directory.mkdir()
    (directory / "manifest.json").write_text(manifest_text, encoding="utf-8")
    return directory


def _wav(rate: int, samples: int) -> bytes:
    data = bytes(2 * samples)
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
    fmt += (min(rate * 2, 2**32 - 1)).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + (16).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little") + data
    return b"RIFF" + len(body).to_bytes(4, "little") + body


# -- the cases: each sets its input up (small) and returns the hostile call --------------------

Case = Callable[[Path], Callable[[], object]]


def _decoder(grammar: str) -> Callable[[], object]:
    from edge_speech import decoding

    return lambda: decoding.CTCDecoder(TOKENS, grammar=grammar)


def _load_bundle(path: Path) -> Callable[[], object]:
    from edge_speech.bundle import Bundle

    return lambda: Bundle.load(path)


def _manifest_edit(edit: Callable[[dict], None]) -> Case:
    def case(workdir: Path) -> Callable[[], object]:
        manifest = _default_manifest()
        edit(manifest)
        return _load_bundle(_bundle_with(workdir, json.dumps(manifest)))

    return case


def baseline(workdir: Path) -> Callable[[], object]:
    import edge_speech  # noqa: F401
    from edge_speech import decoding  # noqa: F401

    return lambda: None


def jsgf_optional_words(workdir: Path) -> Callable[[], object]:
    rng = random.Random(0)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(3)) for _ in range(2000)]
    return _decoder(JSGF_HEADER + "public <c> = " + " ".join(f"[{w}]" for w in words) + ";")


def yaml_slot_references(workdir: Path) -> Callable[[], object]:
    rng = random.Random(0)
    values = sorted({"".join(rng.choice(string.ascii_lowercase) for _ in range(6)) for _ in range(300)})
    template = " ".join(["{item}"] * 10)
    return _decoder(f'intents:\n  A:\n    - "{template}"\nslots:\n  item: [{", ".join(values)}]\n')


def jsgf_nested_groups(workdir: Path) -> Callable[[], object]:
    return _decoder(JSGF_HEADER + "public <c> = " + "(" * 500 + "on" + ")" * 500 + ";")


def jsgf_rule_chain(workdir: Path) -> Callable[[], object]:
    chain = "".join(f"<r{i}> = <r{i + 1}>;\n" for i in range(1, 2000))
    return _decoder(JSGF_HEADER + "public <r0> = <r1>;\n" + chain + "<r2000> = on;")


def yaml_nested(workdir: Path) -> Callable[[], object]:
    return _decoder("intents:\n  A:\n    - " + "(" * 1000 + "on" + ")" * 1000 + "\n")


def long_wake_phrase(workdir: Path) -> Callable[[], object]:
    phrase = " ".join(["hey computer"] * 2500)  # the grammar listen() builds for --wake
    return _decoder(f'intents:\n  Wake:\n    - "{phrase}"\n')


def json_manifest_nested(workdir: Path) -> Callable[[], object]:
    return _load_bundle(_bundle_with(workdir, "[" * 100_000 + "]" * 100_000))


def arpa_lying_header(workdir: Path) -> Callable[[], object]:
    from edge_speech.decoding import ArpaLM

    path = workdir / "liar.arpa"
    path.write_bytes(b"\\data\\\nngram 1=100000000\n\n\\1-grams:\n-1 a\n\\end\\\n")
    return lambda: ArpaLM.from_file(path)


def arpa_gzip_bomb(workdir: Path) -> Callable[[], object]:
    from edge_speech.decoding import ArpaLM

    return lambda: ArpaLM.from_file(workdir / "lm_bomb.arpa.gz")


def arpa_gzip_bomb_capped(workdir: Path) -> Callable[[], object]:
    from edge_speech import limits
    from edge_speech.decoding import ArpaLM

    def load() -> object:
        with limits.override(max_lm_bytes=64 << 20):
            return ArpaLM.from_file(workdir / "lm_bomb.arpa.gz")

    return load


def zip_bundle_bomb(workdir: Path) -> Callable[[], object]:
    return _load_bundle(workdir / "zip_bomb.zip")


def zip_bundle_lying_size(workdir: Path) -> Callable[[], object]:
    return _load_bundle(workdir / "zip_liar.zip")


def wav_1_hz(workdir: Path) -> Callable[[], object]:
    from edge_speech import audio

    path = workdir / "one_hz.wav"
    path.write_bytes(_wav(1, 2000))
    return lambda: audio.load_audio(path, 16000)


def wav_rate_2_31(workdir: Path) -> Callable[[], object]:
    from edge_speech import audio

    path = workdir / "fast.wav"
    path.write_bytes(_wav(2**31 - 1, 100))
    return lambda: audio.load_audio(path, 16000)


def array_rate_2_50(workdir: Path) -> Callable[[], object]:
    from edge_speech import audio

    return lambda: audio.load_audio((np.zeros(100, np.float32), 2**50), 16000)


def dev_zero(workdir: Path) -> Callable[[], object]:
    from edge_speech import audio

    return lambda: audio.read_wav("/dev/zero")


def fifo(workdir: Path) -> Callable[[], object]:
    from edge_speech import audio

    path = workdir / "pipe.wav"
    os.mkfifo(path)
    return lambda: audio.load_audio(path, 16000)


def symlink_out_of_bundle(workdir: Path) -> Callable[[], object]:
    directory = _bundle_with(workdir, json.dumps(_small_manifest()))
    os.symlink("/etc/hostname", directory / "model.onnx")
    return _load_bundle(directory)


def frame_length_1e30(workdir: Path) -> Callable[[], object]:
    from edge_speech import features

    config = features.FeatureConfig.preset("kaldi-fbank").replace(frame_length_ms=1e30)
    return lambda: features.compute(np.zeros(16000, np.float32), 16000, config)


def frame_shift_1e30(workdir: Path) -> Callable[[], object]:
    from edge_speech import features

    config = features.FeatureConfig.preset("kaldi-fbank").replace(frame_shift_ms=1e30)
    return lambda: features.compute(np.zeros(16000, np.float32), 16000, config)


def cmvn_std_tiny(workdir: Path) -> Callable[[], object]:
    from edge_speech import features

    base = features.FeatureConfig.preset("kaldi-fbank")
    return lambda: base.with_global_cmvn([0.0] * base.dim, [1e-30] * base.dim)


def hotword_boost_3e38(workdir: Path) -> Callable[[], object]:
    from edge_speech import Recognizer

    rec = Recognizer.default(threads=1)
    return lambda: rec.transcribe((np.zeros(16000, np.float32), 16000), hotwords={"kitchen light": 3e38})


def jsgf_weight_1e308(workdir: Path) -> Callable[[], object]:
    return _decoder(JSGF_HEADER + "public <c> = /1e308/ on | /1/ off;")


def yaml_trailing_comma(workdir: Path) -> Callable[[], object]:
    return _decoder('intents:\n  A:\n    - "turn {x}"\nslots:\n  x: [on, off,]\n')


def threads_100000(workdir: Path) -> Callable[[], object]:
    from edge_speech import Recognizer

    return lambda: Recognizer.default(threads=100000)


def grammar_names_a_wav(workdir: Path) -> Callable[[], object]:
    from edge_speech import Recognizer

    rec = Recognizer.default(threads=1)
    return lambda: rec.transcribe((np.zeros(1600, np.float32), 16000), grammar="x.wav")


def stream_context_1e9_streamed(workdir: Path) -> Callable[[], object]:
    """The bundle itself with the hostile value, loaded and streamed for 30 s if it loads."""
    from edge_speech import Recognizer

    directory = workdir / "context_bundle"
    shutil.copytree(DEFAULT_BUNDLE, directory)
    manifest = _default_manifest()
    manifest["input"]["stream_context_frames"] = 10**9
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    def stream() -> object:
        rec = Recognizer.from_bundle(directory, threads=1)
        stream = rec.create_stream()
        for _ in range(300):
            stream.accept_waveform(np.zeros(1600, np.float32), 16000)
        return stream.finish().text

    return stream


# name -> (issue item, what is tried, case)
CASES: Dict[str, Tuple[str, str, Case]] = {
    "baseline": ("-", "nothing: the interpreter, numpy and edge_speech imported", baseline),
    "jsgf_optional_words": ("2", "JSGF rule of 2,000 optional words (10 KB)", jsgf_optional_words),
    "yaml_slot_references": ("2", "YAML intent with ten references to a 300-value slot", yaml_slot_references),
    "jsgf_nested_groups": ("3", "JSGF with 500 nested groups", jsgf_nested_groups),
    "jsgf_rule_chain": ("3", "JSGF chain of 2,000 rules", jsgf_rule_chain),
    "yaml_nested": ("3", "YAML template nested 1,000 levels", yaml_nested),
    "long_wake_phrase": ("3", "wake phrase of 5,000 words", long_wake_phrase),
    "json_manifest_nested": ("3", "manifest.json nested 100,000 levels", json_manifest_nested),
    "arpa_lying_header": ("4", "48-byte ARPA claiming 10^8 unigrams", arpa_lying_header),
    "arpa_gzip_bomb": ("4", "204 KB gzip ARPA inflating to 449 MB (default limits)", arpa_gzip_bomb),
    "arpa_gzip_bomb_capped": ("4", "the same with limits.override(max_lm_bytes=64 MiB)", arpa_gzip_bomb_capped),
    "zip_bundle_bomb": ("4", "12 MB zip bundle declaring 2.5 GiB of members", zip_bundle_bomb),
    "zip_bundle_lying_size": ("4", "3 MB zip bundle: a 700 MB model the manifest calls 1 KB", zip_bundle_lying_size),
    "wav_1_hz": ("4", "4 KB WAV declaring 1 Hz", wav_1_hz),
    "wav_rate_2_31": ("4", "WAV declaring 2^31-1 Hz", wav_rate_2_31),
    "array_rate_2_50": ("4", "array at sample rate 2^50", array_rate_2_50),
    "dev_zero": ("5", "read_wav('/dev/zero')", dev_zero),
    "fifo": ("5", "load_audio on a FIFO with no writer", fifo),
    "manifest_output_null": ("6", 'manifest `"output": null`', _manifest_edit(lambda m: m.update(output=None))),
    "manifest_input_string": (
        "6",
        'manifest `"input": "features"`',
        _manifest_edit(lambda m: m.update(input="features")),
    ),
    "manifest_tokens_object": ("6", 'manifest `"tokens": {}`', _manifest_edit(lambda m: m.update(tokens={}))),
    "symlink_out_of_bundle": ("7", "bundle's model.onnx -> /etc/hostname", symlink_out_of_bundle),
    "frame_length_1e30": ("8", "front end frame_length_ms 1e30", frame_length_1e30),
    "frame_shift_1e30": ("8", "front end frame_shift_ms 1e30", frame_shift_1e30),
    "hotword_boost_3e38": ("9", "hotword boost 3e38", hotword_boost_3e38),
    "cmvn_std_tiny": ("9", "cmvn_std 1e-30", cmvn_std_tiny),
    "stream_context_1e9": (
        "9",
        "manifest input.stream_context_frames 1e9",
        _manifest_edit(lambda m: m["input"].update(stream_context_frames=10**9)),
    ),
    "stream_context_1e9_streamed": (
        "9",
        "the same in a copy of the default bundle, through Recognizer.from_bundle and a stream",
        stream_context_1e9_streamed,
    ),
    "yaml_trailing_comma": ("10", "YAML slot list with a trailing comma", yaml_trailing_comma),
    "grammar_names_a_wav": ("10", "grammar='x.wav'", grammar_names_a_wav),
    "jsgf_weight_1e308": ("10", "JSGF weight /1e308/", jsgf_weight_1e308),
    "threads_100000": ("10", "threads=100000", threads_100000),
}


# -- the child: one case ----------------------------------------------------------------------


def run_in_child(name: str, workdir: Path) -> None:
    call = CASES[name][2](workdir)
    start = time.perf_counter()
    try:
        result = call()
        outcome = "ok" if result is None else f"ok: {type(result).__name__}"
    except Exception as err:  # the point of the benchmark: which error, in the user's words
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        outcome = f"{type(err).__name__}: {message}"
    print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start}))


# -- the parent: every case in its own process -------------------------------------------------


def _rss_now_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_case(name: str, workdir: Path, timeout_s: float, max_rss_mb: int) -> dict:
    case_dir = workdir / name
    case_dir.mkdir()
    for heavy in HEAVY_FILES:
        if (workdir / heavy).exists():
            os.symlink(workdir / heavy, case_dir / heavy)
    out_path, err_path = case_dir / "stdout", case_dir / "stderr"
    command = [sys.executable, "-m", "benchmarks.bench_hostile_inputs", "--case", name, "--dir", str(case_dir)]
    start = time.monotonic()
    killed: Optional[str] = None
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout_s:
                killed = f"killed after {timeout_s:g} s: UNBOUNDED"
            elif _rss_now_kb(proc.pid) > max_rss_mb << 10:
                killed = f"killed over {max_rss_mb} MB RSS: UNBOUNDED"
            if killed:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    row = {"name": name, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "seconds": None}
    if killed:
        row["outcome"] = killed
    elif proc.returncode != 0:
        tail = err_path.read_text(errors="replace").strip().splitlines()
        row["outcome"] = f"crashed (exit {proc.returncode}): {tail[-1] if tail else ''}"
    else:
        result = json.loads(out_path.read_text().strip().splitlines()[-1])
        row["outcome"], row["seconds"] = result["outcome"], result["seconds"]
    return row


def _cell(text: str, workdir: Path, width: int = 150) -> str:
    text = text.replace(str(workdir), "$TMP").replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def markdown(rows: List[dict], workdir: Path) -> str:
    lines = [
        "| # | input | outcome | time (s) | peak RSS (MB) |",
        "|---|---|---|---:|---:|",
    ]
    for row in rows:
        item, what, _ = CASES[row["name"]]
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        lines.append(f"| {item} | {what} | {_cell(row['outcome'], workdir)} | {seconds} | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Hostile inputs, each in a fresh process: outcome, time, peak RSS")
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a case counts as unbounded")
    parser.add_argument("--max-rss-mb", type=int, default=3072, help="RSS at which a case counts as unbounded")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        run_in_child(args.case, args.dir)
        return 0
    if args.build:
        build_heavy_inputs(args.dir)
        return 0
    names = [name for name in CASES if args.only is None or args.only in name]
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        workdir = Path(tmp)
        start = time.monotonic()
        if any(name in HEAVY_CASES for name in names):
            # In a child: a child's peak RSS (wait4) starts from the parent's, which must stay small.
            build = [sys.executable, "-m", "benchmarks.bench_hostile_inputs", "--build", "--dir", str(workdir)]
            subprocess.run(build, cwd=ROOT, check=True)
        built = time.monotonic() - start
        rows = []
        for name in names:
            rows.append(run_case(name, workdir, args.timeout, args.max_rss_mb))
            print(f"{name}: {rows[-1]['outcome'][:100]}", file=sys.stderr)
        print(markdown(rows, workdir))
    print(
        f"\n{len(rows)} cases in {time.monotonic() - start:.0f} s (inputs built in {built:.0f} s); "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
