"""Up-front checks for the launch files, importable without launch/launch_ros; each returns one line.

``replay.launch.py`` drives the node's ``/clock`` with ``ros2 bag play``: when that command or the bag is
missing, the node would wait on simulated time forever. Each check returns ``None`` when all is well, else
one line naming what is missing and which package provides it; the launch file raises it, which ``launch``
reports as one ``[ERROR] [launch]: Caught exception in launch ...: <line>`` and exits 1 after shutting down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BAG_SUFFIXES = (".mcap", ".db3")


def _distro(env: dict[str, str] | None) -> str:
    return (env if env is not None else os.environ).get("ROS_DISTRO") or "<distro>"


def ros2_bag_problem(env: dict[str, str] | None = None, timeout: float = 30.0) -> str | None:
    """Whether ``ros2 bag`` can run: None, or one line naming the missing piece and its apt package.

    ``env``: the environment whose PATH is searched and in which ``ros2 bag --help`` runs (default: ours).
    """
    environ = dict(os.environ if env is None else env)
    distro = _distro(environ)
    ros2 = shutil.which("ros2", path=environ.get("PATH", ""))
    if ros2 is None:
        return (
            f"the `ros2` command is not on PATH (it comes from ros-{distro}-ros2cli, part of every ROS 2 "
            f"install): source /opt/ros/{distro}/setup.bash"
        )
    try:
        out = subprocess.run(
            [ros2, "bag", "--help"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"`{ros2} bag --help` did not answer within {timeout:g} s"
    except OSError as exc:
        return f"`{ros2}` cannot be run: {exc.strerror or exc}"
    if out.returncode != 0:
        return (
            f"`ros2 bag` is not available ({ros2} has no `bag` command): install ros-{distro}-rosbag2 "
            f"(sudo apt install ros-{distro}-rosbag2)"
        )
    return None


def bag_problem(bag: str) -> str | None:
    """Whether ``bag`` names something ``ros2 bag play`` can open: None, or one line saying why not.

    A rosbag2 is a directory with ``metadata.yaml`` (or at least one ``.mcap`` / ``.db3`` file), or a single
    ``.mcap`` / ``.db3`` file.
    """
    if not bag.strip():
        return "no bag given: pass bag:=/path/to/rosbag2 (a directory, .mcap or .db3)"
    path = Path(bag).expanduser()
    if not path.exists():
        return f"bag not found: {bag}"
    if path.is_dir():
        if (path / "metadata.yaml").is_file() or any(p.suffix in BAG_SUFFIXES for p in path.iterdir()):
            return None
        return f"{bag} is a directory without metadata.yaml or .mcap/.db3 files: not a rosbag2"
    if path.suffix not in BAG_SUFFIXES:
        return f"{bag} is not a rosbag2 (expected a directory, .mcap or .db3)"
    return None


def replay_problem(bag: str, env: dict[str, str] | None = None) -> str | None:
    """Every check ``replay.launch.py`` needs before starting anything; the first problem, or None."""
    return ros2_bag_problem(env) or bag_problem(bag)


def player_exit_problem(returncode: int | None, shutting_down: bool) -> str | None:
    """After ``ros2 bag play`` exits: a line when it failed on its own (the node would wait on /clock)."""
    if shutting_down or returncode in (0, None):
        return None
    return (
        f"`ros2 bag play` exited with code {returncode} (its error is printed above); shutting down "
        "instead of leaving the node waiting on /clock"
    )
