"""Constructed frames for the tracker tests: coloured rectangles on a grey image."""

from __future__ import annotations

import numpy as np

from instaseg_ros.core.instances import Instances

H, W = 240, 320
PERIOD_NS = 100_000_000  # 10 Hz
COLOURS = [(40, 40, 220), (220, 60, 40), (40, 200, 60), (0, 200, 230), (200, 0, 200), (120, 120, 20)]


def frame(objects: list[dict], size: tuple[int, int] = (H, W)) -> tuple[Instances, np.ndarray]:
    """Objects drawn far to near (later ones occlude earlier ones).

    Each object: ``box`` (x0, y0, x1, y1) ints, optional ``cls`` (0), ``score`` (0.9),
    ``colour`` BGR (COLOURS[0]).

    Returns:
        (Instances with the visible masks, [H, W, 3] uint8 BGR image).
    """
    h, w = size
    image = np.full((h, w, 3), 128, np.uint8)
    masks = np.zeros((len(objects), h, w), bool)
    for i, o in enumerate(objects):
        x0, y0, x1, y1 = (int(v) for v in o["box"])
        masks[:i, max(y0, 0) : y1, max(x0, 0) : x1] = False
        masks[i, max(y0, 0) : y1, max(x0, 0) : x1] = True
        image[max(y0, 0) : y1, max(x0, 0) : x1] = o.get("colour", COLOURS[0])
    boxes = np.array([o["box"] for o in objects], np.float32).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    inst = Instances(
        boxes=boxes,
        scores=np.array([o.get("score", 0.9) for o in objects], np.float32),
        class_ids=np.array([o.get("cls", 0) for o in objects], np.int64),
        masks=masks,
        image_size=(h, w),
    )
    return inst, image


def run(tracker, frames: list[list[dict]], start: int = 0) -> list[dict[int, int]]:
    """Feed ``frames`` (lists of objects, each with a ground-truth ``key``) at 10 Hz.

    Returns:
        per frame, {object key: track id}.
    """
    out = []
    for k, objects in enumerate(frames):
        order = sorted(range(len(objects)), key=lambda i: -objects[i].get("score", 0.9))
        inst, image = frame(objects)
        ids = tracker.update(inst, image, (start + k) * PERIOD_NS)
        assert ids.dtype == np.uint16 and len(ids) == len(objects)
        assert len(set(ids.tolist())) == len(ids), "ids must be unique within a frame"
        # Instances sorts by score (stable): map back to the objects' keys
        out.append({objects[i]["key"]: int(ids[j]) for j, i in enumerate(order)})
    return out
