"""The tracker's building blocks against direct computations: IoUs, mask sampling, histograms, Kalman."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from instaseg_ros.tracking import kalman
from instaseg_ros.tracking.similarity import (
    bhattacharyya,
    box_iou,
    colour_histograms,
    downsample_masks,
    mask_iou,
    shift_masks,
)

masks_2d = arrays(bool, st.tuples(st.integers(0, 5), st.integers(1, 150)))


@settings(max_examples=100, deadline=None)
@given(a=masks_2d, b=masks_2d, seed=st.integers(0, 2**32 - 1))
def test_mask_iou_matches_a_direct_count(a, b, seed):
    p = min(a.shape[1], b.shape[1])
    a, b = a[:, :p], b[:, :p]
    inter = (a[:, None] & b[None]).sum(-1)
    union = (a[:, None] | b[None]).sum(-1)
    expected = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    np.testing.assert_allclose(mask_iou(a, b), expected)
    cand = np.random.default_rng(seed).random((len(a), len(b))) < 0.5
    np.testing.assert_allclose(mask_iou(a, b, cand), np.where(cand, expected, 0.0))


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0, 1], [0, 0, 0]])


@settings(max_examples=50, deadline=None)
@given(x0=st.integers(0, 60), y0=st.integers(0, 40), w=st.integers(1, 30), h=st.integers(1, 30),
       stride=st.integers(1, 9), seed=st.integers(0, 1000))
def test_box_bounded_sampling_equals_full_sampling(x0, y0, w, h, stride, seed):
    masks = np.zeros((1, 60, 80), bool)
    noise = np.random.default_rng(seed).random((h, w))[: 60 - y0, : 80 - x0]
    masks[0, y0 : y0 + h, x0 : x0 + w] = noise < 0.6
    box = np.array([[x0, y0, min(x0 + w, 80), min(y0 + h, 60)]], float)
    np.testing.assert_array_equal(downsample_masks(masks, stride, box), downsample_masks(masks, stride))


@given(dx=st.integers(-12, 12), dy=st.integers(-9, 9))
def test_shift_masks_moves_with_zero_fill(dx, dy):
    grid = np.random.default_rng(0).random((2, 8, 10)) < 0.5
    out = shift_masks(grid.reshape(2, -1), (8, 10), np.array([[dx, dy], [0, 0]])).reshape(2, 8, 10)
    expected = np.zeros((8, 10), bool)
    for y in range(8):
        for x in range(10):
            if 0 <= y - dy < 8 and 0 <= x - dx < 10:
                expected[y, x] = grid[0, y - dy, x - dx]
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], grid[1])


def test_colour_histograms_and_bhattacharyya():
    image = np.zeros((40, 50, 3), np.uint8)
    image[:, :25] = (255, 0, 0)
    image[:, 25:] = (0, 0, 255)
    masks = np.zeros((3, 40, 50), bool)
    masks[0, :, :25] = True  # all blue
    masks[1, :, 20:30] = True  # half blue, half red
    boxes = np.array([[0, 0, 25, 40], [20, 0, 30, 40], [0, 0, 0, 0]], float)
    h = colour_histograms(image, masks, boxes)
    assert h.shape == (3, 512)
    np.testing.assert_allclose(h[:2].sum(1), 1.0, rtol=1e-6)
    assert h[0, 7 * 64] == 1.0  # B=255 -> level 7, G=R=0
    np.testing.assert_allclose(h[1, [7 * 64, 7]], [0.5, 0.5])
    assert not h[2].any()
    np.testing.assert_allclose(colour_histograms(image, masks, boxes, np.array([1])), h[1:2])
    bc = bhattacharyya(h, h)
    np.testing.assert_allclose(bc[0, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(bc[0, 1], np.sqrt(0.5), rtol=1e-6)
    assert bc[2, 0] == 0.0


def test_kalman_learns_constant_velocity_and_scales_with_dt():
    boxes = np.array([[10.0 + 5 * k, 20.0, 50.0 + 5 * k, 100.0] for k in range(30)])
    z = kalman.xyxy_to_cxcyah(boxes)
    np.testing.assert_allclose(kalman.cxcyah_to_xyxy(z), boxes)
    mean, cov = kalman.initiate(z[:1])
    for k in range(1, 30):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, z[k : k + 1])
    assert abs(mean[0, 4] - 5.0) < 0.05 and abs(mean[0, 5]) < 0.05
    ahead, cov2 = kalman.predict(mean, cov, dt=3.0)
    assert abs(ahead[0, 0] - (z[-1, 0] + 15.0)) < 0.5
    assert np.all(np.diag(cov2[0]) >= np.diag(cov[0]))  # uncertainty grows with the step
    np.testing.assert_allclose(cov2[0], cov2[0].T)


def test_mask_iou_without_bitwise_count(monkeypatch):
    """numpy < 2 has no np.bitwise_count: the float fallback gives the same values."""
    rng = np.random.default_rng(1)
    a, b = rng.random((4, 300)) < 0.4, rng.random((3, 300)) < 0.4
    cand = rng.random((4, 3)) < 0.7
    fast = mask_iou(a, b, cand)
    monkeypatch.delattr(np, "bitwise_count")
    np.testing.assert_allclose(mask_iou(a, b, cand), fast)
