"""Crop boxes out of images/masks and paste per-box masks back into the full image.

Pixel convention (shared by every function here): pixel ``(row r, col c)``
covers the continuous square ``[c, c+1) x [r, r+1)``, its centre is
``(c + 0.5, r + 0.5)``, and boxes are float ``xyxy`` in these coordinates
(so an integer box ``(2, 0, 5, 3)`` covers exactly columns 2, 3, 4 and rows 0, 1, 2).

Pasting rules (:func:`paste_masks`), exact to the pixel:

1. A pixel belongs to a box when its centre lies inside it:
   ``x1 <= c + 0.5 < x2`` and ``y1 <= r + 0.5 < y2``; i.e. the columns
   ``ceil(x1 - 0.5) .. ceil(x2 - 0.5) - 1`` (clipped to the image), likewise rows.
   Pixels outside the box are background; a box narrower than a pixel centre
   spacing may cover no pixel at all.
2. The box's ``s x s`` mask is sampled at each covered pixel centre with bilinear
   interpolation in half-pixel alignment (as ``cv2.resize`` / ``F.interpolate(...,
   align_corners=False)``): mask coordinate ``u = (c + 0.5 - x1) * s / (x2 - x1) - 0.5``,
   clamped to ``[0, s - 1]`` (edge values repeat), likewise ``v`` for rows.
   Hence a ``w x h`` integer box with a ``w x h`` mask (``s == w == h``) pastes it unchanged.
3. A pixel is foreground when the sampled probability is ``> threshold``.

Overlaps are resolved afterwards by confidence (:func:`exclusive_masks`, which
reuses :func:`instaseg_ros.core.masks.resolve_overlaps`): a pixel claimed by
several instances goes to the highest-scoring one (the YOLOv3 + FCN8s work, its Fig. 4).

Cropping (:func:`crop_and_resize`, :func:`crop_masks`) uses the same
half-pixel convention (``torchvision.ops.roi_align`` with ``aligned=True`` and
adaptive sampling: ``ceil(box side / size)`` samples per output cell and axis),
so training crops (ground-truth boxes) and inference crops (detected boxes) are produced identically.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from instaseg_ros.core.masks import resolve_overlaps

#: roi_align samples per output cell and axis; 0 = adaptive, ``ceil(box side / size)``:
#: one exact bilinear sample when enlarging, an average (anti-aliasing) when shrinking
CROP_SAMPLING_RATIO = 0


def _as_boxes(boxes: Tensor | np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    b = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, Tensor) else boxes)
    b = b.to(device=device, dtype=dtype).reshape(-1, 4)
    return b


def crop_and_resize(image: Tensor, boxes: Tensor | np.ndarray, size: int) -> Tensor:
    """Crop every box out of ``image`` and resize it to ``size x size``.

    Args:
        image: [C, H, W] float (any value range; values are interpolated).
        boxes: [N, 4] float xyxy pixels of ``image``.
        size: output side length.

    Returns:
        [N, C, size, size] float crops (bilinear, half-pixel aligned; parts of a
        box outside the image read as 0).
    """
    from torchvision.ops import roi_align

    if image.ndim != 3:
        raise ValueError(f"crop_and_resize expects an image [C, H, W], got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"crop_and_resize expects a float image, got {image.dtype}")
    b = _as_boxes(boxes, image.device, image.dtype)
    if len(b) == 0:
        return image.new_zeros((0, image.shape[0], size, size))
    rois = torch.cat([b.new_zeros((len(b), 1)), b], 1)
    return roi_align(image[None], rois, (size, size), 1.0, CROP_SAMPLING_RATIO, aligned=True)


def crop_masks(
    masks: Tensor | np.ndarray, boxes: Tensor | np.ndarray, size: int, binary: bool = True
) -> Tensor:
    """Crop instance ``i``'s mask with box ``i`` and resize to ``size x size`` (FCN training targets).

    Args:
        masks: [N, H, W] bool/uint8/float, one full-image mask per box.
        boxes: [N, 4] float xyxy pixels.
        size: output side length.
        binary: threshold the resampled coverage at 0.5 (else return it soft).

    The resampling is the image crop's (:func:`crop_and_resize`), so when a box is
    enlarged its outermost half pixel blends with what lies outside the box, exactly as
    the image crop does (a mask filling its box loses the extreme corner samples).

    Returns:
        [N, size, size] float32 in {0, 1} (or [0, 1] when ``binary=False``).
    """
    from torchvision.ops import roi_align

    m = torch.as_tensor(masks)
    if m.ndim != 3:
        raise ValueError(f"crop_masks expects masks [N, H, W], got shape {tuple(m.shape)}")
    m = m.float()
    b = _as_boxes(boxes, m.device, torch.float32)
    if len(b) != len(m):
        raise ValueError(f"crop_masks: {len(m)} masks but {len(b)} boxes")
    if len(b) == 0:
        return m.new_zeros((0, size, size))
    rois = torch.cat([torch.arange(len(b), dtype=torch.float32, device=m.device)[:, None], b], 1)
    out = roi_align(m[:, None], rois, (size, size), 1.0, CROP_SAMPLING_RATIO, aligned=True)[:, 0]
    return (out >= 0.5).float() if binary else out


def box_pixel_range(
    box: Tensor | np.ndarray | list[float], image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Rows/cols whose pixel centres lie in ``box`` (rule 1): ``(r0, r1, c0, c1)``, end exclusive, clipped."""
    x1, y1, x2, y2 = (float(v) for v in box)
    h, w = image_size
    c0 = min(max(math.ceil(x1 - 0.5), 0), w)
    c1 = min(max(math.ceil(x2 - 0.5), c0), w)
    r0 = min(max(math.ceil(y1 - 0.5), 0), h)
    r1 = min(max(math.ceil(y2 - 0.5), r0), h)
    return r0, r1, c0, c1


def _interp_matrix(start: int, stop: int, lo: float, hi: float, s: int, device, dtype) -> Tensor:
    """[stop - start, s] bilinear weights sampling an s-cell axis spanning [lo, hi) at pixel centres."""
    centres = torch.arange(start, stop, device=device, dtype=torch.float64) + 0.5
    u = (centres - lo) * (s / max(hi - lo, 1e-12)) - 0.5
    u = u.clamp(0, s - 1)
    i0 = u.floor().long()
    i1 = (i0 + 1).clamp(max=s - 1)
    f = u - i0
    mat = torch.zeros((len(u), s), device=device, dtype=torch.float64)
    rows = torch.arange(len(u), device=device)
    mat[rows, i0] += 1 - f
    mat[rows, i1] += f
    return mat.to(dtype)


def paste_masks(
    masks: Tensor | np.ndarray,
    boxes: Tensor | np.ndarray,
    image_size: tuple[int, int],
    threshold: float = 0.5,
) -> np.ndarray:
    """Paste per-box mask probabilities into full-image boolean masks (rules 1-3 above).

    Args:
        masks: [N, s, s] float probabilities in the box frame (any square ``s``).
        boxes: [N, 4] float xyxy in image pixels.
        image_size: (H, W) of the image.
        threshold: foreground where probability ``> threshold``.

    Returns:
        [N, H, W] bool (overlaps not yet resolved).
    """
    m = torch.as_tensor(masks)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"paste_masks expects square per-box masks [N, s, s], got shape {tuple(m.shape)}")
    b = _as_boxes(boxes, torch.device("cpu"), torch.float64)
    if len(b) != len(m):
        raise ValueError(f"paste_masks: {len(m)} masks but {len(b)} boxes")
    h, w = (int(v) for v in image_size)
    out = np.zeros((len(m), h, w), bool)
    if len(m) == 0:
        return out
    s = int(m.shape[1])
    m = m.detach().float()
    for i in range(len(m)):
        x1, y1, x2, y2 = b[i].tolist()
        r0, r1, c0, c1 = box_pixel_range((x1, y1, x2, y2), (h, w))
        if r1 <= r0 or c1 <= c0:
            continue
        wy = _interp_matrix(r0, r1, y1, y2, s, m.device, torch.float32)
        wx = _interp_matrix(c0, c1, x1, x2, s, m.device, torch.float32)
        region = wy @ m[i] @ wx.T  # [rows, cols]
        out[i, r0:r1, c0:c1] = (region > threshold).cpu().numpy()
    return out


def exclusive_masks(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Give every contested pixel to the most confident instance only.

    Args:
        masks: [N, H, W] bool.
        scores: [N].

    Returns:
        [N, H, W] bool, pairwise disjoint; instance ``i`` keeps the pixels where
        it is the highest-scoring claimant (ties: lower index).
    """
    masks = np.asarray(masks, bool)
    if len(masks) <= 1:
        return masks.copy()
    ids = resolve_overlaps(masks, np.asarray(scores), masks.shape[1:])
    return ids[None] == np.arange(1, len(masks) + 1, dtype=np.uint16)[:, None, None]
