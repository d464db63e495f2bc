"""instaseg_ros.ros.launch_checks: the up-front checks of replay.launch.py.

The ROS 2 CLI (ros2cli, rosbag2) is not installable here, so the `ros2` found on PATH is a small executable
written by the test that answers ``ros2 bag --help`` the way the real CLI does with and without the rosbag2
verb installed (exit 0 / exit 2 with argparse's "invalid choice: 'bag'"); the checks run it for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from instaseg_ros.ros.launch_checks import bag_problem, player_exit_problem, replay_problem, ros2_bag_problem

WITH_BAG = """#!/bin/sh
if [ "$1" = bag ]; then echo "usage: ros2 bag [-h] Call \\`ros2 bag <command> -h\\` for more detailed usage."
fi
exit 0
"""
WITHOUT_BAG = """#!/bin/sh
echo "usage: ros2 [-h] [--use-python-default-buffering] Call \\`ros2 <command> -h\\` for more ..." >&2
echo "ros2: error: argument Call \\`ros2 <command> -h\\` for more detailed usage.: invalid choice: '$1'" >&2
exit 2
"""


def cli_env(tmp_path: Path, script: str | None, distro: str = "jazzy") -> dict[str, str]:
    """An environment whose PATH holds only a bin folder (with ``ros2`` = ``script`` when given) and /bin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if script is not None:
        exe = bin_dir / "ros2"
        exe.write_text(script)
        exe.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}/bin{os.pathsep}/usr/bin", "ROS_DISTRO": distro}


def test_ros2_with_the_bag_verb_passes(tmp_path: Path) -> None:
    assert ros2_bag_problem(cli_env(tmp_path, WITH_BAG)) is None


def test_missing_ros2_names_the_command_and_how_to_get_it(tmp_path: Path) -> None:
    problem = ros2_bag_problem(cli_env(tmp_path, None, distro="humble"))
    assert problem is not None and "\n" not in problem
    assert "`ros2` command is not on PATH" in problem
    assert "ros-humble-ros2cli" in problem and "/opt/ros/humble/setup.bash" in problem


def test_ros2_without_rosbag2_names_the_package(tmp_path: Path) -> None:
    env = cli_env(tmp_path, WITHOUT_BAG)
    assert subprocess.run(["ros2", "bag", "--help"], env=env, capture_output=True).returncode == 2
    problem = ros2_bag_problem(env)
    assert problem is not None and "\n" not in problem
    assert "`ros2 bag` is not available" in problem and "ros-jazzy-rosbag2" in problem


def test_unknown_distro_is_spelled_as_a_placeholder(tmp_path: Path) -> None:
    env = cli_env(tmp_path, WITHOUT_BAG)
    del env["ROS_DISTRO"]
    assert "ros-<distro>-rosbag2" in ros2_bag_problem(env)


def test_a_hanging_ros2_times_out(tmp_path: Path) -> None:
    env = cli_env(tmp_path, "#!/bin/sh\nexec sleep 30\n")
    problem = ros2_bag_problem(env, timeout=0.5)
    assert problem is not None and "did not answer within 0.5 s" in problem


def test_an_unrunnable_ros2_is_reported(tmp_path: Path) -> None:
    env = cli_env(tmp_path, "#!/nonexistent/interpreter\n")
    problem = ros2_bag_problem(env)
    assert problem is not None and "cannot be run" in problem


def test_bag_paths(tmp_path: Path) -> None:
    (tmp_path / "run1.mcap").write_bytes(b"\x89MCAP0\r\n")
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (tmp_path / "run3").mkdir()
    (tmp_path / "run3" / "run3_0.db3").write_bytes(b"SQLite format 3\x00")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for ok in ("run1.mcap", "run2", "run3"):
        assert bag_problem(str(tmp_path / ok)) is None, ok
    assert bag_problem(str(tmp_path / "missing.mcap")) == f"bag not found: {tmp_path / 'missing.mcap'}"
    assert "not a rosbag2" in bag_problem(str(tmp_path / "empty"))
    assert "not a rosbag2" in bag_problem(str(tmp_path / "notes.txt"))
    assert "bag:=" in bag_problem("")


def test_replay_problem_checks_the_cli_first(tmp_path: Path) -> None:
    bag = tmp_path / "run1.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n")
    assert replay_problem(str(bag), cli_env(tmp_path, WITH_BAG)) is None
    assert "rosbag2" in replay_problem(str(tmp_path / "missing.mcap"), cli_env(tmp_path, WITHOUT_BAG))
    missing = replay_problem(str(tmp_path / "missing.mcap"), cli_env(tmp_path, WITH_BAG))
    assert missing.startswith("bag not found")


@pytest.mark.parametrize(
    ("returncode", "shutting_down", "fails"),
    [(0, False, False), (None, False, False), (1, False, True), (-2, True, False), (1, True, False)],
)
def test_player_exit(returncode: int | None, shutting_down: bool, fails: bool) -> None:
    problem = player_exit_problem(returncode, shutting_down)
    assert (problem is not None) == fails
    if fails:
        assert f"code {returncode}" in problem and "/clock" in problem


def test_importable_without_launch() -> None:
    """The launch file imports this module before anything of launch runs: it must not need launch."""
    code = (
        "import sys; sys.modules['launch'] = None; sys.modules['launch_ros'] = None; "
        "sys.modules['rclpy'] = None; import instaseg_ros.ros.launch_checks"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
