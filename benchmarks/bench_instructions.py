"""What the always-on pipeline costs per second of audio, in instructions, on x86 and on Arm.

    python -m benchmarks.bench_instructions                    # repo root; needs valgrind, qemu-user and
                                                               # the aarch64/armhf cross compilers (setup.sh --test)
    python -m benchmarks.bench_instructions --native           # on a Raspberry Pi or Jetson: real seconds instead

There is no board here, so instructions are counted, not timed. The C stages (energy VAD, feature
front end, greedy and beam decoders) are built from ``native/src`` into one small program
(``benchmarks/native/pipeline_cost.c``) three times: for this x86-64 machine (``-O3``, as the
Release build), for aarch64 (``-mcpu=cortex-a72``, the Pi 4 profile) and for armv7 (``-mcpu=cortex-a53
-mfpu=neon-fp-armv8``, a 32-bit OS on a Pi 3), all static. Each stage runs over 10 s of audio in
20 ms chunks, as ``listen`` feeds it: *speech* is the two example commands repeated with 0.3 s
gaps, *silence* quiet room noise at -60 dBFS. x86 counts come from valgrind's callgrind; Arm counts
from qemu-user's translation log (``-d in_asm,exec,nochain``: every executed block times its
instruction count, exact to 1e-5 against single-stepping). A stage's count is the run's minus the
count of the same program stopping after reading its inputs.

The model runs in ONNX Runtime (``--models NAME@tflite``: its LiteRT model, with PyPI's newest
aarch64 ai-edge-litert fetched into the root): its instructions are counted around ``Recognizer.log_probs`` (a
run over the 10 s minus a run that only loads the model and warms it up on 1 s), on x86 with
callgrind, and on aarch64 with ``--arm-root ROOT``: the same counting qemu (``-cpu cortex-a72``,
so ONNX Runtime takes the kernels a Pi 4 gets) inside an emulated Raspberry Pi OS root made by
``recipes/wheels/arm_roots.sh`` (bookworm-arm64), into which this tree's aarch64 wheel from
``dist/`` (``recipes/wheels/build.sh aarch64``) and ONNX Runtime's PyPI wheel are installed; this
needs root (mount namespace, chroot) and takes about 7 min for en-small and more for en-base. MACs
per second of audio come from the ONNX graph (Conv, MatMul, Gemm and their integer forms, shapes
inferred at 100 frames per second).

The Pi estimates divide aarch64 instruction counts by assumed sustained instruction rates per
core: Cortex-A53 at 1.2 GHz (Pi 3) 0.6-1.0 instructions per cycle, Cortex-A72 at 1.5 GHz (Pi 4)
1.0-1.5, Cortex-A76 at 2.4 GHz (Pi 5) 1.5-2.5 (the A76 also has dot-product instructions that
ONNX Runtime uses there, so its model counts are upper bounds). Without ``--arm-root`` the model's
share comes from its MACs at assumed int8 rates of 2-4 (A53), 4-8 (A72) and 8-16 (A76) MACs per
cycle. These are this script's assumptions, stated so that a measurement on a board can replace
them: ``--native`` prints real seconds per second of audio in the same table.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "recipes" / "default_model" / "examples"
SECONDS = 10.0
RATE = 16000
STAGES = ("vad", "features", "greedy", "beam")
BUILDS = {  # name: (compiler, flags, emulator)
    "x86_64": ("gcc", ["-O3"], None),
    "aarch64": ("aarch64-linux-gnu-gcc", ["-O3", "-static", "-mcpu=cortex-a72"], "qemu-aarch64"),
    "armv7": (
        "arm-linux-gnueabihf-gcc",
        ["-O3", "-static", "-mcpu=cortex-a53", "-mfpu=neon-fp-armv8", "-mfloat-abi=hard"],
        "qemu-arm",
    ),
}
# (GHz, instructions per cycle, int8 MACs per cycle): the assumptions named above
PI_CORES = {
    "Pi 3 (A53, 1.2 GHz)": (1.2, (0.6, 1.0), (2, 4)),
    "Pi 4 (A72, 1.5 GHz)": (1.5, (1.0, 1.5), (4, 8)),
    "Pi 5 (A76, 2.4 GHz)": (2.4, (1.5, 2.5), (8, 16)),
}
ARM_WORK = "/tmp/es-instr"  # inside the emulated root


# -- inputs -----------------------------------------------------------------------------------------


def make_inputs(work: Path) -> Dict[str, Path]:
    """speech.f32 / silence.f32 (10 s, 16 kHz) and en-small's log-probs on the speech."""
    from edge_speech import Recognizer, audio

    rng = np.random.default_rng(0)
    room = (10 ** (-60 / 20) * rng.standard_normal(int(SECONDS * RATE))).astype(np.float32)
    commands = [audio.load_audio(p, RATE) for p in sorted(EXAMPLES.glob("*.wav"))]
    pieces, total = [], 0
    while total < len(room):
        for x in commands:
            pieces += [x, np.zeros(int(0.3 * RATE), np.float32)]
            total += len(x) + int(0.3 * RATE)
    speech = np.concatenate(pieces)[: len(room)] + room
    paths = {"speech": work / "speech.f32", "silence": work / "silence.f32", "log_probs": work / "log_probs.f32"}
    speech.astype(np.float32).tofile(paths["speech"])
    room.tofile(paths["silence"])
    recognizer = Recognizer.default("en-small", threads=1)
    log_probs = recognizer.log_probs(speech)
    log_probs.astype(np.float32).tofile(paths["log_probs"])
    paths["vocab"] = Path(str(log_probs.shape[1]))
    return paths


def build(arch: str, work: Path) -> Path:
    compiler, flags, _ = BUILDS[arch]
    out = work / f"pipeline_cost_{arch}"
    sources = sorted(str(p) for p in (ROOT / "native" / "src").glob("*.c"))
    subprocess.run(
        [
            compiler,
            *flags,
            "-std=c11",
            "-DNDEBUG",
            f"-I{ROOT / 'native' / 'include'}",
            f"-I{ROOT / 'native' / 'include' / 'edge_speech'}",
            f"-I{ROOT / 'native' / 'src'}",
            "-o",
            str(out),
            str(ROOT / "benchmarks" / "native" / "pipeline_cost.c"),
            *sources,
            "-lm",
        ],
        check=True,
    )
    return out


# -- counting ---------------------------------------------------------------------------------------

_TRACE = re.compile(rb"Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")


def qemu_instructions(emulator: "str | List[str]", command: List[str], by_function: Optional[dict] = None) -> int:
    """Instructions a program executes under qemu-user: each executed translation block (from the
    exec log, blocks unchained so every execution is logged) times its instruction count (from
    the in_asm log of its translation). ``emulator``: qemu's path, or the command line that
    starts it (a chroot into an emulated root, say). ``by_function`` gets the count per symbol
    (the function a block was translated in)."""
    read, write = os.pipe()
    launcher = [emulator] if isinstance(emulator, str) else list(emulator)
    proc = subprocess.Popen(
        [*launcher, "-d", "in_asm,exec,nochain", "-D", f"/proc/self/fd/{write}", *command],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
    )
    os.close(write)
    sizes: Dict[int, int] = {}
    names: Dict[int, bytes] = {}
    per_block: Dict[int, int] = {}
    total, block, count, name = 0, None, 0, b"?"
    with os.fdopen(read, "rb", buffering=1 << 20) as log:
        for line in log:
            if line.startswith(b"Trace"):
                match = _TRACE.match(line)
                if match:
                    pc = int(match.group(1), 16)
                    total += sizes.get(pc, 0)
                    if by_function is not None:
                        per_block[pc] = per_block.get(pc, 0) + 1
            elif line.startswith(b"IN:"):
                name = line[3:].strip() or b"?"
            elif line.startswith(b"0x"):
                if block is None:
                    block, count = int(line.split(b":", 1)[0], 16), 0
                count += 1
            elif block is not None and not line.strip():
                sizes[block], names[block] = count, name
                block = None
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(command)} failed under {launcher[0]}")
    if by_function is not None:
        for pc, runs in per_block.items():
            key = names.get(pc, b"?").decode(errors="replace")
            by_function[key] = by_function.get(key, 0) + runs * sizes.get(pc, 0)
    return total


def callgrind_instructions(command: List[str], env: Optional[dict] = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        text = out.read_text()
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if match is None:
        raise RuntimeError("callgrind wrote no totals")
    return int(match.group(1))


def stage_counts(arch: str, binary: Path, inputs: Dict[str, Path]) -> Dict[Tuple[str, str], float]:
    """(stage, audio) -> instructions per second of audio."""
    emulator = BUILDS[arch][2]

    def count(stage: str, audio: str) -> int:
        command = [str(binary), stage, str(inputs[audio]), str(inputs["log_probs"]), str(inputs["vocab"])]
        return qemu_instructions(emulator, command) if emulator else callgrind_instructions(command)

    counts = {}
    for audio in ("speech", "silence"):
        baseline = count("none", audio)
        for stage in STAGES:
            if stage in ("greedy", "beam") and audio == "silence":
                continue  # the VAD gates the model and decoder off in silence
            counts[(stage, audio)] = (count(stage, audio) - baseline) / SECONDS
    return counts


def model_instructions_x86(model: str, inputs: Dict[str, Path]) -> float:
    """x86 instructions per second of speech of ``Recognizer.log_probs`` (ONNX Runtime, 1 thread)."""
    script = _model_script(str(inputs["speech"]))
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    counts = [callgrind_instructions([sys.executable, "-c", script, model, mode], env) for mode in ("load", "run")]
    return (counts[1] - counts[0]) / SECONDS


def _model_script(speech: str) -> str:
    """argv: MODEL[@BACKEND] (an embedded model, ``@tflite`` for its LiteRT model) and load|run."""
    return (
        "import sys, numpy as np\n"
        "from edge_speech import Recognizer\n"
        "name, _, backend = sys.argv[1].partition('@')\n"
        "r = Recognizer.default(name, threads=1, backend=backend or 'onnx')\n"
        f"x = np.fromfile({speech!r}, dtype=np.float32)\n"
        "r.log_probs(x[:16000])\n"  # warm-up: ONNX Runtime's first run allocates and plans
        "if sys.argv[2] == 'run': r.log_probs(x)\n"
    )


def prepare_arm_root(root: Path, inputs: Dict[str, Path], litert: bool = False) -> None:
    """A venv in the emulated root with this tree's aarch64 wheel and its dependencies (offline,
    from the root's wheelhouse beside it; with ``litert``, ai-edge-litert too), the speech, the
    counting qemu and the model script."""
    wheels = sorted((ROOT / "dist").glob("edge_speech-*-cp311-cp311-manylinux_*_aarch64.whl"))
    wheelhouse = root.parent / f"wheelhouse-{root.name}"
    if not wheels or not wheelhouse.is_dir() or shutil.which("qemu-aarch64-static") is None:
        raise SystemExit(
            "--arm-root needs recipes/wheels/prepare.sh (the root, its wheelhouse, qemu-user-static) and "
            "recipes/wheels/build.sh aarch64 (the cp311 wheel in dist/)"
        )
    work = Path(str(root) + ARM_WORK)
    shutil.rmtree(work, ignore_errors=True)
    (work / "wheels").mkdir(parents=True)
    for wheel in [wheels[-1], *wheelhouse.glob("*.whl")]:
        shutil.copy(wheel, work / "wheels")
    extras = ""
    if litert:  # PyPI's newest LiteRT for aarch64 (2.x ships x86 only): fetched by name, like pip would
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                *(f"--platform=manylinux_2_{minor}_aarch64" for minor in (17, 28, 31)),
                "-d",
                str(work / "wheels"),
                "ai-edge-litert",
            ],
            check=True,
        )
        extras = " ai-edge-litert"
    shutil.copy(shutil.which("qemu-aarch64-static") or "", work / "qemu")
    shutil.copy(inputs["speech"], work / "speech.f32")
    (work / "model.py").write_text(_model_script(f"{ARM_WORK}/speech.f32"))
    install = (
        f"cd {ARM_WORK} && python3 -m venv venv && venv/bin/pip install -q --no-cache-dir --no-index "
        f"--find-links wheels wheels/{wheels[-1].name}{extras}"
    )
    subprocess.run(_in_root(root, ["sh", "-c", install]), check=True)


def _in_root(root: Path, command: List[str]) -> List[str]:
    """``command`` in the emulated root: a private mount namespace with /proc, /dev and a /sys that
    holds only the CPU lists (ONNX Runtime's CPU detection needs them; the host's real /sys makes
    it crash under qemu-user)."""
    setup = (
        f"mount -t proc proc {root}/proc && mount -t tmpfs cpus {root}/sys && "
        f"mkdir -p {root}/sys/devices/system/cpu && for list in possible present online; do "
        f"echo 0 > {root}/sys/devices/system/cpu/$list; done && mount --rbind /dev {root}/dev && "
        f'exec chroot {root} /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root OMP_NUM_THREADS=1 PYTHONHASHSEED=0 "$@"'
    )
    return ["unshare", "--mount", "--fork", "sh", "-c", setup, "sh", *command]


def model_instructions_arm(root: Path, model: str) -> float:
    """aarch64 instructions per second of speech of ``Recognizer.log_probs`` in the emulated root."""
    counts = [
        qemu_instructions(
            _in_root(root, [f"{ARM_WORK}/qemu", "-cpu", "cortex-a72"]),
            [f"{ARM_WORK}/venv/bin/python", f"{ARM_WORK}/model.py", model, mode],
        )
        for mode in ("load", "run")
    ]
    return (counts[1] - counts[0]) / SECONDS


def onnx_macs_per_second(model_path: Path) -> float:
    """MACs of one second of audio (100 feature frames) from the ONNX graph's shapes."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model_path))
    frames = 100
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_value = frames if dim.dim_param in ("frames", "time", "T") else 1
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value if d.dim_value > 0 else None for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    macs = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvInteger", "MatMul", "MatMulInteger", "Gemm"):
            out = shapes.get(node.output[0])
            weight = shapes.get(node.input[1])
            if not out or not weight or None in out or None in weight:
                raise ValueError(f"{model_path}: no shape for {node.op_type} {node.name!r}")
            if node.op_type.startswith("Conv"):
                per_output = int(np.prod(weight[1:]))  # input channels / group x kernel
            else:
                a = shapes.get(node.input[0])
                per_output = a[-1] if a and a[-1] else weight[-2]
            macs += int(np.prod(out)) * per_output
    return float(macs)


# -- the table --------------------------------------------------------------------------------------


def pi_range(instructions: float, core: Tuple[float, Tuple[float, float], Tuple[int, int]]) -> str:
    """Share of one core, from instructions per second (a range over the assumed IPC)."""
    ghz, (ipc_lo, ipc_hi), _ = core
    return f"{100 * instructions / (ipc_hi * ghz * 1e9):.2g}-{100 * instructions / (ipc_lo * ghz * 1e9):.2g}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=list(BUILDS), choices=list(BUILDS))
    parser.add_argument(
        "--models", nargs="+", default=["en-small", "en-base"], help="embedded models; NAME@tflite for its LiteRT model"
    )
    parser.add_argument("--native", action="store_true", help="on the device itself: seconds, not instructions")
    parser.add_argument(
        "--arm-root",
        type=Path,
        help="emulated Raspberry Pi OS root (recipes/wheels/arm_roots.sh: DATA/arm-roots/bookworm-arm64) for "
        "the models' aarch64 instruction counts (needs root)",
    )
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    print(f"{datetime.date.today()}, commit {commit.stdout.strip()}, {platform.machine()}")
    with tempfile.TemporaryDirectory(prefix="es_instr_") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work)
        if args.native:
            native_table(work, inputs, args.models)
            return
        for tool in (
            "valgrind",
            *(BUILDS[a][0] for a in args.arch),
            *(BUILDS[a][2] for a in args.arch if BUILDS[a][2]),
        ):
            if shutil.which(tool) is None:
                raise SystemExit(f"needs {tool}: bash recipes/setup.sh --test installs the cross tools")
        counts = {arch: stage_counts(arch, build(arch, work), inputs) for arch in args.arch}
        print("\nC stages, millions of instructions per second of audio (10 s, 20 ms chunks):\n")
        print("| stage | audio | " + " | ".join(args.arch) + " |")
        print("|---|---|" + "---:|" * len(args.arch))
        for stage, audio in counts[args.arch[0]]:
            row = " | ".join(f"{counts[a][(stage, audio)] / 1e6:.2f}" for a in args.arch)
            print(f"| {stage} | {audio} | {row} |")
        if "aarch64" in args.arch:
            print("\nWhere the aarch64 front end spends them (share of the features run on speech):\n")
            binary = work / "pipeline_cost_aarch64"
            stage_args = [str(inputs["speech"]), str(inputs["log_probs"]), str(inputs["vocab"])]
            profile: dict = {}
            run_total = qemu_instructions("qemu-aarch64", [str(binary), "features", *stage_args], profile)
            for function, n in sorted(profile.items(), key=lambda kv: -kv[1])[:5]:
                print(f"- {function}: {100 * n / run_total:.0f}%")
        from edge_speech.recognizer import EMBEDDED_MODELS

        if args.arm_root:
            prepare_arm_root(args.arm_root, inputs, litert=any(m.endswith("@tflite") for m in args.models))
        print("\nModels (ONNX Runtime, or LiteRT for @tflite; 1 thread), per second of speech:\n")
        print("| model | MMACs | x86 M instructions | x86 instructions per MAC | aarch64 M instructions |")
        print("|---|---:|---:|---:|---:|")
        macs_of, arm_of = {}, {}
        for model in args.models:
            macs_of[model] = onnx_macs_per_second(Path(EMBEDDED_MODELS[model.partition("@")[0]]) / "model.onnx")
            x86 = model_instructions_x86(model, inputs)
            arm_of[model] = model_instructions_arm(args.arm_root, model) if args.arm_root else None
            arm_text = f"{arm_of[model] / 1e6:.1f}" if arm_of[model] else "(no --arm-root)"
            print(
                f"| {model} | {macs_of[model] / 1e6:.1f} | {x86 / 1e6:.1f} | {x86 / macs_of[model]:.3f} | {arm_text} |"
            )
        arm = "aarch64" if "aarch64" in counts else args.arch[0]
        silence = counts[arm][("vad", "silence")]
        speech_c = sum(counts[arm][(s, "speech")] for s in ("vad", "features", "beam"))
        print(f"\nShare of one core, estimated from the {arm} counts and the assumed rates:\n")
        print(
            "| device | silence (VAD) | speech, C stages (VAD + features + beam) | "
            + " | ".join(f"{m} model" for m in args.models)
            + " |"
        )
        print("|---|---:|---:|" + "---:|" * len(args.models))
        for name, core in PI_CORES.items():
            ghz, _, (mac_lo, mac_hi) = core
            models = " | ".join(
                pi_range(arm_of[m], core)
                if arm_of[m]
                else f"{100 * macs_of[m] / (mac_hi * ghz * 1e9):.2g}-{100 * macs_of[m] / (mac_lo * ghz * 1e9):.2g}% (MACs)"
                for m in args.models
            )
            print(f"| {name} | {pi_range(silence, core)} | {pi_range(speech_c, core)} | {models} |")


def native_table(work: Path, inputs: Dict[str, Path], models: List[str]) -> None:
    """On the device: seconds of one core per second of audio, measured."""
    from edge_speech import Recognizer

    binary = _build_native(work)
    print("| stage | audio | seconds per second of audio |")
    print("|---|---|---:|")
    for audio in ("speech", "silence"):
        for stage in STAGES:
            if stage in ("greedy", "beam") and audio == "silence":
                continue
            command = [str(binary), stage, str(inputs[audio]), str(inputs["log_probs"]), str(inputs["vocab"])]
            base = [str(binary), "none", *command[2:]]
            elapsed = _seconds(command) - _seconds(base)
            print(f"| {stage} | {audio} | {elapsed / SECONDS:.5f} |")
    speech = np.fromfile(inputs["speech"], dtype=np.float32)
    for model in models:
        name, _, backend = model.partition("@")
        recognizer = Recognizer.default(name, threads=1, backend=backend or "onnx")
        recognizer.log_probs(speech[:RATE])
        start = time.perf_counter()
        recognizer.log_probs(speech)
        print(f"| {model} model | speech | {(time.perf_counter() - start) / SECONDS:.5f} |")


def _build_native(work: Path) -> Path:
    out = work / "pipeline_cost_native"
    sources = sorted(str(p) for p in (ROOT / "native" / "src").glob("*.c"))
    subprocess.run(
        ["cc", "-O3", "-mcpu=native" if platform.machine() != "x86_64" else "-march=native", "-std=c11", "-DNDEBUG"]
        + [f"-I{ROOT / 'native' / 'include'}", f"-I{ROOT / 'native' / 'include' / 'edge_speech'}"]
        + [f"-I{ROOT / 'native' / 'src'}", "-o", str(out), str(ROOT / "benchmarks" / "native" / "pipeline_cost.c")]
        + sources
        + ["-lm"],
        check=True,
    )
    return out


def _seconds(command: List[str], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    main()
