"""FCN mask-head training for YOLO+FCN (seed 001) on ground-truth box crops.

Each training image contributes one crop per (non-crowd) instance: the ground-truth box,
randomly jittered in position and size like a detector's box, cropped and resized with
:func:`~instaseg_ros.models.yolo_fcn.fcn.fcn_training_pair` (the same ``roi_align`` crop as inference)
and paired with the instance's mask cropped the same way. Loss: BCE (+ optional soft dice).

Validation pastes the head's masks for the ground-truth boxes back into the image with the
inference pasting code and reports COCO mask AP of these instances (score 1, ground-truth
classes: a measure of the masks alone) and the mean mask IoU (the seed's metric).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.training.config import ConfigError, ExperimentConfig, check_fields
from instaseg_ros.training.losses import fcn_mask_loss
from instaseg_ros.training.tasks.base import BaseTask, coco_metrics, write_atomic

log = logging.getLogger(__name__)


@dataclass
class FcnLossConfig:
    """``loss:`` of an FCN run.

    Attributes:
        dice_weight: weight of the soft dice term (0 = BCE only).
        box_jitter: boxes are shifted by up to this fraction of their size and scaled by up to
            ``1 +- box_jitter`` (imitates detector boxes).
        max_crops: at most this many crops per batch (random subset).
    """

    dice_weight: float = 0.5
    box_jitter: float = 0.1
    max_crops: int = 64


def jitter_boxes(
    boxes: np.ndarray, amount: float, size: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """[N, 4] xyxy px -> randomly shifted/scaled copies, clipped to the image and >= 2 px."""
    if amount <= 0 or len(boxes) == 0:
        return boxes.astype(np.float32)
    h, w = size
    b = boxes.astype(np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = cx + rng.uniform(-amount, amount, len(b)) * bw
    cy = cy + rng.uniform(-amount, amount, len(b)) * bh
    bw = bw * (1 + rng.uniform(-amount, amount, len(b)))
    bh = bh * (1 + rng.uniform(-amount, amount, len(b)))
    out = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    out[:, 2] = np.maximum(out[:, 2], np.minimum(out[:, 0] + 2, w))
    out[:, 3] = np.maximum(out[:, 3], np.minimum(out[:, 1] + 2, h))
    return out.astype(np.float32)


class FcnTask(BaseTask):
    """FCN mask head on a training config."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        from instaseg_ros.models.yolo_fcn.fcn import FcnConfig, build_fcn

        super().__init__(cfg)
        check_fields(cfg.model, FcnConfig, "model")
        d = dict(cfg.loss or {})
        known = {f.name for f in fields(FcnLossConfig)}
        if set(d) - known:
            raise ConfigError(
                f"loss: unknown keys {sorted(set(d) - known)} for task fcn; known: {sorted(known)}"
            )
        self.loss_cfg = FcnLossConfig(**d)
        model = dict(cfg.model)
        model.pop("family", None)
        try:
            self.model_cfg = FcnConfig(**model)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        self.module = build_fcn(self.model_cfg)
        if cfg.init.weights:
            self._load(Path(cfg.init.weights))
        self._rng = np.random.default_rng(cfg.seed)
        self.rngs["crops"] = self._rng

    def _load(self, path: Path) -> None:
        from instaseg_ros.weights.torch_io import load_torch_file

        obj = load_torch_file(path, "FCN weights")
        sd = obj.get("fcn", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise ValueError(f"{path}: not an FCN checkpoint (expected a dict with 'fcn')")
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        missing, unexpected = self.module.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path}: FCN weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    # ------------------------------------------------------------------ data
    def collate(self, samples: list) -> dict[str, Any]:
        """Samples -> ``{"crops": [N, 3, s, s], "targets": [N, s, s], "images": list}``."""
        from instaseg_ros.models.yolo_fcn.fcn import fcn_training_pair

        s = self.model_cfg.crop_size
        crops, targets = [], []
        images = []
        for sample in samples:
            if sample is None:
                continue
            image, t = sample
            images.append(image)
            keep = np.asarray(t.get("iscrowd", np.zeros(len(t["labels"]))), bool) == 0
            if not keep.any():
                continue
            boxes = np.asarray(t["boxes"])[keep]
            boxes = jitter_boxes(boxes, self.loss_cfg.box_jitter, image.shape[:2], self._rng)
            c, m = fcn_training_pair(image, boxes, np.asarray(t["masks"])[keep], s)
            crops.append(c)
            targets.append(m)
        if not crops:
            return {"crops": torch.zeros(0, 3, s, s), "targets": torch.zeros(0, s, s), "images": images}
        c, m = torch.cat(crops), torch.cat(targets)
        if len(c) > self.loss_cfg.max_crops:
            pick = torch.from_numpy(self._rng.permutation(len(c))[: self.loss_cfg.max_crops])
            c, m = c[pick], m[pick]
        return {"crops": c, "targets": m, "images": images}

    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        crops = batch["crops"].to(device)
        if len(crops) == 0:
            zero = sum(p.sum() for p in module.parameters()) * 0.0
            return {"bce": zero, "dice": zero, "total": zero}
        return fcn_mask_loss(module(crops), batch["targets"].to(device), self.loss_cfg.dice_weight)

    # ------------------------------------------------------------------ validation / checkpoints
    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        """COCO mask AP of the head's masks for the ground-truth boxes (score 1, ground-truth
        classes) and their mean IoU with the ground-truth masks (``mean_iou``)."""
        from instaseg_ros.core.instances import Instances
        from instaseg_ros.models.yolo_fcn.fcn import fcn_training_pair
        from instaseg_ros.ops.paste import paste_masks

        ious: list[float] = []

        def predict(image: np.ndarray, t: dict[str, Any]) -> Instances | None:
            h, w = image.shape[:2]
            keep = np.asarray(t.get("iscrowd", np.zeros(len(t["labels"]))), bool) == 0
            boxes = np.asarray(t["boxes"], np.float32)[keep]
            if len(boxes) == 0:
                return None
            gt = np.asarray(t["masks"])[keep].astype(bool)
            crops, _ = fcn_training_pair(image, boxes, gt, self.model_cfg.crop_size)
            probs = torch.sigmoid(self.module(crops.to(device))[:, 0].float()).cpu()
            masks = paste_masks(probs, boxes, (h, w))
            inter = (masks & gt).reshape(len(gt), -1).sum(1)
            union = (masks | gt).reshape(len(gt), -1).sum(1)
            ious.extend(inter / np.maximum(union, 1))
            labels = np.asarray(t["labels"])[keep]
            return Instances(boxes, np.ones(len(boxes), np.float32), labels, masks, (h, w))

        was = self.module.training
        self.module.eval()
        try:
            metrics = coco_metrics(dataset, predict, max_images)
        finally:
            self.module.train(was)
        metrics["mean_iou"] = float(np.mean(ious)) if ious else 0.0
        return metrics

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        """``save_fcn_checkpoint`` file (``fcn_weights`` of a yolo_fcn config)."""
        from instaseg_ros.models.yolo_fcn.fcn import build_fcn, save_fcn_checkpoint

        model = build_fcn(self.model_cfg)
        model.load_state_dict(self.module.state_dict())
        if fp16:
            model.half()
        extra = {"training": {"iteration": int(extra.pop("iteration", -1)), **extra}}
        write_atomic(path, lambda tmp: save_fcn_checkpoint(str(tmp), model, self.model_cfg, **extra))

    def load_inference(self, path: Path) -> None:
        self._load(Path(path))
