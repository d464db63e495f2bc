"""YOLACT-SE training task: data -> YOLACT loss (+ contextual loss) -> COCO validation.

Training images go through the albumentations pipeline (:mod:`instaseg_ros.data.augment`),
which also resizes them to the square network input, and are normalised by the segmenter's own
``preprocess`` (the exact inference transform). Validation runs the real
:class:`~instaseg_ros.models.yolact.YolactSegmenter` on the original images and scores it with
:func:`~instaseg_ros.evaluation.coco_eval.evaluate_coco`.

Fine-tuning (``init.weights``): a checkpoint of ours or an official YOLACT ``.pth``. The
architecture (backbone, FPN width, prototypes, anchors) comes from the checkpoint unless the
config's ``model`` section sets it; layers whose shapes differ (the class-dependent
``prediction_layers.0.conf_layer`` and ``semantic_seg_conv`` for another class count) keep their
fresh initialisation, everything else is loaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.training.config import ConfigError, ExperimentConfig, check_fields
from instaseg_ros.training.contextual import contextual_loss, instance_id_map
from instaseg_ros.training.losses import YolactLossConfig, yolact_loss
from instaseg_ros.training.tasks.base import BaseTask, write_atomic

log = logging.getLogger(__name__)

#: layers whose shape depends on the class count
CLASS_DEPENDENT_PREFIXES = ("prediction_layers.0.conf_layer.", "semantic_seg_conv.")
#: architecture keys taken from a fine-tuning checkpoint unless the config sets them
ARCH_KEYS = (
    "backbone", "num_prototypes", "fpn_channels", "fpn_num_downsample", "anchor_scales",
    "anchor_aspect_ratios", "square_anchors", "mean", "std", "input_size", "attention_reduction",
    "dcn_layers", "dcn_interval", "mask_rescoring", "maskiou_channels",  # YOLACT++ files keep their design
)


@dataclass
class ContextualConfig:
    """The optional contextual loss (seed 000), see :mod:`instaseg_ros.training.contextual`.

    Attributes:
        weight: weight of the term in the total loss (0 = off).
        dim: embedding size (``YolactConfig.embedding_dim``).
        sigma: Gaussian kernel width on cosine distance.
        adjacency_weight: weight of the adjacent-pixel cosine term.
        max_pixels: pixels sampled per image for the discrimination term.
    """

    weight: float = 0.0
    dim: int = 16
    sigma: float = 0.5
    adjacency_weight: float = 1.0
    max_pixels: int = 512


def split_loss_config(d: dict[str, Any]) -> tuple[YolactLossConfig, ContextualConfig]:
    """``loss:`` mapping -> (YOLACT loss config, contextual config under ``contextual:``)."""
    d = dict(d or {})
    ctx = d.pop("contextual", None) or {}
    known = {f.name for f in fields(YolactLossConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"loss: unknown keys {unknown}; known: {sorted(known | {'contextual'})}")
    cknown = {f.name for f in fields(ContextualConfig)}
    cunknown = sorted(set(ctx) - cknown)
    if cunknown:
        raise ConfigError(f"loss.contextual: unknown keys {cunknown}; known: {sorted(cknown)}")
    if "variances" in d:
        d["variances"] = tuple(d["variances"])
    return YolactLossConfig(**d), ContextualConfig(**ctx)


def load_pretrained(model: nn.Module, state_dict: dict[str, Tensor], mode: str = "auto",
                    source: str = "checkpoint") -> dict[str, list[str]]:
    """Load ``state_dict`` into ``model`` for fine-tuning.

    ``mode``: "auto" keeps the fresh initialisation of layers whose shape differs, "always"
    also re-initialises the class-dependent layers when shapes agree, "never" raises on any
    shape difference. Returns ``{"loaded", "reinitialised", "missing", "ignored"}`` key lists.
    """
    own = model.state_dict()
    out: dict[str, list[str]] = {"loaded": [], "reinitialised": [], "missing": [], "ignored": []}
    keep: dict[str, Tensor] = {}
    for k, v in state_dict.items():
        if k not in own:
            out["ignored"].append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            if mode == "never":
                raise ValueError(
                    f"{source}: {k} has shape {tuple(v.shape)}, the model needs {tuple(own[k].shape)} "
                    "(set init.reinit_heads: auto to re-initialise such layers)"
                )
            out["reinitialised"].append(k)
        elif mode == "always" and k.startswith(CLASS_DEPENDENT_PREFIXES):
            out["reinitialised"].append(k)
        else:
            keep[k] = v
            out["loaded"].append(k)
    out["missing"] = [k for k in own if k not in keep and k not in out["reinitialised"]
                      and not k.endswith("num_batches_tracked")]
    model.load_state_dict(keep, strict=False)
    bad = [k for k in out["reinitialised"] if not k.startswith(CLASS_DEPENDENT_PREFIXES)]
    if bad:
        log.warning("%s: re-initialised non-head layers (shape mismatch): %s", source, bad[:8])
    log.info("%s: loaded %d tensors, re-initialised %s, missing %d, ignored %d", source, len(out["loaded"]),
             out["reinitialised"], len(out["missing"]), len(out["ignored"]))
    return out


class YolactTask(BaseTask):
    """YOLACT-SE on a training config (see :mod:`instaseg_ros.training.config`).

    ``data.multi_scale`` (e.g. [224, 256, 288, 320]): each batch is resized to a size drawn from the
    list by ``(seed, iteration)`` (reproducible, nothing to store on resume) and runs through the
    network with the priors of that size (anchors keep their pixel sizes); augmentation resizes to
    the largest size first. Validation and checkpoints use ``model.input_size``.
    """

    supports_multi_scale = True

    def __init__(self, cfg: ExperimentConfig) -> None:
        from instaseg_ros.models.yolact import YolactConfig, YolactSE, YolactSegmenter
        from instaseg_ros.weights.yolact_checkpoint import infer_config_from_state_dict, read_checkpoint

        super().__init__(cfg)
        check_fields(cfg.model, YolactConfig, "model")
        self.loss_cfg, self.ctx_cfg = split_loss_config(cfg.loss)
        user = dict(cfg.model)
        user.pop("family", None)
        if self.ctx_cfg.weight > 0:
            user.setdefault("embedding_dim", self.ctx_cfg.dim)
        self.init_report: dict[str, list[str]] = {}
        if not user.get("class_names"):  # class names: model config, else the training data
            user["class_names"] = self.source_class_names()
        user.setdefault("num_classes", len(user["class_names"]))
        pre_sd = None
        if cfg.init.weights:
            pre_sd, stored = read_checkpoint(cfg.init.weights)
            base = stored if stored is not None else infer_config_from_state_dict(pre_sd, cfg.init.weights)
            if stored is None and "fpn.lat_layers.0.weight" in pre_sd:
                base.setdefault("fpn_channels", int(pre_sd["fpn.lat_layers.0.weight"].shape[0]))
            for k in ARCH_KEYS:
                if k in base and k not in user:
                    user[k] = base[k]
            if stored is None and "input_size" in cfg.model and "anchor_scales" not in cfg.model:
                user["anchor_scales"] = None  # official anchors rescaled to the new input size
        try:
            self.model_cfg = YolactConfig.from_dict(user)
        except ValueError as e:
            raise ConfigError(f"model: {e}") from None
        self.module = YolactSE(self.model_cfg)
        if pre_sd is None and cfg.init.proto_bias is not None:
            with torch.no_grad():
                self.module.proto_net[-1].bias.fill_(float(cfg.init.proto_bias))
        if pre_sd is not None:
            self.init_report = load_pretrained(
                self.module, pre_sd, cfg.init.reinit_heads, str(cfg.init.weights)
            )
        self.segmenter = YolactSegmenter(self.module, self.model_cfg, device="cpu")
        self.module.train()
        self._gen = torch.Generator().manual_seed(cfg.seed)
        self.rngs["loss"] = self._gen
        self._warned_dead = False
        self._iteration = 0
        self._priors: dict[int, Tensor] = {}
        if cfg.data.multi_scale and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("data.multi_scale: not supported with torchrun (DDP); remove it")

    # ------------------------------------------------------------------ data
    def data_class_names(self) -> list[str]:
        return list(self.model_cfg.class_names)

    def augment_size(self) -> tuple[int, int]:
        """Training images are resized to the square network input by the augmentation (the largest
        of ``data.multi_scale`` when set)."""
        s = max([self.model_cfg.input_size, *self.cfg.data.multi_scale]) if self.cfg.data.multi_scale \
            else self.model_cfg.input_size
        return (s, s)

    def set_iteration(self, it: int) -> None:
        """The trainer's iteration (draws the multi-scale size of the batch)."""
        self._iteration = int(it)

    def input_side_for(self, it: int) -> int:
        """Input side of iteration ``it``: ``model.input_size``, or a size of ``data.multi_scale``
        drawn from ``(seed, it)``."""
        sizes = self.cfg.data.multi_scale
        if not sizes:
            return self.model_cfg.input_size
        return int(sizes[int(np.random.default_rng([self.cfg.seed, it]).integers(len(sizes)))])

    def _forward(self, module: nn.Module, x: Tensor) -> dict[str, Any]:
        """``module(x)``, or for another input side than ``model.input_size`` the same stages with
        the priors of that side."""
        s = x.shape[-1]
        if s == self.model_cfg.input_size:
            return module(x)
        from instaseg_ros.models.yolact.network import feature_sizes, make_priors

        net = getattr(module, "module", module)
        if s not in self._priors:
            c = self.model_cfg
            self._priors[s] = make_priors(feature_sizes(s, 3 + c.fpn_num_downsample), c.anchor_scales,
                                          c.anchor_aspect_ratios, s, c.square_anchors)
        feats = net.backbone(x)
        out = net.heads(net.fpn([feats[i] for i in net.selected_layers]))
        out["priors"] = self._priors[s].to(x.device)
        return out

    def collate(self, samples: list) -> dict[str, Any]:
        """Samples (already ``S x S``) -> ``{"images": [B, 3, S, S] normalised, "targets": [...]}``."""
        samples = [s for s in samples if s is not None]
        images = [s[0] for s in samples]
        x, _ = self.segmenter.preprocess(images)
        targets = []
        for img, t in samples:
            h, w = img.shape[:2]
            boxes = torch.as_tensor(np.asarray(t["boxes"], np.float32)).reshape(-1, 4)
            scale = torch.tensor([w, h, w, h], dtype=torch.float32)
            rel = boxes / scale
            ok = (rel[:, 2] > rel[:, 0]) & (rel[:, 3] > rel[:, 1])
            targets.append({
                "boxes": rel[ok],
                "labels": torch.as_tensor(np.asarray(t["labels"], np.int64))[ok],
                "masks": torch.as_tensor(np.asarray(t["masks"], np.uint8))[ok],
                "iscrowd": torch.as_tensor(np.asarray(t.get("iscrowd", np.zeros(len(ok))), np.uint8))[ok],
            })
        return {"images": x, "targets": targets}

    # ------------------------------------------------------------------ loss
    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        x = batch["images"].to(device, non_blocking=True)
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        side = self.input_side_for(self._iteration)
        if x.shape[-1] != side or x.shape[-2] != side:  # boxes are relative; masks follow in the loss
            x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        out = self._forward(module, x)
        if not self._warned_dead and not bool((out["proto"] > 0).any()):
            self._warned_dead = True
            log.warning("every prototype is zero on this batch (dead ReLU prototypes): the mask loss "
                        "has no gradient; lower the learning rate of proto_net (optim.lr_mult) or set "
                        "init.proto_bias")
        net = getattr(module, "module", module)  # DDP wraps the model
        maskiou = getattr(net, "maskiou_net", None)
        terms = yolact_loss(out, targets, self.loss_cfg, generator=self._gen, maskiou_net=maskiou)
        if self.ctx_cfg.weight > 0:
            emb = out["embed"].float()
            size = tuple(emb.shape[-2:])
            ids = torch.stack([instance_id_map(t["masks"], size, t["iscrowd"]) for t in targets])
            ctx = contextual_loss(emb, ids, self.ctx_cfg.sigma, self.ctx_cfg.adjacency_weight,
                                  self.ctx_cfg.max_pixels, self._gen)
            terms["context"] = self.ctx_cfg.weight * ctx["total"]
            terms["total"] = terms["total"] + terms["context"]
        return terms

    # ------------------------------------------------------------------ validation / checkpoints
    def eval_segmenter(self, device: torch.device | str):
        """The task's segmenter (the one ``collate`` normalises with), moved to ``device``."""
        seg = self.segmenter
        seg.device = str(device)
        seg._scale = seg._scale.to(device)  # noqa: SLF001 - follow the module's device
        seg._shift = seg._shift.to(device)  # noqa: SLF001
        self.module.eval()
        return seg

    def inference_state(self) -> tuple[dict[str, Tensor], Any]:
        """State dict and config without the training-only heads (semantic, embedding)."""
        from instaseg_ros.models.yolact import YolactConfig

        d = self.model_cfg.to_dict()
        d["semantic_head"] = False
        d["embedding_dim"] = 0
        sd = {k: v for k, v in self.module.state_dict().items()
              if not k.startswith(("semantic_seg_conv.", "embedding_head."))}
        return sd, YolactConfig.from_dict(d)

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        """A checkpoint that ``load_model("yolact", path)`` loads (fp16 tensors when
        ``fp16``; they load back into the fp32 model)."""
        from instaseg_ros.models.yolact import YolactSE, save_checkpoint

        sd, cfg = self.inference_state()
        model = YolactSE(cfg)
        model.load_state_dict(sd)
        if fp16:
            model.half()
        extra = {"training": {"iteration": int(extra.pop("iteration", -1)), **extra}}
        write_atomic(path, lambda tmp: save_checkpoint(tmp, model, cfg, **extra))

    def load_inference(self, path: Path) -> None:
        from instaseg_ros.weights.yolact_checkpoint import read_checkpoint

        sd, _ = read_checkpoint(path)
        missing, unexpected = self.module.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False
        )
        if unexpected:
            raise ValueError(f"{path}: unexpected keys {unexpected[:5]}")
