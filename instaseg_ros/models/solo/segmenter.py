"""SOLOv2 as a ``Segmenter`` (points NMS, maskness, THE filter with Matrix NMS) and building it from files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instaseg_ros.core.images import validate_images
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.config import load_config_mapping
from instaseg_ros.models.solo.config import CHECKPOINT_FORMAT, SoloConfig
from instaseg_ros.models.solo.network import SoloV2, cell_strides, dynamic_masks
from instaseg_ros.ops.filter import apply_class_filter, filter_detections
from instaseg_ros.weights.torch_io import read_our_checkpoint, save_our_checkpoint, strict_load


def points_nms(heat: torch.Tensor) -> torch.Tensor:
    """[C, S, S] probabilities -> the same with non-maxima of each 2x2 neighbourhood zeroed."""
    hmax = F.max_pool2d(heat[None], 2, stride=1, padding=1)[0][:, :-1, :-1]
    return heat * (hmax == heat)


class SoloSegmenter(Segmenter):
    """``Segmenter`` for SOLOv2: preprocess -> forward_raw -> postprocess.

    Args:
        model: a :class:`SoloV2` (moved to ``device``, eval).
        cfg: its config.
        device: torch device string; precision: "fp32" or "fp16" (CUDA only).
        params: default :class:`InferenceParams`.
    """

    family = "solo"

    def __init__(
        self,
        model: SoloV2,
        cfg: SoloConfig,
        device: str = "cpu",
        precision: str = "fp32",
        params: InferenceParams | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(params)
        dev = self._attach(model, cfg, device, precision)
        self._mean = torch.tensor(cfg.pixel_mean, device=dev).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg.pixel_std, device=dev).view(1, 3, 1, 1)
        self._strides = cell_strides(cfg, dev)

    # -- stage 1
    def preprocess(self, images) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """BGR uint8 images -> ([B, 3, S, S] normalised RGB, metas with ``size`` (H, W))."""
        return preprocess_images(validate_images(images), self.cfg, self._mean, self._std, self.dtype)

    # -- stage 2
    def forward_raw(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """[B, 3, S, S] -> {cate [B,G,C] logits, kernel [B,G,E], mask_feat [B,E,S/4,S/4]}."""
        with torch.inference_mode():
            return self.model(tensor.to(self.device, self.dtype))

    # -- stage 3
    def postprocess(
        self, raw: dict[str, torch.Tensor], metas: list[dict[str, Any]], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Raw outputs -> one ``Instances`` per image (original-image pixels)."""
        p = params or self.params
        if len(metas) != raw["cate"].shape[0]:
            raise ValueError(f"postprocess: {len(metas)} metas for a batch of {raw['cate'].shape[0]}")
        allowed = self.class_filter_ids(p)
        with torch.inference_mode():
            return [self._one(raw["cate"][b].float(), raw["kernel"][b].float(), raw["mask_feat"][b].float(),
                              metas[b]["size"], p, allowed) for b in range(len(metas))]  # fmt: skip

    def _one(self, cate, kernel, feat, size, p: InferenceParams, allowed) -> Instances:
        cfg = self.cfg
        h, w = size
        prob = torch.sigmoid(cate)  # [G, C]
        parts, off = [], 0
        for s in cfg.num_grids:
            parts.append(points_nms(prob[off : off + s * s].t().reshape(-1, s, s)).reshape(-1, s * s).t())
            off += s * s
        prob = torch.cat(parts, 0)
        prob = apply_class_filter(prob, allowed)
        cells, classes = torch.nonzero(prob > cfg.pre_nms_threshold, as_tuple=True)
        if cells.numel() == 0:
            return Instances.empty((h, w), self.class_names)
        scores = prob[cells, classes]
        mprob = torch.sigmoid(dynamic_masks(kernel[cells], feat))  # [n, h4, w4]
        seg = mprob > p.mask_threshold
        area = seg.flatten(1).sum(1).float()
        keep = area > self._strides[cells]
        if not bool(keep.any()):
            return Instances.empty((h, w), self.class_names)
        mprob, seg, area, scores, classes = mprob[keep], seg[keep], area[keep], scores[keep], classes[keep]
        maskness = (mprob * seg).flatten(1).sum(1) / area
        scores = scores * maskness
        idx, classes, det_scores = filter_detections(
            scores,
            p,
            None,
            masks=seg,
            classes=classes,
            method=cfg.nms,
            pre_nms_top_k=cfg.pre_nms_top_k,
            matrix_kernel=cfg.matrix_kernel,
            matrix_sigma=cfg.matrix_sigma,
        )
        if idx.numel() == 0:
            return Instances.empty((h, w), self.class_names)
        full = F.interpolate(mprob[idx][None], size=(h, w), mode="bilinear", align_corners=False)[0]
        masks = (full > p.mask_threshold).cpu().numpy()
        nonempty = masks.reshape(len(masks), -1).any(1)
        if not nonempty.any():
            return Instances.empty((h, w), self.class_names)
        masks = masks[nonempty]
        return Instances(
            boxes=masks_to_boxes(masks),
            scores=det_scores.cpu().numpy().astype(np.float32)[nonempty],
            class_ids=classes.cpu().numpy().astype(np.int64)[nonempty],
            masks=masks,
            image_size=(h, w),
            class_names=self.class_names,
        )


def preprocess_images(
    images: list[np.ndarray],
    cfg: SoloConfig,
    mean: torch.Tensor,
    std: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """BGR uint8 [H, W, 3] list -> ([B, 3, S, S] normalised RGB on ``mean.device``, metas (``size``))."""
    s = cfg.input_size
    out, metas = [], []
    for img in images:
        t = (
            torch.from_numpy(np.ascontiguousarray(img[..., ::-1]))
            .to(mean.device)
            .permute(2, 0, 1)[None]
            .float()
        )
        if t.shape[-2:] != (s, s):
            t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)
        out.append(t)
        metas.append({"size": (int(img.shape[0]), int(img.shape[1]))})
    x = torch.cat(out, 0)
    return ((x - mean) / std).to(dtype).contiguous(), metas


# ----------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, model: SoloV2, cfg: SoloConfig | None = None, **extra: Any) -> None:
    """Our checkpoint {format, format_version, config, state_dict, **extra} (``extra``: plain values)."""
    cfg = cfg or model.cfg
    save_our_checkpoint(path, CHECKPOINT_FORMAT, cfg.to_dict(), model.state_dict(), **extra)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (state_dict, config mapping); ``ValueError`` naming the file for anything else."""
    return read_our_checkpoint(path, CHECKPOINT_FORMAT, "SOLO")


def load_state_dict_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with errors naming the mismatching keys/shapes."""
    strict_load(model, sd, source, "SOLO")


def load_model(
    weights: str | Path | None = None,
    config: str | Path | dict[str, Any] | SoloConfig | None = None,
    reinit_heads: bool = False,
) -> tuple[SoloV2, SoloConfig]:
    """Build a SoloV2 from a checkpoint and/or a config (config keys override the stored ones).

    A config whose class count differs from the checkpoint's is an error unless ``reinit_heads``
    (then the category predictor is re-initialised and everything else loaded).
    """
    user = config.to_dict() if isinstance(config, SoloConfig) else load_config_mapping(config)
    user = {("class_names" if k == "classes" else k): v for k, v in user.items()}
    user.pop("inference", None)
    if weights is None:
        cfg = SoloConfig.from_dict(user)
        return SoloV2(cfg), cfg
    sd, stored = read_checkpoint(weights)
    merged = {**stored, **user}
    if "input_size" in user and "scale_ranges" not in user:
        merged["scale_ranges"] = None  # re-derive the ranges for the new size
    cfg = SoloConfig.from_dict(merged)
    model = SoloV2(cfg)
    n_file = int(sd["head.cate_pred.weight"].shape[0]) if "head.cate_pred.weight" in sd else -1
    if n_file != cfg.num_classes and reinit_heads:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.cate_pred.")}
        sd.update({k: v for k, v in model.state_dict().items() if k.startswith("head.cate_pred.")})
    elif n_file != cfg.num_classes:
        raise ValueError(f"{weights}: checkpoint has {n_file} classes (head.cate_pred.weight) but the config "
                         f"names {cfg.num_classes}: {cfg.class_names}")  # fmt: skip
    load_state_dict_into(model, sd, str(weights))
    return model, cfg


def build_solo(
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | dict[str, Any] | None = None,
    **_: Any,
) -> SoloSegmenter:
    """Registry builder: ``build_segmenter("solo", weights=..., config=...)``."""
    mapping = config.to_dict() if isinstance(config, SoloConfig) else load_config_mapping(config)
    if params is None and isinstance(mapping.get("inference"), dict):
        params = InferenceParams(**mapping["inference"])
    model, cfg = load_model(weights, mapping)
    return SoloSegmenter(model, cfg, device=device, precision=precision, params=params)
