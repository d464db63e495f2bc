"""Mask R-CNN as a ``Segmenter`` (stage split: see the package docstring) and building it from files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from instaseg_ros.core.images import validate_images
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.config import load_config_mapping
from instaseg_ros.models.maskrcnn.config import CHECKPOINT_FORMAT, MaskRcnnConfig
from instaseg_ros.models.maskrcnn.network import build_model, replace_heads
from instaseg_ros.ops.filter import filter_detections, strictly_below
from instaseg_ros.weights.torch_io import save_our_checkpoint, strict_load
from instaseg_ros.weights.torchvision_maskrcnn import _CLS_KEY, infer_config, read_checkpoint

log = logging.getLogger(__name__)


def load_state_dict_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Strict load with clear errors; only BatchNorm ``num_batches_tracked`` may be missing."""
    strict_load(model, sd, source, "Mask R-CNN", may_miss=lambda k: k.endswith("num_batches_tracked"))


def save_checkpoint(path: str | Path, model: nn.Module, cfg: MaskRcnnConfig, **extra: Any) -> None:
    """Our checkpoint: {format, format_version, config, state_dict, **extra} (``extra``: plain values)."""
    save_our_checkpoint(path, CHECKPOINT_FORMAT, cfg.to_dict(), model.state_dict(), **extra)


def load_model(
    weights: str | Path | None = None,
    config: str | Path | dict[str, Any] | MaskRcnnConfig | None = None,
    reinit_heads: bool = False,
) -> tuple[nn.Module, MaskRcnnConfig]:
    """Build (and load) a Mask R-CNN; config keys override the checkpoint's stored/inferred ones.

    Args:
        weights: checkpoint path (torchvision format or ours), or None for random weights.
        config: YAML path, mapping or :class:`MaskRcnnConfig`.
        reinit_heads: when the config's class count differs from the checkpoint's, load everything else
            and replace the predictors (fine-tuning); without it a mismatch is an error.
    """
    user = config.to_dict() if isinstance(config, MaskRcnnConfig) else load_config_mapping(config)
    user = {("class_names" if k == "classes" else k): v for k, v in user.items()}
    user.pop("inference", None)
    if weights is None:
        cfg = MaskRcnnConfig.from_dict(user)
        return build_model(cfg), cfg
    sd, stored = read_checkpoint(weights)
    base = stored if stored is not None else infer_config(sd, str(weights))
    file_cfg = MaskRcnnConfig.from_dict({**base, **{k: v for k, v in user.items() if k != "class_names"}})
    k_file = int(sd[_CLS_KEY].shape[0])
    if file_cfg.num_classes != k_file:
        raise ValueError(f"{weights}: stored config names {len(file_cfg.class_names)} classes but "
                         f"{_CLS_KEY} has {k_file} rows (C + 1)")  # fmt: skip
    if "backbone" in user and user["backbone"] != base["backbone"]:
        raise ValueError(f"{weights}: the checkpoint has a {base['backbone']} backbone, config asks for "
                         f"{user['backbone']!r}")  # fmt: skip
    model = build_model(file_cfg)
    load_state_dict_into(model, sd, str(weights))
    if "class_names" not in user:
        return model, file_cfg
    cfg = MaskRcnnConfig.from_dict({**file_cfg.to_dict(), **user})
    if cfg.num_classes != k_file:
        if not reinit_heads:
            raise ValueError(
                f"{weights}: checkpoint has {k_file - 1} classes "
                f"({_CLS_KEY} {tuple(sd[_CLS_KEY].shape)}) but "
                f"the config names {len(cfg.class_names)}: {cfg.class_names}; fine-tune with re-initialised "
                "heads (training init.reinit_heads) or drop class_names from the config"
            )
        replace_heads(model, cfg.num_classes)
    return model, cfg


class MaskRcnnSegmenter(Segmenter):
    """``Segmenter`` around a torchvision Mask R-CNN (see the module docstring for the stage split).

    Args:
        model: a torchvision ``MaskRCNN`` (moved to ``device``, set to eval).
        cfg: its :class:`MaskRcnnConfig`.
        device: torch device string.
        precision: "fp32", or "fp16" (CUDA only; runs under autocast, post-processing in fp32).
        params: default :class:`InferenceParams`.
    """

    family = "maskrcnn"

    def __init__(
        self,
        model: nn.Module,
        cfg: MaskRcnnConfig,
        device: str = "cpu",
        precision: str = "fp32",
        params: InferenceParams | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(params)
        self._attach(model, cfg, device, precision, cast_fp16=False)  # fp16 runs under autocast
        self.apply_params(self.params)  # forward_raw called on its own uses the default params

    def apply_params(self, params: InferenceParams) -> None:
        """Write score threshold, NMS IoU and top-k into torchvision's RoI heads (used by ``forward_raw``)."""
        rh = self.model.roi_heads
        rh.score_thresh = strictly_below(params.score_threshold)  # torchvision keeps score > thresh
        rh.nms_thresh = float(params.nms_threshold)
        rh.detections_per_img = int(params.top_k)

    # -- stage 1
    def preprocess(self, images) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """BGR uint8 images -> ([B, 3, H', W'] normalised, resized, padded RGB; metas: size, resized)."""
        batch = validate_images(images)
        dev = torch.device(self.device)
        tensors = [
            torch.from_numpy(np.ascontiguousarray(img[..., ::-1]))
            .to(dev)
            .permute(2, 0, 1)
            .float()
            .div_(255.0)
            for img in batch
        ]
        with torch.inference_mode():
            image_list, _ = self.model.transform(tensors)
        metas = [{"size": tuple(int(v) for v in img.shape[:2]), "resized": tuple(int(v) for v in rs)}
                 for img, rs in zip(batch, image_list.image_sizes)]  # fmt: skip
        return image_list.tensors, metas

    # -- stage 2
    def forward_raw(
        self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]] | None = None
    ) -> dict[str, Any]:
        """Backbone + RPN + RoI heads: [B, 3, H', W'] -> ``{"detections": [dict(boxes, labels, scores,
        masks [N,1,28,28] probs)], "image_sizes": [(h, w)]}`` in resized-image pixels.

        ``image_sizes`` are the un-padded sizes from ``preprocess`` metas (default: the full tensor).
        """
        from torchvision.models.detection.image_list import ImageList

        x = tensor.to(self.device)
        sizes = list(image_sizes) if image_sizes is not None else [tuple(x.shape[-2:])] * x.shape[0]
        if len(sizes) != x.shape[0]:
            raise ValueError(f"forward_raw: {len(sizes)} image_sizes for a batch of {x.shape[0]}")
        m = self.model
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.precision == "fp16"):
            features = m.backbone(x)
            proposals, _ = m.rpn(ImageList(x, sizes), features)
            detections, _ = m.roi_heads(features, proposals, sizes)
        return {"detections": detections, "image_sizes": sizes}

    # -- stage 3
    def postprocess(
        self, raw: dict[str, Any], metas: list[dict[str, Any]], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Rescale boxes, paste masks into the original images, filter -> one ``Instances`` per image."""
        p = params or self.params
        dets = [
            {k: (v.float() if v.is_floating_point() else v) for k, v in d.items()} for d in raw["detections"]
        ]
        if len(metas) != len(dets):
            raise ValueError(f"postprocess: {len(metas)} metas for {len(dets)} raw outputs")
        allowed = self.class_filter_ids(p)
        out = []
        with torch.inference_mode():
            dets = self.model.transform.postprocess(dets, raw["image_sizes"], [m["size"] for m in metas])
            for d, meta in zip(dets, metas):
                h, w = meta["size"]
                idx, cls, scores = filter_detections(
                    d["scores"], p, allowed, boxes=d["boxes"], classes=d["labels"] - 1, method="none"
                )
                if idx.numel() == 0:
                    out.append(Instances.empty((h, w), self.class_names))
                    continue
                out.append(Instances(
                    boxes=d["boxes"][idx].cpu().numpy().astype(np.float32),
                    scores=scores.cpu().numpy().astype(np.float32),
                    class_ids=cls.cpu().numpy().astype(np.int64),
                    masks=(d["masks"][idx, 0] > p.mask_threshold).cpu().numpy(),
                    image_size=(h, w),
                    class_names=self.class_names,
                ))  # fmt: skip
        return out

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        self.apply_params(params)
        # torchvision's resize would shrink a side of a very elongated image to 0 px: no instances there
        usable = [i for i, im in enumerate(images) if self._resized_min_side(im.shape[:2]) >= 1]
        out = [Instances.empty(im.shape[:2], self.class_names) for im in images]
        if usable:
            x, metas = self.preprocess([images[i] for i in usable])
            raw = self.forward_raw(x, [m["resized"] for m in metas])
            for i, r in zip(usable, self.postprocess(raw, metas, params)):
                out[i] = r
        return out

    def _resized_min_side(self, size: tuple[int, int]) -> float:
        """The shorter side after torchvision's resize (scale = min(min_size / short, max_size / long))."""
        short, long = min(size), max(size)
        scale = min(self.cfg.min_size / short, self.cfg.max_size / long)
        return short * scale


def build_maskrcnn(
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | dict[str, Any] | None = None,
    **_: Any,
) -> MaskRcnnSegmenter:
    """Registry builder: ``build_segmenter("maskrcnn", weights=..., config=...)``.

    Inference defaults come from ``params``, else from the config's ``inference:`` mapping.
    """
    mapping = load_config_mapping(config) if not isinstance(config, MaskRcnnConfig) else config.to_dict()
    if params is None and isinstance(mapping.get("inference"), dict):
        params = InferenceParams(**mapping["inference"])
    model, cfg = load_model(weights, mapping)
    return MaskRcnnSegmenter(model, cfg, device=device, precision=precision, params=params)
