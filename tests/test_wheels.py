"""The prebuilt wheels (recipes/wheels/build.sh): one host builds them for x86_64, aarch64 and armv7l.

Fast: each architecture's cp311 wheel is built and checked with binutils' readelf, independently of the
auditwheel run that tagged it: the extension is an ELF of the right machine (hard-float on armv7l), needs
libc and libm only, at glibc symbol versions no newer than its manylinux tag and 2.31 (JetPack 5; Raspberry
Pi OS bookworm has 2.36); the wheels hold the same Python files; the x86_64 wheel, unpacked and imported on
its own, computes the same features and transcript as the source build.

Slow (emulated Arm, recipes/wheels/smoke.sh): a fresh venv in a Debian root under qemu (arm64 bullseye and
bookworm, armhf bookworm) installs the wheel without a compiler and transcribes the example like this machine. The roots come from
``bash recipes/wheels/prepare.sh`` (about 10 min once, cached outside git); without them these tests fail in
CI and skip elsewhere, naming that command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_speech import Recognizer, audio, features
from edge_speech.recognizer import DEFAULT_BUNDLE
from recipes import DATA

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "recipes" / "default_model" / "examples" / "set_a_timer_for_ten_minutes.wav"
ARM_ROOTS = Path(os.environ.get("ES_ARM_ROOTS", ROOT / DATA / "arm-roots"))  # DATA: $EDGE_SPEECH_DATA, else data/
MAX_GLIBC = (2, 31)  # JetPack 5 (Ubuntu 20.04) and Debian bullseye
ARCHITECTURES = {
    # wheel platform: (readelf's machine, ELF class, the CPython SOABI triplet)
    "x86_64": ("Advanced Micro Devices X86-64", "ELF64", "x86_64-linux-gnu"),
    "aarch64": ("AArch64", "ELF64", "aarch64-linux-gnu"),
    "armv7l": ("ARM", "ELF32", "arm-linux-gnueabihf"),
}
ALLOWED_LIBRARIES = {"libc.so.6", "libm.so.6"}

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils' readelf is not installed")


def build_wheels(out: Path, pythons: str, *architectures: str) -> dict:
    env = dict(os.environ, ES_WHEEL_DIST=str(out), ES_WHEEL_PYTHONS=pythons)
    subprocess.run(["bash", "recipes/wheels/build.sh", *architectures], cwd=ROOT, env=env, check=True)
    wheels = {}
    for wheel in out.glob("*.whl"):
        arch = next(a for a in ARCHITECTURES if wheel.name.endswith(f"_{a}.whl"))
        wheels[(arch, wheel.name.split("-")[2])] = wheel
    return wheels


@pytest.fixture(scope="module")
def cp311_wheels(tmp_path_factory) -> dict:
    """{architecture: wheel} for CPython 3.11, built by the project's command."""
    wheels = build_wheels(tmp_path_factory.mktemp("dist"), "3.11", "all")
    assert sorted(arch for arch, _ in wheels) == sorted(ARCHITECTURES)
    return {arch: wheel for (arch, _), wheel in wheels.items()}


def extension_of(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.startswith("edge_speech/_native.") and n.endswith(".so")]
        return Path(archive.extract(name, into))


def readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True, text=True).stdout


def wheel_tag_glibc(wheel: Path) -> tuple:
    match = re.search(r"-manylinux_(\d+)_(\d+)_", wheel.name)
    assert match, f"{wheel.name} has no manylinux_x_y tag"
    return int(match[1]), int(match[2])


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_wheel_extension_is_a_manylinux_elf_for_its_architecture(cp311_wheels, arch, tmp_path):
    wheel = cp311_wheels[arch]
    machine, elf_class, triplet = ARCHITECTURES[arch]
    assert wheel.name.startswith("edge_speech-") and "-cp311-cp311-manylinux_" in wheel.name
    assert wheel_tag_glibc(wheel) <= MAX_GLIBC
    extension = extension_of(wheel, tmp_path)
    assert extension.name == f"_native.cpython-311-{triplet}.so"

    header = readelf("-h", str(extension))
    assert re.search(rf"Machine:\s+{re.escape(machine)}$", header, re.M), header
    assert re.search(rf"Class:\s+{elf_class}$", header, re.M), header
    if arch == "armv7l":  # Raspberry Pi OS armhf: the hard-float calling convention
        assert "hard-float ABI" in header, header

    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", str(extension))))
    assert needed and needed <= ALLOWED_LIBRARIES, f"links {sorted(needed - ALLOWED_LIBRARIES)} besides libc/libm"

    versions = {(int(a), int(b)) for a, b in re.findall(r"Name: GLIBC_(\d+)\.(\d+)", readelf("-V", str(extension)))}
    assert versions, "no versioned glibc symbols: the version needs section is missing"
    assert max(versions) <= wheel_tag_glibc(wheel) <= MAX_GLIBC

    with zipfile.ZipFile(wheel) as archive:
        wheel_info = archive.read("edge_speech-0.1.0.dist-info/WHEEL").decode()
    tags = re.findall(r"^Tag: (.+)$", wheel_info, re.M)
    assert tags and all(tag in wheel.name for tag in tags), (tags, wheel.name)


def test_wheels_of_all_architectures_hold_the_same_python_files(cp311_wheels):
    def python_files(wheel: Path) -> dict:
        with zipfile.ZipFile(wheel) as archive:
            return {
                i.filename: i.CRC
                for i in archive.infolist()
                if not i.filename.endswith(".so") and ".dist-info/" not in i.filename
            }

    reference = python_files(cp311_wheels["x86_64"])
    assert "edge_speech/models/default/model.onnx" in reference
    assert "edge_speech/targets/rpi4.toml" in reference
    for arch in ("aarch64", "armv7l"):
        assert python_files(cp311_wheels[arch]) == reference, arch


def test_x86_64_wheel_unpacked_alone_matches_the_source_build(cp311_wheels, tmp_path):
    """The wheel's own extension and files, not the editable install, give the same features and text."""
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the fixture builds the cp311 wheel")
    with zipfile.ZipFile(cp311_wheels["x86_64"]) as archive:
        archive.extractall(tmp_path / "site")
    np.save(tmp_path / "samples.npy", audio.load_audio(EXAMPLE, 16000))
    code = (
        "import sys, numpy as np, edge_speech, edge_speech.features as f\n"
        f"assert edge_speech.__file__.startswith({str(tmp_path / 'site')!r}), edge_speech.__file__\n"
        f"np.save(sys.argv[1], f.FeatureExtractor(f.FeatureConfig(), 16000)(np.load(sys.argv[2])))\n"
        "print(edge_speech.Recognizer.default().transcribe(sys.argv[3]).text)\n"
    )
    site_packages = [p for p in sys.path if p.endswith("site-packages")]
    # -S: without site, the editable install's import hook is not loaded; numpy and onnxruntime come after the wheel.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), *site_packages]))
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path / "feats.npy"), str(tmp_path / "samples.npy"), str(EXAMPLE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    reference = features.FeatureExtractor(features.FeatureConfig(), 16000)(np.load(tmp_path / "samples.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "feats.npy"), reference)
    assert result.stdout.strip() == Recognizer.from_bundle(DEFAULT_BUNDLE).transcribe(EXAMPLE).text


# -- emulated Arm devices -------------------------------------------------------------------------------


def require_root(name: str) -> None:
    if (ARM_ROOTS / name / ".complete").exists():
        return
    message = f"{ARM_ROOTS / name} is missing: run bash recipes/wheels/prepare.sh (about 10 min, cached)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def smoke(name: str, wheel: Path) -> dict:
    """Runs recipes/wheels/smoke.sh; returns the transcript line and the time of each step in ms."""
    result = subprocess.run(
        ["bash", "recipes/wheels/smoke.sh", name, str(wheel)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    times = {m[0]: int(m[1]) for m in re.findall(r"^time: (\w+) (\d+) ms$", result.stdout, re.M)}
    print(name, times)
    (transcript,) = re.findall(r"^example\.wav\t(.*)$", result.stdout, re.M)
    return {"transcript": transcript, "times": times, "stdout": result.stdout}


def reference_transcript() -> str:
    return Recognizer.from_bundle(DEFAULT_BUNDLE).transcribe(EXAMPLE).text


@pytest.mark.slow
@pytest.mark.parametrize(
    "root, python, glibc",
    [
        ("bullseye-arm64", "3.9", "2.31"),  # the oldest glibc the manylinux_2_31 tag promises
        ("bookworm-arm64", "3.11", "2.36"),  # Raspberry Pi OS bookworm 64-bit
    ],
)
def test_aarch64_wheel_installs_without_compiler_and_transcribes_under_emulation(root, python, glibc, tmp_path):
    require_root(root)
    wheels = build_wheels(tmp_path, python, "aarch64")
    run = smoke(root, wheels[("aarch64", "cp" + python.replace(".", ""))])
    assert f"machine: aarch64, Python {python}." in run["stdout"] and f"glibc {glibc}" in run["stdout"]
    assert re.search(r"^Successfully installed .*onnxruntime-", run["stdout"], re.M)  # its own aarch64 wheel
    assert run["transcript"] == reference_transcript() == "set a timer for ten minutes"
    assert set(run["times"]) == {"venv", "pip_install", "import", "features", "transcribe"}


@pytest.mark.slow
def test_armv7l_wheel_runs_front_end_and_decoder_under_emulation(tmp_path):
    require_root("bookworm-armhf")
    wheels = build_wheels(tmp_path, "3.11", "armv7l")  # Raspberry Pi OS bookworm's Python
    run = smoke("bookworm-armhf", wheels[("armv7l", "cp311")])
    assert "machine: armv7l, Python 3.11" in run["stdout"]
    # Features computed by the armv7l extension equal this machine's within replay_transcribe's tolerance.
    assert re.search(r"^features: \d+ frames x 80, max \|diff\| vs reference", run["stdout"], re.M)
    assert run["transcript"] == reference_transcript() == "set a timer for ten minutes"
