"""The FCN head learns box-crop masks, and crop -> FCN -> paste puts them back on the objects.

A small ResNet-18 FCN is trained for a few dozen steps on ground-truth box crops of generated
ellipses (``fcn_training_pair``, the training path), then used through the segmenter's
inference path (``segment_boxes``: crop, FCN, paste, overlaps) on held-out images. A shift or
scale error anywhere between cropping and pasting would show up as a low mask IoU.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from instaseg_ros.models.yolo_fcn import build_yolo_fcn
from instaseg_ros.models.yolo_fcn.fcn import fcn_training_pair
from instaseg_ros.training.losses import fcn_mask_loss

H, W = 96, 128


def _scene(rng: np.random.Generator, n: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy background with ``n`` filled ellipses -> (BGR image, boxes [n, 4], masks [n, H, W])."""
    img = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
    boxes, masks = [], []
    for _ in range(n):
        ax, ay = int(rng.integers(8, 24)), int(rng.integers(8, 24))
        cx, cy = int(rng.integers(ax, W - ax)), int(rng.integers(ay, H - ay))
        m = np.zeros((H, W), np.uint8)
        cv2.ellipse(m, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        colour = tuple(int(v) for v in rng.integers(120, 256, 3))
        img[m.astype(bool)] = colour
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        masks.append(m)
    return img, np.array(boxes, np.float32), np.stack(masks)


def test_trained_fcn_masks_land_on_the_objects():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seg = build_yolo_fcn(
        config={
            "input_size": 64,
            "darknet_width": 0.125,
            "darknet_depth": [1, 1, 1, 1, 1],
            "classes": ["person"],
            "fcn": {"arch": "resnet18", "width": 0.25, "crop_size": 48},
            "allow_random_detector": True,
            "allow_random_fcn": True,
            "exclusive_masks": False,
        }
    )
    fcn = seg.fcn.train()
    opt = torch.optim.Adam(fcn.parameters(), lr=3e-3)
    for _ in range(40):
        crops, targets = [], []
        for _ in range(4):
            img, boxes, masks = _scene(rng)
            # jitter the boxes a little, as detections are never exact
            jitter = rng.normal(0, 1.5, boxes.shape).astype(np.float32)
            c, t = fcn_training_pair(img, boxes + jitter, masks, 48)
            crops.append(c)
            targets.append(t)
        loss = fcn_mask_loss(fcn(torch.cat(crops)), torch.cat(targets), dice_weight=0.5)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    fcn.eval()

    ious = []
    for _ in range(6):
        img, boxes, masks = _scene(rng, 1)
        inst = seg.segment_boxes(img, boxes, np.array([0.9]), np.array([0]))
        gt = masks[0].astype(bool)
        pred = inst.masks[0]
        ious.append((pred & gt).sum() / max((pred | gt).sum(), 1))
    # filling the whole box scores 0.75 mean IoU on these ellipses (200 samples, min 0.57); after
    # 40 steps the FCN reaches ~0.92, so > 0.85 needs masks that follow the object inside its box
    assert np.mean(ious) > 0.85, ious
