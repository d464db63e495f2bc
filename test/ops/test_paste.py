"""Crop/paste with exact pixel rules and confidence-ordered overlap resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from instaseg_ros.core.instances import Instances
from instaseg_ros.ops.paste import (
    box_pixel_range,
    crop_and_resize,
    crop_masks,
    exclusive_masks,
    paste_masks,
)


@pytest.mark.parametrize(
    "box, expected",
    [
        ((2, 0, 5, 3), (0, 3, 2, 5)),  # integer box: exactly cols 2..4, rows 0..2
        ((1.4, 0.6, 3.5, 2.49), (1, 2, 1, 3)),  # centres 1.5, 2.5 inside [1.4, 3.5); row centre 0.5 < 0.6 out
        ((1.6, 0.0, 3.51, 1.0), (0, 1, 2, 4)),  # centre 1.5 < 1.6 out, 3.5 < 3.51 in
        ((-5, -5, 3, 2), (0, 2, 0, 3)),  # clipped at the top-left
        ((8, 5, 50, 50), (5, 6, 8, 10)),  # clipped at the bottom-right of a 6x10 image
        ((3.2, 1, 3.4, 4), (1, 4, 3, 3)),  # narrower than a pixel centre spacing: no column
    ],
)
def test_box_pixel_range(box, expected):
    assert box_pixel_range(box, (6, 10)) == expected


def test_integer_box_with_same_size_mask_pastes_unchanged():
    rng = np.random.default_rng(0)
    probs = rng.random((1, 4, 4)).astype(np.float32)
    out = paste_masks(probs, [[3, 2, 7, 6]], (9, 12), threshold=0.5)
    expected = np.zeros((9, 12), bool)
    expected[2:6, 3:7] = probs[0] > 0.5
    np.testing.assert_array_equal(out[0], expected)


def test_paste_resamples_like_cv2_bilinear():
    rng = np.random.default_rng(1)
    probs = rng.random((1, 7, 7)).astype(np.float32)
    # a box covering a 20x13 region exactly -> same as cv2.resize of the mask to 20x13
    out = paste_masks(probs, [[5, 3, 25, 16]], (20, 30), threshold=0.5)
    ref = cv2.resize(probs[0], (20, 13), interpolation=cv2.INTER_LINEAR) > 0.5
    np.testing.assert_array_equal(out[0, 3:16, 5:25], ref)
    assert not out[0, :3].any() and not out[0, 16:].any()
    assert not out[0, :, :5].any() and not out[0, :, 25:].any()


def test_paste_fractional_box_samples_at_pixel_centres():
    # a 2x2 mask, left half on; box x in [0.5, 4.5): covers cols 0..3 (centres 0.5..3.5)
    probs = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    out = paste_masks(probs, [[0.5, 0, 4.5, 2]], (2, 6), threshold=0.5)
    # u = (c + 0.5 - 0.5) * 2 / 4 - 0.5 = c/2 - 0.5 -> 0, 0, 0.5, 1 (clamped) -> probs 1, 1, 0.5, 0
    np.testing.assert_array_equal(out[0], [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    out_low = paste_masks(probs, [[0.5, 0, 4.5, 2]], (2, 6), threshold=0.4)
    np.testing.assert_array_equal(out_low[0, 0], [1, 1, 1, 0, 0, 0])


def test_paste_box_partly_outside_and_degenerate_boxes():
    probs = np.ones((3, 5, 5), np.float32)
    boxes = [[-10, -10, 3, 2], [4, 4, 4, 9], [30, 30, 40, 40]]
    out = paste_masks(probs, boxes, (6, 8))
    expected = np.zeros((6, 8), bool)
    expected[0:2, 0:3] = True
    np.testing.assert_array_equal(out[0], expected)
    assert not out[1].any() and not out[2].any()
    assert paste_masks(np.zeros((0, 5, 5)), np.zeros((0, 4)), (6, 8)).shape == (0, 6, 8)


def test_paste_input_errors():
    with pytest.raises(ValueError, match="square per-box masks"):
        paste_masks(np.ones((1, 4, 5)), [[0, 0, 1, 1]], (4, 4))
    with pytest.raises(ValueError, match="2 masks but 1 boxes"):
        paste_masks(np.ones((2, 4, 4)), [[0, 0, 1, 1]], (4, 4))


def test_overlap_goes_to_higher_confidence():
    """Seed 001 Fig. 4: two boxes both segment the shared region; the more confident one keeps it."""
    h, w = 10, 12
    probs = np.ones((2, 4, 4), np.float32)
    boxes = np.array([[0, 0, 8, 6], [4, 2, 12, 10]], np.float32)  # overlap: rows 2..5, cols 4..7
    masks = paste_masks(probs, boxes, (h, w))
    assert masks[0, 2:6, 4:8].all() and masks[1, 2:6, 4:8].all()
    for scores, winner in (([0.9678, 0.8998], 0), ([0.5, 0.7], 1)):
        excl = exclusive_masks(masks, np.array(scores))
        loser = 1 - winner
        assert excl[winner, 2:6, 4:8].all() and not excl[loser, 2:6, 4:8].any()
        assert excl[winner].sum() == masks[winner].sum()
        assert excl[loser].sum() == masks[loser].sum() - 16
        assert not (excl[0] & excl[1]).any()
        inst = Instances(boxes, np.array(scores), np.array([0, 1]), excl, (h, w))
        ids = inst.instance_id_image()
        top = int(np.argmax(scores))  # Instances sorts by score: the winner is id 1
        assert top == winner and (ids[2:6, 4:8] == 1).all()


def test_exclusive_masks_three_way_ties_keep_lower_index():
    masks = np.ones((3, 2, 2), bool)
    excl = exclusive_masks(masks, np.array([0.5, 0.9, 0.9]))
    assert excl[1].all() and not excl[0].any() and not excl[2].any()


def test_crop_and_resize_integer_box_is_a_slice():
    img = torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(0))
    crops = crop_and_resize(img, np.array([[5, 6, 15, 16], [0, 0, 10, 10]], np.float32), 10)
    assert crops.shape == (2, 3, 10, 10)
    torch.testing.assert_close(crops[0], img[:, 6:16, 5:15], atol=1e-6, rtol=0)
    torch.testing.assert_close(crops[1], img[:, 0:10, 0:10], atol=1e-6, rtol=0)
    assert crop_and_resize(img, np.zeros((0, 4)), 8).shape == (0, 3, 8, 8)
    with pytest.raises(ValueError, match=r"image \[C, H, W\]"):
        crop_and_resize(img[0], [[0, 0, 1, 1]], 4)


def test_crop_and_resize_upsampling_matches_bilinear():
    img = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    crop = crop_and_resize(img, [[0, 0, 8, 8]], 16)
    ref = torch.nn.functional.interpolate(img[None], size=(16, 16), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(crop[0], ref, atol=1e-5, rtol=0)


def test_crop_masks_targets():
    m = np.zeros((2, 20, 20), np.uint8)
    m[0, 2:10, 4:12] = 1
    m[1, 10:20, 0:5] = 1
    boxes = np.array([[4, 2, 12, 10], [0, 10, 10, 20]], np.float32)
    t = crop_masks(m, boxes, 8)
    assert t.shape == (2, 8, 8) and t.dtype == torch.float32
    assert t[0].eq(1).all()  # the mask fills its box
    np.testing.assert_array_equal(t[1].numpy(), np.repeat([[1, 1, 1, 1, 0, 0, 0, 0]], 8, 0))
    soft = crop_masks(m, np.array([[4, 2, 12, 10], [0, 10, 10, 20]], np.float32), 3, binary=False)
    assert ((soft >= 0) & (soft <= 1)).all()
    with pytest.raises(ValueError, match="2 masks but 1 boxes"):
        crop_masks(m, boxes[:1], 8)


@settings(max_examples=30, deadline=None)
@given(x=st.integers(0, 20), y=st.integers(0, 20), s=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_crop_then_paste_round_trip_on_integer_boxes(x, y, s, seed):
    """For an integer s x s box, crop at size s then paste gives back exactly the mask inside the box."""
    rng = np.random.default_rng(seed)
    full = np.zeros((1, 32, 32), bool)
    full[0, y : y + s, x : x + s] = rng.random((s, s)) > 0.5
    box = np.array([[x, y, x + s, y + s]], np.float32)
    crop = crop_masks(full, box, s)
    pasted = paste_masks(crop, box, (32, 32), threshold=0.5)
    np.testing.assert_array_equal(pasted, full)
