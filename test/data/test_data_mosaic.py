"""Mosaic and copy-paste keep masks, boxes, labels and pixels of every instance consistent."""

from __future__ import annotations

import numpy as np
import pytest

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.data.mosaic import MixConfig, MixingDataset, copy_paste, mosaic4

#: one colour per class, so an instance's pixels say its class
COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255), 3: (255, 255, 0), 4: (0, 255, 255)}
H = W = 48


def sample(rects: list[tuple[int, int, int, int, int]], image_id: int = 0):
    """Grey image with filled rectangles (x0, y0, x1, y1, label) drawn in order (later ones on top)."""
    img = np.full((H, W, 3), 114, np.uint8)
    masks = np.zeros((len(rects), H, W), np.uint8)
    for k, (x0, y0, x1, y1, lab) in enumerate(rects):
        img[y0:y1, x0:x1] = COLOURS[lab]
        masks[:k, y0:y1, x0:x1] = 0  # covered parts of earlier instances are not visible
        masks[k, y0:y1, x0:x1] = 1
    labels = np.array([r[4] for r in rects], np.int64)
    return img, {"masks": masks, "labels": labels, "iscrowd": np.zeros(len(rects), np.uint8),
                 "boxes": masks_to_boxes(masks.astype(bool)), "image_id": image_id}


def check_consistent(img: np.ndarray, t: dict, min_share: float = 0.8, colour_from: int = 0) -> None:
    """Boxes equal the masks' extents; (almost) every mask pixel shows its class colour (bilinear
    resizing blends the edges: ``min_share``, checked on masks of ``colour_from`` pixels or more);
    nothing empty."""
    n = len(t["labels"])
    assert t["masks"].shape == (n, *img.shape[:2]) and t["boxes"].shape == (n, 4) and len(t["iscrowd"]) == n
    np.testing.assert_allclose(t["boxes"], masks_to_boxes(t["masks"].astype(bool)))
    for m, lab in zip(t["masks"].astype(bool), t["labels"], strict=True):
        assert m.any()
        if m.sum() < colour_from:
            continue
        pix = img[m].astype(int)
        share = np.mean(np.all(np.abs(pix - COLOURS[int(lab)]) <= 2, axis=1))
        assert share > min_share, (lab, share)


def four():
    return [sample([(4, 4, 20, 30, 0), (25, 10, 44, 40, 1)], 1), sample([(10, 10, 40, 40, 2)], 2),
            sample([(0, 0, 24, 24, 3)], 3), sample([(20, 20, 48, 48, 4), (2, 30, 14, 46, 0)], 4)]


def test_mosaic_of_the_whole_canvas_keeps_every_instance_and_its_class():
    img, t = mosaic4(four(), center=(W, H), zoom=0.5, min_area=1, min_fraction=0.0)
    assert img.shape == (H, W, 3)
    assert t["labels"].tolist() == [0, 1, 2, 3, 4, 0]
    check_consistent(img, t)
    assert t["image_id"] == 1
    # the top-left tile lands in the top-left quarter at half size
    np.testing.assert_allclose(t["boxes"][0], [2, 2, 10, 15], atol=1)


def test_mosaic_window_of_one_tile_crops_and_drops_what_leaves_it():
    # window = the bottom-right tile exactly: only its instances remain, unchanged
    samples = four()
    img, t = mosaic4(samples, center=(1.5 * W, 1.5 * H), zoom=1.0)
    assert t["labels"].tolist() == [4, 0]
    np.testing.assert_array_equal(t["masks"], samples[3][1]["masks"])
    np.testing.assert_array_equal(img, samples[3][0])
    # the window [24, 72) x [24, 72) across the middle: tile 0's second instance keeps 53 % of its
    # area, tile 1's 25 %, the others (almost) nothing
    img, t = mosaic4(samples, center=(W, H), zoom=1.0, min_area=4, min_fraction=0.3)
    check_consistent(img, t)
    assert t["labels"].tolist() == [1]
    np.testing.assert_allclose(t["boxes"][0], [1, 0, 20, 16])
    img, t = mosaic4(samples, center=(W, H), zoom=1.0, min_area=4, min_fraction=0.2)
    check_consistent(img, t)
    assert t["labels"].tolist() == [1, 2]
    np.testing.assert_allclose(t["boxes"][1], [34, 0, 48, 16])


def test_copy_paste_covers_cuts_and_drops_instances():
    dst = sample([(0, 0, 16, 16, 0), (20, 20, 40, 40, 1)])
    src = sample([(0, 0, 20, 20, 2), (30, 20, 48, 40, 3)])
    img, t = copy_paste(dst, src, np.array([0, 1]), flip=False, min_area=4, min_fraction=0.5)
    # dst's instance 0 is fully covered (dropped); instance 1 keeps columns 20..29 (half: kept)
    assert t["labels"].tolist() == [1, 2, 3]
    check_consistent(img, t)
    np.testing.assert_allclose(t["boxes"][0], [20, 20, 30, 40])
    # with a higher min_fraction the half-covered instance goes too
    _, t2 = copy_paste(dst, src, np.array([0, 1]), min_area=4, min_fraction=0.6)
    assert t2["labels"].tolist() == [2, 3]
    # only the chosen instance, flipped: it appears mirrored at the right edge
    img3, t3 = copy_paste(dst, src, np.array([0]), flip=True, min_area=1, min_fraction=0.0)
    assert t3["labels"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(t3["boxes"][-1], [W - 20, 0, W, 20])
    check_consistent(img3, t3)


def test_mixing_dataset_is_reproducible_and_consistent():
    rng = np.random.default_rng(0)
    base = []
    for i in range(12):
        rects = []
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = (int(v) for v in rng.integers(0, 36, 2))
            w, h = (int(v) for v in rng.integers(6, 20, 2))
            rects.append((x0, y0, min(W, x0 + w), min(H, y0 + h), int(rng.integers(5))))
        base.append(sample(rects, i))
    # rectangles drawn later cover earlier ones: drop the instances that are not visible at all
    base = [(im, {**t, "labels": t["labels"][t["masks"].any((1, 2))],
                  "iscrowd": t["iscrowd"][t["masks"].any((1, 2))],
                  "masks": t["masks"][t["masks"].any((1, 2))]}) for im, t in base]
    cfg = MixConfig(mosaic=0.7, copy_paste=0.7, min_area=2, min_fraction=0.1)
    a, b = MixingDataset(base, cfg, seed=3), MixingDataset(base, cfg, seed=3)
    changed = 0
    for i in range(len(base)):
        (ia, ta), (ib, tb) = a[i], b[i]
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ta["masks"], tb["masks"])
        check_consistent(ia, ta, min_share=0.6, colour_from=16)  # zoomed out, edges blend
        changed += int(not np.array_equal(ia, base[i][0]))
    assert changed >= len(base) // 2
    off = MixingDataset(base, MixConfig(), seed=3)
    np.testing.assert_array_equal(off[5][0], base[5][0])


def test_samples_without_instances_mix_too():
    empty = sample([])
    img, t = mosaic4([empty, empty, sample([(0, 0, 48, 48, 2)]), empty], center=(W, H), zoom=0.5)
    assert t["labels"].tolist() == [2]
    check_consistent(img, t)
    img, t = mosaic4([empty] * 4, center=(W, H), zoom=0.5)
    assert t["masks"].shape == (0, H, W) and t["boxes"].shape == (0, 4)
    img, t = copy_paste(empty, sample([(5, 5, 20, 20, 1)]), np.array([0]))
    assert t["labels"].tolist() == [1]
    check_consistent(img, t)
    img, t = copy_paste(sample([(5, 5, 20, 20, 1)]), empty, np.array([], np.int64))
    assert t["labels"].tolist() == [1]


def test_mix_config_checks_its_values():
    with pytest.raises(ValueError, match="mosaic_scale"):
        MixConfig(mosaic=0.5, mosaic_scale=(0.5, 2.0))
    with pytest.raises(ValueError, match="copy_paste"):
        MixConfig(copy_paste=1.5)
