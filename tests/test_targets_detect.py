"""Board detection from captured files (tests/data/boards/<board>: /proc/cpuinfo, the device-tree
model, /proc/meminfo and, on Jetsons, /etc/nv_tegra_release): each board picks its profile, an
unknown box falls back to generic-aarch64 or x86_64 with a reason, and the CLI reports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_speech import cli, targets

BOARDS = Path(__file__).parent / "data" / "boards"

# The board each capture came from, and what its files say (read here independently of detect()).
EXPECTED = {
    "rpi3": dict(target="rpi3", part="0xd03", mem_kb=944268, l4t=None),
    "rpi4": dict(target="rpi4", part="0xd08", mem_kb=3884360, l4t=None),
    "rpi5": dict(target="rpi5", part="0xd0b", mem_kb=8245168, l4t=None),
    "jetson-nano": dict(target="jetson-nano", part="0xd07", mem_kb=4050048, l4t=("R32.7.1", "4.x")),
    "jetson-orin": dict(target="jetson-orin", part="0xd42", mem_kb=7620060, l4t=("R36.3.0", "6.x")),
}


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_each_captured_board_picks_its_profile_from_its_device_tree(board):
    expected = EXPECTED[board]
    found = targets.detect(BOARDS / board)
    assert found.target == expected["target"]
    assert found.reason.startswith("device-tree model") and found.device_tree_model in found.reason
    assert found.machine == "aarch64"
    assert found.cpu_parts == (expected["part"],)
    assert found.mem_total_mb == expected["mem_kb"] // 1024
    assert (found.l4t_release, found.jetpack) == (expected["l4t"] or (None, None))
    assert found.warnings == ()  # 64-bit OS, the profile's CPU features, enough memory


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_without_a_device_tree_the_cpu_part_still_picks_the_profile(board, tmp_path):
    root = tmp_path / board
    shutil.copytree(BOARDS / board, root)
    for model in (root / "proc/device-tree/model", root / "sys/firmware/devicetree/base/model"):
        model.unlink(missing_ok=True)
    (root / "etc/nv_tegra_release").unlink(missing_ok=True)
    found = targets.detect(root)
    assert found.target == EXPECTED[board]["target"]
    assert found.reason == f"CPU part {EXPECTED[board]['part']} in /proc/cpuinfo"


def test_a_jetson_nano_is_recognised_by_its_l4t_board_alone(tmp_path):
    root = tmp_path / "nano"
    (root / "etc").mkdir(parents=True)
    shutil.copy(BOARDS / "jetson-nano/etc/nv_tegra_release", root / "etc/nv_tegra_release")
    found = targets.detect(root, machine="aarch64")
    assert found.target == "jetson-nano" and "t210ref" in found.reason
    assert found.l4t_release == "R32.7.1"


def test_an_unknown_arm_board_falls_back_to_generic_aarch64_saying_why():
    found = targets.detect(BOARDS / "unknown-arm")
    assert found.target == "generic-aarch64" and "aarch64" in found.reason
    assert any("Radxa ZERO 3" in w and "0xd05" in w for w in found.warnings)


def test_a_32_bit_os_on_a_pi_4_keeps_the_profile_and_warns():
    found = targets.detect(BOARDS / "rpi4-32bit")
    assert (found.target, found.machine) == ("rpi4", "armv7l")
    assert any("32-bit OS" in w for w in found.warnings)


def test_x86_boxes_fall_back_to_x86_64_or_x86_64_cuda_with_an_nvidia_driver(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU\nflags\t\t: fpu sse2 avx2\n"
    )
    (tmp_path / "proc/meminfo").write_text("MemTotal:       16318568 kB\n")
    found = targets.detect(tmp_path)
    assert (found.target, found.machine, found.mem_total_mb) == ("x86_64", "x86_64", 16318568 // 1024)
    assert found.reason == "architecture x86_64"
    (tmp_path / "proc/driver/nvidia").mkdir(parents=True)
    (tmp_path / "proc/driver/nvidia/version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54\n")
    found = targets.detect(tmp_path)
    assert found.target == "x86_64-cuda" and "NVIDIA driver" in found.reason


def test_an_empty_root_falls_back_to_the_architecture(tmp_path):
    assert targets.detect(tmp_path, machine="aarch64").target == "generic-aarch64"
    assert targets.detect(tmp_path, machine="x86_64").target == "x86_64"


def test_jetson_profiles_carry_tensorrt_and_cuda_options():
    for name in ("jetson-nano", "jetson-orin", "x86_64-cuda"):
        profile = targets.get_target(name)
        trt = profile.provider_options["TensorrtExecutionProvider"]
        assert trt["trt_fp16_enable"] is True and trt["trt_engine_cache_enable"] is True
        assert trt["trt_max_workspace_size"] >= 1 << 30
        assert profile.provider_options["CUDAExecutionProvider"]["cudnn_conv_algo_search"] == "HEURISTIC"
        assert profile.onnx_providers[:2] == ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def test_a_profile_with_options_for_an_unknown_provider_is_refused(tmp_path):
    text = (Path(targets.__file__).parent.parent / "targets/jetson-orin.toml").read_text()
    (tmp_path / "bad.toml").write_text(text + "\n[runtime.provider_options.TensorRT]\ntrt_fp16_enable = true\n")
    with pytest.raises(ValueError, match="unknown providers"):
        targets.load_targets(tmp_path)


def test_cli_detect_reads_a_captured_root(capsys):
    assert cli.main(["targets", "--detect", "--root", str(BOARDS / "jetson-orin"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "jetson-orin" and report["l4t_release"] == "R36.3.0"
    assert report["profile_providers"][0] == "TensorrtExecutionProvider"
    assert report["loaded_providers"][-1] == "CPUExecutionProvider"
    assert cli.main(["targets", "--detect", "--root", str(BOARDS / "unknown-arm")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("generic-aarch64") and "no profile names this board" in captured.err
