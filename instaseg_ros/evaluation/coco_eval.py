"""COCO box and mask AP with pycocotools: the project's one implementation of the metric."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import encode_rle

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def instances_to_coco(
    inst: Instances, image_id: int, category_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Turn one image's ``Instances`` into COCO result dicts (bbox xywh, RLE segmentation).

    ``category_ids[class_id]`` maps model class indices to COCO category ids
    (default: ``class_id + 1``).
    """
    out = []
    for i in range(len(inst)):
        cid = int(inst.class_ids[i])
        x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(category_ids[cid]) if category_ids else cid + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": float(inst.scores[i]),
                "segmentation": encode_rle(inst.masks[i]),
            }
        )
        if inst.mask_scores is not None:  # scored separately for segmentation (see evaluate_coco)
            out[-1]["mask_score"] = float(inst.mask_scores[i])
    return out


def evaluate_coco(
    gt: dict[str, Any], results: list[dict[str, Any]], iou_types: tuple[str, ...] = ("bbox", "segm"),
    image_ids: list[int] | None = None,
) -> dict[str, Any]:
    """COCO AP of ``results`` against the ground-truth dict ``gt``.

    Returns ``{"bbox": {...}, "segm": {...}}``, each with the 12 standard stats
    (AP in [0, 1], -1 where undefined) and ``per_class`` AP keyed by category name.
    ``image_ids`` restricts evaluation to those images (default: all in ``gt``).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = copy.deepcopy(gt)
    gt.setdefault("info", {})
    gt.setdefault("licenses", [])
    for ann in gt.get("annotations", []):
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
    ids = sorted(image_ids) if image_ids is not None else sorted(coco_gt.getImgIds())
    cats = {c["id"]: c["name"] for c in gt.get("categories", [])}
    metrics: dict[str, Any] = {"num_images": len(ids), "num_detections": len(results)}
    for iou_type in iou_types:
        dets = [r for r in results if r["image_id"] in set(ids)]
        if iou_type == "segm":  # masks are ranked by their own score where the model has one (YOLACT++)
            dets = [r | {"score": r.get("mask_score", r["score"])} for r in dets if "segmentation" in r]
        if not dets:
            metrics[iou_type] = {k: 0.0 for k in STAT_NAMES} | {"per_class": {n: 0.0 for n in cats.values()}}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            ev.params.imgIds = ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = {k: float(v) for k, v in zip(STAT_NAMES, ev.stats)}
        per_class = {}
        precision = ev.eval["precision"]  # [T, R, K, A, M]
        for k, cat_id in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            per_class[cats.get(cat_id, str(cat_id))] = float(np.mean(p)) if p.size else -1.0
        stats["per_class"] = per_class
        stats["pr_curve_iou50"] = _pr_curve(precision, ev.params.recThrs, t=0)
        metrics[iou_type] = stats
    return metrics


def _pr_curve(precision: np.ndarray, rec_thrs: np.ndarray, t: int) -> dict[str, list[float]]:
    """Class-averaged precision at each recall threshold for IoU index ``t``."""
    p = precision[t, :, :, 0, -1]  # [R, K]
    mean = [float(np.mean(row[row > -1])) if np.any(row > -1) else 0.0 for row in p]
    return {"recall": [float(r) for r in rec_thrs], "precision": mean}
