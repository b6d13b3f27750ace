"""End-to-end time per second of audio for one ONNX CTC model in three pipelines:

  ours      edge_speech.Recognizer.from_bundle(bundle, threads=1, beam=1).transcribe((samples, 16000))
  sherpa    sherpa_onnx.OfflineRecognizer.from_nemo_ctc(model, tokens, num_threads=1), greedy search
  python    librosa log-mel + onnxruntime + pyctcdecode (beam_width=1)

All three run the same model.onnx file (one export; the bundle's copy, which carries both our
manifest and sherpa-onnx's NeMo-CTC metadata). The model is a small convolutional CTC acoustic
model built here in torch with seeded random weights (timing needs no trained weights, so the
transcripts are gibberish). It is built once, in a subprocess, so torch is never imported in the
timing process, and cached in --workdir.

Every system runs single-threaded (ONNX Runtime intra-op threads 1; OMP/OPENBLAS/MKL/NUMBA
threads 1) and is timed alternately, round by round in rotating order, best of --repeats, by wall
clock (time.perf_counter) and by the calling thread's CPU time (time.thread_time). The script
also records process CPU time around every call: process CPU == thread CPU shows that no other
thread of this process did work during the call, i.e. that thread CPU time covers the whole call.

    pip install torch==2.13.0 && pip install ".[test]" sherpa-onnx librosa
    pip install --no-deps pyctcdecode pygtrie    # its metadata pins numpy < 2; it runs on numpy 2
    cd /tmp && python /path/to/edge_speech/benchmarks/bench_runtime.py --seconds 60 --repeats 15 --markdown
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

RATE = 16000
TOKENS = ["<blk>", "▁"] + [chr(ord("a") + i) for i in range(26)] + ["'"]  # V = 29, blank 0
CHANNELS, BLOCKS, KERNEL, EXPAND = 256, 6, 11, 2
TEXT = (
    "The quick brown fox jumps over the lazy dog. Speech recognition on small devices has to "
    "be fast, accurate and frugal with memory. Please turn on the kitchen light and set a timer "
    "for ten minutes. It is a quarter past seven in the evening, and the weather tomorrow will be "
    "cloudy with a chance of rain in the afternoon."
)


# -- the model (built in a subprocess: torch stays out of the timing process) ----------------
def build_model(workdir: Path) -> None:
    import onnx
    import torch
    from torch import nn

    from edge_speech import features
    from edge_speech.bundle import InputSpec, Manifest, write_bundle

    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Block(nn.Module):
        """Depthwise-separable residual block: depthwise conv, pointwise expand, pointwise project."""

        def __init__(self):
            super().__init__()
            self.dw = nn.Conv1d(CHANNELS, CHANNELS, KERNEL, padding=KERNEL // 2, groups=CHANNELS)
            self.pw1 = nn.Conv1d(CHANNELS, CHANNELS * EXPAND, 1)
            self.pw2 = nn.Conv1d(CHANNELS * EXPAND, CHANNELS, 1)
            self.norm = nn.BatchNorm1d(CHANNELS)

        def forward(self, x):
            return x + self.norm(self.pw2(torch.relu(self.pw1(self.dw(x)))))

    class ConvCTC(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv1d(80, CHANNELS, 3, stride=2, padding=1)
            self.blocks = nn.Sequential(*[Block() for _ in range(BLOCKS)])
            self.head = nn.Conv1d(CHANNELS, len(TOKENS), 1)

        def forward(self, audio_signal, length):
            # NeMo-style masking of frames past `length` keeps `length` a real graph input.
            frames = torch.arange(audio_signal.shape[2], device=audio_signal.device)
            mask = (frames[None, :] < length[:, None]).to(audio_signal.dtype)
            x = torch.relu(self.stem(audio_signal * mask[:, None, :]))
            x = self.head(self.blocks(x))
            return torch.log_softmax(x, dim=1).transpose(1, 2)  # [N, T', V]

    model = ConvCTC().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 80, 400)
    length = torch.tensor([400], dtype=torch.int64)
    onnx_path = workdir / "export.onnx"
    torch.onnx.export(
        model,
        (x, length),
        str(onnx_path),
        dynamo=False,
        opset_version=17,
        input_names=["audio_signal", "length"],
        output_names=["logprobs"],
        dynamic_axes={"audio_signal": {0: "N", 2: "T"}, "length": {0: "N"}, "logprobs": {0: "N", 1: "T_out"}},
    )
    proto = onnx.load(str(onnx_path))
    names = [i.name for i in proto.graph.input]
    if names != ["audio_signal", "length"]:
        raise SystemExit(f"export kept inputs {names}; expected ['audio_signal', 'length']")
    for key, value in {
        "vocab_size": str(len(TOKENS)),
        "subsampling_factor": "2",
        "normalize_type": "",
        "model_type": "EncDecCTCModelBPE",
    }.items():
        proto.metadata_props.add(key=key, value=value)
    onnx_bytes = proto.SerializeToString()
    manifest = Manifest(
        kind="ctc",
        sample_rate=RATE,
        features=features.FeatureConfig.preset("kaldi-fbank"),
        tokens=tuple(TOKENS),
        models={"onnx": "model.onnx"},
        subsampling_factor=2,
        input=InputSpec(name="audio_signal", layout="channel_major", length_name="length"),
        name="bench-conv-ctc",
    )
    write_bundle(workdir / "bundle", manifest, {"model.onnx": onnx_bytes})
    (workdir / "tokens.txt").write_text("".join(f"{t} {i}\n" for i, t in enumerate(TOKENS)), encoding="utf-8")
    (workdir / "model.json").write_text(
        json.dumps({"params": params, "torch": torch.__version__, "onnx": onnx.__version__}), encoding="utf-8"
    )
    onnx_path.unlink()


def make_audio(workdir: Path, seconds: float) -> np.ndarray:
    from edge_speech.audio import read_wav

    wav = workdir / "speech16k.wav"
    if not wav.exists():
        raw = workdir / "speech_raw.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), TEXT], check=True, capture_output=True)
        subprocess.run(
            ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True
        )
    x, rate = read_wav(wav)
    if rate != RATE:
        raise SystemExit(f"{wav}: {rate} Hz, expected {RATE}")
    n = int(seconds * RATE)
    return np.ascontiguousarray(np.tile(x, -(-n // len(x)))[:n], dtype=np.float32)


# -- timing ------------------------------------------------------------------------------
class Clock:
    """Best-of and per-call checks for one timed quantity."""

    def __init__(self):
        self.wall, self.cpu, self.proc_over_thread = [], [], []

    def __call__(self, fn):
        p0, w0, c0 = time.process_time(), time.perf_counter(), time.thread_time()
        out = fn()
        c1, w1, p1 = time.thread_time(), time.perf_counter(), time.process_time()
        self.wall.append(w1 - w0)
        self.cpu.append(c1 - c0)
        self.proc_over_thread.append((p1 - p0) / max(c1 - c0, 1e-9))
        return out

    def best(self, kind):
        return min(self.wall if kind == "wall" else self.cpu)


def versions():
    out = {}
    for dist in ("edge_speech", "onnxruntime", "sherpa-onnx", "librosa", "pyctcdecode", "numpy", "soxr"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["sherpa-onnx's own onnxruntime"] = _sherpa_ort_version()
    return out


def _sherpa_ort_version():
    """The version of the libonnxruntime.so that sherpa-onnx's wheel ships (OrtGetApiBase()->GetVersionString())."""
    import ctypes

    try:
        import sherpa_onnx

        lib = ctypes.CDLL(str(Path(sherpa_onnx.__file__).parent / "lib" / "libonnxruntime.so"))
    except (ImportError, OSError):
        return "?"

    class ApiBase(ctypes.Structure):
        _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p))]

    lib.OrtGetApiBase.restype = ctypes.POINTER(ApiBase)
    return lib.OrtGetApiBase().contents.GetVersionString().decode()


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="audio length (espeak-ng speech, looped)")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds (best of)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown for RESULTS.md")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "edge_speech_bench_runtime",
        help="where the model, bundle and audio are built and cached",
    )
    ap.add_argument("--build-model", type=Path, help=argparse.SUPPRESS)  # the subprocess's job
    args = ap.parse_args()
    if args.build_model is not None:
        build_model(args.build_model)
        return
    work = args.workdir
    if not (work / "bundle" / "manifest.json").exists() or not (work / "tokens.txt").exists():
        work.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(work / "bundle", ignore_errors=True)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--build-model", str(work)], check=True)
    info = json.loads((work / "model.json").read_text())
    samples = make_audio(work, args.seconds)
    duration = len(samples) / RATE
    load_before = os.getloadavg()

    import librosa
    import onnxruntime as ort
    import pyctcdecode
    import sherpa_onnx

    from edge_speech import Recognizer, features

    model_path = work / "bundle" / "model.onnx"

    # (a) ours
    rec = Recognizer.from_bundle(work / "bundle", threads=1, beam=1)
    cfg = rec.manifest.features
    session = rec.backend.session

    # The model's share inside each real transcribe call: the backend's run is clocked in place
    # (an instance attribute on the benchmark's recognizer; the runtime code is unchanged).
    in_call = {"ours": Clock(), "python": Clock()}
    backend_run, inside_transcribe = rec.backend.run, [False]

    def clocked_backend_run(x):
        return in_call["ours"](lambda: backend_run(x)) if inside_transcribe[0] else backend_run(x)

    rec.backend.run = clocked_backend_run

    def ours():
        inside_transcribe[0] = True
        try:
            return rec.transcribe((samples, RATE))
        finally:
            inside_transcribe[0] = False

    # (b) sherpa-onnx
    sherpa = sherpa_onnx.OfflineRecognizer.from_nemo_ctc(
        model=str(model_path),
        tokens=str(work / "tokens.txt"),
        num_threads=1,
        sample_rate=RATE,
        feature_dim=80,
        decoding_method="greedy_search",
        debug=False,
        provider="cpu",
    )

    sherpa_phases = {"sherpa/accept_waveform (features)": Clock(), "sherpa/decode_stream (model + decoding)": Clock()}

    def run_sherpa():
        # OfflineStream.accept_waveform computes the fbank frames (kaldi-native-fbank) right
        # away; decode_stream runs the model and the greedy search. Both phases are clocked.
        accept, decode = sherpa_phases.values()
        stream = accept(lambda: _accepted(sherpa.create_stream()))
        decode(lambda: sherpa.decode_stream(stream))
        return stream.result

    def _accepted(stream):
        stream.accept_waveform(RATE, samples)
        return stream

    # (c) plain Python: librosa + onnxruntime + pyctcdecode
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    plain_session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    plain_decoder = pyctcdecode.build_ctcdecoder([""] + [" " if t == "▁" else t for t in TOKENS[1:]])

    def plain_features():
        mel = librosa.feature.melspectrogram(
            y=samples,
            sr=RATE,
            n_fft=512,
            win_length=400,
            hop_length=160,
            n_mels=80,
            window="hann",
            center=True,
            power=2.0,
        )
        return np.log(np.maximum(mel, 1e-10)).astype(np.float32)[None]  # [1, 80, T]

    def plain_model(x):
        return plain_session.run(None, {"audio_signal": x, "length": np.array([x.shape[2]], dtype=np.int64)})[0][0]

    def plain_decode(lp):
        return plain_decoder.decode(lp, beam_width=1)

    def plain():
        x = plain_features()
        return plain_decode(in_call["python"](lambda: plain_model(x)))

    # Stage inputs for the per-stage clocks.
    feats = features.compute(samples, RATE, cfg)
    feeds = {"audio_signal": np.ascontiguousarray(feats.T[None]), "length": np.array([len(feats)], dtype=np.int64)}
    lp = rec.log_probs_from_features(feats)
    x_plain = plain_features()
    lp_plain = plain_model(x_plain)

    # Sanity: one model for all three; results are gibberish (random weights) but well formed.
    check_ort = session.run(None, feeds)[0][0]
    check_plain = plain_session.run(None, feeds)[0][0]
    same_model = float(np.max(np.abs(check_ort - check_plain)))
    first = {"ours": ours(), "sherpa": run_sherpa(), "python": plain()}

    systems = {"ours": ours, "sherpa": run_sherpa, "python": plain}
    stages = {
        "ours/features": lambda: features.compute(samples, RATE, cfg),
        "ours/model": lambda: rec.log_probs_from_features(feats),
        "ours/model (session.run only)": lambda: session.run(None, feeds),
        "ours/decoding": lambda: rec._decoder.decode(lp),
        "python/features": plain_features,
        "python/model": lambda: plain_model(x_plain),
        "python/decoding": lambda: plain_decode(lp_plain),
    }
    clocks = {name: Clock() for name in list(systems) + list(stages)}
    clocks.update(sherpa_phases)
    ours_timings = []
    for fn in list(systems.values()) + list(stages.values()):  # warm-up
        fn()
    for clock in list(sherpa_phases.values()) + list(in_call.values()):
        clock.__init__()
    order = list(systems)
    for r in range(args.repeats):
        for name in order[r % 3 :] + order[: r % 3]:
            out = clocks[name](systems[name])
            if name == "ours":
                ours_timings.append(dict(out.timings, total=clocks[name].wall[-1]))
        for name, fn in stages.items():
            clocks[name](fn)
    load_after = os.getloadavg()

    per_s = lambda seconds: 1000.0 * seconds / duration  # ms per second of audio
    best = {name: {k: c.best(k) for k in ("wall", "cpu")} for name, c in clocks.items()}

    # Outside-model share per call (model clocked inside the same call), median over the rounds.
    def shares(total, inner):
        return {k: sorted(1 - i / t for i, t in zip(getattr(inner, k), getattr(total, k))) for k in ("wall", "cpu")}

    share_runs = {
        "ours": shares(clocks["ours"], in_call["ours"]),
        "python": shares(clocks["python"], in_call["python"]),
        "sherpa features": shares(clocks["sherpa"], clocks["sherpa/decode_stream (model + decoding)"]),
    }
    share = {name: {k: float(np.median(v)) for k, v in runs.items()} for name, runs in share_runs.items()}
    # sherpa-onnx: everything but decode_stream (a lower bound: decode_stream also holds its glue and search).
    sherpa_features = share["sherpa features"]
    # The transcribe call with the lowest total, split by its own Transcript.timings (wall).
    fastest = min(ours_timings, key=lambda t: t["total"])
    fastest["glue"] = fastest["total"] - fastest["features"] - fastest["model"] - fastest["decoding"]

    rows = []
    for name, label in (
        ("ours", "edge_speech (ours)"),
        ("sherpa", "sherpa-onnx"),
        ("python", "librosa + onnxruntime + pyctcdecode"),
    ):
        rows.append(
            [
                label,
                f"{per_s(best[name]['wall']):.2f}",
                f"{per_s(best[name]['cpu']):.2f}",
                f"{best[name]['wall'] / best['sherpa']['wall']:.2f}",
                f"{best[name]['cpu'] / best['sherpa']['cpu']:.2f}",
                f"{100 * share[name]['wall']:.1f}% / {100 * share[name]['cpu']:.1f}%"
                if name in share
                else f"≥ {100 * sherpa_features['wall']:.1f}% / {100 * sherpa_features['cpu']:.1f}% (features only)",
            ]
        )
    rows.append(
        [
            "onnxruntime session.run alone (floor)",
            f"{per_s(best['ours/model (session.run only)']['wall']):.2f}",
            f"{per_s(best['ours/model (session.run only)']['cpu']):.2f}",
            f"{best['ours/model (session.run only)']['wall'] / best['sherpa']['wall']:.2f}",
            f"{best['ours/model (session.run only)']['cpu'] / best['sherpa']['cpu']:.2f}",
            "0%",
        ]
    )
    head = [
        "system",
        "ms per s of audio (wall)",
        "ms per s (thread CPU)",
        "÷ sherpa (wall)",
        "÷ sherpa (CPU)",
        "outside the model (wall / CPU)",
    ]

    stage_rows = []
    for name in list(stages) + list(sherpa_phases):
        stage_rows.append([name, f"{per_s(best[name]['wall']):.3f}", f"{per_s(best[name]['cpu']):.3f}"])
    outside = {
        k: float(np.median([t - m for t, m in zip(getattr(clocks["ours"], k), getattr(in_call["ours"], k))]))
        for k in ("wall", "cpu")
    }
    stage_rows.append(
        [
            "ours/everything but backend.run, in the timed calls (median)",
            f"{per_s(outside['wall']):.3f}",
            f"{per_s(outside['cpu']):.3f}",
        ]
    )

    proc_ratio = {
        name: (min(c.proc_over_thread), max(c.proc_over_thread))
        for name, c in clocks.items()
        if name in systems or name.endswith("model")
    }
    thread_vs_wall = {name: best[name]["cpu"] / best[name]["wall"] for name in systems}

    def table(header, body):
        if args.markdown:
            lines = [
                "| " + " | ".join(header) + " |",
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
            ]
            lines += ["| " + " | ".join(r) + " |" for r in body]
        else:
            widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
            lines = [
                "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                for r in [header] + body
            ]
        return "\n".join(lines)

    print(table(head, rows))
    print()
    print(f"Per-stage best of {args.repeats}, ms per second of audio:")
    print(table(["stage", "wall", "thread CPU"], stage_rows))
    print()
    print(
        "Fastest ours transcribe by its Transcript.timings (wall, ms per s of audio): "
        + ", ".join(f"{k} {per_s(v):.3f}" for k, v in fastest.items())
    )
    print()
    bullet = "- " if args.markdown else "  "
    print("Checks:")
    print(f"{bullet}same model: max |ours session - plain session| on the same features = {same_model:.1e}")
    print(
        f"{bullet}outputs (gibberish, random weights): ours {len(first['ours'].tokens)} tokens "
        f"{first['ours'].text[:40]!r}…; sherpa {len(first['sherpa'].tokens)} tokens "
        f"{first['sherpa'].text[:40]!r}…; python {len(first['python'])} chars {first['python'][:40]!r}…"
    )
    print(
        f"{bullet}outside-the-model share per call, min–median–max over the rounds (CPU): "
        + ", ".join(
            f"{k} {100 * v['cpu'][0]:.1f}–{100 * share[k]['cpu']:.1f}–{100 * v['cpu'][-1]:.1f}%"
            for k, v in share_runs.items()
        )
    )
    print(
        f"{bullet}process CPU / thread CPU per call (1.00 = no other thread of this process worked): "
        + ", ".join(f"{k} {lo:.2f}–{hi:.2f}" for k, (lo, hi) in proc_ratio.items())
    )
    print(
        f"{bullet}thread CPU / wall of the best calls (< 1 = preempted or waiting): "
        + ", ".join(f"{k} {v:.2f}" for k, v in thread_vs_wall.items())
    )
    print()
    print("Machine and versions:")
    print(
        f"{bullet}CPU: {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"{len(os.sched_getaffinity(0))} usable"
    )
    print(f"{bullet}OS: {platform.platform()}; Python {platform.python_version()}")
    print(f"{bullet}" + "; ".join(f"{k} {v}" for k, v in versions().items()))
    print(
        f"{bullet}model: conv CTC, stride-2 stem + {BLOCKS} depthwise-separable residual blocks of {CHANNELS} "
        f"channels (kernel {KERNEL}, expand {EXPAND}), {info['params'] / 1e6:.2f} M params, V = {len(TOKENS)}, "
        f"random seeded weights, exported with torch {info['torch']} (opset 17, dynamo=False)"
    )
    print(
        f"{bullet}audio: {duration:.0f} s at {RATE} Hz, espeak-ng speech (sox to 16 kHz, looped); "
        f"{len(feats)} feature frames, {len(lp)} model frames"
    )
    print(
        f"{bullet}features: ours kaldi-fbank preset (80 bins, povey window); sherpa-onnx's NeMo front end "
        "(80 bins, hann, librosa-style mel); python: librosa melspectrogram (n_fft 512, hann, 80 Slaney mels)"
    )
    print(
        f"{bullet}load average: {' / '.join(f'{v:.2f}' for v in load_before)} before, "
        f"{' / '.join(f'{v:.2f}' for v in load_after)} after (1 / 5 / 15 min)"
    )
    print(
        f"{bullet}timing: best of {args.repeats} rounds, systems alternating in rotating order, one warm-up "
        "call each; threads: "
        + ", ".join(
            f"{k}={os.environ.get(k)}"
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
        )
        + ", ORT intra-op 1 everywhere"
    )


if __name__ == "__main__":
    main()
