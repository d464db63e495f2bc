"""Instance masks <-> Ultralytics YOLO-seg polygon labels, and a YOLO-seg model's predictions -> COCO results.

Used by ``train_vs_ultralytics.py`` (main process) and ``ultralytics_train_peer.py`` (the peer's process);
imports no Ultralytics code (numpy, OpenCV, pycocotools through ``instaseg_ros``).

Label format (one ``.txt`` per image, next to ``images/`` in ``labels/``): one line per instance,
``class x1 y1 x2 y2 ...`` with the polygon's vertices normalised by the image width and height.

Masks -> polygons (:func:`mask_to_polygon`): the outer contours of every connected part of the mask
(``cv2.findContours``, ``RETR_EXTERNAL``, ``CHAIN_APPROX_SIMPLE``), vertices at boundary-pixel centres
(``x + 0.5``), so the polygon lies half a pixel inside the mask's outer edge. A polygon label has no holes:
holes are filled. An instance split into several parts (occlusion) becomes ONE polygon: the parts are chained
(largest first, then each time the part nearest to the last one) and joined by zero-width bridges between
their closest vertices, each bridge walked out and back (the idea of Ultralytics' own ``merge_multi_segment``;
written here from that description), so filling the polygon gives the union of the parts plus the 1-pixel
bridge lines. Instances whose polygon has fewer than 3 vertices are left out (counted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _parts(mask: np.ndarray) -> list[np.ndarray]:
    """[H, W] bool -> the outer contours of its connected parts, each [K, 2] int (x, y) pixel indices."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2) for c in contours if len(c)]


def _closest(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices (i, j) of the closest vertices a[i], b[j] of two point sets [K, 2] and [L, 2]."""
    d = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(i), int(j)


def merge_parts(parts: list[np.ndarray]) -> np.ndarray:
    """Join polygons [K_i, 2] into one [K, 2] polygon with zero-width, out-and-back bridges.

    The chain starts at the largest part and goes on each time to the remaining part nearest to the
    last one. With ``in_i``/``out_i`` the vertices where part i is entered and left (part 0: both out_0),
    the polygon is ``A_0, A_1, ..., A_{n-2}, L, B_{n-2}, ..., B_0``: ``A_i`` runs (cyclically) from in_i
    to out_i, ``L`` is the last part's full loop back to its entry vertex, ``B_i`` runs from out_i on to
    in_i. Every bridge is walked once each way, so it encloses no area.
    """
    if not parts:
        raise ValueError("merge_parts: no parts")
    if len(parts) == 1:
        return parts[0]
    rest = sorted(parts, key=lambda p: -abs(cv2.contourArea(p.astype(np.float32))) - len(p) * 1e-9)
    chain = [rest.pop(0)]
    links: list[tuple[int, int]] = []  # (out index on chain[k], in index on chain[k + 1])
    while rest:
        best = min(range(len(rest)), key=lambda k: _min_dist(chain[-1], rest[k]))
        nxt = rest.pop(best)
        links.append(_closest(chain[-1], nxt))
        chain.append(nxt)
    n = len(chain)
    ins = [links[0][0]] + [j for _, j in links]  # part 0 is entered where it is left
    outs = [i for i, _ in links]
    fwd: list[np.ndarray] = []
    back: list[np.ndarray] = []
    for k in range(n - 1):
        p, a, b = chain[k], ins[k], outs[k]
        rot = np.roll(p, -a, axis=0)  # starts at in_k
        m = (b - a) % len(p)
        fwd.append(rot[: m + 1])  # in_k .. out_k
        back.append(np.concatenate([rot[m:], rot[:1]]))  # out_k .. in_k
    last = np.roll(chain[-1], -ins[-1], axis=0)
    loop = np.concatenate([last, last[:1]])
    return np.concatenate([*fwd, loop, *back[::-1]])


def _min_dist(a: np.ndarray, b: np.ndarray) -> float:
    i, j = _closest(a, b)
    return float(((a[i] - b[j]) ** 2).sum())


def mask_to_polygon(mask: np.ndarray) -> np.ndarray | None:
    """[H, W] bool -> one polygon [K, 2] float64 (x, y) in pixel coordinates (vertices at pixel centres),
    all parts joined (see the module docstring); None when the mask has fewer than 3 boundary vertices."""
    parts = _parts(mask)
    if not parts:
        return None
    poly = merge_parts(parts)
    if len(poly) < 3:
        return None
    return poly.astype(np.float64) + 0.5


def polygon_to_mask(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """Polygon [K, 2] (x, y) pixels -> [H, W] bool, rasterised as Ultralytics does
    (``cv2.fillPoly`` on the coordinates truncated to int32)."""
    m = np.zeros((height, width), np.uint8)
    cv2.fillPoly(m, [np.asarray(poly).astype(np.int32)], 1)
    return m.astype(bool)


def yolo_label_line(class_index: int, poly: np.ndarray, width: int, height: int) -> str:
    """``class x1 y1 ...`` with coordinates normalised to [0, 1] (6 decimals)."""
    xy = np.clip(poly / np.array([width, height], np.float64), 0.0, 1.0)
    return f"{class_index} " + " ".join(f"{v:.6f}" for v in xy.reshape(-1))


def parse_label_line(line: str, width: int, height: int) -> tuple[int, np.ndarray]:
    """Inverse of :func:`yolo_label_line` -> (class index, polygon [K, 2] in pixels)."""
    vals = line.split()
    xy = np.array([float(v) for v in vals[1:]], np.float64).reshape(-1, 2)
    return int(vals[0]), xy * np.array([width, height], np.float64)


def coco_to_yolo_labels(coco_json: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Write ``labels/<stem>.txt`` for every image of a COCO file whose images are ``images/<name>``.

    Category ids map to class indices in ascending id order (the synthetic set: 1..5 -> 0..4). The label
    folder is ``root/labels`` (``root`` defaults to the JSON's folder). Returns counts
    (images, instances written, instances left out, instances with more than one part).
    """
    from pycocotools import mask as mask_util

    coco_json = Path(coco_json)
    root = Path(root) if root is not None else coco_json.parent
    coco = json.loads(coco_json.read_text())
    cat_index = {c["id"]: k for k, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    written = skipped = multipart = 0
    for im in coco["images"]:
        h, w = im["height"], im["width"]
        lines = []
        for a in by_image.get(im["id"], []):
            seg = a["segmentation"]
            if isinstance(seg, dict):
                rle = seg if isinstance(seg["counts"], bytes) else {**seg, "counts": seg["counts"].encode()}
                m = mask_util.decode(rle).astype(bool)
            else:  # polygons already
                rles = mask_util.frPyObjects(seg, h, w)
                m = mask_util.decode(mask_util.merge(rles)).astype(bool)
            multipart += len(_parts(m)) > 1
            poly = mask_to_polygon(m)
            if poly is None:
                skipped += 1
                continue
            lines.append(yolo_label_line(cat_index[a["category_id"]], poly, w, h))
            written += 1
        stem = Path(im["file_name"]).stem
        (root / "labels" / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return {
        "images": len(coco["images"]),
        "instances": written,
        "left_out": skipped,
        "multi_part": multipart,
        "class_names": [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])],
    }


def dataset_yaml(
    path: str | Path, train_images: str | Path, val_images: str | Path, class_names: list[str]
) -> Path:
    """Write an Ultralytics dataset YAML (absolute image folders; labels found next to them)."""
    path = Path(path)
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(class_names))
    path.write_text(
        f"train: {Path(train_images).resolve()}\nval: {Path(val_images).resolve()}\nnames:\n{names}\n"
    )
    return path


def predictions_to_coco(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    masks: np.ndarray,
    image_id: int,
    class_names: list[str],
) -> list[dict[str, Any]]:
    """One image's YOLO-seg predictions -> COCO result dicts (bbox xywh, RLE segmentation).

    boxes: [N, 4] xyxy pixels; scores: [N]; classes: [N] 0-based class indices (category id = index + 1,
    as in the synthetic set); masks: [N, H, W] bool at the image resolution. Sorted by descending score
    and passed through :func:`instaseg_ros.evaluation.coco_eval.instances_to_coco` (the same encoder our
    model's results go through).
    """
    from instaseg_ros.core.instances import Instances
    from instaseg_ros.evaluation.coco_eval import instances_to_coco

    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    masks = np.asarray(masks, bool)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ValueError(f"predictions_to_coco: masks {masks.shape} for {len(scores)} scores")
    inst = Instances(boxes=np.asarray(boxes, np.float32).reshape(-1, 4)[order], scores=scores[order],
                     class_ids=np.asarray(classes, np.int64).reshape(-1)[order], masks=masks[order],
                     image_size=masks.shape[1:], class_names=list(class_names))  # fmt: skip
    return instances_to_coco(inst, image_id)
