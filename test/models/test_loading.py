"""The single loader: every caller's entry point; errors name the file and the actual difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from instaseg_ros.models.loading import ModelLoadError, load_model
from instaseg_ros.weights.identify import identify_weights

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "yolact_se_r18_indoor.pth"


def _official_r50(tmp_path: Path, plus: bool) -> Path:
    doc = json.loads((ROOT / "test/fixtures/yolact_official_keys_resnet50.json").read_text())
    sd = {k: torch.zeros(shape) for k, shape in doc["keys"]}
    if plus:  # what the authors' YOLACT++ adds: DCNv2 offsets in the backbone, the mask re-scoring head
        sd["backbone.layers.1.0.conv2.conv_offset_mask.weight"] = torch.zeros(27, 128, 3, 3)
        sd["maskiou_net.maskiou_net.0.weight"] = torch.zeros(8, 1, 3, 3)
    path = tmp_path / ("yolact_plus_resnet50_54_800000.pth" if plus else "yolact_resnet50_54_800000.pth")
    torch.save(sd, path)
    return path


def test_loads_the_shipped_model_by_package_url():
    seg = load_model("yolact", "package://instaseg_ros/models/yolact_se_r18_indoor.pth")
    assert seg.family == "yolact" and seg.class_names[0] == "person"


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("/nonexistent/w.pth", "does not exist"),
        ("/tmp", "is a directory"),
        ("/dev/zero", "not a regular file"),
        ("package://instaseg_ros/models/nope.pth", "models/nope.pth is not in the package"),
    ],
)
def test_file_problems_are_named(weights, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model("yolact", weights)


def test_wrong_family_names_what_the_file_is():
    with pytest.raises(ModelLoadError, match="instaseg_ros yolact checkpoint.*not a 'solo'"):
        load_model("solo", str(SHIPPED))


def test_yolact_plus_checkpoint_is_recognised(tmp_path):
    plus = _official_r50(tmp_path, plus=True)  # a damaged YOLACT++ file: one DCN layer, a wrong head
    assert identify_weights(plus).kind == "official_yolact_plus"
    assert identify_weights(_official_r50(tmp_path, plus=False)).kind == "official_yolact"
    with pytest.raises(ModelLoadError, match="backbone blocks differ") as e:
        load_model("yolact", str(plus))
    assert "resnet50, config asks for resnet50" not in str(e.value)


def test_unsafe_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    code = (
        "import os, torch\n"
        "class E:\n"
        f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
        f"torch.save({{'state_dict': E()}}, {str(evil)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(ModelLoadError, match="could run code"):
        load_model("yolact", str(evil))
    assert not marker.exists()


def test_bad_settings_are_named():
    with pytest.raises(ModelLoadError, match="unknown backend 'tensorflow'"):
        load_model("yolact", str(SHIPPED), backend="tensorflow")
    with pytest.raises(ModelLoadError, match="int8 needs backend onnxruntime \\(CPU\\) or tensorrt"):
        load_model("yolact", str(SHIPPED), precision="int8")
    with pytest.raises(ModelLoadError, match="unknown model family 'yolo9'"):
        load_model("yolo9", str(SHIPPED))
