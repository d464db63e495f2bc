"""replay.launch.py run through launch.LaunchService: without `ros2 bag` or a bag it stops at once with one
error line and exit code 1, and when `ros2 bag play` fails it shuts the node down instead of leaving it
waiting on /clock. Skipped where launch_ros is not installed (it is a ROS distro package, not on PyPI).

The `ros2` found on PATH is a small executable written by the test (ros2cli and rosbag2 are not installable
here); it answers like the real CLI (see test_launch_checks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("launch_ros", reason="launch_ros is not installed (ROS distro package, not on PyPI)")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import ROOT, make_tiny_yolact  # noqa: E402
from test_ros_launch import RUN_LAUNCH  # noqa: E402

ERROR = "[ERROR] [launch]: Caught exception in launch (see debug for traceback): "


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    """An install prefix of instaseg_ros laid out as colcon does (ament index, share/, lib/ executable)."""
    root = tmp_path_factory.mktemp("prefix")
    (root / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (root / "share" / "ament_index" / "resource_index" / "packages" / "instaseg_ros").write_text("")
    for d in ("launch", "config"):
        (root / "share" / "instaseg_ros").mkdir(parents=True, exist_ok=True)
        (root / "share" / "instaseg_ros" / d).symlink_to(ROOT / d)
    exe = root / "lib" / "instaseg_ros" / "instaseg_node"
    exe.parent.mkdir(parents=True)
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nfrom instaseg_ros.ros.node import main\nsys.exit(main())\n"
    )
    exe.chmod(0o755)
    return root


def run_replay(prefix: Path, tmp_path: Path, ros2: str | None, *args: str, timeout: float = 120):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if ros2 is not None:
        (bin_dir / "ros2").write_text(ros2)
        (bin_dir / "ros2").chmod(0o755)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", ROS_DISTRO="jazzy",
               PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")  # fmt: skip
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")])
    launch_file = prefix / "share" / "instaseg_ros" / "launch" / "replay.launch.py"
    return subprocess.run([sys.executable, "-c", RUN_LAUNCH, str(launch_file), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def error_lines(out: subprocess.CompletedProcess) -> list[str]:
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    return [line for line in text.splitlines() if "[ERROR]" in line]


def test_without_ros2_the_launch_stops_with_one_line(install: Path, tmp_path: Path) -> None:
    bag = tmp_path / "run1.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n")
    out = run_replay(install, tmp_path, None, f"bag:={bag}")
    assert out.returncode == 1
    lines = error_lines(out)
    assert len(lines) == 1, out.stdout + out.stderr
    assert lines[0].startswith(ERROR + "replay.launch.py: the `ros2` command is not on PATH")
    assert "ros-jazzy-ros2cli" in lines[0]
    assert "instaseg_node" not in out.stdout + out.stderr  # the node was never started


def test_without_rosbag2_the_launch_names_the_package(install: Path, tmp_path: Path) -> None:
    bag = tmp_path / "run1.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n")
    no_bag_verb = "#!/bin/sh\necho \"ros2: error: argument: invalid choice: '$1'\" >&2\nexit 2\n"
    out = run_replay(install, tmp_path, no_bag_verb, f"bag:={bag}")
    assert out.returncode == 1
    (line,) = error_lines(out)
    assert "`ros2 bag` is not available" in line and "ros-jazzy-rosbag2" in line


def test_missing_bag_is_named(install: Path, tmp_path: Path) -> None:
    out = run_replay(install, tmp_path, "#!/bin/sh\nexit 0\n", f"bag:={tmp_path / 'nope.mcap'}")
    assert out.returncode == 1
    (line,) = error_lines(out)
    assert line.endswith(f"replay.launch.py: bag not found: {tmp_path / 'nope.mcap'}")


def test_failing_player_shuts_the_node_down(install: Path, tmp_path: Path) -> None:
    """`ros2 bag play` exits 1 (e.g. a storage plugin missing): launch ends, node included, exit code 1."""
    weights = make_tiny_yolact(tmp_path / "tiny.pth")
    bag = tmp_path / "run1.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n")
    player = ('#!/bin/sh\nif [ "$2" = play ]; then echo "[ERROR] [ros2bag]: No storage could be initialized '
              'from the inputs." >&2; exit 1; fi\nexit 0\n')  # fmt: skip
    out = run_replay(install, tmp_path, player, f"bag:={bag}", f"weights:={weights}", "start_delay:=3.0")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert ERROR + "`ros2 bag play` exited with code 1" in text
    assert [line for line in error_lines(out) if "[launch]" in line] == [
        ERROR + "`ros2 bag play` exited with code 1 (its error is printed above); shutting down instead of "
        "leaving the node waiting on /clock"
    ]
    assert "process started" in text and "instaseg_node" in text  # the node ran, then was shut down
