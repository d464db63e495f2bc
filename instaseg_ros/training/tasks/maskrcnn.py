"""Mask R-CNN (torchvision) training task for :class:`~instaseg_ros.training.trainer.Trainer`.

Fine-tuning as seed 004 does it: start from a torchvision-format checkpoint (``init.weights``; e.g. a
COCO model saved with ``torch.save(model.state_dict())``), replace the box and mask predictors for the
config's class count (``init.reinit_heads: auto`` when the counts differ, ``always`` regardless), train
on a COCO export (Label Studio / CVAT) or the synthetic set with the albumentations pipeline of
``data.augment``. Without ``init.weights`` the network starts from random weights (nothing is
downloaded).

Config (``config/train/maskrcnn_*.yaml``)::

    task: maskrcnn
    model: {...}    # MaskRcnnConfig fields (class_names, backbone, min_size, max_size, ...)
    loss: {classifier: 1.0, box_reg: 1.0, mask: 1.0, objectness: 1.0, rpn_box_reg: 1.0}  # term weights

Batches are torchvision's: a list of RGB float [3, H, W] images in [0, 1] and targets with 1-based
labels; torchvision's transform resizes and normalises inside the model. Crowd instances and degenerate
boxes (width or height < 1 px) are left out of the targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.models.maskrcnn import (
    MaskRcnnConfig,
    MaskRcnnSegmenter,
    build_model,
    load_model,
    read_checkpoint,
    replace_heads,
    save_checkpoint,
)
from instaseg_ros.training.config import ConfigError, check_fields
from instaseg_ros.training.tasks.base import BaseTask, StateView, half_state

LOSS_TERMS = ("classifier", "box_reg", "mask", "objectness", "rpn_box_reg")


def maskrcnn_collate(samples: list) -> dict[str, Any]:
    """(image BGR [H,W,3] uint8, target) samples -> {"images": [3,H,W] RGB float list, "targets": [...]}."""
    images, targets = [], []
    for sample in samples:
        if sample is None:
            continue
        im, t = sample
        images.append(torch.from_numpy(np.ascontiguousarray(im[..., ::-1])).permute(2, 0, 1).float() / 255.0)
        boxes = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
        crowd = np.asarray(t.get("iscrowd", np.zeros(len(boxes))), bool)
        keep = ~crowd & (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        masks = np.asarray(t["masks"], np.uint8).reshape(-1, *im.shape[:2])[keep]
        targets.append({
            "boxes": torch.from_numpy(boxes[keep]),
            "labels": torch.from_numpy(np.asarray(t["labels"], np.int64)[keep] + 1),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
        })  # fmt: skip
    return {"images": images, "targets": targets}


class MaskRcnnTask(BaseTask):
    """torchvision Mask R-CNN on the config's datasets (see the module docstring)."""

    def __init__(self, cfg: Any) -> None:
        from instaseg_ros.models.config import load_config_mapping

        super().__init__(cfg)
        check_fields(cfg.model, MaskRcnnConfig, "model")
        mapping = load_config_mapping(dict(cfg.model))
        mapping = {("class_names" if k == "classes" else k): v for k, v in mapping.items()}
        mapping.pop("inference", None)
        init = cfg.init
        if init.weights:
            if init.reinit_heads == "always":
                base = {k: v for k, v in mapping.items() if k != "class_names"}
                model, mcfg = load_model(init.weights, base)
                mcfg = MaskRcnnConfig.from_dict({**mcfg.to_dict(), **mapping})
                replace_heads(model, mcfg.num_classes)
            else:
                model, mcfg = load_model(init.weights, mapping, reinit_heads=init.reinit_heads == "auto")
        else:
            try:
                mcfg = MaskRcnnConfig.from_dict(mapping)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"model: {e}") from None
            model = build_model(mcfg)
        self.module: nn.Module = model
        self.model_cfg = mcfg
        loss = dict(cfg.loss or {})
        unknown = sorted(set(loss) - set(LOSS_TERMS))
        if unknown:
            raise ConfigError(f"loss: unknown Mask R-CNN loss terms {unknown}; known: {list(LOSS_TERMS)}")
        self.weights = {k: float(loss.get(k, 1.0)) for k in LOSS_TERMS}

    def data_class_names(self) -> list[str]:
        return list(self.model_cfg.class_names)

    def collate(self, samples: list) -> dict[str, Any]:
        return maskrcnn_collate(samples)

    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        images = [im.to(device) for im in batch["images"]]
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        module.train()
        raw = module(images, targets)
        out = {k[len("loss_") :]: v * self.weights[k[len("loss_") :]] for k, v in raw.items()}
        total = sum(out.values())
        return {"total": total, **{k: v.detach() for k, v in out.items()}}

    def eval_segmenter(self, device: torch.device | str = "cpu") -> MaskRcnnSegmenter:
        """The current weights as a segmenter (sets the module to eval mode)."""
        return MaskRcnnSegmenter(self.module, self.model_cfg, device=str(device), params=self.eval_params())

    segmenter = eval_segmenter

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        save_checkpoint(path, StateView(half_state(self.module, fp16)), self.model_cfg, **extra)

    def load_inference(self, path: Path) -> None:
        sd, _ = read_checkpoint(path)
        own = self.module.state_dict()
        self.module.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=False)

