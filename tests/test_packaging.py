"""The runtime stays light: importing it never imports torch, and the base install requires
numpy, soxr and ONNX Runtime (to run the embedded model right after install) and nothing of the
converter's (torch and friends live in an extra)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import metadata


def test_runtime_import_does_not_import_torch_or_heavy_modules():
    code = (
        "import sys, edge_speech, edge_speech.features, edge_speech.audio, edge_speech.cli\n"
        "heavy = [m for m in ('torch', 'onnx', 'librosa', 'scipy', 'tensorflow') if m in sys.modules]\n"
        "print(heavy)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())


def test_base_requirements_are_light():
    requirements = metadata.requires("edge-speech") or []
    base = [r for r in requirements if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("=")[0].split(";")[0].strip() for r in base) == [
        "numpy",
        "onnxruntime",
        "pyyaml",  # intent grammars and Home Assistant sentence files (safe, bounded loading)
        "soxr",
        "tomli",
    ]
    assert not any(r.startswith(("torch", "onnx>", "onnx=", "transformers")) for r in base)
    converter = [r for r in requirements if 'extra == "converter"' in r]
    assert any(r.startswith("torch") for r in converter)
