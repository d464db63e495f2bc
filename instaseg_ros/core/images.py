"""Image files and validation of image batches handed to a ``Segmenter``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Suffixes (lower case) of the image files the package reads from folders, all readable by
#: ``cv2.imread``; compare with ``path.suffix.lower() in IMAGE_SUFFIXES``.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def validate_images(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Check a batch of HxWx3 uint8 images and return it as a list.

    Accepts a list of [H, W, 3] uint8 arrays (sizes may differ) or one
    [B, H, W, 3] uint8 array. Raises ``ValueError`` naming the problem.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            raise ValueError(
                f"expected a batch of images, got one array of shape {images.shape}; "
                "wrap a single image in a list"
            )
        if images.ndim != 4:
            raise ValueError(f"expected a [B, H, W, 3] batch array, got shape {images.shape}")
        images = list(images)
    if not isinstance(images, (list, tuple)):
        raise ValueError(f"expected a list of images, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("empty batch: no images given")
    out = []
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"image {i}: expected numpy.ndarray, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise ValueError(f"image {i}: expected dtype uint8, got {img.dtype}")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {i}: expected shape [H, W, 3] (BGR), got {img.shape}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"image {i}: zero-size image {img.shape}")
        out.append(img)
    return out
