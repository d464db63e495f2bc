"""Fast NMS vs. reference greedy NMS, box coding round trips and exact mask cropping."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from instaseg_ros.ops.boxes import box_iou, crop_masks, decode_boxes, encode_boxes
from instaseg_ros.ops.nms import cc_fast_nms, fast_nms, greedy_nms


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 80, (n, 2))
    wh = rng.uniform(2, 40, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def _iou_np(b: np.ndarray) -> np.ndarray:
    return box_iou(torch.from_numpy(b), torch.from_numpy(b)).numpy()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), thr=st.floats(0.1, 0.9))
def test_fast_nms_is_exactly_the_boxes_without_a_higher_overlapping_box(seed, n, thr):
    """Documented difference: Fast NMS keeps j iff no higher-scoring box overlaps j by more than thr;
    hence it keeps a subset of greedy NMS, and every box greedy keeps extra is overlapped only by
    boxes that greedy itself suppressed."""
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, n)
    scores = rng.permutation(n).astype(np.float32) / n + 0.01  # distinct scores
    idx, cls, sc = fast_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores)[None], thr, top_k=n, max_detections=n
    )
    fast = set(idx.tolist())
    iou = _iou_np(boxes)
    expected = {j for j in range(n) if not any(scores[i] > scores[j] and iou[i, j] > thr for i in range(n))}
    assert fast == expected
    assert (cls == 0).all()
    assert np.all(np.diff(sc.numpy()) <= 0)
    greedy = set(greedy_nms(boxes, scores, thr).tolist())
    assert fast <= greedy
    for j in greedy - fast:
        suppressors = [i for i in range(n) if scores[i] > scores[j] and iou[i, j] > thr]
        assert suppressors and not any(i in greedy for i in suppressors)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), clusters=st.integers(1, 6), per=st.integers(1, 5))
def test_fast_nms_equals_greedy_on_separated_clusters(seed, clusters, per):
    """Where the algorithms must agree: clusters of near-identical boxes far apart from each other."""
    rng = np.random.default_rng(seed)
    boxes = []
    for c in range(clusters):
        base = np.array([c * 100.0, 0.0, c * 100.0 + 50.0, 50.0])
        for _ in range(per):
            boxes.append(base + rng.uniform(-2, 2, 4))
    boxes = np.asarray(boxes, np.float32)
    scores = rng.uniform(0.05, 1.0, len(boxes)).astype(np.float32)
    idx, _, _ = fast_nms(torch.from_numpy(boxes), torch.from_numpy(scores)[None], 0.5, 200, 200)
    assert sorted(idx.tolist()) == sorted(greedy_nms(boxes, scores, 0.5).tolist())
    assert len(idx) == clusters


def test_fast_nms_chain_differs_from_greedy_as_documented():
    # A suppresses B, B would suppress C, A does not overlap C: greedy keeps C, Fast NMS drops it.
    boxes = np.array([[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert greedy_nms(boxes, scores, 0.3).tolist() == [0, 2]
    idx, _, _ = fast_nms(torch.from_numpy(boxes), torch.from_numpy(scores)[None], 0.3)
    assert idx.tolist() == [0]


def test_fast_nms_per_class_and_top_k():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]])  # [C=2, N=3]
    idx, cls, sc = fast_nms(boxes, scores, 0.5, top_k=200, max_detections=100)
    got = {(int(i), int(c)) for i, c in zip(idx, cls)}
    # class 0: box0 kills box1, box2 kept; class 1: box1 kills box0, box2 kept
    assert got == {(0, 0), (2, 0), (1, 1), (2, 1)}
    assert sc.tolist() == sorted(sc.tolist(), reverse=True)
    idx, cls, sc = fast_nms(boxes, scores, 0.5, top_k=200, max_detections=2)
    assert [(int(i), int(c)) for i, c in zip(idx, cls)] == [(0, 0), (1, 1)]
    # per-class top_k=1: only the best box of each class enters NMS
    idx, cls, _ = fast_nms(boxes, scores, 0.5, top_k=1)
    assert {(int(i), int(c)) for i, c in zip(idx, cls)} == {(0, 0), (1, 1)}


def test_cross_class_fast_nms_suppresses_across_classes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.1, 0.1], [0.2, 0.7, 0.6]])
    idx, cls, sc = cc_fast_nms(boxes, scores, 0.5)
    assert idx.tolist() == [0, 2] and cls.tolist() == [0, 1]
    assert np.allclose(sc.numpy(), [0.9, 0.6])


def test_nms_empty_inputs():
    idx, cls, sc = fast_nms(torch.zeros(0, 4), torch.zeros(3, 0))
    assert idx.numel() == cls.numel() == sc.numel() == 0
    idx, cls, sc = cc_fast_nms(torch.zeros(0, 4), torch.zeros(3, 0))
    assert idx.numel() == 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_encode_decode_round_trip(seed):
    g = torch.Generator().manual_seed(seed)
    priors = torch.cat([torch.rand(50, 2, generator=g), torch.rand(50, 2, generator=g) * 0.5 + 0.01], 1)
    loc = torch.randn(50, 4, generator=g)
    boxes = decode_boxes(loc, priors)
    assert torch.all(boxes[:, 2:] > boxes[:, :2])
    torch.testing.assert_close(encode_boxes(boxes, priors), loc, atol=1e-4, rtol=1e-4)
    # zero offsets decode to the priors themselves
    z = decode_boxes(torch.zeros(50, 4), priors)
    torch.testing.assert_close(
        z, torch.cat([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1)
    )


def test_crop_masks_exact_hand_made():
    masks = torch.ones(2, 10, 10)
    # box 0: x in [0.2, 0.5) * 10 = [2, 5), y in [0.3, 0.6) -> [3, 6); padding 1 -> x [1, 6), y [2, 7)
    boxes = torch.tensor([[0.2, 0.3, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    out = crop_masks(masks, boxes, padding=1)
    expected = np.zeros((10, 10), np.float32)
    expected[2:7, 1:6] = 1
    np.testing.assert_array_equal(out[0].numpy(), expected)
    np.testing.assert_array_equal(out[1].numpy(), np.ones((10, 10), np.float32))
    out0 = crop_masks(masks, boxes, padding=0)
    expected0 = np.zeros((10, 10), np.float32)
    expected0[3:6, 2:5] = 1
    np.testing.assert_array_equal(out0[0].numpy(), expected0)
    # swapped corners are sanitised (x1 > x2 behaves like the ordered box)
    swapped = crop_masks(masks[:1], torch.tensor([[0.5, 0.6, 0.2, 0.3]]), padding=0)
    np.testing.assert_array_equal(swapped[0].numpy(), expected0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), thr=st.floats(0.05, 0.9))
def test_fast_nms_score_threshold_equals_filtering_afterwards(seed, thr):
    rng = np.random.default_rng(seed)
    n, c = 60, 6
    boxes = torch.from_numpy(_random_boxes(rng, n))
    scores = torch.from_numpy(rng.uniform(0, 1, (c, n)).astype(np.float32) ** 3)
    i0, c0, s0 = fast_nms(boxes, scores, 0.5, top_k=20, max_detections=1000)
    keep = s0 > thr
    i1, c1, s1 = fast_nms(boxes, scores, 0.5, top_k=20, max_detections=1000, score_threshold=thr)
    assert set(zip(i1.tolist(), c1.tolist())) == set(zip(i0[keep].tolist(), c0[keep].tolist()))
    assert torch.equal(s1, s0[keep])
