"""The ament_python package: metadata agrees, and `colcon build --base-paths .` succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format3_with_ros_dependencies() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "instaseg_ros"
    deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "lifecycle_msgs",
                "launch_ros", "rosbag2", "python3-numpy", "python3-opencv"):
        assert dep in deps, f"package.xml lacks exec_depend {dep}"
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "instaseg_ros").is_file()


def test_version_agrees_between_package_xml_and_python() -> None:
    import instaseg_ros

    assert ET.parse(ROOT / "package.xml").getroot().findtext("version") == instaseg_ros.__version__


def test_stand_in_interfaces_are_hidden_from_the_robot_build() -> None:
    assert (ROOT / "test" / "interfaces" / "COLCON_IGNORE").is_file()


@pytest.mark.slow
def test_colcon_build(tmp_path: Path) -> None:
    colcon = shutil.which("colcon")
    if colcon is None:
        pytest.fail("colcon is not installed: run `make setup`")
    env = dict(os.environ)
    out = subprocess.run(
        [colcon, "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(ROOT),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
         "--packages-select", "instaseg_ros"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    share = tmp_path / "install" / "instaseg_ros" / "share" / "instaseg_ros"
    assert (share / "package.xml").is_file()
    index = tmp_path / "install" / "instaseg_ros" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "instaseg_ros").is_file()
    assert (tmp_path / "install" / "instaseg_ros" / "lib" / "instaseg_ros" / "instaseg_node").is_file()
