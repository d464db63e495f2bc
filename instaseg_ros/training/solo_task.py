"""SOLOv2 training task for :class:`~instaseg_ros.training.trainer.Trainer`.

Config (``config/train/solo_*.yaml``)::

    task: solo
    model: {...}       # SoloConfig fields (class_names, backbone, input_size, num_grids, ...)
    loss: {focal_alpha: 0.25, focal_gamma: 2.0, cate_weight: 1.0, dice_weight: 3.0}

Batches: images resized to the square ``input_size`` and normalised like the segmenter's
``preprocess``; grid targets from :func:`~instaseg_ros.models.solo.assign_targets`; mask targets are
the instance masks average-pooled to the stride-4 mask-feature resolution (soft targets for dice).

Also provides :func:`segmenter_metrics` (COCO box/mask AP of any ``Segmenter`` on a dataset), shared by
the Mask R-CNN task and the family comparison benchmark.
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

from instaseg_ros.core.segmenter import InferenceParams, Segmenter
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
from instaseg_ros.training.trainer import TrainTask


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
            raise ValueError(
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


def segmenter_metrics(
    seg: Segmenter, dataset: Any, max_images: int = 0, params: InferenceParams | None = None
) -> dict[str, Any]:
    """COCO box/mask AP (``evaluate_coco`` layout) of ``seg`` on ``dataset`` (first ``max_images``)."""
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    n = len(dataset) if not max_images else min(max_images, len(dataset))
    gt = dataset.coco_gt()
    img_ids = [im["id"] for im in gt["images"]][:n]
    cat_ids = getattr(dataset, "category_ids", None)
    results: list[dict[str, Any]] = []
    for i in range(n):
        sample = dataset[i]
        if sample is None:
            continue
        image, target = sample
        inst = seg.segment([image], params)[0]
        results += instances_to_coco(inst, int(target["image_id"]), cat_ids)
    return evaluate_coco(gt, results, image_ids=img_ids)


class SoloTask(TrainTask):
    """SOLOv2 on the config's datasets (see the module docstring)."""

    def __init__(self, cfg: Any) -> None:
        from instaseg_ros.models.config import load_config_mapping

        self.cfg = cfg
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
            torch.manual_seed(cfg.seed)
            model, mcfg = load_model(None, mapping)
        self.module: SoloV2 = model
        self.model_cfg = mcfg
        self.loss_cfg = SoloLossConfig.from_dict(cfg.loss)
        self._train = self._val = None

    # -- data
    def train_dataset(self) -> Any:
        from instaseg_ros.data.augment import build_transform
        from instaseg_ros.training.datasets import build_dataset

        if self._train is None:
            aug = (
                build_transform(self.cfg.data.augment, train=True)
                if self.cfg.data.augment is not None
                else None
            )
            self._train = build_dataset(self.cfg.data.train, aug, self.model_cfg.class_names)
        return self._train

    def val_dataset(self) -> Any | None:
        from instaseg_ros.training.datasets import build_dataset

        if self.cfg.data.val is None:
            return None
        if self._val is None:
            self._val = build_dataset(self.cfg.data.val, None, self.model_cfg.class_names)
        return self._val

    def collate(self, samples: list) -> dict[str, Any]:
        return solo_collate(samples, self.model_cfg)

    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        b = {"images": batch["images"].to(device), "cate": batch["cate"].to(device),
             "pos": [p.to(device) for p in batch["pos"]], "pos_gt": [g.to(device) for g in batch["pos_gt"]],
             "masks": [m.to(device) for m in batch["masks"]]}  # fmt: skip
        raw = module(b["images"])
        return solo_loss(raw, b, self.model_cfg, self.loss_cfg)

    def segmenter(self, device: torch.device | str = "cpu") -> SoloSegmenter:
        """The current weights as a segmenter (sets the module to eval mode)."""
        params = InferenceParams(score_threshold=self.cfg.train.score_threshold, top_k=100)
        return SoloSegmenter(self.module, self.model_cfg, device=str(device), params=params)

    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        return segmenter_metrics(self.segmenter(device), dataset, max_images)

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        save_checkpoint(path, _maybe_half(self.module, fp16), self.model_cfg, **extra)

    def load_inference(self, path: Path) -> None:
        sd, _ = read_checkpoint(path)
        self.module.load_state_dict({k: v.to(self.module.state_dict()[k].dtype) for k, v in sd.items()})

    def data_reports(self) -> dict[str, Any]:
        from instaseg_ros.training.datasets import dataset_report

        out = {}
        for name, ds in (("train", self._train), ("val", self._val)):
            rep = dataset_report(ds) if ds is not None else None
            if rep:
                out[name] = rep
        return out


class _HalfView(nn.Module):
    """A state-dict-only view with floating tensors in fp16 (for ``save_fp16``)."""

    def __init__(self, sd: dict[str, Tensor]) -> None:
        super().__init__()
        self._sd = sd

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        return self._sd


def _maybe_half(module: nn.Module, fp16: bool) -> nn.Module:
    if not fp16:
        return module
    return _HalfView({k: (v.half() if v.is_floating_point() else v) for k, v in module.state_dict().items()})


def _with_new_classes(model: SoloV2, cfg: SoloConfig) -> tuple[SoloV2, SoloConfig]:
    """Keep every weight but a freshly initialised category predictor for ``cfg.class_names``."""
    fresh = SoloV2(cfg)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("head.cate_pred.")}
    sd.update({k: v for k, v in fresh.state_dict().items() if k.startswith("head.cate_pred.")})
    fresh.load_state_dict(sd)
    return fresh, cfg


def build_task(cfg: Any) -> SoloTask:
    """Task factory used by ``instaseg train`` for ``task: solo``."""
    return SoloTask(cfg)
