"""Device profiles (``targets/*.toml``): CPU, threads, preferred backend and execution providers
with their options, the quantization scheme the converter should use, and native build flags;
and detection of the board this runs on (:func:`detect`), from files a test can capture."""

from __future__ import annotations

import dataclasses
import platform
import re
import sys
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

__all__ = ["Detection", "Target", "detect", "detect_target", "get_target", "load_targets"]

# Providers whose options a profile may set (ONNX Runtime's names).
KNOWN_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "XnnpackExecutionProvider",
    "CPUExecutionProvider",
)


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
    # ONNX Runtime options per provider, as the profile gives them ([runtime.provider_options.<EP>]);
    # the backend adds what depends on the bundle (engine cache path, TensorRT shape profiles).
    provider_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # TensorRT optimisation profile of dynamic models: the audio length engines are tuned for and
    # the longest they accept ([runtime.shape_profile]).
    profile_opt_seconds: float = 10.0
    profile_max_seconds: float = 30.0
    l4t_boards: Tuple[str, ...] = ()  # BOARD values of /etc/nv_tegra_release

    @classmethod
    def from_toml(cls, data: dict, source: str) -> "Target":
        try:
            runtime = data["runtime"]
            options = runtime.get("provider_options", {})
            unknown = sorted(set(options) - set(KNOWN_PROVIDERS))
            if unknown:
                raise ValueError(f"provider_options for unknown providers {unknown} (known: {KNOWN_PROVIDERS})")
            for provider, values in options.items():
                bad = {k: v for k, v in values.items() if not isinstance(v, (str, int, float, bool))}
                if bad:
                    raise ValueError(f"{provider} options must be strings, numbers or booleans, got {bad}")
            shape_profile = runtime.get("shape_profile", {})
            target = cls(
                name=data["name"],
                description=data["description"],
                arch=data["arch"],
                cpu=data["cpu"],
                cores=int(data["cores"]),
                cpu_features=tuple(data["cpu_features"]),
                ram_mb=int(data["ram_mb"]),
                backend=runtime["backend"],
                onnx_providers=tuple(runtime["onnx_providers"]),
                threads=int(runtime["threads"]),
                quantization=data["converter"]["quantization"],
                toolchain=data["native"]["toolchain"],
                c_flags=data["native"]["c_flags"],
                device_tree_models=tuple(data["detect"]["device_tree_model"]),
                cpu_parts=tuple(data["detect"]["cpu_parts"]),
                provider_options={p: dict(v) for p, v in options.items()},
                profile_opt_seconds=float(shape_profile.get("opt_seconds", 10.0)),
                profile_max_seconds=float(shape_profile.get("max_seconds", 30.0)),
                l4t_boards=tuple(data["detect"].get("l4t_board", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{source}: invalid target profile ({err!r})") from None
        if not 0 < target.profile_opt_seconds <= target.profile_max_seconds:
            raise ValueError(
                f"{source}: shape_profile needs 0 < opt_seconds <= max_seconds, got "
                f"{target.profile_opt_seconds} and {target.profile_max_seconds}"
            )
        return target


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


@dataclasses.dataclass(frozen=True)
class Detection:
    """What :func:`detect` read and the profile it chose. ``warnings``: where the machine differs
    from the profile (a 32-bit OS, less memory, missing CPU features) or nothing matched."""

    target: str
    reason: str
    machine: str
    device_tree_model: str
    cpu_parts: Tuple[str, ...]
    cpu_features: Tuple[str, ...]
    mem_total_mb: Optional[int]
    l4t_release: Optional[str]  # e.g. "R36.3.0" from /etc/nv_tegra_release
    jetpack: Optional[str]  # the JetPack series that L4T release belongs to
    nvidia_driver: bool  # /proc/driver/nvidia/version exists (a desktop/server NVIDIA GPU)
    warnings: Tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# A profile's CPU feature -> the names /proc/cpuinfo gives it (64-bit kernels say asimd for NEON,
# fphp/asimdhp for fp16 arithmetic, asimddp for the dot product).
_CPUINFO_NAMES = {
    "neon": ("neon", "asimd"),
    "asimd": ("asimd",),
    "fp16": ("fphp", "asimdhp", "fp16"),
    "dotprod": ("asimddp", "dotprod"),
    "crc32": ("crc32",),
}

# L4T major release -> JetPack series (NVIDIA's release notes).
_JETPACK = {"32": "4.x", "34": "5.0 (developer preview)", "35": "5.x", "36": "6.x"}


def detect(root: "str | Path" = "/", machine: Optional[str] = None) -> Detection:
    """The profile for the machine whose files lie under ``root`` (``/`` here; a folder of
    captured files in tests): the device-tree model, then the L4T board, then the CPU part
    numbers of /proc/cpuinfo, then the architecture. ``machine`` (``uname -m``) defaults to what
    /proc/cpuinfo says, else this machine's."""
    root = Path(root)
    cpuinfo = _read(root / "proc/cpuinfo")
    model = (_read(root / "proc/device-tree/model") or _read(root / "sys/firmware/devicetree/base/model")).rstrip(
        "\x00\n "
    )
    machine = machine or _machine_from_cpuinfo(cpuinfo) or platform.machine()
    l4t_text = _read(root / "etc/nv_tegra_release")
    l4t = _l4t_release(l4t_text)
    board = re.search(r"BOARD:\s*([\w-]+)", l4t_text)
    mem = re.search(r"^MemTotal:\s*(\d+)\s*kB", _read(root / "proc/meminfo"), re.MULTILINE)
    mem_mb = int(mem.group(1)) // 1024 if mem else None
    nvidia_driver = (root / "proc/driver/nvidia/version").exists()
    features: Tuple[str, ...] = ()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("features", "flags") and value.strip():
            features = tuple(value.split())
            break
    name, reason = _match(load_targets(), cpuinfo, model, machine, board.group(1) if board else None, nvidia_driver)
    target = get_target(name)
    notes = []
    if reason.startswith("architecture") and name != "x86_64":  # x86 PCs have no board profiles
        board_seen = f"device-tree model {model!r}" if model else "no device-tree model"
        parts_seen = ", ".join(sorted(_cpu_parts(cpuinfo))) or "none"
        notes.append(f"no profile names this board ({board_seen}, CPU parts {parts_seen}): using {name}")
    if target.arch == "aarch64" and machine != "aarch64" and machine.startswith("arm"):
        notes.append(f"a 32-bit OS ({machine}) on a {name} board: the profile assumes a 64-bit OS")
    if features and target.cpu_features:
        missing = [f for f in target.cpu_features if not set(_CPUINFO_NAMES.get(f, (f,))) & set(features)]
        if missing and machine == target.arch:
            notes.append(f"/proc/cpuinfo lacks the profile's CPU features {missing}")
    if mem_mb is not None and target.ram_mb and mem_mb < 0.8 * target.ram_mb:
        notes.append(f"{mem_mb} MB of memory, the profile assumes {target.ram_mb} MB: prefer a smaller model")
    if l4t_text and not name.startswith("jetson"):
        notes.append(f"an L4T release ({l4t or 'unreadable'}) on a board no Jetson profile names")
    return Detection(
        target=name,
        reason=reason,
        machine=machine,
        device_tree_model=model,
        cpu_parts=tuple(sorted(_cpu_parts(cpuinfo))),
        cpu_features=features,
        mem_total_mb=mem_mb,
        l4t_release=l4t,
        jetpack=_JETPACK.get(l4t[1:].split(".")[0]) if l4t else None,
        nvidia_driver=nvidia_driver,
        warnings=tuple(notes),
    )


def detect_target(
    cpuinfo: Optional[str] = None, device_tree_model: Optional[str] = None, machine: Optional[str] = None
) -> Tuple[str, str]:
    """(target name, reason) for this machine, or for the given /proc/cpuinfo text, device-tree
    model and architecture (see :func:`detect` for the whole report)."""
    if cpuinfo is None and device_tree_model is None and machine is None:
        found = detect()
        return found.target, found.reason
    cpuinfo = _read(Path("/proc/cpuinfo")) if cpuinfo is None else cpuinfo
    if device_tree_model is None:
        device_tree_model = _read(Path("/proc/device-tree/model"))
    return _match(load_targets(), cpuinfo, device_tree_model.rstrip("\x00"), machine or platform.machine(), None, False)


def _match(
    targets: Dict[str, Target],
    cpuinfo: str,
    device_tree_model: str,
    machine: str,
    l4t_board: Optional[str],
    nvidia_driver: bool,
) -> Tuple[str, str]:
    for target in targets.values():
        for model in target.device_tree_models:
            if model and model in device_tree_model:
                return target.name, f"device-tree model {device_tree_model!r}"
    for target in targets.values():
        if l4t_board and l4t_board in target.l4t_boards:
            return target.name, f"L4T board {l4t_board!r} in /etc/nv_tegra_release"
    parts = _cpu_parts(cpuinfo)
    for target in targets.values():
        matched = parts & {p.lower() for p in target.cpu_parts}
        if matched:
            return target.name, f"CPU part {sorted(matched)[0]} in /proc/cpuinfo"
    if machine in ("x86_64", "AMD64"):
        if nvidia_driver and "x86_64-cuda" in targets:
            return "x86_64-cuda", f"architecture {machine} with an NVIDIA driver (/proc/driver/nvidia/version)"
        return "x86_64", f"architecture {machine}"
    if machine in ("aarch64", "arm64"):
        return "generic-aarch64", f"architecture {machine}, no known board"
    return "generic-aarch64" if machine.startswith("arm") else "x86_64", f"architecture {machine}: nearest profile"


def _cpu_parts(cpuinfo: str) -> set:
    return {
        line.split(":", 1)[1].strip().lower()
        for line in cpuinfo.splitlines()
        if line.lower().startswith("cpu part") and ":" in line
    }


def _machine_from_cpuinfo(cpuinfo: str) -> Optional[str]:
    """``uname -m`` as /proc/cpuinfo implies it: Arm kernels print "CPU architecture: 8" (also a
    32-bit OS on a 64-bit core, whose Features then lack asimd), x86 ones a vendor_id."""
    arch = re.search(r"^CPU architecture\s*:\s*(\d+)", cpuinfo, re.MULTILINE)
    if arch:
        if int(arch.group(1)) >= 8 and re.search(r"^Features\s*:.*\basimd\b", cpuinfo, re.MULTILINE):
            return "aarch64"
        return "armv7l"
    if re.search(r"^vendor_id\s*:", cpuinfo, re.MULTILINE):
        return "x86_64"
    return None


def _l4t_release(text: str) -> Optional[str]:
    """'# R36 (release), REVISION: 3.0, ...' -> 'R36.3.0'."""
    found = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{found.group(1)}.{found.group(2)}" if found else None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
