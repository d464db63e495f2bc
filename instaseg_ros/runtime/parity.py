"""Numeric parity between two backends: raw-output differences and matched detections."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from instaseg_ros.core.instances import Instances


def flatten_raw(raw: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Nested dict/tuple/list of tensors -> {"path": tensor}."""
    if isinstance(raw, torch.Tensor):
        return {prefix or "out": raw}
    out: dict[str, torch.Tensor] = {}
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(raw))
    else:
        return out
    for k, v in items:
        out.update(flatten_raw(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def paired_outputs(
    ref: Any, test: Any, dtype: torch.dtype = torch.float32
) -> Iterator[tuple[str, Tensor, Tensor]]:
    """(name, ref tensor, test tensor) per raw output, on the CPU in ``dtype``.

    Raises:
        ValueError: the two differ in structure or in the shape of an output.
    """
    a, b = flatten_raw(ref), flatten_raw(test)
    if set(a) != set(b):
        raise ValueError(f"raw outputs differ in structure: {sorted(a)} vs {sorted(b)}")
    for k in a:
        x, y = a[k].detach().to("cpu", dtype), b[k].detach().to("cpu", dtype)
        if x.shape != y.shape:
            raise ValueError(f"raw output {k}: shape {tuple(x.shape)} vs {tuple(y.shape)}")
        yield k, x, y


def raw_differences(ref: Any, test: Any) -> dict[str, float]:
    """Largest absolute difference per raw output (same structure required).

    Equal non-finite values (e.g. ``inf`` box sizes of an untrained detector in both) count as equal;
    a finite value against a non-finite one gives ``inf``.
    """
    out = {}
    for k, x, y in paired_outputs(ref, test):
        if not x.numel():
            out[k] = 0.0
            continue
        same = (x == y) | (torch.isnan(x) & torch.isnan(y))  # equal infinities count as equal
        d = torch.where(same, torch.zeros_like(x), (x - y).abs())
        out[k] = float(torch.nan_to_num(d, nan=float("inf")).max())
    return out


def relative_errors(ref: Any, test: Any) -> dict[str, float]:
    """Relative L2 error ``||test - ref|| / ||ref||`` per raw output (same structure required).

    The measure for reduced precision (FP16/INT8), where the largest absolute difference of one
    entry says little. Entries non-finite in both are left out; a finite value against a
    non-finite one gives ``inf``; an all-zero reference gives 0 when ``test`` is zero too, else ``inf``.
    """
    out = {}
    for k, x, y in paired_outputs(ref, test, torch.float64):
        if bool((torch.isfinite(x) != torch.isfinite(y)).any()):
            out[k] = float("inf")
            continue
        both = torch.isfinite(x) & torch.isfinite(y)
        num, den = float((x[both] - y[both]).norm()), float(x[both].norm())
        out[k] = num / den if den > 0 else (0.0 if num == 0 else float("inf"))
    return out


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two [H, W] bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@dataclass
class InstanceParity:
    """Detections of a test backend matched to a reference backend's, one image.

    Attributes:
        n_ref / n_test: instance counts.
        matched: pairs (ref index, test index), same class, greedy by box IoU in ref score order.
        max_box_diff: largest |box coordinate difference| in pixels over matched pairs.
        min_mask_iou: smallest mask IoU over matched pairs.
        max_score_diff: largest score difference over matched pairs.
        unmatched_ref / unmatched_test: indices without a partner.
        borderline: unmatched instances whose score is within ``score_tol`` of the score threshold
            or of the lowest score of a full (top-k) list (they may legitimately flip between backends).
    """

    n_ref: int
    n_test: int
    matched: list[tuple[int, int]] = field(default_factory=list)
    max_box_diff: float = 0.0
    min_mask_iou: float = 1.0
    max_score_diff: float = 0.0
    unmatched_ref: list[int] = field(default_factory=list)
    unmatched_test: list[int] = field(default_factory=list)
    borderline: int = 0

    def ok(self, box_tol: float = 1.0, iou_min: float = 0.98) -> bool:
        """All non-borderline instances matched, boxes within ``box_tol`` px, mask IoU above ``iou_min``."""
        unexplained = len(self.unmatched_ref) + len(self.unmatched_test) - self.borderline
        return unexplained == 0 and self.max_box_diff <= box_tol and self.min_mask_iou > iou_min


def compare_instances(
    ref: Instances,
    test: Instances,
    score_threshold: float = 0.0,
    score_tol: float = 1e-3,
    top_k: int | None = None,
) -> InstanceParity:
    """Match ``test`` to ``ref`` (same class, highest box IoU) and measure the differences.

    Unmatched instances count as borderline when their score is within ``score_tol`` of
    ``score_threshold``, or, when a list is full (``top_k`` instances), of its lowest score.
    """
    res = InstanceParity(n_ref=len(ref), n_test=len(test))
    if len(ref) and len(test):
        iou = _box_iou(ref.boxes, test.boxes)
        iou[ref.class_ids[:, None] != test.class_ids[None, :]] = -1.0
        taken = np.zeros(len(test), bool)
        for i in range(len(ref)):
            row = np.where(taken, -1.0, iou[i])
            j = int(row.argmax())
            if row[j] <= 0.5:
                continue
            taken[j] = True
            res.matched.append((i, j))
            res.max_box_diff = max(res.max_box_diff, float(np.abs(ref.boxes[i] - test.boxes[j]).max()))
            res.min_mask_iou = min(res.min_mask_iou, mask_iou(ref.masks[i], test.masks[j]))
            res.max_score_diff = max(res.max_score_diff, abs(float(ref.scores[i] - test.scores[j])))
    mr = {i for i, _ in res.matched}
    mt = {j for _, j in res.matched}
    res.unmatched_ref = [i for i in range(len(ref)) if i not in mr]
    res.unmatched_test = [j for j in range(len(test)) if j not in mt]
    full = [x for x in (ref, test) if top_k is not None and len(x) >= top_k]
    floor = min((float(x.scores.min()) for x in full), default=score_threshold)

    def border(score: float) -> bool:
        return abs(score - score_threshold) <= score_tol or abs(score - floor) <= score_tol

    res.borderline = sum(border(float(ref.scores[i])) for i in res.unmatched_ref) + sum(
        border(float(test.scores[j])) for j in res.unmatched_test
    )
    return res
