"""SOLOv2 training task for :class:`~instaseg_ros.training.trainer.Trainer`.

Config (``config/train/solo_*.yaml``)::

    task: solo
    model: {...}       # SoloConfig fields (class_names, backbone, input_size, num_grids, ...)
    loss: {focal_alpha: 0.25, focal_gamma: 2.0, cate_weight: 1.0, dice_weight: 3.0}

Batches: images resized to the square ``input_size`` and normalised like the segmenter's
``preprocess``; grid targets from :func:`~instaseg_ros.models.solo.assign_targets`; mask targets are
the instance masks average-pooled to the stride-4 mask-feature resolution (soft targets for dice).

"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from instaseg_ros.models.solo import (
    SoloConfig,
    SoloSegmenter,
    SoloV2,
    assign_targets,
    dynamic_masks,
    load_model,
    preprocess_images,
    read_checkpoint,
    save_checkpoint,
)
from instaseg_ros.training.config import ConfigError, check_fields
from instaseg_ros.training.tasks.base import BaseTask, StateView, half_state


@dataclass
class SoloLossConfig:
    """SOLO loss weights (seed 002: focal alpha 0.25, gamma 2; mask loss weight 3)."""

    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cate_weight: float = 1.0
    dice_weight: float = 3.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SoloLossConfig:
        d = dict(d or {})
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"loss: unknown SOLO loss keys {unknown}; known: {[f.name for f in fields(cls)]}"
            )
        return cls(**d)


def dice_loss(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """pred, target [N, h, w] in [0, 1] -> [N] 1 - 2 sum(pt) / (sum(p^2) + sum(t^2)) (SOLO's form)."""
    p, t = pred.flatten(1), target.flatten(1)
    return 1 - 2 * (p * t).sum(1) / ((p * p).sum(1) + (t * t).sum(1) + eps)


def solo_loss(
    raw: dict[str, Tensor], batch: dict[str, Any], cfg: SoloConfig, lc: SoloLossConfig
) -> dict[str, Tensor]:
    """Focal category loss over all cells (/ (positives + 1)) + weighted dice over positive cells.

    Args:
        raw: network outputs (``cate`` [B,G,C], ``kernel`` [B,G,E], ``mask_feat`` [B,E,h,w]).
        batch: ``cate`` [B,G] int64 (C = background), ``pos``/``pos_gt`` lists of [P_b] int64,
            ``masks`` list of [N_b, h, w] float targets (on the device of ``raw``).
    """
    from torchvision.ops import sigmoid_focal_loss

    cate = raw["cate"].float()
    c = cate.shape[-1]
    tgt = batch["cate"]
    onehot = F.one_hot(tgt, c + 1)[..., :c].to(cate.dtype)
    num_pos = int((tgt < c).sum())
    l_cate = sigmoid_focal_loss(cate, onehot, lc.focal_alpha, lc.focal_gamma, reduction="sum") / (num_pos + 1)
    preds, targets = [], []
    for b in range(cate.shape[0]):
        pos, gt = batch["pos"][b], batch["pos_gt"][b]
        if pos.numel():
            preds.append(
                torch.sigmoid(dynamic_masks(raw["kernel"][b, pos].float(), raw["mask_feat"][b].float()))
            )
            targets.append(batch["masks"][b][gt])
    if preds:
        l_mask = dice_loss(torch.cat(preds), torch.cat(targets)).mean()
    else:
        l_mask = raw["kernel"].sum() * 0.0 + raw["mask_feat"].sum() * 0.0
    l_cate = l_cate * lc.cate_weight
    l_mask = l_mask * lc.dice_weight
    return {"total": l_cate + l_mask, "cate": l_cate.detach(), "mask": l_mask.detach()}


def solo_collate(samples: list, cfg: SoloConfig) -> dict[str, Any]:
    """(image BGR [H,W,3], target) samples -> a SOLO batch (CPU tensors, see :func:`solo_loss`)."""
    s = cfg.input_size
    mean = torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.pixel_std).view(1, 3, 1, 1)
    samples = [x for x in samples if x is not None]
    images, _ = preprocess_images([im for im, _ in samples], cfg, mean, std)
    cates, poss, gts, masks = [], [], [], []
    for im, t in samples:
        h, w = im.shape[:2]
        keep = np.asarray(t.get("iscrowd", np.zeros(len(t["labels"]))), bool) == 0
        m = np.asarray(t["masks"], np.uint8)[keep]
        m = (np.stack([cv2.resize(x, (s, s), interpolation=cv2.INTER_NEAREST) for x in m])
             if len(m) else np.zeros((0, s, s), np.uint8))  # fmt: skip
        boxes = np.asarray(t["boxes"], np.float32)[keep] * np.array([s / w, s / h, s / w, s / h], np.float32)
        cate, pos, gt = assign_targets(boxes, np.asarray(t["labels"], np.int64)[keep], m, cfg)
        cates.append(torch.from_numpy(cate))
        poss.append(torch.from_numpy(pos))
        gts.append(torch.from_numpy(gt))
        masks.append(F.avg_pool2d(torch.from_numpy(m).float()[None], 4)[0] if len(m)
                     else torch.zeros(0, s // 4, s // 4))  # fmt: skip
    return {"images": images, "cate": torch.stack(cates), "pos": poss, "pos_gt": gts, "masks": masks}


class SoloTask(BaseTask):
    """SOLOv2 on the config's datasets (see the module docstring)."""

    def __init__(self, cfg: Any) -> None:
        from instaseg_ros.models.config import load_config_mapping

        super().__init__(cfg)
        check_fields(cfg.model, SoloConfig, "model")
        mapping = load_config_mapping(dict(cfg.model))
        init = cfg.init
        if init.weights:
            if init.reinit_heads == "always":
                base = {k: v for k, v in mapping.items() if k not in ("class_names", "classes")}
                model, mcfg = load_model(init.weights, base)
                model, mcfg = _with_new_classes(model, SoloConfig.from_dict({**mcfg.to_dict(), **mapping}))
            else:
                model, mcfg = load_model(init.weights, mapping, reinit_heads=init.reinit_heads == "auto")
        else:
            try:
                model, mcfg = load_model(None, mapping)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"model: {e}") from None
        self.module: SoloV2 = model
        self.model_cfg = mcfg
        self.loss_cfg = SoloLossConfig.from_dict(cfg.loss)

    def data_class_names(self) -> list[str]:
        return list(self.model_cfg.class_names)

    def collate(self, samples: list) -> dict[str, Any]:
        return solo_collate(samples, self.model_cfg)

    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        b = {"images": batch["images"].to(device), "cate": batch["cate"].to(device),
             "pos": [p.to(device) for p in batch["pos"]], "pos_gt": [g.to(device) for g in batch["pos_gt"]],
             "masks": [m.to(device) for m in batch["masks"]]}  # fmt: skip
        raw = module(b["images"])
        return solo_loss(raw, b, self.model_cfg, self.loss_cfg)

    def eval_segmenter(self, device: torch.device | str = "cpu") -> SoloSegmenter:
        """The current weights as a segmenter (sets the module to eval mode)."""
        return SoloSegmenter(self.module, self.model_cfg, device=str(device), params=self.eval_params())

    segmenter = eval_segmenter

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        save_checkpoint(path, StateView(half_state(self.module, fp16)), self.model_cfg, **extra)

    def load_inference(self, path: Path) -> None:
        sd, _ = read_checkpoint(path)
        self.module.load_state_dict({k: v.to(self.module.state_dict()[k].dtype) for k, v in sd.items()})


def _with_new_classes(model: SoloV2, cfg: SoloConfig) -> tuple[SoloV2, SoloConfig]:
    """Keep every weight but a freshly initialised category predictor for ``cfg.class_names``."""
    fresh = SoloV2(cfg)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("head.cate_pred.")}
    sd.update({k: v for k, v in fresh.state_dict().items() if k.startswith("head.cate_pred.")})
    fresh.load_state_dict(sd)
    return fresh, cfg

