"""Overlay rendering shared by ``instaseg predict``, the ROS debug image and reports."""

from __future__ import annotations

import cv2
import numpy as np

from instaseg_ros.core.instances import Instances


def instance_color(i: int) -> tuple[int, int, int]:
    """A distinct, deterministic BGR colour for instance/class index ``i`` (golden-ratio hue walk)."""
    hue = int((i * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_instances(
    image_bgr: np.ndarray,
    inst: Instances,
    alpha: float = 0.45,
    draw_boxes: bool = True,
    draw_labels: bool = True,
    color_by_class: bool = False,
) -> np.ndarray:
    """Draw masks, boxes, class names and scores over a copy of ``image_bgr``.

    Args:
        image_bgr: [H, W, 3] uint8, the image ``inst`` was computed on.
        inst: detections in that image's pixels.
        alpha: mask opacity.
        color_by_class: colour by class id instead of by instance.
    Returns:
        [H, W, 3] uint8 BGR; pixels claimed by several masks take the higher-scoring instance's colour.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"draw_instances: expected [H, W, 3] uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}"
        )
    h, w = image_bgr.shape[:2]
    if tuple(inst.image_size) != (h, w):
        raise ValueError(
            f"draw_instances: instances are for an image of {inst.image_size}, image is {(h, w)}"
        )
    out = image_bgr.copy()
    n = len(inst)
    if n == 0:
        return out
    colors = np.array(
        [instance_color(int(inst.class_ids[i]) if color_by_class else i) for i in range(n)], np.uint8
    )
    ids = inst.instance_id_image()
    fg = ids > 0
    if fg.any():
        layer = colors[ids[fg].astype(np.int64) - 1].astype(np.float32)
        out[fg] = np.clip(out[fg].astype(np.float32) * (1 - alpha) + layer * alpha, 0, 255).astype(np.uint8)
    scale = max(0.4, min(h, w) / 900)
    thick = max(1, int(round(min(h, w) / 400)))
    for i in range(n):
        c = tuple(int(v) for v in colors[i])
        x1, y1, x2, y2 = (int(round(float(v))) for v in inst.boxes[i])
        if draw_boxes:
            cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), c, thick)
        if draw_labels:
            text = f"{inst.class_name(i)} {float(inst.scores[i]):.2f}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            ty = y1 - 2 if y1 - th - base - 2 >= 0 else min(h - 1, y1 + th + 2)
            cv2.rectangle(out, (x1, ty - th - base // 2), (x1 + tw, ty + base // 2), c, -1)
            cv2.putText(out, text, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
