"""Every dependency key in package.xml resolves with rosdep on Humble and Jazzy.

The list of keys known to rosdep is ``test/fixtures/rosdep_keys_jazzy_humble.json``, derived once from
ros/rosdistro (commit and date inside) by ``test/fixtures/derive_rosdep_keys.py``; CI cannot run
``rosdep update`` (no network), so this is the offline stand-in for ``rosdep install --simulate``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = json.loads((ROOT / "test" / "fixtures" / "rosdep_keys_jazzy_humble.json").read_text())
# Every REP 149 (format 3) element whose text is a rosdep key.
DEPEND_TAGS = (
    "depend",
    "build_depend",
    "build_export_depend",
    "buildtool_depend",
    "buildtool_export_depend",
    "exec_depend",
    "test_depend",
    "doc_depend",
)


def package_keys() -> list[tuple[str, str]]:
    """(tag, key) for every dependency element of package.xml."""
    root = ET.parse(ROOT / "package.xml").getroot()
    return [(tag, e.text.strip()) for tag in DEPEND_TAGS for e in root.findall(tag)]


def test_fixture_names_its_source() -> None:
    assert KEYS["source"] == "https://github.com/ros/rosdistro"
    assert len(KEYS["commit"]) == 40 and KEYS["commit_date"][:4].isdigit()
    assert set(KEYS["distros"]) == {"humble", "jazzy"}
    assert KEYS["distros"]["humble"]["ubuntu"] == "jammy" and KEYS["distros"]["jazzy"]["ubuntu"] == "noble"


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_every_package_xml_key_resolves(distro: str) -> None:
    known = set(KEYS["distros"][distro]["keys"])
    keys = package_keys()
    assert len(keys) >= 10, "package.xml lost its dependencies"
    unknown = [f"<{tag}>{key}</{tag}>" for tag, key in keys if key not in known]
    assert not unknown, (
        f"not rosdep keys on {distro} (rosdistro {KEYS['commit'][:10]}): {', '.join(unknown)}; "
        "if the key is new, re-run test/fixtures/derive_rosdep_keys.py with it in CANDIDATES"
    )


def test_ament_python_is_a_build_type_not_a_key() -> None:
    """The bug this guards against: `rosdep install` failed on <buildtool_depend>ament_python."""
    for distro in ("humble", "jazzy"):
        assert "ament_python" in KEYS["distros"][distro]["absent"]
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.findtext("export/build_type") == "ament_python"


def test_the_key_list_and_absent_list_are_disjoint() -> None:
    for entry in KEYS["distros"].values():
        assert not set(entry["keys"]) & set(entry["absent"])
        assert {"rclpy", "vision_msgs", "python3-numpy"} <= set(entry["keys"])
