"""The weights catalogue agrees with the repository and torchvision; `instaseg weights` list and download
(the download run as a real subprocess against the loopback server of conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from instaseg_ros.hub import CATALOG, NOT_PUBLISHED, find, names

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "yolact_base_54_800000.pth", "yolact_resnet50_54_800000.pth", "yolact_darknet53_54_800000.pth",
    "yolact_im700_54_800000.pth", "yolact_plus_base_54_800000.pth", "yolact_plus_resnet50_54_800000.pth",
    "yolov3.weights", "yolov3-tiny.weights", "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
}  # fmt: skip


def instaseg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "instaseg_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)  # fmt: skip


def test_catalogue_has_the_official_checkpoints() -> None:
    assert set(names()) == EXPECTED and len(names()) == len(EXPECTED)


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.name)
def test_entry_is_complete_and_points_at_real_repository_files(entry) -> None:
    assert entry.url.startswith("https://") and entry.name in entry.url
    assert entry.licence and entry.classes and entry.size and entry.description
    if entry.sha256 is None:
        assert entry.sha256_source == NOT_PUBLISHED
    else:
        assert re.fullmatch(r"[0-9a-f]{8,64}", entry.sha256)
    if entry.size_bytes is not None:
        assert f"{entry.size_bytes:,}" in entry.size
    assert (ROOT / entry.params_file).is_file()
    params = yaml.safe_load((ROOT / entry.params_file).read_text())["/**"]["ros__parameters"]
    assert params["model"]["family"] == entry.family
    if entry.config is not None:
        config = yaml.safe_load((ROOT / entry.config).read_text())
        assert config["family"] == entry.family
    assert entry.loadable
    assert entry.config_needed == (entry.family == "yolo_fcn")


@pytest.mark.parametrize(
    ("name", "backbone", "size"),
    [("yolact_base", "resnet101", 550), ("yolact_resnet50", "resnet50", 550),
     ("yolact_darknet53", "darknet53", 550), ("yolact_im700", "resnet101", 700)],
)  # fmt: skip
def test_yolact_entries_name_the_matching_model_config(name: str, backbone: str, size: int) -> None:
    model = yaml.safe_load((ROOT / find(name).config).read_text())["model"]
    assert (model["backbone"], model["input_size"], model["num_classes"]) == (backbone, size, 80)


def test_darknet_entries_name_the_matching_detector() -> None:
    tiny = yaml.safe_load((ROOT / find("yolov3-tiny").config).read_text())
    full = yaml.safe_load((ROOT / find("yolov3").config).read_text())
    assert tiny["detector"] == "yolov3-tiny" and "detector" not in full and full["classes"] is None

    from instaseg_ros.models.yolo_fcn.detector import build_yolov3
    from instaseg_ros.weights.darknet import darknet_float_count

    for name, variant in (("yolov3", "yolov3"), ("yolov3-tiny", "yolov3-tiny")):
        floats = darknet_float_count(build_yolov3(variant=variant))  # what our parser reads from the file
        assert find(name).size_bytes == 20 + 4 * floats, name


def test_maskrcnn_entry_is_torchvisions_coco_v1() -> None:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    weights = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    entry = find("maskrcnn")
    assert entry.url == weights.url
    hash_in_name = re.search(r"-([0-9a-f]+)\.pth$", weights.url).group(1)  # torch.hub's check_hash convention
    assert entry.sha256 == hash_in_name
    assert f"{weights.meta['_file_size']} MiB" in entry.size
    assert f"{weights.meta['_metrics']['COCO-val2017']['mask_map']} mask" in entry.description


def test_find_accepts_stems_and_unique_prefixes() -> None:
    assert find("yolov3").name == "yolov3.weights"
    assert find("yolov3-tiny.weights").name == "yolov3-tiny.weights"
    assert find("yolact_resnet50").name == "yolact_resnet50_54_800000.pth"
    with pytest.raises(KeyError, match="ambiguous"):
        find("yolact_plus")
    with pytest.raises(KeyError, match="unknown weights 'resnet'"):
        find("resnet")


def test_list_prints_every_entry_with_its_facts() -> None:
    out = instaseg("weights", "list")
    assert out.returncode == 0, out.stderr
    for entry in CATALOG:
        block = out.stdout.split(entry.name + "\n", 1)[1].split("\n\n", 1)[0]
        for key in ("size", "sha256", "source", "licence", "classes", "use"):
            assert re.search(rf"^  {key} ", block, re.M), (entry.name, key)
    assert out.stdout.count("sha256   not published") == 8
    assert "sha256   bf2d0c1e..." in out.stdout
    listed = json.loads(instaseg("weights", "list", "--json").stdout)
    assert [e["name"] for e in listed] == names()


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("instaseg weights download: error: ")
    return lines[0]


def test_download_good_file_with_progress_bar(http_server, tmp_path: Path) -> None:
    data = os.urandom(700_001)
    http_server.files["y.pth"] = data
    url = http_server.url("y.pth")
    out = instaseg("weights", "download", "yolact_resnet50", "--dir", str(tmp_path), "--url", url)
    assert out.returncode == 0, out.stderr
    dest = tmp_path / "yolact_resnet50_54_800000.pth"
    assert dest.read_bytes() == data
    assert f"{dest}  (downloaded, 700001 bytes, no checksum or exact size is published" in out.stdout
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in out.stdout
    assert "ros2 launch instaseg_ros instaseg.launch.py" in out.stdout
    assert "yolact_resnet50_54_800000.pth:" in out.stderr and "100%" in out.stderr  # tqdm's bar on stderr
    again = instaseg(
        "weights", "download", "yolact_resnet50", "--dir", str(tmp_path), "--url", "http://0.0.0.0:9/"
    )
    assert again.returncode == 0 and "already downloaded" in again.stdout


def test_download_bad_checksum_is_one_line(http_server, tmp_path: Path) -> None:
    http_server.files["m.pth"] = b"not the torchvision file" * 1000
    url = http_server.url("m.pth")
    out = instaseg("weights", "download", "maskrcnn", "--dir", str(tmp_path), "--url", url, "--no-progress")
    assert out.returncode == 1
    line = one_line_error(out)
    assert "mismatch for maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth: expected sha256 bf2d0c1e..." in line
    assert not list(tmp_path.iterdir())


def test_download_interrupted_then_resumed(http_server, tmp_path: Path) -> None:
    data = os.urandom(900_000)
    http_server.files["t.weights"] = data
    http_server.cut_after = 250_000
    url = http_server.url("t.weights")
    args = ("weights", "download", "yolov3-tiny", "--dir", str(tmp_path), "--url", url, "--no-progress")
    first = instaseg(*args)
    assert first.returncode == 1
    assert "interrupted after 250000 of 900000 bytes: run the same command again" in one_line_error(first)
    second = instaseg(*args)
    # the catalogue's exact size for yolov3-tiny.weights (35,434,956 bytes) is what this stand-in lacks:
    assert second.returncode == 1
    assert "size mismatch for yolov3-tiny.weights: expected 35434956 bytes, got 900000" in (
        one_line_error(second)
    )
    assert http_server.requests[-1][1] == "bytes=250000-"


def test_download_resumes_to_a_verified_file(http_server, tmp_path: Path) -> None:
    data = os.urandom(400_000)
    http_server.files["r.pth"] = data
    http_server.cut_after = 123_456
    url = http_server.url("r.pth")
    args = ("weights", "download", "yolact_darknet53", "--dir", str(tmp_path), "--url", url, "--no-progress")
    assert instaseg(*args).returncode == 1
    second = instaseg(*args)
    assert second.returncode == 0, second.stderr
    assert "resumed at 123456 bytes" in second.stdout
    assert (tmp_path / "yolact_darknet53_54_800000.pth").read_bytes() == data


def test_download_without_server_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = instaseg(
        "weights", "download", "yolov3", "--dir", str(tmp_path), "--url", f"http://127.0.0.1:{port}/"
    )
    assert out.returncode == 1
    assert one_line_error(out).endswith(f"cannot reach 127.0.0.1:{port}: Connection refused (no network?)")


def test_download_unknown_name(tmp_path: Path) -> None:
    out = instaseg("weights", "download", "yolov9", "--dir", str(tmp_path))
    assert out.returncode == 2
    assert "unknown weights 'yolov9'; known: yolact_base_54_800000.pth" in one_line_error(out)


def test_readme_robot_quick_start_downloads_official_weights_first() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("### Robot quick start", 1)[1].split("\n### ", 1)[0]
    assert quick.index("instaseg weights download") < quick.index("ros2 launch instaseg_ros")
    assert "synthetic" in quick  # says what the shipped model is for
    table = readme.split("### Official COCO weights", 1)[1].split("\n### ", 1)[0]
    for name in names():
        assert f"`{name}`" in table, name
    assert "cannot be reached from CI" in table
