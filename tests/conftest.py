"""Shared fixtures: real synthesised speech (espeak-ng, resampled by sox) and noise.

The tools are required, not optional: a missing espeak-ng or sox fails the tests that need them
(the project's setup installs both), so a parity test can never pass by skipping its input.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_speech import audio

SENTENCE = "Turn on the kitchen light, then set a timer for five minutes."

# Markers by rule, for tests that share a module with tests that do not need the same things
# (whole modules mark themselves with pytestmark): the fixture or the test's name says it.
_MARKERS_BY_FIXTURE = {"file_microphone": "alsa", "default_tflite": "litert", "tiny_whisper": "torch"}
_MARKERS_BY_NAME = {"tflite": "litert", "litert": "litert"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        wanted = {mark for fixture, mark in _MARKERS_BY_FIXTURE.items() if fixture in names}
        wanted |= {mark for word, mark in _MARKERS_BY_NAME.items() if word in item.name.lower()}
        for mark in sorted(wanted - {m.name for m in item.iter_markers()}):
            item.add_marker(mark)


def _only_loopback() -> bool:
    """Whether this process sees no network interface but loopback (a network namespace)."""
    try:  # the interfaces of this process's network namespace (/sys/class/net shows the host's)
        return {name for _, name in socket.if_nameindex()} <= {"lo"}
    except OSError:
        return False


def pytest_runtest_setup(item):
    # Ray's servers listen on every interface whatever address they are given: its tests run only
    # where nothing but loopback exists (tests/run.sh starts them in a network namespace).
    if item.get_closest_marker("ray") is not None and not _only_loopback():
        pytest.skip(
            "starts Ray, which listens on every interface: run it in a network namespace with only "
            "loopback, as tests/run.sh does (unshare -n)"
        )


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for one test module: 2 CPUs, no dashboard, a small object store; its workers
    import from tests/ (they unpickle the test models' classes)."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    tests_dir = str(Path(__file__).parent)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([tests_dir, *sys.path])}},
    )
    yield ray
    ray.shutdown()


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for these tests; install it with: apt-get install {name}")
    return path


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def speech_wav(speech_dir):
    """Path of a speech WAV at the requested rate, synthesised once per rate."""

    def make(rate: int, text: str = SENTENCE, voice: str = "en-us") -> Path:
        out = speech_dir / f"speech_{voice}_{rate}_{abs(hash(text)) % 10**8}.wav"
        if not out.exists():
            raw = speech_dir / f"raw_{out.name}"
            subprocess.run([_require_tool("espeak-ng"), "-v", voice, "-w", str(raw), text], check=True)
            # -R: sox dithers with a fresh random seed otherwise, so the audio would differ per run
            subprocess.run(
                [_require_tool("sox"), "-R", str(raw), "-r", str(rate), "-b", "16", "-c", "1", str(out)], check=True
            )
        return out

    return make


@pytest.fixture(scope="session")
def speech(speech_wav):
    """(float32 samples, rate) of synthesised speech at the requested rate."""

    def load(rate: int) -> np.ndarray:
        samples, sr = audio.read_wav(speech_wav(rate))
        assert sr == rate
        assert len(samples) > rate  # more than a second of speech
        return samples

    return load


def noise(rate: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """White noise with a slow amplitude envelope (silence to loud), float32."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    envelope = np.linspace(0.0, 0.5, n) ** 2
    return (rng.standard_normal(n) * envelope).astype(np.float32)


def write_pcm16_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono 16-bit WAV of float samples in [-1, 1] (the stdlib writer, not ours)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape, f"shape {ours.shape} != reference {ref.shape}"
    return float(np.linalg.norm(ours.astype(np.float64) - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    """(transformers model, CTranslate2 directory) of a random 2-layer, 64-wide Whisper, saved by
    transformers and converted by CTranslate2's own converter (as the PyPI Whisper base was)."""
    torch = pytest.importorskip("torch")
    ctranslate2 = pytest.importorskip("ctranslate2")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.WhisperConfig(
        vocab_size=100,
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        encoder_attention_heads=4,
        decoder_layers=1,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random biases everywhere (a zero bias would hide a swapped tensor)
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    hf_dir = tmp_path_factory.mktemp("hf_whisper")
    model.save_pretrained(hf_dir)
    ct2_dir = tmp_path_factory.mktemp("ct2_whisper") / "model"
    ctranslate2.converters.TransformersConverter(str(hf_dir)).convert(str(ct2_dir), quantization="float16")
    return model, ct2_dir


def run_cli(*args):
    """``edge-speech ARGS`` in a fresh interpreter, run from the temporary directory."""
    return subprocess.run(
        [sys.executable, "-m", "edge_speech.cli", *args], capture_output=True, text=True, cwd=tempfile.gettempdir()
    )


def composed(speech, gaps=(1.0, 1.5, 1.0)):
    """silence, speech, silence, speech, silence (quiet noise, not digital zeros)."""
    words = speech(16000)[: 16000 * 2]

    def quiet(seconds):
        rng = np.random.default_rng(int(seconds * 10))
        return (0.0005 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)

    parts = [quiet(gaps[0]), words, quiet(gaps[1]), words, quiet(gaps[2])]
    bounds, t = [], 0.0
    for i, p in enumerate(parts):
        if i in (1, 3):
            bounds.append((t, t + len(p) / 16000))
        t += len(p) / 16000
    return np.concatenate(parts), bounds


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    """A bundle of the tiny ONNX CTC model (tiny_bundles.make_bundle), one per test module."""
    from tiny_bundles import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def recognizer(bundle_dir):
    from edge_speech import Recognizer

    return Recognizer.from_bundle(bundle_dir, threads=1)


ALSA_BASE = "/usr/share/alsa/alsa.conf"


@pytest.fixture
def file_microphone(tmp_path, monkeypatch):
    """Returns a function that makes the ALSA device 'filemic' play the given samples."""
    if not os.path.exists(ALSA_BASE):
        pytest.fail("ALSA is required for this test: apt-get install libasound2 portaudio19-dev")

    def install(samples: np.ndarray) -> str:
        raw = tmp_path / "capture.raw"
        (np.clip(samples, -1, 1) * 32767).astype("<i2").tofile(raw)
        conf = tmp_path / "asound.conf"
        conf.write_text(
            textwrap.dedent(f"""\
            <{ALSA_BASE}>
            pcm.filemic {{
                type file
                slave.pcm "null"
                file "/dev/null"
                infile "{raw}"
                format "raw"
                hint.description "edge_speech test capture"
            }}
            """)
        )
        monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
        return "filemic"

    return install


# ALSA's file device has no clock: it captures far faster than real time, so a test's queue must
# hold the whole burst while the recogniser catches up (20 ms chunks: about 1.3 kB each).
BURST_CHUNKS = 200_000


class FirstSeconds:
    """The first `seconds` of a source (the file device keeps giving silence after the file)."""

    def __init__(self, source, seconds: float):
        self.source, self.limit, self.sample_rate = source, int(seconds * source.sample_rate), source.sample_rate

    def __iter__(self):
        taken = 0
        for chunk in self.source:
            yield chunk[: self.limit - taken]
            taken += len(chunk)
            if taken >= self.limit:
                return
