"""Parity helpers: raw-output differences and instance matching between two backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instaseg_ros.core.instances import Instances
from instaseg_ros.runtime.parity import (
    compare_instances,
    flatten_raw,
    mask_iou,
    raw_differences,
    relative_errors,
)


def test_raw_differences_per_output_and_nonfinite_values():
    a = {"loc": torch.tensor([[1.0, float("inf")]]), "pair": (torch.zeros(2), torch.ones(1))}
    b = {"loc": torch.tensor([[1.5, float("inf")]]), "pair": (torch.zeros(2), torch.tensor([float("nan")]))}
    d = raw_differences(a, b)
    assert set(d) == {"loc", "pair.0", "pair.1"}
    assert d["loc"] == pytest.approx(0.5) and d["pair.0"] == 0.0 and d["pair.1"] == float("inf")
    with pytest.raises(ValueError, match="structure"):
        raw_differences(a, {"loc": a["loc"]})
    with pytest.raises(ValueError, match=r"raw output loc: shape \(1, 2\) vs \(2,\)"):
        raw_differences({"loc": a["loc"]}, {"loc": torch.zeros(2)})
    assert list(flatten_raw((torch.zeros(1), [torch.zeros(1)]))) == ["0", "1.0"]


def test_relative_errors_are_l2_relative_per_output():
    g = torch.Generator().manual_seed(0)
    ref = {"conf": torch.randn(4, 100, generator=g), "proto": torch.randn(2, 8, 8, generator=g)}
    noise = 0.05 * torch.randn(4, 100, generator=g)
    test = {"conf": ref["conf"] + noise, "proto": ref["proto"].clone()}
    e = relative_errors(ref, test)
    assert e["conf"] == pytest.approx(float(noise.norm() / ref["conf"].norm()), rel=1e-6)
    assert 0.03 < e["conf"] < 0.07 and e["proto"] == 0.0
    # a uniformly scaled output is off by the scale, whatever its magnitude
    assert relative_errors(ref["proto"], 1.2 * ref["proto"])["out"] == pytest.approx(0.2)
    assert relative_errors(1e-6 * ref["proto"], 1.2e-6 * ref["proto"])["out"] == pytest.approx(0.2)
    inf = torch.tensor([1.0, float("inf")])
    assert relative_errors(inf, torch.tensor([1.0, float("inf")]))["out"] == 0.0  # shared inf left out
    assert relative_errors(inf, torch.tensor([1.0, 2.0]))["out"] == float("inf")
    assert relative_errors(torch.zeros(3), torch.zeros(3))["out"] == 0.0
    assert relative_errors(torch.zeros(3), torch.ones(3))["out"] == float("inf")
    with pytest.raises(ValueError, match="structure"):
        relative_errors(ref, {"conf": ref["conf"]})


def _inst(boxes, scores, classes, size=(20, 30)) -> Instances:
    h, w = size
    masks = np.zeros((len(boxes), h, w), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[i, int(y1) : int(y2), int(x1) : int(x2)] = True
    return Instances(np.array(boxes, np.float32).reshape(-1, 4), scores, classes, masks, size, ["a", "b"])


def test_compare_instances_matches_by_class_and_box():
    ref = _inst([[0, 0, 10, 10], [12, 2, 25, 18]], [0.9, 0.6], [0, 1])
    test = _inst([[12.4, 2, 25, 18], [0, 0, 10, 10]], [0.6, 0.9], [1, 0])
    c = compare_instances(ref, test, 0.3)
    assert sorted(c.matched) == [(0, 0), (1, 1)]  # Instances sort by score
    assert c.max_box_diff == pytest.approx(0.4, abs=1e-6) and c.min_mask_iou == 1.0 and c.ok()
    # wrong class: unmatched, not ok
    bad = _inst([[0, 0, 10, 10], [12, 2, 25, 18]], [0.9, 0.6], [1, 1])
    c = compare_instances(ref, bad, 0.3)
    assert c.unmatched_ref == [0] and not c.ok()
    # box more than 1 px off: matched (IoU high) but not ok
    off = _inst([[0, 0, 11.5, 10], [12, 2, 25, 18]], [0.9, 0.6], [0, 1])
    assert not compare_instances(ref, off, 0.3).ok()


def test_borderline_instances_may_flip():
    ref = _inst([[0, 0, 10, 10], [12, 2, 25, 18]], [0.9, 0.3004], [0, 1])
    test = _inst([[0, 0, 10, 10]], [0.9], [0])
    c = compare_instances(ref, test, score_threshold=0.3)
    assert c.unmatched_ref == [1] and c.borderline == 1 and c.ok()
    c = compare_instances(ref, test, score_threshold=0.1)
    assert c.borderline == 0 and not c.ok()
    # a full top-k list may lose its last instance to a near-tie
    assert compare_instances(ref, test, score_threshold=0.1, top_k=2).ok()


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert mask_iou(a, b) == 1.0
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
