"""Times edge_speech.features against peer libraries in one run and prints ratios.

    python -m benchmarks.bench_features [--seconds 60] [--repeats 7] [--markdown]

Run it from outside the repository (e.g. ``cd /tmp``) so ``import edge_speech`` finds the
installed build, not the source tree. Needs the ``bench`` extra: librosa, kaldi-native-fbank,
python_speech_features. Every time is the best of ``--repeats`` runs of time.perf_counter.

Cases (all at 16 kHz, 80 mel bins):
  librosa one-shot      features.compute(preset "librosa-mel") vs
                        np.log(librosa.feature.melspectrogram(...) + 1e-6)
  knf 10 ms chunks      FeatureStream(preset "kaldi-fbank") vs knf.OnlineFbank (dither 0),
                        both fed 160-sample chunks and read after each chunk; knf once with the
                        same float32 numpy chunks, once with pre-built lists (its fastest input)
  knf one-shot          features.compute(preset "kaldi-fbank") vs knf.OnlineFbank, whole signal
  psf one-shot          features.compute(preset "kaldi-fbank") vs
                        python_speech_features.logfbank(nfilt=80, nfft=512)
  2 threads vs 1        N compute calls in one thread ("peer" column) vs the same N split over
                        two threads ("ours" column): a ratio near 2 means the GIL is released
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave

# Single-thread comparisons: peers must not fan out over the cores behind our back. Recorded
# before we set them, so the output says what the caller's environment had.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_ENV_BEFORE = {k: os.environ.get(k) for k in _THREAD_VARS + ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
for _var in _THREAD_VARS:
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

SAMPLE_RATE = 16000
CHUNK = 160  # 10 ms

TEXT = (
    "The quick brown fox jumps over the lazy dog. Offline speech recognition runs on small "
    "devices such as the Raspberry Pi and the Jetson. Turn on the kitchen lights, set a timer "
    "for ten minutes, and play some music in the living room. What is the weather like "
    "tomorrow morning in Edinburgh? Seven, eight, nine, ten. Please call my sister at home. "
)


# -- audio ----------------------------------------------------------------------------------
def espeak_speech(seconds: float) -> "np.ndarray | None":
    """espeak-ng speech resampled by sox to 16 kHz, looped to length; None if either is missing."""
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "speech.wav")
        try:
            subprocess.run(["espeak-ng", "-w", raw, TEXT], check=True, capture_output=True, timeout=120)
            subprocess.run(
                ["sox", raw, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", out],
                check=True,
                capture_output=True,
                timeout=120,
            )
            with wave.open(out, "rb") as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        except (OSError, subprocess.SubprocessError, wave.Error):
            return None
    if pcm.size == 0:
        return None
    total = int(seconds * SAMPLE_RATE)
    return (np.resize(pcm, total).astype(np.float32) / 32768.0).astype(np.float32)


def synthetic_speech(seconds: float) -> np.ndarray:
    """A deterministic speech-like signal: a glottal pulse train with a wandering pitch through
    three moving formant resonators, syllable-rate envelopes, pauses and a little noise."""
    rng = np.random.default_rng(1234)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 25 * np.sin(2 * np.pi * 0.3 * t) + 10 * np.sin(2 * np.pi * 2.1 * t)
    phase = np.cumsum(f0) / SAMPLE_RATE
    source = (phase % 1.0) ** 3 - 0.25  # bright, pulse-like
    out = np.zeros(n)
    for centre, swing, rate, bw in ((600, 250, 2.7, 80), (1500, 500, 3.3, 120), (2600, 300, 1.9, 160)):
        f = centre + swing * np.sin(2 * np.pi * rate * t)
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        a1, a2 = -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r
        y1 = y2 = 0.0
        y = np.empty(n)
        for i in range(n):  # time-varying resonator: slow in Python, but only run once
            y0 = source[i] - a1[i] * y1 - a2 * y2
            y[i], y2, y1 = y0, y1, y0
        out += y / np.abs(y).max()
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5 * (np.sin(2 * np.pi * 0.23 * t) > -0.6)
    out = out * envelope + 0.003 * rng.standard_normal(n)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


# -- timing ---------------------------------------------------------------------------------
_clock = time.perf_counter  # --cpu-time swaps in time.thread_time for the single-thread cases


def best_pair_ms(first, second, repeats: int):
    """Best-of-``repeats`` times of two functions, run alternately so that load from other
    processes on a shared machine falls on both alike. One warm-up call each first: first-call
    costs (numba compilation, caches) are not what we compare."""
    best = [float("inf"), float("inf")]
    first()
    second()
    for _ in range(repeats):
        for i, f in enumerate((first, second)):
            start = _clock()
            f()
            best[i] = min(best[i], _clock() - start)
    return best[0] * 1e3, best[1] * 1e3


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def version(dist: str) -> str:
    try:
        from importlib.metadata import version as v

        return v(dist)
    except Exception:  # noqa: BLE001 - a missing distribution is reported, not fatal
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"
    except OSError:
        return "unknown"


def machine_info(source: str, seconds: float, repeats: int, load_before: str) -> list:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = [
        ("CPU", f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, {usable} usable"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("numpy", np.__version__),
        ("edge_speech", version("edge-speech")),
        ("librosa", version("librosa")),
        ("kaldi-native-fbank", version("kaldi-native-fbank")),
        ("python_speech_features", version("python_speech_features")),
        ("scipy", version("scipy")),
        ("audio", f"{seconds:g} s at {SAMPLE_RATE} Hz, {source}"),
        ("load average", f"{load_before} before the run, {load_average()} after"),
        (
            "timing",
            f"best of {repeats} runs ({_clock.__module__}.{_clock.__name__}; the thread row always "
            "time.perf_counter), ours and peer alternating, after one warm-up run each",
        ),
    ]
    blas = {k: v for k, v in _ENV_BEFORE.items() if k.startswith("OPENBLAS_")}
    info.append(("OPENBLAS env", ", ".join(f"{k}={'unset' if v is None else v}" for k, v in blas.items())))
    info.append(
        (
            "thread env",
            ", ".join(f"{k}={os.environ[k]}" + ("" if _ENV_BEFORE[k] else " (set by script)") for k in _THREAD_VARS),
        )
    )
    try:
        from threadpoolctl import threadpool_info

        pools = [
            f"{p['internal_api']} {p.get('version')} {p.get('architecture')} x{p['num_threads']}"
            for p in threadpool_info()
        ]
        info.append(("BLAS pools", "; ".join(pools) or "none loaded"))
    except ImportError:
        pass
    return info


# -- the cases ------------------------------------------------------------------------------
def run(seconds: float, repeats: int, threads_calls: int):
    import kaldi_native_fbank as knf
    import librosa
    import python_speech_features as psf

    from edge_speech import features

    load_before = load_average()
    source = "espeak-ng speech (sox to 16 kHz, looped)"
    audio = espeak_speech(seconds)
    if audio is None:
        source = "deterministic synthetic speech-like signal (espeak-ng or sox not on PATH)"
        audio = synthetic_speech(seconds)

    rows, checks = [], []
    lib_cfg = features.FeatureConfig.preset("librosa-mel")
    kaldi_cfg = features.FeatureConfig.preset("kaldi-fbank")

    # (a) librosa one-shot
    def ours_librosa():
        return features.compute(audio, SAMPLE_RATE, lib_cfg)

    def peer_librosa():
        mel = librosa.feature.melspectrogram(
            y=audio,
            sr=SAMPLE_RATE,
            n_fft=512,
            hop_length=160,
            win_length=400,
            center=True,
            pad_mode="reflect",
            n_mels=80,
        )
        return np.log(mel + 1e-6)

    ours, peer = best_pair_ms(ours_librosa, peer_librosa, repeats)
    rows.append(("librosa-mel one-shot vs librosa", ours, peer, 3.0))
    checks.append(("librosa-mel vs librosa", rel_err(ours_librosa(), peer_librosa().T)))

    # (b) kaldi-native-fbank, 10 ms chunks and one-shot
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.mel_opts.num_bins = 80
    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]
    # knf takes a sequence of floats. Fed the same float32 numpy chunks as ours it converts them
    # element by element; Python lists built outside the timed region are its cheapest input,
    # so it is timed both ways.
    knf_lists = [c.tolist() for c in chunks]
    knf_whole = audio.tolist()

    def ours_stream():
        stream = features.FeatureStream(kaldi_cfg, SAMPLE_RATE)
        out = []
        for c in chunks:
            stream.accept(c)
            out.append(stream.read())
        stream.finish()
        out.append(stream.read())
        return np.concatenate(out)

    def knf_drain(fb, out, done):
        ready = fb.num_frames_ready
        out.extend(fb.get_frame(i) for i in range(done, ready))
        return ready

    def peer_stream(knf_chunks=chunks):
        fb = knf.OnlineFbank(opts)
        out, done = [], 0
        for c in knf_chunks:
            fb.accept_waveform(SAMPLE_RATE, c)
            done = knf_drain(fb, out, done)
        fb.input_finished()
        knf_drain(fb, out, done)
        return np.array(out, dtype=np.float32)

    def ours_kaldi():
        return features.compute(audio, SAMPLE_RATE, kaldi_cfg)

    def peer_kaldi():
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(SAMPLE_RATE, knf_whole)
        fb.input_finished()
        out = []
        knf_drain(fb, out, 0)
        return np.array(out, dtype=np.float32)

    ours, peer = best_pair_ms(ours_stream, peer_stream, repeats)
    rows.append(("kaldi-fbank 10 ms chunks vs knf (numpy chunks)", ours, peer, 5.0))
    ours, peer = best_pair_ms(ours_stream, lambda: peer_stream(knf_lists), repeats)
    rows.append(("kaldi-fbank 10 ms chunks vs knf (list chunks)", ours, peer, 5.0))
    checks.append(("kaldi-fbank stream vs knf stream", rel_err(ours_stream(), peer_stream())))
    ours, peer = best_pair_ms(ours_kaldi, peer_kaldi, repeats)
    rows.append(("kaldi-fbank one-shot vs knf", ours, peer, None))
    checks.append(("kaldi-fbank one-shot vs knf", rel_err(ours_kaldi(), peer_kaldi())))
    checks.append(("kaldi-fbank stream vs one-shot (ours)", float(np.max(np.abs(ours_stream() - ours_kaldi())))))

    # (c) python_speech_features one-shot: the same work (80 filters, 512-point FFT), not the
    # same numbers (psf uses a rectangular window, whole-signal pre-emphasis, Hz triangles).
    def peer_psf():
        return psf.logfbank(audio, samplerate=SAMPLE_RATE, winlen=0.025, winstep=0.01, nfilt=80, nfft=512)

    ours, peer = best_pair_ms(ours_kaldi, peer_psf, repeats)
    rows.append(("kaldi-fbank one-shot vs python_speech_features", ours, peer, None))

    # (d) GIL release: N calls in one thread vs the same N over two threads.
    def calls(k):
        for _ in range(k):
            features.compute(audio, SAMPLE_RATE, lib_cfg)

    def one_thread():
        calls(threads_calls)

    def two_threads():
        workers = [
            threading.Thread(target=calls, args=(n,)) for n in (threads_calls // 2, threads_calls - threads_calls // 2)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    global _clock
    saved, _clock = _clock, time.perf_counter  # threads: only wall time means anything
    double, single = best_pair_ms(two_threads, one_thread, repeats)
    _clock = saved
    # The speedup needs two idle cores; this does not. While one thread computes, count how
    # often the main thread gets to run Python: a GIL held through the call would allow ~none.
    done = threading.Event()
    worker = threading.Thread(target=lambda: (calls(threads_calls), done.set()))
    spins, start = 0, time.perf_counter()
    worker.start()
    while not done.is_set():
        spins += 1
    worker.join()
    checks.append(
        (
            f"GIL: main-thread Python loops during {threads_calls} calls in a worker "
            f"({(time.perf_counter() - start) * 1e3:.0f} ms)",
            float(spins),
        )
    )
    rows.append((f"{threads_calls} librosa-mel calls: 2 threads vs 1", double, single, 1.8))
    return rows, checks, machine_info(source, seconds, repeats, load_before)


# -- output ---------------------------------------------------------------------------------
def table(rows) -> list:
    out = []
    for case, ours, peer, goal in rows:
        ratio = peer / ours
        goal_text = "-" if goal is None else f">= {goal:g}x"
        verdict = "-" if goal is None else ("pass" if ratio >= goal else "FAIL")
        out.append((case, f"{ours:.2f}", f"{peer:.2f}", f"{ratio:.2f}", goal_text, verdict))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length (default 60)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case; the best is kept (default 7)")
    parser.add_argument("--threads-calls", type=int, default=8, help="compute calls in the GIL case (default 8)")
    parser.add_argument("--markdown", action="store_true", help="print markdown (for RESULTS.md)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time single-thread cases by thread CPU time (time.thread_time) instead of wall "
        "time, so preemption on a busy shared machine is not counted; the thread case "
        "stays on wall time",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1 or args.threads_calls < 2:
        parser.error("--seconds must be > 0, --repeats >= 1, --threads-calls >= 2")

    global _clock
    if args.cpu_time:
        _clock = time.thread_time
    rows, checks, info = run(args.seconds, args.repeats, args.threads_calls)
    header = ("case", "ours ms", "peer ms", "ratio (peer/ours)", "goal", "pass/fail")
    body = table(rows)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---"] + ["---:"] * 3 + ["---"] * 2) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
        print()
        print(
            "Checks in the same run (relative error ||ours - ref|| / ||ref||; stream vs one-shot is a max abs "
            "difference; the GIL line is a count):"
        )
        print()
        for name, err in checks:
            print(f"- {name}: {err:.2e}" if not name.startswith("GIL") else f"- {name}: {err:.0f}")
        print()
        print("Machine and versions:")
        print()
        for k, v in info:
            print(f"- {k}: {v}")
    else:
        for k, v in info:
            print(f"{k + ':':24s}{v}")
        print()
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
        for r in (header, *body):
            print(
                "  ".join(
                    str(x).ljust(w) if i in (0, 4, 5) else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths))
                )
            )
        print()
        print("checks (relative error; stream vs one-shot is a max abs difference; GIL is a count):")
        for name, err in checks:
            print(f"  {name:40s}{err:.2e}" if not name.startswith("GIL") else f"  {name}: {err:.0f}")
        print("(GIL row: 'ours' is two threads, 'peer' one thread; ratio is the speedup)")
    return 0 if all(v != "FAIL" for *_, v in body) else 1


if __name__ == "__main__":
    sys.exit(main())
