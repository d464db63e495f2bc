"""Mosaic (4 images) and copy-paste augmentation for instance masks.

Both act on samples that the per-image pipeline (:mod:`instaseg_ros.data.augment`) has already
augmented and resized to the network input (every sample ``H x W`` alike), so they wrap a dataset::

    ds = MixingDataset(train_ds, MixConfig(mosaic=0.5, copy_paste=0.3), seed=0)
    image, target = ds[i]      # image [H, W, 3] uint8; target masks [N, H, W], boxes, labels, iscrowd

* **mosaic** (probability ``mosaic``): samples ``i`` and three random others tile a ``2H x 2W``
  canvas; a window of ``H / z x W / z`` (zoom ``z`` drawn log-uniformly from ``mosaic_scale``,
  e.g. (0.5, 1.0): from the whole canvas to one tile's size) at a random position is resized back to
  ``H x W`` (image and masks bilinear, masks thresholded at 0.5).
* **copy-paste** (probability ``copy_paste``, after mosaic): the instances of another random sample,
  each with probability ``copy_paste_fraction`` (at least one), optionally flipped, are pasted over
  the image at their own position; masks they cover are cut, and instances left with fewer than
  ``min_area`` pixels or under ``min_fraction`` of their area are dropped (Ghiasi et al. 2021, the
  simple form without rescaling).

Boxes are always recomputed from the final masks; labels and crowd flags follow their instances.
The randomness comes from the wrapper's own NumPy generator (``rng``, part of a task's resumable
state); in DataLoader workers it is reseeded from (seed, worker seed) like the per-image pipeline.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from instaseg_ros.core.masks import masks_to_boxes

Sample = tuple[np.ndarray, dict[str, Any]]


@dataclass
class MixConfig:
    """Mosaic / copy-paste settings (probabilities in [0, 1]).

    Attributes:
        mosaic: probability of a 4-image mosaic.
        mosaic_scale: (min, max) zoom of the mosaic window: 0.5 = the whole 2x2 canvas, 1.0 = one
            tile's size.
        copy_paste: probability of pasting another sample's instances.
        copy_paste_fraction: probability of each of its instances to be pasted (at least one is).
        copy_paste_flip: probability of flipping the pasted layer horizontally.
        min_area: instances with fewer visible pixels are dropped.
        min_fraction: ...or with less than this fraction of their area before mosaic/paste.
    """

    mosaic: float = 0.0
    mosaic_scale: tuple[float, float] = (0.5, 1.0)
    copy_paste: float = 0.0
    copy_paste_fraction: float = 0.5
    copy_paste_flip: float = 0.5
    min_area: int = 4
    min_fraction: float = 0.1

    def __post_init__(self) -> None:
        for name in ("mosaic", "copy_paste", "copy_paste_fraction", "copy_paste_flip", "min_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        lo, hi = (float(s) for s in self.mosaic_scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"mosaic_scale must be (min, max) with 0 < min <= max <= 1, "
                             f"got {self.mosaic_scale}")
        self.mosaic_scale = (lo, hi)

    @property
    def active(self) -> bool:
        return self.mosaic > 0 or self.copy_paste > 0


def _empty_like(image: np.ndarray) -> dict[str, Any]:
    h, w = image.shape[:2]
    return {"masks": np.zeros((0, h, w), np.uint8), "labels": np.zeros(0, np.int64),
            "iscrowd": np.zeros(0, np.uint8), "boxes": np.zeros((0, 4), np.float32)}


def _parts(target: dict[str, Any], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    masks = np.asarray(target["masks"], np.uint8).reshape(-1, *shape)
    labels = np.asarray(target["labels"], np.int64).reshape(-1)
    crowd = np.asarray(target.get("iscrowd", np.zeros(len(labels))), np.uint8).reshape(-1)
    return masks, labels, crowd


def _finish(base: dict[str, Any], masks: np.ndarray, labels: np.ndarray, crowd: np.ndarray,
            before: np.ndarray, min_area: int, min_fraction: float) -> dict[str, Any]:
    """``base`` with the instances that stay visible enough; boxes from the masks."""
    area = masks.sum(axis=(1, 2), dtype=np.float64)
    keep = (area >= max(1, min_area)) & (area >= min_fraction * before)
    out = dict(base)
    out["masks"] = np.ascontiguousarray(masks[keep])
    out["labels"] = labels[keep]
    out["iscrowd"] = crowd[keep]
    out["boxes"] = masks_to_boxes(out["masks"].astype(bool)).astype(np.float32)
    return out


def mosaic4(samples: list[Sample], center: tuple[float, float], zoom: float, min_area: int = 4,
            min_fraction: float = 0.1) -> Sample:
    """Four ``H x W`` samples -> one ``H x W`` sample.

    The samples fill a ``2H x 2W`` canvas (top-left, top-right, bottom-left, bottom-right); the window
    of ``H / zoom x W / zoom`` centred at ``center`` = (cx, cy) in canvas pixels (clamped inside the
    canvas) is resized to ``H x W``.
    """
    if len(samples) != 4:
        raise ValueError(f"mosaic4 needs 4 samples, got {len(samples)}")
    h, w = samples[0][0].shape[:2]
    for img, _ in samples:
        if img.shape[:2] != (h, w):
            raise ValueError(f"mosaic4 needs samples of one size, got {img.shape[:2]} and {(h, w)}")
    canvas = np.zeros((2 * h, 2 * w, 3), np.uint8)
    all_masks, labels, crowd, before = [], [], [], []
    for k, (img, tgt) in enumerate(samples):
        y0, x0 = (k // 2) * h, (k % 2) * w
        canvas[y0:y0 + h, x0:x0 + w] = img
        m, lab, cr = _parts(tgt, (h, w))
        big = np.zeros((len(m), 2 * h, 2 * w), np.uint8)
        big[:, y0:y0 + h, x0:x0 + w] = m
        all_masks.append(big)
        labels.append(lab)
        crowd.append(cr)
        before.append(m.sum(axis=(1, 2), dtype=np.float64))
    wh, ww = min(2 * h, round(h / zoom)), min(2 * w, round(w / zoom))
    y = int(np.clip(round(center[1] - wh / 2), 0, 2 * h - wh))
    x = int(np.clip(round(center[0] - ww / 2), 0, 2 * w - ww))
    image = cv2.resize(canvas[y:y + wh, x:x + ww], (w, h), interpolation=cv2.INTER_LINEAR)
    masks = np.concatenate(all_masks)[:, y:y + wh, x:x + ww]
    if len(masks):
        # bilinear on the masks too, then >= 0.5: nearest neighbour samples half a pixel off the
        # image's bilinear grid when shrinking, and edges would disagree with the pixels
        masks = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
                          for m in masks]).astype(np.uint8)
    else:
        masks = np.zeros((0, h, w), np.uint8)
    scale = (h * w) / float(wh * ww)  # pixel-count ratio of the resize
    base = {k: v for k, v in samples[0][1].items() if k not in ("masks", "labels", "iscrowd", "boxes")}
    return image, _finish(base, masks, np.concatenate(labels), np.concatenate(crowd),
                          np.concatenate(before) * scale, min_area, min_fraction)


def copy_paste(dst: Sample, src: Sample, chosen: np.ndarray, flip: bool = False, min_area: int = 4,
               min_fraction: float = 0.1) -> Sample:
    """Paste the instances ``chosen`` (indices into ``src``'s masks) of ``src`` onto ``dst`` (same size).

    Pixels of the pasted masks take ``src``'s colour; ``dst``'s masks lose the covered pixels, and its
    instances left with fewer than ``min_area`` pixels or ``min_fraction`` of their area are dropped.
    Pasted instances follow ``dst``'s, with their labels and crowd flags.
    """
    img, tgt = dst
    simg, stgt = src
    h, w = img.shape[:2]
    if simg.shape[:2] != (h, w):
        raise ValueError(f"copy_paste needs samples of one size, got {simg.shape[:2]} and {(h, w)}")
    dm, dl, dc = _parts(tgt, (h, w))
    sm, sl, sc = _parts(stgt, (h, w))
    chosen = np.asarray(chosen, np.int64).reshape(-1)
    pm, plab, pcr = sm[chosen], sl[chosen], sc[chosen]
    if flip:
        simg, pm = simg[:, ::-1], pm[:, :, ::-1]
    paste = pm.any(axis=0) if len(pm) else np.zeros((h, w), bool)
    out_img = img.copy()
    out_img[paste] = simg[paste]
    before = dm.sum(axis=(1, 2), dtype=np.float64)
    cut = dm & ~paste[None].astype(np.uint8) if len(dm) else dm
    masks = np.concatenate([cut, np.ascontiguousarray(pm)]).astype(np.uint8)
    areas = np.concatenate([before, pm.sum(axis=(1, 2), dtype=np.float64)])
    base = {k: v for k, v in tgt.items() if k not in ("masks", "labels", "iscrowd", "boxes")}
    # pasted instances overlap each other like the source had them: their own areas are the reference
    return out_img, _finish(base, masks, np.concatenate([dl, plab]), np.concatenate([dc, pcr]), areas,
                            min_area, min_fraction)


class MixingDataset:
    """A dataset whose samples get mosaic / copy-paste (see the module docstring).

    Args:
        base: a map-style dataset of ``(image, target)`` already at one size (None = unreadable).
        cfg: the settings.
        seed: seed of the wrapper's generator.
    """

    def __init__(self, base: Any, cfg: MixConfig, seed: int = 0) -> None:
        self.base = base
        self.cfg = cfg
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self._worker_seed: int | None = None

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str) -> Any:  # coco_gt, class_names, transform ... of the base
        if name in ("base", "cfg", "seed", "rng", "_worker_seed"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def _reseed_in_worker(self) -> None:
        torch = sys.modules.get("torch")
        info = torch.utils.data.get_worker_info() if torch is not None else None
        if info is None or info.seed == self._worker_seed:
            return
        self._worker_seed = info.seed
        self.rng = np.random.default_rng([self.seed, int(info.seed) % (2**63)])

    def _other(self, avoid: int) -> Sample | None:
        n = len(self.base)
        for _ in range(4):
            j = int(self.rng.integers(n))
            if j != avoid or n == 1:
                s = self.base[j]
                if s is not None:
                    return s
        return None

    def __getitem__(self, i: int) -> Sample | None:
        self._reseed_in_worker()
        sample = self.base[i]
        if sample is None:
            return None
        cfg, rng = self.cfg, self.rng
        if cfg.mosaic > 0 and rng.random() < cfg.mosaic:
            others = [self._other(i) for _ in range(3)]
            if all(o is not None for o in others):
                h, w = sample[0].shape[:2]
                lo, hi = np.log(cfg.mosaic_scale[0]), np.log(cfg.mosaic_scale[1])
                zoom = float(np.exp(rng.uniform(lo, hi)))
                center = (float(rng.uniform(0.5 * w, 1.5 * w)), float(rng.uniform(0.5 * h, 1.5 * h)))
                sample = mosaic4([sample, *others], center, zoom, cfg.min_area, cfg.min_fraction)  # type: ignore[list-item]
        if cfg.copy_paste > 0 and rng.random() < cfg.copy_paste:
            src = self._other(i)
            if src is not None:
                n = len(np.asarray(src[1]["labels"]).reshape(-1))
                if n:
                    pick = np.flatnonzero(rng.random(n) < cfg.copy_paste_fraction)
                    if not len(pick):
                        pick = np.array([int(rng.integers(n))])
                    flip = bool(rng.random() < cfg.copy_paste_flip)
                    sample = copy_paste(sample, src, pick, flip, cfg.min_area, cfg.min_fraction)
        return sample
