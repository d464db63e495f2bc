"""launch/instaseg.launch.py and launch/replay.launch.py, run where launch_ros is importable.

launch_ros is a ROS distro package (not on PyPI); without it these tests are skipped. The launch
test installs the package layout that ``ros2 launch`` resolves (an ament prefix with the resource
marker, share/instaseg_ros/{launch,config} and lib/instaseg_ros/instaseg_node) into a temporary
directory, runs the launch file through ``launch.LaunchService`` in its own process and talks to
the node it started over DDS.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip(
    "launch_ros",
    reason="launch_ros is not installed (ROS distro package, not on PyPI): launch files untested here",
)
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import ROOT, Probe, ensure_ros_env, make_tiny_yolact, random_image, wait_for  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()

RUN_LAUNCH = textwrap.dedent(
    """
    import sys
    from launch import LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    service = LaunchService()
    args = [a.split(":=", 1) for a in sys.argv[2:]]
    service.include_launch_description(
        IncludeLaunchDescription(PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=args)
    )
    sys.exit(service.run())
    """
)


def load_launch_module(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """A minimal install prefix of instaseg_ros, as colcon would lay it out."""
    root = tmp_path_factory.mktemp("prefix")
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "instaseg_ros").write_text("")
    share = root / "share" / "instaseg_ros"
    for d in ("launch", "config"):
        (share / d).parent.mkdir(parents=True, exist_ok=True)
        (share / d).symlink_to(ROOT / d)
    lib = root / "lib" / "instaseg_ros"
    lib.mkdir(parents=True)
    exe = lib / "instaseg_node"
    exe.write_text(
        f"#!{sys.executable}\nimport sys\nfrom instaseg_ros.ros.node import main\nsys.exit(main())\n"
    )
    exe.chmod(0o755)
    return root


def launch_args(description) -> set[str]:
    from launch.actions import DeclareLaunchArgument

    return {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}


def test_launch_files_declare_their_arguments():
    main = load_launch_module("instaseg.launch.py").generate_launch_description()
    assert {"image", "namespace", "params_file", "weights", "use_compressed", "rviz"} <= launch_args(main)
    replay = load_launch_module("replay.launch.py").generate_launch_description()
    assert {"bag", "image", "rate", "loop", "params_file", "weights", "rviz"} <= launch_args(replay)


def test_rviz_config_is_pointed_at_the_launched_topics(tmp_path):
    mod = load_launch_module("instaseg.launch.py")
    path = mod._rviz_config(str(ROOT), "/robot/seg", "/front/image_raw", compressed=True)
    try:
        text = open(path).read()
    finally:
        os.unlink(path)
    assert "Value: /robot/seg/debug_image" in text and "Value: /front/image_raw/compressed" in text


def test_launch_file_starts_a_working_node_with_compressed_input(prefix, tmp_path):
    weights = make_tiny_yolact(tmp_path / "tiny.pth")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")]).strip(
        os.pathsep
    )
    launch_file = prefix / "share" / "instaseg_ros" / "launch" / "instaseg.launch.py"
    log_path = tmp_path / "launch.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_LAUNCH, str(launch_file), "image:=/lt/camera/image", "namespace:=lt",
             f"weights:={weights}", "use_compressed:=true"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path),
        )  # fmt: skip
    probe = None
    try:
        active = "active: CompressedImage on /lt/camera/image/compressed"
        assert wait_for(lambda: active in log_path.read_text() or proc.poll() is not None, 90), (
            log_path.read_text()
        )
        assert proc.poll() is None, log_path.read_text()
        probe = Probe("/lt/instaseg_node", "/lt/camera/image")
        assert probe.wait_connected(compressed=True)
        header = probe.next_header("launch_cam")
        probe.publish(
            conv.bgr8_to_compressed(random_image(np.random.default_rng(0), 96, 128), "jpeg", header), True
        )
        out = probe.result_for(header, timeout=30)
        assert out is not None, log_path.read_text()
        assert conv.image_to_numpy(out["instance_mask"][0]).shape == (96, 128)
    finally:
        if probe is not None:
            probe.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log_path.read_text()


def test_replay_launch_plays_the_bag_into_a_sim_time_node(prefix, tmp_path):
    """replay.launch.py starts the node on simulated time and, after start_delay, ``ros2 bag play``
    (here a stand-in ``ros2`` on PATH that records its command line: rosbag2 is not installed)."""
    weights = make_tiny_yolact(tmp_path / "tiny.pth")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "ros2_calls.txt"
    fake = bin_dir / "ros2"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    bag = tmp_path / "run1.mcap"  # replay.launch.py checks that the bag exists before starting anything
    bag.write_bytes(b"\x89MCAP0\r\n")
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    )
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")]).strip(
        os.pathsep
    )
    launch_file = prefix / "share" / "instaseg_ros" / "launch" / "replay.launch.py"
    log_path = tmp_path / "replay.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_LAUNCH, str(launch_file), f"bag:={bag}", "namespace:=rp",
             f"weights:={weights}", "rate:=0.5", "start_delay:=1.0"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path),
        )  # fmt: skip
    probe = None
    try:
        played = lambda: calls.exists() and "play" in calls.read_text()  # noqa: E731
        assert wait_for(lambda: played() or proc.poll() is not None, 90), log_path.read_text()
        assert calls.read_text().splitlines() == ["bag --help", f"bag play {bag} --clock --rate 0.5"]
        assert wait_for(lambda: "active: Image on /camera/color/image_raw" in log_path.read_text(), 90), (
            log_path.read_text()
        )
        probe = Probe("/rp/instaseg_node", "/camera/color/image_raw")
        from rcl_interfaces.srv import GetParameters

        req = GetParameters.Request(names=["use_sim_time"])
        client = probe.node.create_client(GetParameters, "/rp/instaseg_node/get_parameters")
        assert probe._call(client, req).values[0].bool_value is True
    finally:
        if probe is not None:
            probe.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
