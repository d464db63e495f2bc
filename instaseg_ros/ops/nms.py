"""Non-maximum suppression: YOLACT's Fast NMS (per class and cross-class), SOLOv2's Matrix NMS and greedy
mask-IoU NMS, and a reference greedy box NMS.

Fast NMS (Bolya et al., YOLACT) computes the IoU matrix of the score-sorted boxes once, keeps its
upper triangle and drops every box whose largest IoU with *any* higher-scoring box exceeds the
threshold. Greedy NMS only lets *kept* boxes suppress. So Fast NMS keeps exactly the boxes that
overlap no higher-scoring box, a subset of what greedy NMS keeps; the two agree whenever no
suppressed box would itself have suppressed another one (e.g. clusters of mutually overlapping
boxes). Both run fully vectorised on the tensors' device.
"""

from __future__ import annotations

import numpy as np
import torch

from instaseg_ros.ops.boxes import box_iou


def fast_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
    score_threshold: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class Fast NMS.

    Args:
        boxes: [N, 4] xyxy candidates (any consistent unit).
        scores: [C, N] score of every candidate for every class.
        iou_threshold: a box is dropped if a higher-scoring box of its class overlaps it by more.
        top_k: candidates considered per class (highest scores).
        max_detections: detections returned over all classes (highest scores).
        score_threshold: if given, only (candidate, class) pairs scoring at least it are returned, and
            classes with no such pair are skipped before the IoU matrices are built. The result equals
            the unthresholded result filtered by score: a box is only ever suppressed by a box of
            its class with a *higher* score, which is then above the threshold as well.
    Returns:
        (index [D] into the N candidates, class [D] int64, score [D]), sorted by score descending.
        A candidate can appear once per class.
    """
    num_classes, n = scores.shape
    classes_kept = None
    if score_threshold is not None and n > 0 and num_classes > 0:
        above = scores >= score_threshold
        classes_kept = torch.nonzero(above.any(dim=1)).flatten()
        scores = scores[classes_kept]
        num_classes = scores.shape[0]
        top_k = min(top_k, int(above.sum(dim=1).max()))
    if n == 0 or num_classes == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty.clone(), scores.new_zeros(0)
    sorted_scores, idx = scores.topk(min(top_k, n), dim=1, largest=True, sorted=True)
    cls_boxes = boxes[idx]  # [C, D, 4]
    iou = box_iou(cls_boxes, cls_boxes).triu_(diagonal=1)
    iou_max = iou.max(dim=1).values  # [C, D]: max IoU with a higher-scoring box of the same class
    keep = iou_max <= iou_threshold
    if score_threshold is not None:
        keep &= sorted_scores >= score_threshold
    classes = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)[keep]
    if classes_kept is not None:
        classes = classes_kept[classes]
    det_idx = idx[keep]
    det_scores, order = sorted_scores[keep].sort(descending=True)
    order = order[:max_detections]
    return det_idx[order], classes[order], det_scores[:max_detections]


def cc_fast_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-class Fast NMS: each candidate takes its best class, then boxes suppress across classes.

    Args/returns as :func:`fast_nms`; each candidate appears at most once.
    """
    num_classes, n = scores.shape
    if n == 0 or num_classes == 0:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty.clone(), scores.new_zeros(0)
    best, classes = scores.max(dim=0)
    sorted_scores, idx = best.topk(min(top_k, n), largest=True, sorted=True)
    b = boxes[idx]
    iou = box_iou(b, b).triu_(diagonal=1)
    keep = iou.max(dim=0).values <= iou_threshold
    idx = idx[keep][:max_detections]
    return idx, classes[idx], sorted_scores[keep][:max_detections]


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Reference greedy NMS for one class (plain NumPy, O(N^2), for tests).

    Args:
        boxes: [N, 4] xyxy.
        scores: [N].
    Returns:
        Indices of kept boxes, by descending score (stable for ties).
    """
    boxes = np.asarray(boxes, np.float64)
    order = list(np.argsort(-np.asarray(scores, np.float64), kind="stable"))
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), bool)
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(int(i))
        for j in order[pos + 1 :]:
            if suppressed[j]:
                continue
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(iw, 0.0) * max(ih, 0.0)
            if inter / (areas[i] + areas[j] - inter) > iou_threshold:
                suppressed[j] = True
    return np.asarray(keep, np.int64)


def matrix_nms(
    masks: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    class_aware: bool = True,
) -> torch.Tensor:
    """Matrix NMS (SOLOv2): decayed scores of candidates sorted by descending ``scores``.

    Args:
        masks: [N, h, w] bool; labels: [N]; scores: [N] (sorted, descending).
    Returns:
        [N] scores x decay, decay_j = min_i f(iou_ij) / f(max_k iou_ki) over higher-scored i.
    """
    n = masks.shape[0]
    if n == 0:
        return scores
    m = masks.reshape(n, -1).float()
    inter = m @ m.t()
    area = m.sum(1)
    union = area[:, None] + area[None, :] - inter
    iou = (inter / union.clamp(min=1)).triu(diagonal=1)
    if class_aware:
        iou = iou * (labels[:, None] == labels[None, :]).float()
    comp = iou.max(0).values[:, None].expand(n, n)  # row i: max IoU of i with anything above it
    if kernel == "gaussian":
        decay = torch.exp(-sigma * (iou**2 - comp**2)).min(0).values
    else:
        decay = ((1 - iou) / (1 - comp).clamp(min=1e-6)).min(0).values
    return scores * decay


def mask_nms(
    masks: torch.Tensor, labels: torch.Tensor, iou_threshold: float, class_aware: bool = True
) -> torch.Tensor:
    """Greedy mask-IoU NMS over candidates sorted by score -> kept indices [K]."""
    n = masks.shape[0]
    m = masks.reshape(n, -1).float()
    inter = m @ m.t()
    area = m.sum(1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1)
    if class_aware:
        iou = iou * (labels[:, None] == labels[None, :]).float()
    keep: list[int] = []
    removed = torch.zeros(n, dtype=torch.bool)
    iou_cpu = iou.cpu()
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou_cpu[i] > iou_threshold
    return torch.as_tensor(keep, dtype=torch.long, device=masks.device)
