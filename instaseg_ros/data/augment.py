"""Albumentations pipelines that keep images, masks and boxes consistent.

``build_transform(AugmentConfig(...), train=True)`` returns a callable
``(image, target) -> (image, target)`` usable as a dataset ``transform``:
photometric jitter (colour, blur, noise, JPEG), horizontal flip, random scale + crop
back to the input size, and an optional final resize. Geometric transforms act on the
masks (nearest neighbour); boxes are then recomputed from the masks, and instances whose
visible area falls under ``min_area`` pixels (or ``min_fraction`` of their area before
the transform) are dropped together with their label and crowd flag.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np

from instaseg_ros.core.masks import masks_to_boxes


@dataclass
class AugmentConfig:
    """Augmentation settings (probabilities in [0, 1]).

    Attributes:
        hflip: probability of a horizontal flip.
        photometric: probability of colour jitter (brightness/contrast/saturation/hue).
        brightness, contrast, saturation, hue: jitter strengths (albumentations ColorJitter).
        blur, noise, jpeg: probabilities of Gaussian blur, Gaussian noise, JPEG compression.
        scale_crop: probability of random scale then crop/pad back to the input size.
        scale: (min, max) scale factor of ``scale_crop``.
        size: final (H, W) resize, or None to keep the size.
        min_area: instances with fewer visible pixels after the transform are dropped.
        min_fraction: ...or with less than this fraction of their area before the transform.
        seed: seed of the albumentations pipeline (None = random).
        mosaic, mosaic_scale, copy_paste, copy_paste_fraction, copy_paste_flip: the
            multi-sample augmentations of :class:`instaseg_ros.data.mosaic.MixConfig`, applied by the
            training task after this per-image pipeline (0 = off).
    """

    hflip: float = 0.5
    photometric: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03
    blur: float = 0.1
    noise: float = 0.1
    jpeg: float = 0.1
    scale_crop: float = 0.5
    scale: tuple[float, float] = (0.6, 1.5)
    size: tuple[int, int] | None = None
    min_area: int = 4
    min_fraction: float = 0.1
    seed: int | None = None
    mosaic: float = 0.0
    mosaic_scale: tuple[float, float] = (0.5, 1.0)
    copy_paste: float = 0.0
    copy_paste_fraction: float = 0.5
    copy_paste_flip: float = 0.5

    def mix_config(self) -> Any:
        """The mosaic / copy-paste part as a :class:`~instaseg_ros.data.mosaic.MixConfig`."""
        from instaseg_ros.data.mosaic import MixConfig

        return MixConfig(mosaic=self.mosaic, mosaic_scale=self.mosaic_scale, copy_paste=self.copy_paste,
                         copy_paste_fraction=self.copy_paste_fraction, copy_paste_flip=self.copy_paste_flip,
                         min_area=self.min_area, min_fraction=self.min_fraction)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AugmentConfig:
        """Build from a YAML mapping; unknown keys raise a ValueError naming them."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"AugmentConfig: unknown keys {unknown}")
        for k in ("scale", "size", "mosaic_scale"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class Augmenter:
    """``(image [H,W,3] uint8, target) -> (image, target)`` with masks/boxes kept consistent."""

    def __init__(
        self, pipeline: A.Compose, min_area: int = 4, min_fraction: float = 0.0, seed: int | None = None
    ) -> None:
        self.pipeline = pipeline
        self.min_area = int(min_area)
        self.min_fraction = float(min_fraction)
        self.seed = seed
        self._worker_seed: int | None = None

    def _reseed_in_worker(self) -> None:
        """DataLoader workers each get a copy of the pipeline with the same seeded RNG, and are
        re-created every epoch: reseed from (seed, torch's per-worker seed) so workers and epochs
        differ while a run stays reproducible under ``torch.manual_seed``."""
        torch = sys.modules.get("torch")
        info = torch.utils.data.get_worker_info() if torch is not None else None
        if info is None or info.seed == self._worker_seed:
            return
        self._worker_seed = info.seed
        self.pipeline.set_random_seed(
            int(np.random.SeedSequence([self.seed or 0, info.seed]).generate_state(1)[0])
        )

    def __call__(self, image: np.ndarray, target: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        self._reseed_in_worker()
        masks = np.asarray(target["masks"], np.uint8)
        n = len(masks)
        if n:
            out = self.pipeline(image=image, masks=masks)
            new_masks = np.asarray(out["masks"], np.uint8).reshape(n, *out["image"].shape[:2])
        else:
            out = self.pipeline(image=image)
            new_masks = np.zeros((0, *out["image"].shape[:2]), np.uint8)
        return out["image"], apply_masks(target, new_masks, self.min_area, self.min_fraction)


def apply_masks(
    target: dict[str, Any], new_masks: np.ndarray, min_area: int = 1, min_fraction: float = 0.0
) -> dict[str, Any]:
    """A copy of ``target`` with ``new_masks`` [N,H,W]: boxes recomputed, vanished instances dropped."""
    old = np.asarray(target["masks"])
    n = len(new_masks)
    old_area = old.reshape(n, -1).sum(axis=1).astype(np.float64) if n else np.zeros(0)
    area = new_masks.reshape(n, -1).sum(axis=1).astype(np.float64) if n else np.zeros(0)
    scale = new_masks[0].size / max(1, old[0].size) if n else 1.0  # pixel-count ratio of a resize
    keep = (area >= max(1, min_area)) & (area >= min_fraction * old_area * scale)
    out = dict(target)
    out["masks"] = np.ascontiguousarray(new_masks[keep])
    out["boxes"] = masks_to_boxes(out["masks"].astype(bool))
    out["labels"] = np.asarray(target["labels"], np.int64)[keep]
    out["iscrowd"] = np.asarray(target.get("iscrowd", np.zeros(len(keep), np.uint8)), np.uint8)[keep]
    return out


def build_transform(cfg: AugmentConfig | dict | None = None, train: bool = True) -> Augmenter:
    """Training pipeline (``train=True``) or the evaluation one (only the final resize)."""
    if not isinstance(cfg, AugmentConfig):
        cfg = AugmentConfig.from_dict(cfg)
    ops: list[Any] = []
    if train:
        ops.append(
            A.ColorJitter(
                brightness=cfg.brightness,
                contrast=cfg.contrast,
                saturation=cfg.saturation,
                hue=cfg.hue,
                p=cfg.photometric,
            )
        )
        ops.append(A.GaussianBlur(blur_limit=(3, 5), p=cfg.blur))
        ops.append(A.GaussNoise(std_range=(0.01, 0.04), p=cfg.noise))
        ops.append(A.ImageCompression(quality_range=(50, 90), p=cfg.jpeg))
        ops.append(A.HorizontalFlip(p=cfg.hflip))
        if cfg.scale_crop > 0:
            ops.append(_ScaleCrop(cfg.scale, p=cfg.scale_crop))
    if cfg.size is not None:
        h, w = cfg.size
        ops.append(A.Resize(h, w, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST))
    pipe = A.Compose(ops, seed=cfg.seed)
    return Augmenter(pipe, cfg.min_area, cfg.min_fraction if train else 0.0, seed=cfg.seed)


class _ScaleCrop(A.DualTransform):
    """Scale by a random factor, then random-crop (zoom in) or pad (zoom out) to the input size."""

    def __init__(self, scale: tuple[float, float] = (0.6, 1.5), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.scale = scale

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        s = float(np.exp(self.py_random.uniform(np.log(self.scale[0]), np.log(self.scale[1]))))
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        # offset of the output window inside the scaled image (negative = padding)
        oy = self.py_random.uniform(0, nh - h) if nh >= h else -self.py_random.uniform(0, h - nh)
        ox = self.py_random.uniform(0, nw - w) if nw >= w else -self.py_random.uniform(0, w - nw)
        return {"matrix": np.float32([[nw / w, 0, -ox], [0, nh / h, -oy]]), "out": (w, h)}

    def apply(self, img: np.ndarray, matrix: np.ndarray, out: tuple[int, int], **_: Any) -> np.ndarray:
        return cv2.warpAffine(
            img,
            matrix,
            out,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(114, 114, 114),
        )

    def apply_to_mask(
        self, mask: np.ndarray, matrix: np.ndarray, out: tuple[int, int], **_: Any
    ) -> np.ndarray:
        return cv2.warpAffine(
            mask, matrix, out, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)
