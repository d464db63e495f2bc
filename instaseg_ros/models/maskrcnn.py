"""Mask R-CNN through torchvision's implementation, behind the ``Segmenter`` interface.

The network is torchvision's ``MaskRCNN`` (not rewritten here): ``maskrcnn_resnet50_fpn(weights=None,
weights_backbone=None, num_classes=C+1)`` for the ResNet-50 FPN of seed 004, or the same detector on a
smaller ResNet-18/34 (or ResNet-101) FPN built by ``resnet_fpn_backbone`` for CPU use. Nothing is
downloaded: every build starts from random weights and checkpoints are loaded by path.

Checkpoints (all read with ``torch.load(..., weights_only=True)``):

* torchvision format: a plain ``state_dict`` of a torchvision Mask R-CNN, or ``{"model": state_dict, ...}``
  (the torchvision reference scripts' layout); a ``module.`` prefix (DDP) is stripped. The class count
  (``roi_heads.box_predictor.cls_score.weight`` [C+1, 1024]) and the backbone (ResNet block type and
  depth) are read from the keys. Backbones saved with ``FrozenBatchNorm2d`` (no ``num_batches_tracked``)
  load into our ``BatchNorm2d`` backbone unchanged.
* our own: ``{"format": "instaseg_ros.maskrcnn", "format_version": 1, "config": {...}, "state_dict": ...}``
  written by :func:`save_checkpoint`, which also stores the class names and transform sizes.

Class indices: torchvision label 0 is the background, so ``Instances.class_ids = label - 1``.

Stage split (the project's ``preprocess -> forward_raw -> postprocess`` contract), as far as torchvision
allows:

* ``preprocess``: BGR uint8 -> RGB float [0, 1] -> torchvision's ``GeneralizedRCNNTransform``
  (normalisation, aspect-preserving resize to ``min_size``/``max_size``, zero padding to a multiple of 32)
  -> ``[B, 3, H', W']`` (not square: Mask R-CNN keeps the aspect ratio) + metas (original and resized sizes).
* ``forward_raw(tensor, image_sizes)``: backbone + RPN + RoI heads. torchvision's RoI heads already apply
  the per-class score threshold, per-class NMS and the top-k, so those three knobs of ``InferenceParams``
  are written into ``model.roi_heads`` before the call (``_segment`` does it; direct callers can use
  :meth:`MaskRcnnSegmenter.apply_params`). Output: per-image detections in resized-image pixels with
  28 x 28 mask probabilities.
* ``postprocess``: torchvision's box rescaling and mask pasting to the original image, then the class
  filter, optional cross-class NMS, the top-k and the mask threshold -> ``Instances``.

``model.eval()`` BatchNorm uses running statistics, so results are exactly those of torchvision's own
``model(images)`` for the same weights and transform sizes (tested).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from instaseg_ros.core.images import validate_images
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.registry import register_family

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "instaseg_ros.maskrcnn"
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
DEFAULT_CLASSES = ["person", "chair", "couch", "dining table", "toilet"]
# keys every torchvision Mask R-CNN state dict has, whatever the backbone
REQUIRED_KEYS = (
    "backbone.body.conv1.weight",
    "backbone.fpn.inner_blocks.0.0.weight",
    "rpn.head.cls_logits.weight",
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.mask_predictor.mask_fcn_logits.weight",
)
_CLS_KEY = "roi_heads.box_predictor.cls_score.weight"
_MASK_KEY = "roi_heads.mask_predictor.mask_fcn_logits.weight"


@dataclass
class MaskRcnnConfig:
    """Mask R-CNN settings.

    Attributes:
        class_names: [C] foreground classes (torchvision's ``num_classes`` is C + 1).
        backbone: "resnet50" (torchvision's ``maskrcnn_resnet50_fpn``), or "resnet18"/"resnet34"/
            "resnet101" FPN (``resnet_fpn_backbone``) - ResNet-18 is the CPU option.
        min_size, max_size: torchvision transform sizes (shorter side resized to ``min_size`` unless the
            longer would exceed ``max_size``).
        input_size: shortcut for the node's ``model.input_size``: sets ``min_size`` and
            ``max_size = round(input_size * 1333 / 800)`` (0 = use min_size/max_size).
        trainable_backbone_layers: 0..5 backbone stages left trainable when fine-tuning.
        rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test: RPN proposals at inference (torchvision:
            1000/1000; fewer is faster on CPU).
        rpn_batch_size_per_image, box_batch_size_per_image: sampled anchors / RoIs per image in training.
        pixel_mean, pixel_std: RGB normalisation in [0, 1] units (torchvision's ImageNet defaults).
    """

    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    backbone: str = "resnet50"
    min_size: int = 800
    max_size: int = 1333
    input_size: int = 0
    trainable_backbone_layers: int = 5
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        if not self.class_names:
            raise ValueError("MaskRcnnConfig: class_names is empty")
        if self.backbone not in BACKBONES:
            raise ValueError(f"MaskRcnnConfig: unknown backbone {self.backbone!r}; known: {list(BACKBONES)}")
        if self.input_size > 0:
            self.min_size = int(self.input_size)
            self.max_size = int(round(self.input_size * 1333 / 800))
        if self.min_size < 32 or self.max_size < self.min_size:
            raise ValueError(f"MaskRcnnConfig: need 32 <= min_size <= max_size, got {self.min_size}, "
                             f"{self.max_size}")  # fmt: skip
        if not 0 <= self.trainable_backbone_layers <= 5:
            raise ValueError(f"MaskRcnnConfig: trainable_backbone_layers must be in [0, 5], "
                             f"got {self.trainable_backbone_layers}")  # fmt: skip
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    @property
    def num_classes(self) -> int:
        """torchvision's class count (foreground + background)."""
        return len(self.class_names) + 1

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskRcnnConfig:
        """Build from a mapping (``classes`` accepted for ``class_names``); unknown keys raise."""
        d = dict(d)
        if "classes" in d:
            d["class_names"] = d.pop("classes")
        d.pop("inference", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown MaskRcnnConfig keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (YAML / ``torch.save(weights_only)`` safe)."""
        d = asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d


# ------------------------------------------------------------------------------------------ building
def build_model(cfg: MaskRcnnConfig) -> nn.Module:
    """A randomly initialised torchvision ``MaskRCNN`` for ``cfg`` (nothing is downloaded)."""
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    kw: dict[str, Any] = {
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "image_mean": list(cfg.pixel_mean),
        "image_std": list(cfg.pixel_std),
        "rpn_pre_nms_top_n_test": cfg.rpn_pre_nms_top_n_test,
        "rpn_post_nms_top_n_test": cfg.rpn_post_nms_top_n_test,
        "rpn_batch_size_per_image": cfg.rpn_batch_size_per_image,
        "box_batch_size_per_image": cfg.box_batch_size_per_image,
    }
    if cfg.backbone == "resnet50":
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=cfg.num_classes, **kw)
    else:
        backbone = resnet_fpn_backbone(
            backbone_name=cfg.backbone, weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5
        )
        model = MaskRCNN(backbone, num_classes=cfg.num_classes, **kw)
    freeze_backbone(model, cfg.trainable_backbone_layers)
    return model


def freeze_backbone(model: nn.Module, trainable_layers: int) -> None:
    """Leave only the last ``trainable_layers`` ResNet stages (5 = all, incl. the stem) trainable."""
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, p in model.backbone.body.named_parameters():
        p.requires_grad_(any(name.startswith(t) for t in train))


def replace_heads(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the box and mask predictors for new ones with ``num_classes`` (incl. background), as seed 004.

    Everything else (backbone, FPN, RPN, box head, mask head convolutions) keeps its weights.
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    rh = model.roi_heads
    rh.box_predictor = FastRCNNPredictor(rh.box_predictor.cls_score.in_features, num_classes)
    hidden = rh.mask_predictor.conv5_mask.out_channels
    rh.mask_predictor = MaskRCNNPredictor(rh.mask_predictor.conv5_mask.in_channels, hidden, num_classes)
    return model


def torchvision_coco_names() -> list[str]:
    """torchvision's 90 COCO category names (index = label - 1, "N/A" for unused ids)."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    return list(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"][1:])


# ----------------------------------------------------------------------------------------- checkpoints
def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Load a Mask R-CNN checkpoint -> (state_dict, stored config or None).

    Accepts our format, ``{"model": state_dict}`` and a plain state dict. Raises ``FileNotFoundError``
    or ``ValueError`` naming the file and the missing keys.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Mask R-CNN weights file {p} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file
        raise ValueError(f"{p}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{p}: expected a state dict (mapping), got {type(obj).__name__}")
    stored = None
    if "format" in obj:
        if obj["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"{p}: checkpoint format {obj['format']!r} is not a Mask R-CNN checkpoint "
                             f"({CHECKPOINT_FORMAT!r}); load it with its own family")  # fmt: skip
        sd, stored = obj.get("state_dict"), obj.get("config")
    elif isinstance(obj.get("model"), dict):
        sd = obj["model"]
    elif isinstance(obj.get("state_dict"), dict):
        sd = obj["state_dict"]
    else:
        sd = obj
    if not isinstance(sd, dict):
        raise ValueError(f"{p}: the checkpoint holds no state dict")
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{p}: not a state dict: entries {bad[:5]} are not tensors")
    missing = [k for k in REQUIRED_KEYS if k not in sd]
    if missing:
        some = sorted(sd)[:6]
        raise ValueError(
            f"{p}: not a torchvision Mask R-CNN state dict: missing keys {missing} (file has {len(sd)} "
            f"keys, e.g. {some})"
        )
    return sd, stored


def infer_config(sd: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, Any]:
    """Backbone and class count of a torchvision Mask R-CNN state dict (``class_names`` are placeholders)."""
    k = int(sd[_CLS_KEY].shape[0])
    if int(sd[_MASK_KEY].shape[0]) != k:
        raise ValueError(f"{source}: box predictor has {k} classes but mask predictor "
                         f"{int(sd[_MASK_KEY].shape[0])} ({_CLS_KEY} vs {_MASK_KEY})")  # fmt: skip
    bottleneck = "backbone.body.layer1.0.conv3.weight" in sd
    n3 = 1 + max(int(key.split(".")[3]) for key in sd if key.startswith("backbone.body.layer3."))
    table = {(True, 6): "resnet50", (True, 23): "resnet101", (False, 2): "resnet18", (False, 6): "resnet34"}
    backbone = table.get((bottleneck, n3))
    if backbone is None:
        raise ValueError(f"{source}: unsupported backbone ({'bottleneck' if bottleneck else 'basic'} blocks, "
                         f"{n3} blocks in layer3); supported: {list(BACKBONES)}")  # fmt: skip
    if k == 91:
        names = torchvision_coco_names()
    else:
        names = [f"class_{i}" for i in range(1, k)]
    return {"backbone": backbone, "class_names": names}


def load_state_dict_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Strict load with clear errors; only BatchNorm ``num_batches_tracked`` may be missing."""
    own = model.state_dict()
    shape_bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                 for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]  # fmt: skip
    if shape_bad:
        raise ValueError(f"{source}: tensor shapes do not match the model: {shape_bad[:5]}")
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        raise ValueError(f"{source}: state dict does not match the Mask R-CNN model: missing {missing[:6]} "
                         f"({len(missing)}), unexpected {unexpected[:6]} ({len(unexpected)})")  # fmt: skip
    model.load_state_dict(sd, strict=False)


def save_checkpoint(path: str | Path, model: nn.Module, cfg: MaskRcnnConfig, **extra: Any) -> None:
    """Our checkpoint: {format, format_version, config, state_dict, **extra} (``extra``: plain values)."""
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": 1, "config": cfg.to_dict(),
                "state_dict": model.state_dict(), **extra}, str(path))  # fmt: skip


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
    from instaseg_ros.models.yolact import load_config_mapping

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


# ------------------------------------------------------------------------------------------- segmenter
def _resolve_params(params: InferenceParams | dict[str, Any] | None) -> InferenceParams:
    if params is None:
        return InferenceParams()
    return InferenceParams(**params) if isinstance(params, dict) else params


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
        super().__init__(_resolve_params(params))
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
        dev = torch.device(device)
        if precision == "fp16" and dev.type != "cuda":
            raise ValueError(f"precision fp16 needs a CUDA device, got device {device!r}")
        self.cfg = cfg
        self.class_names = list(cfg.class_names)
        self.device = str(dev)
        self.precision = precision
        self.model = model.to(dev).eval()
        self.apply_params(self.params)  # forward_raw called on its own uses the default params

    def apply_params(self, params: InferenceParams) -> None:
        """Write score threshold, NMS IoU and top-k into torchvision's RoI heads (used by ``forward_raw``)."""
        rh = self.model.roi_heads
        rh.score_thresh = float(params.score_threshold)
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
        from torchvision.ops import nms

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
                cls = d["labels"] - 1
                keep = d["scores"] >= p.score_threshold
                if allowed is not None:
                    keep &= torch.isin(cls, torch.as_tensor(allowed, device=cls.device))
                idx = torch.nonzero(keep).flatten()
                if p.cross_class_nms and idx.numel() > 1:
                    idx = idx[nms(d["boxes"][idx], d["scores"][idx], p.nms_threshold)]
                idx = idx[: p.top_k]
                if idx.numel() == 0:
                    out.append(Instances.empty((h, w), self.class_names))
                    continue
                out.append(Instances(
                    boxes=d["boxes"][idx].cpu().numpy().astype(np.float32),
                    scores=d["scores"][idx].cpu().numpy().astype(np.float32),
                    class_ids=cls[idx].cpu().numpy().astype(np.int64),
                    masks=(d["masks"][idx, 0] > p.mask_threshold).cpu().numpy(),
                    image_size=(h, w),
                    class_names=self.class_names,
                ))  # fmt: skip
        return out

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        self.apply_params(params)
        x, metas = self.preprocess(images)
        raw = self.forward_raw(x, [m["resized"] for m in metas])
        return self.postprocess(raw, metas, params)


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
    from instaseg_ros.models.yolact import load_config_mapping

    mapping = load_config_mapping(config) if not isinstance(config, MaskRcnnConfig) else config.to_dict()
    if params is None and isinstance(mapping.get("inference"), dict):
        params = InferenceParams(**mapping["inference"])
    model, cfg = load_model(weights, mapping)
    return MaskRcnnSegmenter(model, cfg, device=device, precision=precision, params=params)


register_family("maskrcnn", build_maskrcnn)
