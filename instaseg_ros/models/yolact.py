"""YOLACT-SE: YOLACT with channel attention, state-dict compatible with the official checkpoints.

Architecture (Bolya et al., "YOLACT: Real-time Instance Segmentation", 2019):

* backbone (ResNet-18/34/50/101 or Darknet-53) with an optional :class:`ChannelAttention` block
  after every stage (keys ``backbone.attention.*``, identity at initialisation);
* FPN on C3-C5 plus two strided 3x3 convolutions -> P3..P7, 256 channels (``fpn.*``);
* prototype network on P3 -> ``num_prototypes`` ReLU prototypes at 2x P3 resolution (``proto_net.*``);
* one prediction head shared by all levels: boxes, class logits (index 0 = background) and tanh
  mask coefficients (``prediction_layers.0.*``);
* a 1x1 semantic-segmentation conv on P3 used only by the training loss (``semantic_seg_conv``).

``YolactSE.forward(x)`` returns a dict of raw tensors:

* ``loc`` [B, P, 4] encoded box offsets (see :func:`instaseg_ros.core.boxes.decode_boxes`),
* ``conf`` [B, P, C+1] class logits, index 0 = background,
* ``mask`` [B, P, K] tanh mask coefficients,
* ``priors`` [P, 4] (cx, cy, w, h) relative, a precomputed buffer,
* ``proto`` [B, h, w, K] prototypes after ReLU,

and in training mode additionally ``segm`` [B, C, h3, w3] (if ``semantic_head``), ``features``
(list of the five FPN maps P3..P7, [B, 256, hi, wi]) and, when ``cfg.embedding_dim > 0``,
``embed`` [B, embedding_dim, h3, w3] from a 1x1 conv on P3 (``embedding_head``), the hook for a
contextual/embedding loss.

Pre-processing follows the official ``FastBaseTransform``: bilinear resize (align_corners=False)
of the float BGR image to S x S, ``(x - mean) / std`` with BGR means/stds, then BGR -> RGB
(Darknet: ``x / 255``). Post-processing follows the official ``Detect`` + ``postprocess``:
softmax, confidence filter, Fast NMS, top-k, mask = sigmoid(proto @ coeffs), crop to the box
(padding 1 prototype pixel), bilinear upsampling to the original image, threshold.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instaseg_ros.core.boxes import crop_masks, decode_boxes, sanitize_coordinates
from instaseg_ros.core.images import validate_images
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.labels import COCO_CLASSES
from instaseg_ros.core.nms import cc_fast_nms, fast_nms
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.backbones import BACKBONES, build_backbone, selected_stages
from instaseg_ros.models.fuse import inference_copy
from instaseg_ros.models.registry import register_family

log = logging.getLogger(__name__)

# official YOLACT pixel statistics, BGR order
IMAGENET_MEAN_BGR = (103.94, 116.78, 123.68)
IMAGENET_STD_BGR = (57.38, 57.12, 58.40)
# anchor sizes (pixels) of the official 550 models for P3..P7; other input sizes scale them
BASE_ANCHOR_SCALES = (24, 48, 96, 192, 384)
CHECKPOINT_FORMAT = "instaseg_ros.yolact"


@dataclass
class YolactConfig:
    """Everything needed to rebuild a YOLACT-SE model (YAML <-> dataclass).

    Attributes:
        backbone: "resnet18" | "resnet34" | "resnet50" | "resnet101" | "darknet53".
        num_classes: foreground classes C (background not counted).
        class_names: C names; empty -> COCO names when C == 80, else "class_<i>".
        input_size: side S of the square network input.
        num_prototypes: K.
        attention: channel attention after every backbone stage.
        attention_reduction: attention bottleneck ratio.
        semantic_head: build ``semantic_seg_conv`` (training-only output ``segm``).
        embedding_dim: >0 adds ``embedding_head`` (training-only output ``embed``).
        fpn_channels: FPN width.
        fpn_num_downsample: extra strided levels after P5 (2 -> P6, P7).
        anchor_scales: anchor size in pixels per level (a number or a list per level); None ->
            ``int(s * input_size / 550)`` for s in 24, 48, 96, 192, 384, like the official im400/im700.
        anchor_aspect_ratios: width/height ratios (before the square-anchor rule).
        square_anchors: v1 behaviour of the official checkpoints: every anchor has h = w
            (the official "use_square_anchors" backward-compatibility bug). Keep True for them.
        mean, std: per-channel BGR pixel statistics; None -> official ResNet values (Darknet: 0, 255).
        nms_top_k: candidates per class entering Fast NMS.
        mask_crop_padding: prototype pixels added around a box when cropping masks.
    """

    backbone: str = "resnet50"
    num_classes: int = 80
    class_names: list[str] = field(default_factory=list)
    input_size: int = 550
    num_prototypes: int = 32
    attention: bool = True
    attention_reduction: int = 16
    semantic_head: bool = True
    embedding_dim: int = 0
    fpn_channels: int = 256
    fpn_num_downsample: int = 2
    anchor_scales: list[Any] | None = None
    anchor_aspect_ratios: list[float] = field(default_factory=lambda: [1.0, 0.5, 2.0])
    square_anchors: bool = True
    mean: list[float] | None = None
    std: list[float] | None = None
    nms_top_k: int = 200
    mask_crop_padding: float = 1.0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"YolactConfig.backbone: unknown {self.backbone!r}; known: {BACKBONES}")
        if self.num_classes < 1:
            raise ValueError(f"YolactConfig.num_classes must be >= 1, got {self.num_classes}")
        if not self.class_names:
            self.class_names = (
                list(COCO_CLASSES)
                if self.num_classes == 80
                else [f"class_{i}" for i in range(self.num_classes)]
            )
        self.class_names = [str(c) for c in self.class_names]
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"YolactConfig: {len(self.class_names)} class_names for num_classes={self.num_classes}"
            )
        if self.input_size < 32:
            raise ValueError(f"YolactConfig.input_size must be >= 32, got {self.input_size}")
        if self.anchor_scales is None:
            self.anchor_scales = [int(s * self.input_size / 550) for s in BASE_ANCHOR_SCALES]
        if len(self.anchor_scales) != 3 + self.fpn_num_downsample:
            raise ValueError(
                f"YolactConfig.anchor_scales needs {3 + self.fpn_num_downsample} levels, "
                f"got {len(self.anchor_scales)}"
            )
        darknet = self.backbone == "darknet53"
        if self.mean is None:
            self.mean = [0.0, 0.0, 0.0] if darknet else list(IMAGENET_MEAN_BGR)
        if self.std is None:
            self.std = [255.0, 255.0, 255.0] if darknet else list(IMAGENET_STD_BGR)
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("YolactConfig.mean and .std need 3 values (BGR)")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell and level."""
        s = self.anchor_scales[0]
        return len(self.anchor_aspect_ratios) * (len(s) if isinstance(s, (list, tuple)) else 1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> YolactConfig:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown YolactConfig keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> YolactConfig:
        """Load a YAML mapping (optionally nested under a top-level ``model:`` key)."""
        return cls.from_dict(load_config_mapping(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python mapping (YAML/JSON/torch.save(weights_only) safe)."""
        return asdict(self)


def load_config_mapping(config: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """A YAML path or a dict -> dict (``model:`` sub-mapping unwrapped, ``family`` dropped)."""
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        import yaml

        p = Path(config)
        if not p.is_file():
            raise FileNotFoundError(f"model config {p} does not exist")
        with open(p) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"model config {p}: expected a mapping, got {type(data).__name__}")
    elif isinstance(config, dict):
        data = dict(config)
    else:
        raise ValueError(f"config must be a YAML path or a dict, got {type(config).__name__}")
    if "model" in data and isinstance(data["model"], dict):
        data = dict(data["model"])
    data.pop("family", None)
    return data


# ----------------------------------------------------------------------------------------- priors
def feature_sizes(input_size: int, num_levels: int = 5) -> list[int]:
    """Side of P3..P(2+num_levels) for a square input: repeated ceil-halving (stride-2 convs/pools)."""
    s = input_size
    for _ in range(3):
        s = (s + 1) // 2
    out = []
    for _ in range(num_levels):
        out.append(s)
        s = (s + 1) // 2
    return out


def make_priors(
    sizes: list[int],
    scales: list[Any],
    aspect_ratios: list[float],
    input_size: int,
    square: bool = True,
) -> torch.Tensor:
    """Anchor boxes of all levels in head output order.

    Order per level: row, column, scale, aspect ratio (matches the head's permute/reshape).
    Width = scale * sqrt(ar) / S, height = scale / sqrt(ar) / S, or height = width when ``square``.

    Args:
        sizes: feature-map side per level.
        scales: anchor size(s) in input pixels per level.
        aspect_ratios: width/height ratios.
        input_size: S.
        square: the official v1 square-anchor behaviour.
    Returns:
        [P, 4] float32 (cx, cy, w, h), relative to the input.
    """
    out = []
    for n, level_scales in zip(sizes, scales):
        level_scales = level_scales if isinstance(level_scales, (list, tuple)) else [level_scales]
        wh = []
        for scale in level_scales:
            for ar in aspect_ratios:
                r = math.sqrt(ar)
                w = scale * r / input_size
                h = w if square else scale / r / input_size
                wh.append((w, h))
        wh = np.asarray(wh, np.float64)  # [A, 2]
        c = (np.arange(n, dtype=np.float64) + 0.5) / n
        cy, cx = np.meshgrid(c, c, indexing="ij")
        centers = np.stack([cx, cy], -1).reshape(-1, 1, 2)  # [n*n, 1, 2]
        level = np.concatenate(
            [np.broadcast_to(centers, (n * n, len(wh), 2)), np.broadcast_to(wh, (n * n, len(wh), 2))], -1
        )
        out.append(level.reshape(-1, 4))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def priors_for_config(cfg: YolactConfig) -> torch.Tensor:
    """[P, 4] priors of a config (P = A * sum of level areas; 19248 for the 550 models)."""
    sizes = feature_sizes(cfg.input_size, 3 + cfg.fpn_num_downsample)
    return make_priors(sizes, cfg.anchor_scales, cfg.anchor_aspect_ratios, cfg.input_size, cfg.square_anchors)


# ---------------------------------------------------------------------------------------- modules
class FPN(nn.Module):
    """Feature pyramid on C3-C5 plus strided extra levels (official key layout).

    ``lat_layers`` / ``pred_layers`` are stored top-down (index 0 = C5), as in the official code.
    forward([C3, C4, C5]) -> [P3, P4, P5, P6, P7], each [B, channels, hi, wi].
    """

    def __init__(self, in_channels: list[int], channels: int = 256, num_downsample: int = 2) -> None:
        super().__init__()
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in reversed(in_channels))
        self.pred_layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.downsample_layers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, stride=2) for _ in range(num_downsample)
        )

    def forward(self, convouts: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(convouts)
        out: list[torch.Tensor] = [convouts[0]] * n
        x = None
        for i, lat in enumerate(self.lat_layers):
            j = n - 1 - i
            y = lat(convouts[j])
            if x is not None:
                y = y + F.interpolate(x, size=convouts[j].shape[-2:], mode="bilinear", align_corners=False)
            x = y
            out[j] = x
        for i, pred in enumerate(self.pred_layers):
            j = n - 1 - i
            out[j] = F.relu(pred(out[j]))
        for down in self.downsample_layers:
            out.append(down(out[-1]))
        return out


class PredictionHead(nn.Module):
    """Head shared by all FPN levels (official ``prediction_layers.0``).

    forward(x [B, Cf, h, w]) -> (loc [B, h*w*A, 4], conf [B, h*w*A, C+1], coeff [B, h*w*A, K] tanh).
    """

    def __init__(self, channels: int, num_anchors: int, num_classes: int, num_prototypes: int) -> None:
        super().__init__()
        self.num_classes = num_classes + 1
        self.num_prototypes = num_prototypes
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, num_anchors * self.num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, num_anchors * num_prototypes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        x = self.upfeature(x)
        loc = self.bbox_layer(x).permute(0, 2, 3, 1).reshape(b, -1, 4)
        conf = self.conf_layer(x).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes)
        coeff = torch.tanh(self.mask_layer(x).permute(0, 2, 3, 1).reshape(b, -1, self.num_prototypes))
        return loc, conf, coeff


def make_proto_net(channels: int, num_prototypes: int) -> nn.Sequential:
    """3x (conv3x3 + ReLU) on P3, 2x bilinear upsample + ReLU, conv3x3 + ReLU, conv1x1 -> K.

    Indices match the official ``proto_net.{0,2,4,8,10}`` keys; the final ReLU is applied by the caller.
    """
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    layers += [nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False), nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(channels, num_prototypes, 1)]
    return nn.Sequential(*layers)


class YolactSE(nn.Module):
    """The YOLACT-SE network; see the module docstring for the output dict.

    Submodules carry the official names (``backbone``, ``fpn``, ``proto_net``,
    ``prediction_layers``, ``semantic_seg_conv``) so official state dicts load unchanged.
    """

    OUTPUT_NAMES = ("loc", "conf", "mask", "priors", "proto")

    def __init__(self, cfg: YolactConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.attention, cfg.attention_reduction)
        self.selected_layers = selected_stages(cfg.backbone)
        self.fpn = FPN(
            [self.backbone.channels[i] for i in self.selected_layers],
            cfg.fpn_channels,
            cfg.fpn_num_downsample,
        )
        self.proto_net = make_proto_net(cfg.fpn_channels, cfg.num_prototypes)
        self.prediction_layers = nn.ModuleList(
            [PredictionHead(cfg.fpn_channels, cfg.num_anchors, cfg.num_classes, cfg.num_prototypes)]
        )
        self.semantic_seg_conv = (
            nn.Conv2d(cfg.fpn_channels, cfg.num_classes, 1) if cfg.semantic_head else None
        )
        self.embedding_head = (
            nn.Conv2d(cfg.fpn_channels, cfg.embedding_dim, 1) if cfg.embedding_dim > 0 else None
        )
        self.register_buffer("priors", priors_for_config(cfg), persistent=False)
        self._init_non_backbone()

    def _init_non_backbone(self) -> None:
        """Xavier-uniform weights and zero biases for every conv outside the backbone (official init)."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("backbone."):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        """x [B, 3, S, S] normalised RGB -> dict of raw outputs (module docstring)."""
        if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            s = self.cfg.input_size
            if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
                raise ValueError(f"YolactSE expects input [B, 3, {s}, {s}], got {list(x.shape)}")
        feats = self.backbone(x)
        p = self.fpn([feats[i] for i in self.selected_layers])
        proto = F.relu(self.proto_net(p[0])).permute(0, 2, 3, 1).contiguous()
        head = self.prediction_layers[0]
        locs, confs, coeffs = [], [], []
        for f in p:
            loc, conf, coeff = head(f)
            locs.append(loc)
            confs.append(conf)
            coeffs.append(coeff)
        out: dict[str, Any] = {
            "loc": torch.cat(locs, 1),
            "conf": torch.cat(confs, 1),
            "mask": torch.cat(coeffs, 1),
            "priors": self.priors,
            "proto": proto,
        }
        if self.training:
            if self.semantic_seg_conv is not None:
                out["segm"] = self.semantic_seg_conv(p[0])
            if self.embedding_head is not None:
                out["embed"] = self.embedding_head(p[0])
            out["features"] = p
        return out


# -------------------------------------------------------------------------------------- segmenter
def _resolve_params(params: InferenceParams | dict[str, Any] | None) -> InferenceParams:
    if params is None:
        return InferenceParams()
    if isinstance(params, dict):
        return InferenceParams(**params)
    return params


class YolactSegmenter(Segmenter):
    """``Segmenter`` for YOLACT-SE: preprocess -> forward_raw -> postprocess, all on ``device``.

    Args:
        model: a :class:`YolactSE` (moved to ``device``, set to eval).
        cfg: its config.
        device: torch device string ("cpu", "cuda", "cuda:1").
        precision: "fp32", or "fp16" (CUDA only; post-processing runs in fp32).
        params: default :class:`InferenceParams` (or a dict of them).
        optimize: run a copy of the network with BatchNorm folded into the convolutions and
            channels-last tensors (same outputs up to float rounding, ~35% less CPU time).
            ``self.model`` stays the original module; the copy is rebuilt automatically when
            ``self.model``'s tensors change (in-place updates by an optimiser or ``load_state_dict``).
    """

    family = "yolact"

    def __init__(
        self,
        model: YolactSE,
        cfg: YolactConfig,
        device: str = "cpu",
        precision: str = "fp32",
        params: InferenceParams | dict[str, Any] | None = None,
        optimize: bool = True,
    ) -> None:
        super().__init__(_resolve_params(params))
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
        if precision == "fp16" and dev.type != "cuda":
            raise ValueError(f"precision fp16 needs a CUDA device, got device {device!r}")
        self.cfg = cfg
        self.class_names = list(cfg.class_names)
        self.device = str(dev)
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.to(dev).eval()
        if precision == "fp16":
            self.model.half()
        self.optimize = optimize
        self.sync_weights()
        self._scale = (1.0 / torch.tensor(cfg.std, dtype=torch.float32, device=dev)).view(1, 3, 1, 1)
        self._shift = (-torch.tensor(cfg.mean, dtype=torch.float32, device=dev)).view(1, 3, 1, 1)

    def _weights_fingerprint(self) -> tuple[int, int]:
        """Changes whenever a parameter/buffer of ``self.model`` is modified in place or replaced."""
        ts = [*self.model.parameters(), *self.model.buffers()]
        return sum(t._version for t in ts), sum(t.data_ptr() for t in ts)

    def sync_weights(self) -> None:
        """Rebuild the optimised inference copy from ``self.model`` (no-op when ``optimize`` is off)."""
        self._net = inference_copy(self.model) if self.optimize else self.model
        self._fingerprint = self._weights_fingerprint() if self.optimize else None

    # -- stage 1
    def preprocess(self, images) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """BGR uint8 images (any sizes) -> ([B, 3, S, S] normalised RGB, metas with ``size`` (H, W))."""
        batch = validate_images(images)
        s = self.cfg.input_size
        dev = torch.device(self.device)
        resized = []
        metas = []
        for img in batch:
            h, w = img.shape[:2]
            t = torch.from_numpy(np.ascontiguousarray(img)).to(dev).permute(2, 0, 1)[None].float()
            if (h, w) != (s, s):
                t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)
            resized.append(t)
            metas.append({"size": (h, w)})
        x = torch.cat(resized, 0) if len(resized) > 1 else resized[0]
        x = ((x + self._shift) * self._scale).flip(1)  # normalise in BGR, then BGR -> RGB
        return x.to(self.dtype).contiguous(), metas

    # -- stage 2
    def forward_raw(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network only: [B, 3, S, S] -> raw dict (``loc``, ``conf``, ``mask``, ``priors``, ``proto``)."""
        x = tensor.to(self.device, self.dtype)
        if self.optimize:
            if self._weights_fingerprint() != self._fingerprint:
                self.sync_weights()
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._net(x)

    # -- stage 3
    def postprocess(
        self, raw: dict[str, torch.Tensor], metas: list[dict[str, Any]], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Raw outputs -> one ``Instances`` per image, in original-image pixels."""
        p = params or self.params
        batch = raw["loc"].shape[0]
        if len(metas) != batch:
            raise ValueError(f"postprocess: {len(metas)} metas for a batch of {batch} raw outputs")
        allowed = self.class_filter_ids(p)
        with torch.inference_mode():
            return [self._postprocess_one(raw, b, metas[b]["size"], p, allowed) for b in range(batch)]

    def _postprocess_one(
        self, raw: dict[str, torch.Tensor], b: int, size: tuple[int, int], p: InferenceParams, allowed
    ) -> Instances:
        h, w = size
        conf = torch.softmax(raw["conf"][b].float(), dim=-1)[:, 1:]  # [P, C]
        if allowed is not None:
            sel = torch.zeros(conf.shape[1], dtype=torch.bool, device=conf.device)
            sel[allowed] = True
            conf = conf * sel
        best = conf.max(dim=1).values
        cand = best > p.score_threshold
        if not bool(cand.any()):
            return Instances.empty((h, w), self.class_names)
        priors = raw["priors"].float()[cand]
        boxes = decode_boxes(raw["loc"][b].float()[cand], priors)
        coeffs = raw["mask"][b].float()[cand]
        scores = conf[cand].t().contiguous()  # [C, n]
        if p.cross_class_nms:
            idx, classes, det_scores = cc_fast_nms(
                boxes, scores, p.nms_threshold, self.cfg.nms_top_k, p.top_k
            )
        else:
            idx, classes, det_scores = fast_nms(
                boxes, scores, p.nms_threshold, self.cfg.nms_top_k, p.top_k, score_threshold=p.score_threshold
            )
        good = det_scores > p.score_threshold
        idx, classes, det_scores = idx[good], classes[good], det_scores[good]
        if idx.numel() == 0:
            return Instances.empty((h, w), self.class_names)
        boxes = boxes[idx]
        masks = assemble_masks(
            raw["proto"][b].float(), coeffs[idx], boxes, (h, w), p.mask_threshold, self.cfg.mask_crop_padding
        )
        scale = boxes.new_tensor([w, h, w, h])
        px = torch.minimum((boxes * scale).clamp(min=0), scale)
        return Instances(
            boxes=px.cpu().numpy(),
            scores=det_scores.cpu().numpy(),
            class_ids=classes.cpu().numpy(),
            masks=masks.cpu().numpy(),
            image_size=(h, w),
            class_names=self.class_names,
        )

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        x, metas = self.preprocess(images)
        return self.postprocess(self.forward_raw(x), metas, params)


def bilinear_matrix(out_size: int, in_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[out, in] matrix ``R`` with ``R @ v`` = 1-D bilinear resampling of ``v`` (align_corners=False).

    Same source coordinates and weights as ``F.interpolate(mode="bilinear", align_corners=False)``
    (float32 arithmetic, negative coordinates clamped to 0, last index repeated at the border).
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long().clamp(max=in_size - 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    l1 = src - i0.float()
    r = torch.zeros(out_size, in_size, dtype=torch.float32)
    rows = torch.arange(out_size)
    r.index_put_((rows, i0), 1.0 - l1, accumulate=True)
    r.index_put_((rows, i1), l1, accumulate=True)
    return r.to(device)


def assemble_masks(
    proto: torch.Tensor,
    coeffs: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    crop_padding: float = 1.0,
) -> torch.Tensor:
    """YOLACT mask assembly.

    Args:
        proto: [h, w, K] prototypes.
        coeffs: [N, K] coefficients.
        boxes: [N, 4] relative xyxy (crop region).
        image_size: (H, W) of the original image.
    Returns:
        [N, H, W] bool: bilinear-upsampled (align_corners=False) cropped sigmoid(proto @ coeffs) > threshold.

    On CUDA the whole [N, H, W] stack is upsampled at once. On CPU only each mask's crop window
    is resampled (the cropped mask is exactly zero elsewhere), as ``Ry[rows, ys] @ m[ys, xs] @
    Rx[cols, xs]^T`` with :func:`bilinear_matrix` weights: the same values up to float rounding at
    a fraction of the cost for many or small detections.
    """
    m = torch.sigmoid(torch.einsum("hwk,nk->nhw", proto, coeffs))
    m = crop_masks(m, boxes, crop_padding)
    n, h, w = m.shape
    big_h, big_w = (int(v) for v in image_size)
    if m.device.type != "cpu" or n == 0:
        m = F.interpolate(m[None], size=(big_h, big_w), mode="bilinear", align_corners=False)[0]
        return m > threshold
    ry = bilinear_matrix(big_h, h)
    rx = bilinear_matrix(big_w, w)
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, crop_padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, crop_padding)
    # integer window of kept prototype pixels: x1 <= col < x2
    xa, xb = x1.ceil().long().tolist(), x2.ceil().long().tolist()
    ya, yb = y1.ceil().long().tolist(), y2.ceil().long().tolist()
    out = torch.zeros(n, big_h, big_w, dtype=torch.bool)
    for i in range(n):
        if xb[i] <= xa[i] or yb[i] <= ya[i]:
            continue
        rows = torch.nonzero(ry[:, ya[i] : yb[i]].sum(1) > 0).flatten()
        cols = torch.nonzero(rx[:, xa[i] : xb[i]].sum(1) > 0).flatten()
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        win = m[i, ya[i] : yb[i], xa[i] : xb[i]]
        val = ry[r0:r1, ya[i] : yb[i]] @ win @ rx[c0:c1, xa[i] : xb[i]].t()
        out[i, r0:r1, c0:c1] = val > threshold
    return out


# ------------------------------------------------------------------------------- checkpoints/build
def save_checkpoint(path: str | Path, model: YolactSE, cfg: YolactConfig | None = None, **extra: Any) -> None:
    """Save our own checkpoint: {format, format_version, config, state_dict, **extra}.

    ``build_segmenter("yolact", weights=path)`` rebuilds the model from it without a config.
    ``extra`` values must be plain Python/tensors (loaded with ``weights_only=True``).
    """
    cfg = cfg or model.cfg
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": 1,
            "config": cfg.to_dict(),
            "state_dict": model.state_dict(),
            **extra,
        },
        str(path),
    )


def config_for_checkpoint(
    state_dict: dict[str, torch.Tensor],
    stored: dict[str, Any] | None,
    path: str | Path | None,
    user: dict[str, Any] | None = None,
) -> YolactConfig:
    """The config of a checkpoint: the stored one (ours) or the one inferred from an official state
    dict, with the ``user`` keys on top. A user ``input_size`` on an official file rescales its anchors."""
    from instaseg_ros.weights.yolact_checkpoint import infer_config_from_state_dict

    user = user or {}
    base = stored if stored is not None else infer_config_from_state_dict(state_dict, path)
    merged = {**base, **user}
    if "input_size" in user and "anchor_scales" not in user and stored is None:
        merged["anchor_scales"] = None  # rescale the official anchors to the requested size
    return YolactConfig.from_dict(merged)


def load_model(
    weights: str | Path | None = None, config: str | Path | dict[str, Any] | YolactConfig | None = None
) -> tuple[YolactSE, YolactConfig]:
    """Build a YolactSE from a checkpoint (ours or official) and/or a config; config keys override.

    Raises ``ValueError`` for files that are not YOLACT checkpoints or that do not match the config.
    """
    from instaseg_ros.weights.yolact_checkpoint import load_state_dict_into, read_checkpoint

    user = config.to_dict() if isinstance(config, YolactConfig) else load_config_mapping(config)
    if weights is None:
        cfg = YolactConfig.from_dict(user)
        return YolactSE(cfg), cfg
    state_dict, stored = read_checkpoint(weights)
    cfg = config_for_checkpoint(state_dict, stored, weights, user)
    model = YolactSE(cfg)
    load_state_dict_into(model, state_dict, source=str(weights))
    return model, cfg


def build_yolact(
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | dict[str, Any] | None = None,
    optimize: bool = True,
    **_: Any,
) -> YolactSegmenter:
    """Registry builder: ``build_segmenter("yolact", weights=..., config=..., device=..., precision=...)``."""
    model, cfg = load_model(weights, config)
    return YolactSegmenter(model, cfg, device=device, precision=precision, params=params, optimize=optimize)


register_family("yolact", build_yolact)
