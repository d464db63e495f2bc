"""A checkpoint whose stored config asks for absurd sizes is refused before any network is built."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch

from instaseg_ros.models.loading import ModelLoadError, load_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models/yolact_se_r18_indoor.pth"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("input_size", 60000, r"input_size = 60000 is outside the supported range \[32, 2048\]"),
        ("num_classes", 1_000_000, r"num_classes = 1000000 is outside"),
        ("fpn_channels", 10**6, r"fpn_channels = 1000000 is outside"),
        ("num_prototypes", "32", r"num_prototypes: expected a number"),
    ],
)
def test_hostile_yolact_checkpoint_config_is_refused_without_allocating(tmp_path, key, value, message):
    ckpt = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    ckpt["config"][key] = value
    if key == "num_classes":
        ckpt["config"]["class_names"] = []
    bad = tmp_path / "bad.pth"
    torch.save(ckpt, bad)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelLoadError, match=message):
        load_model("yolact", str(bad))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, f"refusing the file took {grown_mb:.0f} MB"


@pytest.mark.parametrize(
    ("family", "config", "message"),
    [
        ("solo", {"input_size": 60000}, "SoloConfig.input_size = 60000"),
        ("maskrcnn", {"class_names": [f"c{i}" for i in range(2000)]}, r"class_names \(count\) = 2000"),
        ("yolo_fcn", {"input_size": 60000, "allow_random_detector": True, "allow_random_fcn": True},
         "YoloFcnConfig.input_size = 60000"),
    ],
)  # fmt: skip
def test_every_family_bounds_its_sizes(family, config, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(family, config=config)
