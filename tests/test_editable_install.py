"""`pip install -e .` gives a tree where edits take effect without reinstalling.

Installs a copy of the source tree, editable, into a fresh virtual environment (the build tools
and dependencies come from this environment, so nothing is downloaded), then edits a runtime and
a converter module in the copy and checks the installed package sees both edits.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _copy_source_tree(tree: Path) -> None:
    """The files git tracks (what a clone holds): ignored folders such as data/ can hold emulated
    Arm roots whose absolute symlinks lead into the host (a full copy once filled the disk)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_edits_to_the_source_tree_take_effect_without_reinstalling(tmp_path):
    tree = tmp_path / "tree"
    _copy_source_tree(tree)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    # This environment's packages (numpy, scikit-build-core, ...) are visible to the new one.
    Path(purelib, "outer_environment.pth").write_text(
        "\n".join([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])
    )
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-build-isolation",
            "--no-deps",
            "-e",
            str(tree),
        ],
        env=env,
    )

    probe = (
        "import edge_speech, edge_speech.text as t, edge_speech.converters as c, edge_speech._native as n; "
        "print(edge_speech.__file__); print(getattr(t, 'EDITED', 0), getattr(c, 'EDITED', 0))"
    )
    before = _run([str(python), "-c", probe], cwd=tmp_path).split("\n")
    assert before[0].startswith(str(tree / "edge_speech")) and before[1] == "0 0"

    with open(tree / "edge_speech" / "text.py", "a") as f:
        f.write("\nEDITED = 1\n")
    with open(tree / "converters" / "__init__.py", "a") as f:
        f.write("\nEDITED = 2\n")
    after = _run([str(python), "-c", probe], cwd=tmp_path).split("\n")
    assert after[1] == "1 2"
