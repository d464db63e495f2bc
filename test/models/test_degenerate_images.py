"""Degenerate image sizes (1 x 640, 480 x 1, 1000 x 2, 1 x 1) give well-formed results in every family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models.config import load_config_mapping
from instaseg_ros.models.loading import load_model

ROOT = Path(__file__).resolve().parents[2]
SIZES = [(1, 640), (480, 1), (1000, 2), (1, 1), (2, 3)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "yolact": load_model("yolact", str(ROOT / "models/yolact_se_r18_indoor.pth")),
        "yolo_fcn": load_model("yolo_fcn", str(ROOT / "models/yolo_fcn_indoor.pth")),
        "solo": load_model("solo", config={**load_config_mapping(ROOT / "config/models/solo_r18_indoor.yaml"),
                                           "pre_nms_threshold": 0.005}),  # fmt: skip
        "maskrcnn": load_model("maskrcnn", config=str(ROOT / "config/models/maskrcnn_r18_indoor.yaml")),
    }


@pytest.mark.parametrize("family", ["yolact", "yolo_fcn", "solo", "maskrcnn"])
def test_degenerate_sizes(models, family):
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        out = models[family].segment([image], InferenceParams(score_threshold=0.001))[0]
        assert out.image_size == (h, w) and out.masks.shape[1:] == (h, w), (family, h, w)
        assert len(out.boxes) == len(out.scores) == len(out.masks)
