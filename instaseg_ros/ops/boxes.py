"""Box utilities shared by the anchor-based models: formats, SSD-style encoding, IoU, mask crop.

Conventions: "point form" is ``(x1, y1, x2, y2)``, "center form" is ``(cx, cy, w, h)``.
Boxes handled by the YOLACT head are *relative* (fractions of the square network input);
boxes in ``Instances`` are absolute pixels of the original image.
"""

from __future__ import annotations

import torch

# SSD / YOLACT box-coding variances (centre, size)
BOX_VARIANCES: tuple[float, float] = (0.1, 0.2)


def point_form(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    half = boxes[..., 2:] / 2
    return torch.cat((boxes[..., :2] - half, boxes[..., :2] + half), dim=-1)


def center_form(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (x1, y1, x2, y2) -> [..., 4] (cx, cy, w, h)."""
    return torch.cat(((boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]), dim=-1)


def decode_boxes(
    loc: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float] = BOX_VARIANCES
) -> torch.Tensor:
    """Decode network offsets against priors (the YOLACT/SSD scheme).

    Args:
        loc: [..., P, 4] encoded offsets (dx, dy, dw, dh).
        priors: [P, 4] (cx, cy, w, h), relative.
    Returns:
        [..., P, 4] boxes (x1, y1, x2, y2), relative.
    """
    wh = priors[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    cxcy = priors[:, :2] + loc[..., :2] * variances[0] * priors[:, 2:]
    x1y1 = cxcy - wh / 2
    return torch.cat((x1y1, x1y1 + wh), dim=-1)


def encode_boxes(
    matched: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float] = BOX_VARIANCES
) -> torch.Tensor:
    """Inverse of :func:`decode_boxes`: regression targets for ``matched`` boxes.

    Args:
        matched: [..., P, 4] (x1, y1, x2, y2) relative, one box per prior (positive widths).
        priors: [P, 4] (cx, cy, w, h) relative.
    Returns:
        [..., P, 4] encoded offsets with ``decode_boxes(encode_boxes(b, p), p) == b``.
    """
    cxcy = ((matched[..., :2] + matched[..., 2:]) / 2 - priors[:, :2]) / (variances[0] * priors[:, 2:])
    wh = torch.log((matched[..., 2:] - matched[..., :2]) / priors[:, 2:]) / variances[1]
    return torch.cat((cxcy, wh), dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU, optionally batched.

    Args:
        a: [..., A, 4] xyxy.
        b: [..., B, 4] xyxy (same leading dims as ``a``).
    Returns:
        [..., A, B] IoU (0/0 gives NaN only for two zero-area boxes; callers use positive areas).
    """
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = ((a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]))[..., :, None]
    area_b = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[..., None, :]
    return inter / (area_a + area_b - inter)


def sanitize_coordinates(
    c1: torch.Tensor, c2: torch.Tensor, size: int, padding: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative coordinates -> absolute ``(lo, hi)`` with lo <= hi, padded and clamped to [0, size]."""
    c1 = c1 * size
    c2 = c2 * size
    lo = torch.minimum(c1, c2)
    hi = torch.maximum(c1, c2)
    return (lo - padding).clamp(min=0), (hi + padding).clamp(max=size)


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor, padding: float = 1.0) -> torch.Tensor:
    """Zero every mask outside its (padded) box, as YOLACT does before upsampling.

    Args:
        masks: [N, h, w] float.
        boxes: [N, 4] relative xyxy.
        padding: grow each box by this many mask pixels on every side.
    Returns:
        [N, h, w]: ``masks`` where pixel (y, x) satisfies x1 <= x < x2 and y1 <= y < y2, else 0.
    """
    n, h, w = masks.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = torch.arange(w, device=masks.device, dtype=x1.dtype)[None, :]
    rows = torch.arange(h, device=masks.device, dtype=y1.dtype)[None, :]
    keep_x = (cols >= x1[:, None]) & (cols < x2[:, None])  # [N, w]
    keep_y = (rows >= y1[:, None]) & (rows < y2[:, None])  # [N, h]
    keep = keep_y[:, :, None] & keep_x[:, None, :]
    return masks * keep.to(masks.dtype)
