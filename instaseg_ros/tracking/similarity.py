"""Cheap pairwise cues for association: box IoU, low-resolution mask IoU, colour histograms."""

from __future__ import annotations

import cv2
import numpy as np

HIST_LEVELS = 8  # quantisation levels per BGR channel
HIST_BINS = HIST_LEVELS**3
_HIST_SAMPLES = 400  # aim for about this many pixels per histogram (adaptive stride)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes.

    Args:
        a: [N, 4] xyxy; b: [M, 4] xyxy.

    Returns:
        [N, M] float64 in [0, 1] (0 where a union is empty).
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.maximum(rb - lt, 0.0)
    inter = wh[..., 0] * wh[..., 1]
    wh_a = np.maximum(a[:, 2:] - a[:, :2], 0.0)
    wh_b = np.maximum(b[:, 2:] - b[:, :2], 0.0)
    area_a = wh_a[:, 0] * wh_a[:, 1]
    area_b = wh_b[:, 0] * wh_b[:, 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pixel_bounds(boxes: np.ndarray, h: int, w: int) -> np.ndarray:
    """[N, 4] xyxy float boxes -> [N, 4] int64 (floor x0, floor y0, ceil x1, ceil y1) inside the image."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.empty((len(b), 4), np.int64)
    out[:, :2] = np.floor(b[:, :2])
    out[:, 2:] = np.ceil(b[:, 2:])
    np.minimum(out, (w, h, w, h), out=out)
    np.maximum(out, 0, out=out)
    return out


def downsample_masks(masks: np.ndarray, stride: int, boxes: np.ndarray | None = None) -> np.ndarray:
    """Sample every ``stride``-th pixel of each mask (rows and columns).

    Args:
        masks: [N, H, W] bool.
        stride: sampling step in pixels.
        boxes: [N, 4] xyxy extent of each mask; when given, only the box is read (mask pixels
            outside their box are ignored), which avoids touching the whole [N, H, W] array.

    Returns:
        [N, ceil(H/stride) * ceil(W/stride)] bool.
    """
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    if boxes is None:
        return masks[:, ::stride, ::stride].reshape(n, -1)
    gh, gw = -(-h // stride), -(-w // stride)
    out = np.zeros((n, gh, gw), bool)
    for i, (x0, y0, x1, y1) in enumerate(pixel_bounds(boxes, h, w).tolist()):
        gx, gy = -(-x0 // stride), -(-y0 // stride)  # first grid cell at or after the box start
        crop = masks[i, gy * stride : y1 : stride, gx * stride : x1 : stride]
        out[i, gy : gy + crop.shape[0], gx : gx + crop.shape[1]] = crop
    return out.reshape(n, -1)


def shift_masks(masks: np.ndarray, shape: tuple[int, int], shifts: np.ndarray) -> np.ndarray:
    """Translate flattened low-resolution masks by whole cells, filling with zeros.

    Args:
        masks: [T, h*w] flattened masks of grid ``shape`` (h, w).
        shifts: [T, 2] int (dx, dy) in cells.

    Returns:
        [T, h*w] like ``masks`` (the input itself when no mask moves).
    """
    shifts = np.asarray(shifts, np.int64).reshape(-1, 2)
    moving = np.flatnonzero(np.any(shifts != 0, axis=1))
    if len(moving) == 0:
        return masks
    h, w = shape
    out = masks.copy()
    grid_in = masks.reshape(-1, h, w)
    grid_out = out.reshape(-1, h, w)
    for t in moving:
        dx, dy = int(shifts[t, 0]), int(shifts[t, 1])
        grid_out[t] = 0
        if abs(dx) >= w or abs(dy) >= h:
            continue
        grid_out[t, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = grid_in[
            t, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
    return out


def _pack(masks: np.ndarray) -> np.ndarray:
    """[N, P] bool -> [N, ceil(P / 64)] uint64 bit sets (zero-padded)."""
    packed = np.packbits(masks, axis=1)
    pad = -packed.shape[1] % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((len(packed), pad), np.uint8)], axis=1)
    return np.ascontiguousarray(packed).view(np.uint64)


def mask_iou(a: np.ndarray, b: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """IoU of every pair of flattened masks.

    Args:
        a: [N, P] bool; b: [M, P] bool.
        candidates: [N, M] bool, the pairs to compute (the others get 0); None = all.

    Returns:
        [N, M] float64 (0 where both masks are empty).
    """
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    n, m = len(a), len(b)
    r, c = np.nonzero(np.ones((n, m), bool) if candidates is None else candidates)
    iou = np.zeros((n, m))
    if len(r) == 0:
        return iou
    if hasattr(np, "bitwise_count"):  # numpy >= 2: AND + popcount on 64-bit words
        pa, pb = _pack(a), _pack(b)
        inter = np.bitwise_count(pa[r] & pb[c]).sum(-1, dtype=np.int64)
        area_a = np.bitwise_count(pa).sum(-1, dtype=np.int64)
        area_b = np.bitwise_count(pb).sum(-1, dtype=np.int64)
    else:
        inter = np.einsum("kp,kp->k", a[r].astype(np.float32), b[c].astype(np.float32)).astype(np.int64)
        area_a, area_b = a.sum(1), b.sum(1)
    union = area_a[r] + area_b[c] - inter
    iou[r, c] = np.divide(inter, union, out=np.zeros(len(r)), where=union > 0)
    return iou


def colour_histograms(
    image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Normalised BGR colour histogram of each instance's mask pixels.

    Each instance is sampled on its own box with a stride that leaves about 400 pixels,
    so the cost does not grow with the object's size.

    Args:
        image_bgr: [H, W, 3] uint8.
        masks: [N, H, W] bool.
        boxes: [N, 4] xyxy pixels (the masks' extent).
        rows: [K] indices of the instances wanted (default all N).

    Returns:
        [K, 512] float32 summing to 1 per row (all zeros for an instance without pixels).
    """
    rows = np.arange(len(masks)) if rows is None else np.asarray(rows, np.intp).reshape(-1)
    out = np.zeros((len(rows), HIST_BINS), np.float32)
    h, w = image_bgr.shape[:2]
    bounds = pixel_bounds(np.asarray(boxes, np.float64).reshape(-1, 4)[rows], h, w).tolist()
    for k, (i, (x0, y0, x1, y1)) in enumerate(zip(rows.tolist(), bounds)):
        area = (x1 - x0) * (y1 - y0)
        if x1 <= x0 or y1 <= y0:
            continue
        s = max(1, int((area / _HIST_SAMPLES) ** 0.5))
        m = masks[i, y0:y1:s, x0:x1:s].view(np.uint8)
        crop = image_bgr[y0:y1:s, x0:x1:s]
        # one C call for the masked 3-D histogram (4x faster than numpy indexing + bincount)
        hist = cv2.calcHist([crop], [0, 1, 2], m, [HIST_LEVELS] * 3, [0, 256] * 3).ravel()
        total = hist.sum()
        if total > 0:
            out[k] = hist / total
    return out


def bhattacharyya(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of every pair of normalised histograms.

    Args:
        a: [N, B]; b: [M, B], rows summing to 1 (or all zeros).

    Returns:
        [N, M] float64 in [0, 1]: 1 for identical distributions, 0 for disjoint ones.
    """
    return np.clip(np.sqrt(a, dtype=np.float64) @ np.sqrt(b, dtype=np.float64).T, 0.0, 1.0)
