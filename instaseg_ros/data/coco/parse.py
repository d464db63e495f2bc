"""Parsing and checking of COCO annotation entries (polygons, RLE, boxes, crowd flags)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.data.coco.validate import (
    BAD_SEGMENTATION,
    BOX_OUTSIDE_IMAGE,
    DEGENERATE_BOX,
    DEGENERATE_POLYGON,
    MISSING_SEGMENTATION,
    UNKNOWN_CATEGORY,
    UNKNOWN_IMAGE,
    ValidationReport,
)


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@dataclass
class _Ann:
    ann_id: int | None
    label: int
    iscrowd: int
    kind: str  # "poly" | "rle" | "box"
    data: Any


@dataclass
class _Img:
    image_id: int
    path: Path
    file_name: str
    height: int
    width: int
    anns: list[_Ann]


def parse_annotation(
    a: dict[str, Any],
    imgs: dict[int, _Img | None],
    categories: dict[int, str],
    cat_to_label: dict[int, int],
    include_crowd: bool,
    rep: ValidationReport,
) -> _Ann | None:
    """Check one COCO annotation entry; returns it parsed, or None (problems go to ``rep``).

    ``imgs`` maps image id -> parsed image (None for an image already reported broken).
    Exact repairs (a dropped degenerate polygon, a box outside the image) keep the entry
    and are reported with action ``fixed``.
    """
    if not isinstance(a, dict):
        rep.add(BAD_SEGMENTATION, f"annotation entry is not an object: {a!r}"[:300])
        return None
    aid = a.get("id")
    aid = int(aid) if isinstance(aid, (int, str)) and str(aid).lstrip("-").isdigit() else None
    if "image_id" not in a or "category_id" not in a:
        rep.add(BAD_SEGMENTATION, f"annotation without image_id/category_id: {a!r}"[:300], ann_id=aid)
        return None
    iid = int(a["image_id"])
    if iid not in imgs:
        rep.add(
            UNKNOWN_IMAGE,
            f"annotation refers to image id {iid}, which is not in 'images'",
            image_id=iid,
            ann_id=aid,
        )
        return None
    im = imgs[iid]
    if im is None:
        return None  # the image was already reported
    cid = int(a["category_id"])
    if cid not in categories:
        rep.add(
            UNKNOWN_CATEGORY,
            f"category id {cid} is not in 'categories' (known: {sorted(categories)})",
            image_id=iid,
            ann_id=aid,
        )
        return None
    if cid not in cat_to_label:
        return None  # class subsetting, not a problem
    label = cat_to_label[cid]
    crowd = int(bool(a.get("iscrowd", 0)))
    if crowd and not include_crowd:
        return None
    h, w = im.height, im.width
    box = a.get("bbox")
    box_ok = None
    if box is not None:
        try:
            x, y, bw, bh = (float(v) for v in box)
            if not all(math.isfinite(v) for v in (x, y, bw, bh)):
                raise ValueError("non-finite")
        except (TypeError, ValueError):
            rep.add(DEGENERATE_BOX, f"bbox {box!r} is not 4 finite numbers", iid, aid, action="fixed")
            box = None
        else:
            if bw <= 0 or bh <= 0:
                rep.add(DEGENERATE_BOX, f"bbox {box} has non-positive width/height", iid, aid, action="fixed")
                box = None
            else:
                inside = x < w and y < h and x + bw > 0 and y + bh > 0
                within = x >= -1 and y >= -1 and x + bw <= w + 1 and y + bh <= h + 1
                box_ok = inside
                if not within:
                    rep.add(
                        BOX_OUTSIDE_IMAGE,
                        f"bbox {box} leaves the {w}x{h} image" + ("" if inside else " entirely"),
                        iid,
                        aid,
                        action="pending",
                    )
    seg = a.get("segmentation")
    parsed: _Ann | None = None
    if isinstance(seg, list) and len(seg) > 0:
        polys = seg if isinstance(seg[0], (list, tuple)) else [seg]  # a flat single polygon happens
        good, why = [], []
        for k, p in enumerate(polys):
            try:
                arr = np.asarray(p, np.float64).reshape(-1)
            except (TypeError, ValueError):
                why.append(f"polygon {k} is not a list of numbers")
                continue
            if len(arr) % 2 or len(arr) < 6 or not np.all(np.isfinite(arr)):
                why.append(f"polygon {k} has {len(arr) / 2:g} points (needs >= 3 finite x,y pairs)")
            elif _polygon_area(arr.reshape(-1, 2)) <= 0.0:
                why.append(f"polygon {k} has zero area")
            else:
                good.append(arr.tolist())
        if not good:
            _finish_box_problem(rep, aid, "skipped")
            rep.add(DEGENERATE_POLYGON, "; ".join(why) + "; no usable polygon left", iid, aid)
            return None
        if why:
            rep.add(
                DEGENERATE_POLYGON,
                "; ".join(why) + "; dropped, other polygons kept",
                iid,
                aid,
                action="fixed",
            )
        parsed = _Ann(aid, label, crowd, "poly", good)
    elif isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not isinstance(counts, (list, str, bytes))
            or len(counts) == 0
        ):
            _finish_box_problem(rep, aid, "skipped")
            rep.add(
                BAD_SEGMENTATION,
                f"RLE needs 'size' [h, w] and non-empty 'counts', got keys {sorted(seg)}",
                iid,
                aid,
            )
            return None
        if [int(size[0]), int(size[1])] != [h, w]:
            _finish_box_problem(rep, aid, "skipped")
            rep.add(BAD_SEGMENTATION, f"RLE size {list(size)} differs from image size [{h}, {w}]", iid, aid)
            return None
        if isinstance(counts, list) and sum(int(c) for c in counts) != h * w:
            _finish_box_problem(rep, aid, "skipped")
            rep.add(
                BAD_SEGMENTATION,
                f"uncompressed RLE counts sum to {sum(int(c) for c in counts)}, expected {h * w}",
                iid,
                aid,
            )
            return None
        parsed = _Ann(aid, label, crowd, "rle", {"size": [h, w], "counts": counts})
    else:
        if box is None or not box_ok:
            _finish_box_problem(rep, aid, "skipped")
            rep.add(MISSING_SEGMENTATION, "no segmentation and no usable bbox", iid, aid)
            return None
        rep.add(
            MISSING_SEGMENTATION,
            "no segmentation: the bbox is used as the mask",
            iid,
            aid,
            action="fixed",
        )
        parsed = _Ann(aid, label, crowd, "box", [float(v) for v in box])
    if box_ok is False:  # a mask exists but the box is entirely outside: inconsistent entry
        _finish_box_problem(rep, aid, "skipped")
        return None
    _finish_box_problem(rep, aid, "fixed")
    return parsed


def _finish_box_problem(rep: ValidationReport, aid: int | None, action: str) -> None:
    """Settle the pending ``box_outside_image`` problem of annotation ``aid``."""
    for p in reversed(rep.problems):
        if p.kind == BOX_OUTSIDE_IMAGE and p.ann_id == aid and p.action == "pending":
            p.action = action
            if action == "fixed":
                p.message += "; box recomputed from the mask"
            break
