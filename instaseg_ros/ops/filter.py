"""THE post-processing filter every model family calls: class filter, score threshold, NMS, top-k.

One rule for all families (as ultralytics has one ``non_max_suppression`` for every task): a
detection is kept when ``score >= params.score_threshold`` — a detection scoring exactly the
threshold survives in every family. The class filter zeroes the scores of classes not asked for,
NMS is chosen by the family (``method``) and by ``params.cross_class_nms``, and at most
``params.top_k`` detections are returned, highest score first.

Two input layouts:

* a class-score matrix ``scores [N, C]`` (``classes=None``): candidate ``n`` can be kept once per
  class (YOLACT's per-class Fast NMS);
* candidate pairs ``scores [N]`` with ``classes [N]``: each candidate already has its class
  (YOLOv3's (box, class) pairs above threshold, SOLO's (cell, class) pairs, Mask R-CNN's output).

Methods: ``"fast"`` (Fast NMS on boxes, score matrix only), ``"greedy"`` (torchvision greedy NMS on
boxes), ``"matrix"`` (Matrix NMS on masks: decays scores, then the threshold applies to the decayed
scores), ``"mask"`` (greedy NMS on mask IoU), ``"none"`` (NMS already done inside the network, e.g.
torchvision's Mask R-CNN RoI heads; only cross-class NMS is applied when asked for).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from instaseg_ros.core.segmenter import InferenceParams

METHODS = ("fast", "greedy", "matrix", "mask", "none")


def keep_score(scores: Tensor, threshold: float) -> Tensor:
    """THE score rule: ``scores >= threshold`` (bool, same shape)."""
    return scores >= threshold


def strictly_below(threshold: float) -> float:
    """The largest float32 below ``threshold``: ``x > strictly_below(t)`` equals ``x >= t`` for float32
    ``x``. For code that only offers ``>`` (torchvision's RoI heads ``score_thresh``)."""
    return float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))


def apply_class_filter(
    scores: Tensor, allowed: Sequence[int] | None, classes: Tensor | None = None
) -> Tensor:
    """Scores with the classes outside ``allowed`` set to 0 (``None`` = all allowed).

    ``scores [N, C]`` (``classes`` None) or ``scores [N]`` with ``classes [N]``.
    """
    if allowed is None:
        return scores
    allow = torch.zeros(scores.shape[-1] if classes is None else int(max(allowed, default=0)) + 1,
                        dtype=torch.bool, device=scores.device)  # fmt: skip
    allow[list(allowed)] = True
    if classes is None:
        return scores * allow
    ok = (classes < len(allow)) & allow[classes.clamp(max=len(allow) - 1)]
    return scores * ok


def filter_detections(
    scores: Tensor,
    params: InferenceParams,
    allowed: Sequence[int] | None = None,
    *,
    boxes: Tensor | None = None,
    masks: Tensor | None = None,
    classes: Tensor | None = None,
    method: str = "greedy",
    pre_nms_top_k: int = 200,
    matrix_kernel: str = "gaussian",
    matrix_sigma: float = 2.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Class filter -> score threshold (>=) -> NMS -> top-k.

    Args:
        scores: [N, C] class scores, or [N] with ``classes`` [N] int64.
        params: thresholds, ``cross_class_nms`` and ``top_k``.
        allowed: class indices to keep (``None`` = all).
        boxes: [N, 4] xyxy (any consistent unit), for the box NMS methods.
        masks: [N, h, w] bool, for "matrix" and "mask".
        method: see the module docstring.
        pre_nms_top_k: candidates per class entering Fast NMS ("fast"), or in all ("matrix", "mask").
    Returns:
        (index [D] into the N candidates, class [D] int64, score [D]), by descending score, D <= top_k.
    """
    if method not in METHODS:
        raise ValueError(f"unknown NMS method {method!r}; known: {METHODS}")
    scores = apply_class_filter(scores, allowed, classes)
    if classes is None:
        if method == "fast":
            return _fast(scores, boxes, params, pre_nms_top_k)
        # score matrix -> (candidate, class) pairs above threshold
        idx, cls = torch.nonzero(keep_score(scores, params.score_threshold), as_tuple=True)
        pair_scores = scores[idx, cls]
        i, c, s = filter_detections(
            pair_scores, params, None, boxes=None if boxes is None else boxes[idx],
            masks=None if masks is None else masks[idx], classes=cls, method=method,
            pre_nms_top_k=pre_nms_top_k, matrix_kernel=matrix_kernel, matrix_sigma=matrix_sigma,
        )  # fmt: skip
        return idx[i], c, s
    if method == "fast":
        raise ValueError("method 'fast' needs a [N, C] score matrix (classes=None)")
    keep = torch.nonzero(keep_score(scores, params.score_threshold)).flatten()
    keep = keep[torch.argsort(scores[keep], descending=True, stable=True)]
    class_aware = not params.cross_class_nms
    if method in ("matrix", "mask"):
        keep = keep[:pre_nms_top_k]
        if masks is None:
            raise ValueError(f"method {method!r} needs masks")
        from instaseg_ros.ops.nms import mask_nms, matrix_nms

        if method == "matrix":
            decayed = matrix_nms(masks[keep], classes[keep], scores[keep], matrix_kernel, matrix_sigma,
                                 class_aware=class_aware)  # fmt: skip
            good = keep_score(decayed, params.score_threshold)
            keep, final = keep[good], decayed[good]
            order = torch.argsort(final, descending=True, stable=True)
            keep, final = keep[order], final[order]
        else:
            keep = keep[mask_nms(masks[keep], classes[keep], params.nms_threshold, class_aware=class_aware)]
            final = scores[keep]
    else:
        if boxes is None:
            raise ValueError(f"method {method!r} needs boxes")
        from torchvision.ops import batched_nms, nms

        if keep.numel() > 1 and (method == "greedy" or params.cross_class_nms):
            b, s = boxes[keep].float(), scores[keep].float()
            kept = nms(b, s, params.nms_threshold) if params.cross_class_nms else batched_nms(
                b, s, classes[keep], params.nms_threshold)  # fmt: skip
            keep = keep[kept]
        final = scores[keep]
    keep, final = keep[: params.top_k], final[: params.top_k]
    return keep, classes[keep], final


def _fast(
    scores: Tensor, boxes: Tensor | None, params: InferenceParams, top_k: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Fast NMS (YOLACT) on a [N, C] score matrix, per class or cross-class."""
    from instaseg_ros.ops.nms import cc_fast_nms, fast_nms

    if boxes is None:
        raise ValueError("method 'fast' needs boxes")
    per_class = scores.t().contiguous()  # [C, N]
    if params.cross_class_nms:
        idx, cls, sc = cc_fast_nms(boxes, per_class, params.nms_threshold, top_k, params.top_k)
    else:
        idx, cls, sc = fast_nms(boxes, per_class, params.nms_threshold, top_k, params.top_k,
                                score_threshold=params.score_threshold)  # fmt: skip
    good = keep_score(sc, params.score_threshold)
    return idx[good], cls[good], sc[good]
