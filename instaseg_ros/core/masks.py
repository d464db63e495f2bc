"""Mask utilities: confidence-ordered overlap resolution, semantic maps, COCO RLE."""

from __future__ import annotations

import numpy as np


def resolve_overlaps(
    masks: np.ndarray, scores: np.ndarray, image_size: tuple[int, int], dtype: type = np.uint16
) -> np.ndarray:
    """Paint instance ids so that the higher score owns every contested pixel.

    Args:
        masks: [N, H, W] bool.
        scores: [N] float.
        image_size: (H, W).
        dtype: np.uint16, or np.uint8 for fewer than 256 instances (cheaper to post-process).

    Returns:
        [H, W] ``dtype`` with 0 = background and ``i + 1`` for instance ``i``
        (``i`` indexes ``masks`` as given). Ties keep the lower index.
    """
    h, w = image_size
    n = len(masks)
    limit = np.iinfo(dtype).max
    if n > limit:
        raise ValueError(f"too many instances for a {np.dtype(dtype).name} id image: {n} > {limit}")
    import cv2

    # paint lowest score first; stable sort on -score keeps the lower index winning ties.
    # cv2.copyTo with the bool mask viewed as uint8 paints in place ~9x faster than out[mask] = v,
    # and painting 8-bit ids where they fit moves half the bytes (4x faster at 1280x720).
    small = n < 256
    canvas = np.zeros((h, w), np.uint8 if small else np.uint16)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[::-1]
    masks_u8 = np.asarray(masks, dtype=bool).view(np.uint8)
    value = np.empty((h, w), canvas.dtype)
    for i in order:
        value.fill(i + 1)
        cv2.copyTo(value, masks_u8[i], canvas)
    return canvas.astype(dtype, copy=False)


def lookup(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``table[ids]`` for an integer id image (cv2.LUT for uint8 ids, else np.take: both much faster)."""
    if ids.dtype == np.uint8 and table.dtype == np.uint8:
        import cv2

        full = np.zeros(256, np.uint8)
        full[: len(table)] = table[:256]
        return cv2.LUT(ids, full)
    return np.take(table, ids)


def semantic_from_ids(id_image: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Map an instance-id image to a class image: 0 background, ``class_id + 1`` elsewhere."""
    lut = np.zeros(len(class_ids) + 1, np.uint8)
    if len(class_ids):
        if int(np.max(class_ids)) >= 255:
            raise ValueError("class ids >= 255 do not fit a mono8 semantic mask")
        lut[1:] = np.asarray(class_ids, np.int64) + 1
    return lookup(lut, id_image)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] bool -> [N, 4] float32 xyxy (exclusive max, pixels); empty masks give zeros."""
    n = len(masks)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        ys = np.flatnonzero(masks[i].any(axis=1))
        xs = np.flatnonzero(masks[i].any(axis=0))
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def encode_rle(mask: np.ndarray) -> dict:
    """[H, W] bool -> COCO compressed RLE with a JSON-ready ``counts`` string."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string/bytes or uncompressed list counts) -> [H, W] bool."""
    from pycocotools import mask as mask_util

    h, w = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        rle = mask_util.frPyObjects(rle, h, w)
    elif isinstance(counts, str):
        rle = {"size": [h, w], "counts": counts.encode("ascii")}
    return mask_util.decode(rle).astype(bool)
