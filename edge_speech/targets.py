"""Device profiles (``targets/*.toml``): CPU, threads, preferred backend and execution providers,
the quantization scheme the converter should use, and native build flags."""

from __future__ import annotations

import dataclasses
import platform
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

__all__ = ["Target", "detect_target", "get_target", "load_targets"]


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    cpu: str
    cores: int  # 0: use what the machine has
    cpu_features: Tuple[str, ...]
    ram_mb: int
    backend: str
    onnx_providers: Tuple[str, ...]
    threads: int  # 0: one per available core
    quantization: str
    toolchain: str
    c_flags: str
    device_tree_models: Tuple[str, ...]
    cpu_parts: Tuple[str, ...]

    @classmethod
    def from_toml(cls, data: dict, source: str) -> "Target":
        try:
            return cls(
                name=data["name"],
                description=data["description"],
                arch=data["arch"],
                cpu=data["cpu"],
                cores=int(data["cores"]),
                cpu_features=tuple(data["cpu_features"]),
                ram_mb=int(data["ram_mb"]),
                backend=data["runtime"]["backend"],
                onnx_providers=tuple(data["runtime"]["onnx_providers"]),
                threads=int(data["runtime"]["threads"]),
                quantization=data["converter"]["quantization"],
                toolchain=data["native"]["toolchain"],
                c_flags=data["native"]["c_flags"],
                device_tree_models=tuple(data["detect"]["device_tree_model"]),
                cpu_parts=tuple(data["detect"]["cpu_parts"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{source}: invalid target profile ({err!r})") from None


def _targets_dir() -> Path:
    installed = Path(__file__).parent / "targets"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "targets"


def load_targets(directory: Optional[Path] = None) -> Dict[str, Target]:
    directory = directory or _targets_dir()
    targets = {}
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as f:
            try:
                target = Target.from_toml(tomllib.load(f), str(path))
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: {err}") from None
        targets[target.name] = target
    return targets


def get_target(name: str) -> Target:
    targets = load_targets()
    if name not in targets:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(sorted(targets))}")
    return targets[name]


def detect_target(
    cpuinfo: Optional[str] = None, device_tree_model: Optional[str] = None, machine: Optional[str] = None
) -> Tuple[str, str]:
    """(target name, reason) for this machine, from the device-tree model, then the CPU part
    numbers in /proc/cpuinfo, then the architecture."""
    if cpuinfo is None:
        cpuinfo = _read("/proc/cpuinfo")
    if device_tree_model is None:
        device_tree_model = _read("/proc/device-tree/model").rstrip("\x00")
    machine = machine or platform.machine()
    targets = load_targets()
    for target in targets.values():
        for model in target.device_tree_models:
            if model and model in device_tree_model:
                return target.name, f"device-tree model {device_tree_model!r}"
    parts = {
        line.split(":", 1)[1].strip().lower()
        for line in cpuinfo.splitlines()
        if line.lower().startswith("cpu part") and ":" in line
    }
    for target in targets.values():
        matched = parts & {p.lower() for p in target.cpu_parts}
        if matched:
            return target.name, f"CPU part {sorted(matched)[0]} in /proc/cpuinfo"
    if machine in ("x86_64", "AMD64"):
        return "x86_64", f"architecture {machine}"
    if machine in ("aarch64", "arm64"):
        return "generic-aarch64", f"architecture {machine}, no known board"
    return "generic-aarch64" if machine.startswith("arm") else "x86_64", f"architecture {machine}: nearest profile"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""
