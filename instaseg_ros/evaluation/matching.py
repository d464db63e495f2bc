"""Bag frames <-> ground truth: reading the image topic once, matching ground-truth images to frames
by header stamp, model classes to ground-truth categories by name, and instances <-> COCO results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import decode_rle
from instaseg_ros.evaluation.coco_eval import instances_to_coco
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth
from instaseg_ros.evaluation.records import BagFrame, EvalError, FrameMatch


def scan_bag(bag: str | Path, topic: str) -> list[BagFrame]:
    """Read every image on ``topic`` once (checks the whole bag before any model runs).

    Raises:
        EvalError: bag missing/corrupt/truncated, topic absent or not an image topic, or no messages.
    """
    from instaseg_ros.data.bag_io import BagError, iter_bag_images

    frames = []
    try:
        for k, (stamp, frame_id, img) in enumerate(iter_bag_images(bag, topic)):
            frames.append(BagFrame(k, stamp, frame_id, img.shape[0], img.shape[1]))
    except BagError as e:
        raise EvalError(str(e)) from e
    if not frames:
        raise EvalError(f"topic {topic!r} in rosbag2 {bag} has no messages")
    return frames


def match_frames(frames: list[BagFrame], gt: StampedGroundTruth, tolerance_ns: int) -> FrameMatch:
    """Match each ground-truth image to the bag frame with the nearest header stamp.

    A frame takes at most one ground-truth image (the nearest). Raises ``EvalError`` when nothing
    matches, or when a matched frame's size differs from its ground-truth image's.
    """
    if tolerance_ns < 0:
        raise EvalError(f"stamp tolerance must be >= 0, got {tolerance_ns} ns")
    stamps = np.array([f.stamp_ns for f in frames], np.int64)
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    best: dict[int, tuple[int, int]] = {}  # frame index -> (offset, image id)
    for iid, st in sorted(gt.stamps.items()):
        pos = int(np.searchsorted(sorted_stamps, st))
        cands = [p for p in (pos - 1, pos) if 0 <= p < len(sorted_stamps)]
        p = min(cands, key=lambda q: (abs(int(sorted_stamps[q]) - st), q))
        off = abs(int(sorted_stamps[p]) - st)
        if off > tolerance_ns:
            continue
        fi = int(order[p])
        if fi not in best or off < best[fi][0]:
            best[fi] = (off, iid)
    frame_to_image = {fi: iid for fi, (_off, iid) in sorted(best.items())}
    if not frame_to_image:
        gs = sorted(gt.stamps.values())
        raise EvalError(
            f"ground truth {gt.path or ''} matches no frame of the bag: its {len(gs)} stamp_ns span "
            f"[{gs[0]}, {gs[-1]}], the bag's {len(frames)} header stamps span [{int(sorted_stamps[0])}, "
            f"{int(sorted_stamps[-1])}] (tolerance {tolerance_ns / 1e6:g} ms). Was it made from this bag "
            f"and topic?"
        )
    images = gt.images
    for fi, iid in frame_to_image.items():
        f, im = frames[fi], images[iid]
        if (f.height, f.width) != (int(im["height"]), int(im["width"])):
            raise EvalError(
                f"ground-truth image {iid} ({im.get('file_name', '')}) is {im['width']}x{im['height']} but "
                f"the bag frame with stamp {f.stamp_ns} is {f.width}x{f.height}"
            )
    matched = set(frame_to_image.values())
    return FrameMatch(
        frame_to_image,
        sorted(i for i in gt.stamps if i not in matched),
        max((off for off, _ in best.values()), default=0),
    )


def class_to_category(class_names: list[str], gt: StampedGroundTruth) -> list[int | None]:
    """Ground-truth category id of each model class (by name; None when the ground truth lacks it)."""
    by_name = dict(zip(gt.category_names, gt.category_ids))
    mapping = [by_name.get(n) for n in class_names]
    if not any(m is not None for m in mapping):
        raise EvalError(
            f"no model class name matches a ground-truth category: model classes {class_names[:10]}"
            f"{'...' if len(class_names) > 10 else ''}, ground-truth categories {gt.category_names}"
        )
    return mapping


def to_results(inst: Instances, image_id: int, cat_map: list[int | None]) -> list[dict[str, Any]]:
    """COCO results of the instances whose class exists in the ground truth."""
    known = np.array(
        [cat_map[c] is not None if 0 <= c < len(cat_map) else False for c in inst.class_ids], bool
    )
    kept = inst.select(np.flatnonzero(known)) if len(inst) else inst
    return instances_to_coco(kept, image_id, category_ids=[c if c is not None else -1 for c in cat_map])


def results_to_instances(results: list[dict[str, Any]], image_id: int, gt: StampedGroundTruth) -> Instances:
    """The COCO results of one image back as ``Instances`` (class ids index ``gt.category_names``)."""
    im = gt.images[image_id]
    h, w = int(im["height"]), int(im["width"])
    rs = [r for r in results if r["image_id"] == image_id]
    if not rs:
        return Instances.empty((h, w), gt.category_names)
    index = {cid: k for k, cid in enumerate(gt.category_ids)}
    boxes = np.array(
        [[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in rs],
        np.float32,
    )
    return Instances(
        boxes=boxes,
        scores=np.array([r["score"] for r in rs], np.float32),
        class_ids=np.array([index[r["category_id"]] for r in rs], np.int64),
        masks=np.stack([decode_rle(r["segmentation"]) for r in rs]),
        image_size=(h, w),
        class_names=list(gt.category_names),
    )
