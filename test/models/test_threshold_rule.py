"""THE score rule (``score >= threshold``) holds in every family, and the filter's pieces are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.models.config import load_config_mapping
from instaseg_ros.models.loading import load_model
from instaseg_ros.ops.filter import filter_detections, keep_score, strictly_below

ROOT = Path(__file__).resolve().parents[2]


def _family_models():
    torch.manual_seed(0)
    solo_cfg = {
        **load_config_mapping(ROOT / "config/models/solo_r18_indoor.yaml"),
        "pre_nms_threshold": 0.005,
    }
    yield "yolact", load_model("yolact", str(ROOT / "models/yolact_se_r18_indoor.pth"))
    yield "yolo_fcn", load_model("yolo_fcn", str(ROOT / "models/yolo_fcn_indoor.pth"))
    yield "solo", load_model("solo", config=solo_cfg)
    torch.manual_seed(0)
    yield "maskrcnn", load_model("maskrcnn", config=str(ROOT / "config/models/maskrcnn_r18_indoor.yaml"))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return generate_scene((777, 1), SynthConfig(width=320, height=240)).image


def test_every_family_keeps_a_detection_scoring_exactly_the_threshold(image):
    """Before the single filter, SOLO and Mask R-CNN kept it (>=) and YOLACT and YOLO+FCN dropped it (>)."""
    seen = []
    for family, model in _family_models():
        low = model.segment([image], InferenceParams(score_threshold=0.001, top_k=100))[0]
        assert len(low) >= 3, f"{family}: the test needs detections"
        s = float(low.scores[len(low) // 2])  # an interior score: the threshold sits exactly on it
        at = model.segment([image], InferenceParams(score_threshold=s, top_k=100))[0]
        assert np.any(at.scores == np.float32(s)), f"{family}: a detection scoring exactly {s} was dropped"
        assert np.all(at.scores >= np.float32(s)), family
        above = model.segment([image], InferenceParams(score_threshold=float(np.nextafter(np.float32(s), 1)),
                                                         top_k=100))[0]  # fmt: skip
        assert not np.any(above.scores == np.float32(s)), family
        seen.append(family)
    assert seen == ["yolact", "yolo_fcn", "solo", "maskrcnn"]


def test_keep_score_and_strictly_below_agree():
    scores = torch.tensor([0.3, np.nextafter(np.float32(0.3), 0), np.nextafter(np.float32(0.3), 1)],
                          dtype=torch.float32)  # fmt: skip
    for t in (0.3, 0.05, 0.999):
        assert torch.equal(keep_score(scores, t), scores > strictly_below(t))
    assert keep_score(scores, 0.3).tolist() == [True, False, True]


@pytest.mark.parametrize("method", ["fast", "greedy"])
def test_filter_applies_class_filter_threshold_and_top_k(method):
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10.5], [50, 50, 60, 60], [80, 80, 90, 90]], dtype=torch.float32
    )
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.0], [0.1, 0.7], [0.3, 0.2]])  # [N, C]
    p = InferenceParams(score_threshold=0.3, nms_threshold=0.5, top_k=2)
    idx, cls, sc = filter_detections(scores, p, None, boxes=boxes, method=method)
    assert idx.tolist() == [0, 2] and cls.tolist() == [0, 1]  # box 1 suppressed by box 0; box 3 cut by top-k
    idx, cls, sc = filter_detections(scores, p, [0], boxes=boxes, method=method)
    assert idx.tolist() == [0, 3] and cls.tolist() == [0, 0]  # class 1 filtered out; 0.3 >= 0.3 kept
