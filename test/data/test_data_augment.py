"""Augmentation keeps image, masks and boxes consistent and drops vanished instances."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.data.augment import AugmentConfig, Augmenter, apply_masks, build_transform
from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset

H, W = 48, 64


def _sample():
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 0] = np.arange(W, dtype=np.uint8)[None, :] * 3
    masks = np.zeros((3, H, W), np.uint8)
    masks[0, 5:20, 3:15] = 1
    masks[1, 25:45, 30:60] = 1
    masks[2, 0:3, 61:64] = 1  # tiny, in a corner
    img[masks[0].astype(bool)] = (0, 0, 255)
    t = {
        "boxes": masks_to_boxes(masks.astype(bool)),
        "labels": np.array([0, 3, 4], np.int64),
        "masks": masks,
        "image_id": 7,
        "iscrowd": np.array([0, 1, 0], np.uint8),
    }
    return img, t


def _consistent(image, t, n_max):
    n = len(t["labels"])
    assert n <= n_max
    assert t["masks"].shape == (n, *image.shape[:2]) and t["masks"].dtype == np.uint8
    assert t["boxes"].shape == (n, 4) and t["boxes"].dtype == np.float32
    assert t["iscrowd"].shape == (n,) and t["labels"].dtype == np.int64
    np.testing.assert_array_equal(t["boxes"], masks_to_boxes(t["masks"].astype(bool)))
    assert np.all(t["masks"].reshape(n, -1).sum(axis=1) > 0)


def test_horizontal_flip_moves_masks_boxes_and_pixels_together():
    img, t = _sample()
    cfg = AugmentConfig(hflip=1.0, photometric=0, blur=0, noise=0, jpeg=0, scale_crop=0, seed=0, min_area=1)
    out_img, out = build_transform(cfg)(img, t)
    np.testing.assert_array_equal(out_img, img[:, ::-1])
    np.testing.assert_array_equal(out["masks"], t["masks"][:, :, ::-1])
    np.testing.assert_array_equal(out["boxes"][0], [W - 15, 5, W - 3, 20])
    assert out["labels"].tolist() == [0, 3, 4] and out["iscrowd"].tolist() == [0, 1, 0]
    assert out["image_id"] == 7


def test_photometric_only_leaves_geometry_alone():
    img, t = _sample()
    cfg = AugmentConfig(hflip=0, photometric=1.0, blur=1.0, noise=1.0, jpeg=1.0, scale_crop=0, seed=1)
    out_img, out = build_transform(cfg)(img, t)
    assert out_img.shape == img.shape and not np.array_equal(out_img, img)
    np.testing.assert_array_equal(out["masks"], t["masks"])
    np.testing.assert_array_equal(out["boxes"], t["boxes"])


def test_crop_that_removes_an_instance_drops_it_with_its_label():
    img, t = _sample()
    aug = Augmenter(A.Compose([A.Crop(0, 0, 40, 48)]), min_area=4)
    out_img, out = aug(img, t)
    assert out_img.shape == (48, 40, 3)
    assert out["labels"].tolist() == [0, 3] and out["iscrowd"].tolist() == [0, 1]
    np.testing.assert_array_equal(out["boxes"][1], [30, 25, 40, 45])
    _consistent(out_img, out, 3)


def test_apply_masks_min_fraction():
    _, t = _sample()
    new = t["masks"].copy()
    new[1, 25:43] = 0  # keeps 2 of 20 rows = 10%
    assert apply_masks(t, new, min_area=1, min_fraction=0.2)["labels"].tolist() == [0, 4]
    assert apply_masks(t, new, min_area=1, min_fraction=0.05)["labels"].tolist() == [0, 3, 4]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_random_pipeline_always_consistent(seed):
    img, t = _sample()
    cfg = AugmentConfig(hflip=0.5, scale_crop=1.0, scale=(0.5, 2.0), seed=seed, min_area=2)
    out_img, out = build_transform(cfg)(img, t)
    assert out_img.shape == img.shape
    _consistent(out_img, out, 3)


def test_resize_for_evaluation_and_empty_targets():
    ds = SyntheticDataset(2, seed=0, config=SynthConfig(width=160, height=120))
    tf = build_transform(AugmentConfig(size=(96, 128)), train=False)
    img, t = ds[0]
    out_img, out = tf(img, t)
    assert out_img.shape == (96, 128, 3)
    _consistent(out_img, out, len(t["labels"]))
    empty = {
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros(0, np.int64),
        "masks": np.zeros((0, 120, 160), np.uint8),
        "image_id": 1,
        "iscrowd": np.zeros(0, np.uint8),
    }
    out_img, out = build_transform(AugmentConfig(seed=0, size=(60, 80)))(img, empty)
    assert out_img.shape == (60, 80, 3) and out["masks"].shape == (0, 60, 80)


def test_as_dataset_transform_and_config_from_yaml_mapping():
    cfg = AugmentConfig.from_dict({"hflip": 1.0, "scale": [0.8, 1.2], "size": [64, 80], "seed": 3})
    assert cfg.scale == (0.8, 1.2) and cfg.size == (64, 80)
    ds = SyntheticDataset(
        3, seed=1, config=SynthConfig(width=160, height=120), transform=build_transform(cfg)
    )
    for i in range(3):
        img, t = ds[i]
        assert img.shape == (64, 80, 3)
        _consistent(img, t, 20)
    with pytest.raises(ValueError, match="unknown keys"):
        AugmentConfig.from_dict({"flip": 0.5})


class _Same:
    """Every index is the same sample, so only the augmentation makes outputs differ."""

    def __init__(self, transform):
        self.sample = _sample()
        self.transform = transform

    def __len__(self):
        return 8

    def __getitem__(self, i):
        img, t = self.sample
        return self.transform(img.copy(), dict(t))


def test_dataloader_workers_and_epochs_get_different_but_reproducible_augmentations():
    import torch

    def run():
        torch.manual_seed(0)
        ds = _Same(build_transform(AugmentConfig(seed=5, hflip=0.5, scale_crop=1.0, photometric=1.0)))
        loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, collate_fn=lambda b: b[0])
        return [img for _ in range(2) for img, _ in loader]

    a = run()
    # worker 0 serves samples 0, 2, ...; worker 1 serves 1, 3, ...: their first outputs must differ,
    # and so must the first sample of epoch 1 and epoch 2
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], a[8])
    b = run()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
