"""Every number of an evaluation (:func:`summarize`, JSON-ready) and the report's example frames."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.evaluation.coco_eval import evaluate_coco
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth
from instaseg_ros.evaluation.matching import class_to_category, results_to_instances
from instaseg_ros.evaluation.records import BagEvalConfig, Example, FrameMatch, RunData

LATENCY_PERCENTILES = (50, 90, 95, 99)


def latency_stats(values: list[float]) -> dict[str, float | int | None]:
    """count, mean, min, p50/p90/p95/p99, max of per-frame latencies (ms)."""
    if not values:
        return {
            "count": 0,
            "mean": None,
            "min": None,
            **{f"p{p}": None for p in LATENCY_PERCENTILES},
            "max": None,
        }
    a = np.asarray(values, np.float64)
    out: dict[str, float | int | None] = {"count": len(a), "mean": float(a.mean()), "min": float(a.min())}
    for p in LATENCY_PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out["max"] = float(a.max())
    return out


def gt_instances_per_class(gt: StampedGroundTruth, image_ids: list[int]) -> dict[str, int]:
    """Ground-truth instances per category name on ``image_ids`` (0: the category's AP is undefined)."""
    names = dict(zip(gt.category_ids, gt.category_names))
    ids = set(image_ids)
    counts = dict.fromkeys(gt.category_names, 0)
    for a in gt.coco.get("annotations", []):
        if int(a["image_id"]) in ids and a["category_id"] in names:
            counts[names[a["category_id"]]] += 1
    return counts


def summarize(
    run: RunData, gt: StampedGroundTruth, match: FrameMatch, cfg: BagEvalConfig, num_frames: int
) -> dict[str, Any]:
    """Every number of the evaluation as a JSON-ready dict."""
    processed = [r for r in run.frames if r.processed]
    sent = [r for r in run.frames if r.sent]
    gt_processed = sorted(r.image_id for r in processed if r.image_id is not None)
    gt_matched = sorted(match.frame_to_image.values())
    acc = evaluate_coco(gt.coco, run.results, image_ids=gt_processed) if gt_processed else None
    acc_drops = None
    if run.mode == "live" and len(gt_processed) < len(gt_matched):
        acc_drops = evaluate_coco(gt.coco, run.results, image_ids=gt_matched)
    lat = latency_stats([r.latency_ms for r in processed if r.latency_ms is not None])
    dropped = len(sent) - len(processed)
    cat_map = class_to_category(run.class_names, gt)
    m = cfg.model
    summary: dict[str, Any] = {
        "tool": "instaseg eval-bag",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": run.mode,
        "bag": str(cfg.bag),
        "topic": cfg.topic,
        "ground_truth": gt.path,
        "model": {
            "family": m.family,
            "weights": m.weights,
            "config": m.config,
            "backend": m.backend,
            "device": m.device,
            "precision": m.precision,
            "params": asdict(m.params),
            **run.extra.get("model", {}),
        },
        "frames": {
            "in_bag": num_frames,
            "sent": len(sent),
            "processed": len(processed),
            "dropped": dropped,
            "gt_images": len(gt.stamps),
            "gt_matched": len(gt_matched),
            "gt_unmatched": len(match.unmatched_images),
            "gt_processed": len(gt_processed),
            "stamp_tolerance_ms": cfg.stamp_tolerance_ns / 1e6,
            "max_stamp_offset_ms": match.max_offset_ns / 1e6,
        },
        "accuracy": acc,
        "accuracy_counting_drops": acc_drops,
        "latency_ms": lat,
        "throughput_fps": len(processed) / run.wall_s if run.wall_s > 0 else None,
        "drop_rate": dropped / len(sent) if sent else 0.0,
        "wall_s": run.wall_s,
        "memory": {
            "peak_rss_mb": run.peak_rss_mb,
            "peak_rss_of": run.peak_rss_of,
            "cuda_max_allocated_mb": run.cuda_max_allocated_mb,
        },
        "classes": {
            "model": run.class_names,
            "ground_truth": gt.category_names,
            "model_classes_not_in_gt": [n for n, c in zip(run.class_names, cat_map) if c is None],
            "gt_categories_not_in_model": [n for n in gt.category_names if n not in run.class_names],
            "gt_instances": gt_instances_per_class(gt, gt_processed),
        },
        "unmatched_gt_image_ids": match.unmatched_images,
        "per_frame": [asdict(r) for r in run.frames],
    }
    if run.mode == "offline":
        summary["offline"] = {k: v for k, v in run.extra.items() if k != "model"}
    if run.mode == "live":
        summary["live"] = {k: v for k, v in run.extra.items() if k != "model"}
        summary["live"]["rate_multiplier"] = cfg.rate_multiplier
    return summary


# --------------------------------------------------------------------------- examples
def pick_examples(run: RunData, gt: StampedGroundTruth, bag: str | Path, topic: str, n: int) -> list[Example]:
    """Up to ``n`` processed ground-truth frames, evenly spaced, with images read back from the bag."""
    from instaseg_ros.data.bag_io import iter_bag_images

    cands = [r for r in run.frames if r.processed and r.image_id is not None]
    if n <= 0 or not cands:
        return []
    with_gt = {int(a["image_id"]) for a in gt.coco.get("annotations", [])}
    pool = [r for r in cands if r.image_id in with_gt] or cands
    idx = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))
    chosen = {pool[i].index: pool[i] for i in idx}
    images: dict[int, np.ndarray] = {}
    gen = iter_bag_images(bag, topic)
    try:
        for k, (_stamp, _fid, img) in enumerate(gen):
            if k in chosen:
                images[k] = img
                if len(images) == len(chosen):
                    break
    finally:
        gen.close()
    out = []
    for k, r in sorted(chosen.items()):
        if k in images:
            out.append(
                Example(
                    r.stamp_ns,
                    r.image_id,
                    images[k],
                    results_to_instances(run.results, r.image_id, gt),
                    gt.instances(r.image_id),
                )
            )
    return out
