"""SOLOv2: segmenting objects by locations, with dynamic mask kernels and Matrix NMS (written here).

Wang et al., "SOLO: Segmenting Objects by Locations" (2020) and "SOLOv2: Dynamic and Fast Instance
Segmentation" (2020); seed 002 (ResNet-50 FPN, S x S grids per level, focal + dice losses).

Configuration chosen, and why:

* **SOLOv2 with dynamic 1x1 kernels** rather than SOLO v1: v1's mask branch predicts S^2 full-resolution
  masks per level (40^2 = 1600 channels at the finest level), v2 predicts one E-dimensional kernel per
  grid cell and a single shared E-channel mask feature map at stride 4, so memory and CPU time do not
  grow with S^2 - the right trade for robots. Targets and losses are the seed's: a grid cell is
  positive when it lies in the centre region (``sigma`` = 0.2 of the box, at most 3 x 3 cells around the
  centre of mass) of an instance whose scale sqrt(w h) falls in that level's range (ranges overlap, so
  an instance can train two levels); category branch: sigmoid focal loss (alpha 0.25, gamma 2) over all
  cells, normalised by the positives; mask branch: dice loss on positive cells, weight 3.
* **Matrix NMS** (Gaussian decay, sigma 2, class-aware) instead of greedy mask NMS: one matrix product
  instead of a sequential loop, and decayed scores instead of hard removals (better AP at equal speed).
  ``nms: mask`` in the config selects greedy mask-IoU NMS (``InferenceParams.nms_threshold``; the seed's
  IoU threshold is 0.3) for comparison; with Matrix NMS ``nms_threshold`` is not used.
* **Backbone**: the project's shared :class:`~instaseg_ros.models.backbones.resnet.ResNetBackbone`
  (ResNet-18/34/50/101; ResNet-50 as in the seed, ResNet-18 for the CPU-trained synthetic model), FPN
  P2..P6 (P6 = max-pool of P5). Grid levels use (P2 at 1/2 scale, P3, P4, P5, P6 resized to P5), i.e.
  strides 8, 8, 16, 32, 32, with the official grids 40, 36, 24, 16, 12 and scale ranges
  (1-96, 48-192, 96-384, 192-768, 384-2048) px at an 800 px input, rescaled to ``input_size``.
* **Input**: square ``input_size`` (multiple of 32) bilinear resize like YOLACT, so batches need no
  padding and the contract's ``[B, 3, S, S]`` holds; masks are resized back to each original image.
* Inference thresholds: category threshold ``pre_nms_threshold`` (0.1, SOLOv2's; the seed's 0.2 is
  stricter), mask threshold ``InferenceParams.mask_threshold`` (seed: 0.5), score threshold after
  Matrix NMS ``InferenceParams.score_threshold``.

Raw outputs of ``SoloV2.forward(x)`` (same in train and eval mode), with ``G = sum_l S_l^2`` cells:

* ``cate`` [B, G, C] category logits (sigmoid), levels concatenated row-major,
* ``kernel`` [B, G, E] dynamic 1x1 mask kernels,
* ``mask_feat`` [B, E, S/4, S/4] the unified mask features; the mask of cell g is
  ``sigmoid(kernel[g] . mask_feat)``.

Checkpoint: ``{"format": "instaseg_ros.solo", "format_version": 1, "config": {...}, "state_dict": ...}``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
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
from instaseg_ros.models.backbones.resnet import RESNET_SPECS, ResNetBackbone
from instaseg_ros.models.registry import register_family

CHECKPOINT_FORMAT = "instaseg_ros.solo"
DEFAULT_CLASSES = ["person", "chair", "couch", "dining table", "toilet"]
# official SOLOv2 scale ranges (sqrt of box area, px) for ~800 px inputs
BASE_SCALE_RANGES = ((1, 96), (48, 192), (96, 384), (192, 768), (384, 2048))
LEVEL_STRIDES = (8, 8, 16, 32, 32)


@dataclass
class SoloConfig:
    """SOLOv2 settings (see the module docstring for the reasoning).

    Attributes:
        class_names: [C] classes.
        backbone: "resnet18" | "resnet34" | "resnet50" | "resnet101" (randomly initialised).
        input_size: square network input side, multiple of 32.
        fpn_channels: FPN width.
        head_channels, head_convs: width and depth of the shared kernel and category towers.
        mask_channels: E, channels of the mask features = length of each dynamic 1x1 kernel.
        mask_mid_channels: width of the mask-feature branch before the final 1x1.
        num_grids: S per level (5 levels).
        scale_ranges: per-level (lo, hi) of sqrt(w*h) in input pixels; None = the official ranges
            scaled by ``input_size / 800``.
        sigma: centre-region fraction of the box for positive cells.
        pre_nms_threshold: category score threshold before mask scoring / NMS.
        pre_nms_top_k: at most this many candidates enter NMS.
        nms: "matrix" (Matrix NMS) or "mask" (greedy mask-IoU NMS with ``nms_threshold``).
        matrix_kernel, matrix_sigma: Matrix NMS decay ("gaussian" or "linear").
        pixel_mean, pixel_std: RGB normalisation in 0..255 units.
    """

    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    backbone: str = "resnet50"
    input_size: int = 512
    fpn_channels: int = 256
    head_channels: int = 256
    head_convs: int = 4
    mask_channels: int = 128
    mask_mid_channels: int = 128
    num_grids: list[int] = field(default_factory=lambda: [40, 36, 24, 16, 12])
    scale_ranges: list[list[float]] | None = None
    sigma: float = 0.2
    pre_nms_threshold: float = 0.1
    pre_nms_top_k: int = 500
    nms: str = "matrix"
    matrix_kernel: str = "gaussian"
    matrix_sigma: float = 2.0
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def __post_init__(self) -> None:
        self.class_names = [str(c) for c in self.class_names]
        if not self.class_names:
            raise ValueError("SoloConfig: class_names is empty")
        if self.backbone not in RESNET_SPECS:
            raise ValueError(f"SoloConfig: unknown backbone {self.backbone!r}; known: {sorted(RESNET_SPECS)}")
        if self.input_size < 64 or self.input_size % 32:
            raise ValueError(
                f"SoloConfig: input_size must be a multiple of 32 and >= 64, got {self.input_size}"
            )
        self.num_grids = [int(s) for s in self.num_grids]
        if len(self.num_grids) != 5 or min(self.num_grids) < 1:
            raise ValueError(f"SoloConfig: num_grids needs 5 positive sizes, got {self.num_grids}")
        if self.scale_ranges is None:
            f = self.input_size / 800.0
            self.scale_ranges = [[lo * f if lo > 1 else 0.0, hi * f] for lo, hi in BASE_SCALE_RANGES]
        self.scale_ranges = [[float(a), float(b)] for a, b in self.scale_ranges]
        if len(self.scale_ranges) != 5:
            raise ValueError(f"SoloConfig: scale_ranges needs 5 (lo, hi) pairs, got {self.scale_ranges}")
        if self.nms not in ("matrix", "mask"):
            raise ValueError(f"SoloConfig: nms must be 'matrix' or 'mask', got {self.nms!r}")
        if self.matrix_kernel not in ("gaussian", "linear"):
            raise ValueError(f"SoloConfig: matrix_kernel must be gaussian|linear, got {self.matrix_kernel!r}")
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_cells(self) -> int:
        """G = sum of S^2 over the levels."""
        return sum(s * s for s in self.num_grids)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoloConfig:
        """Build from a mapping (``classes`` accepted for ``class_names``); unknown keys raise."""
        d = dict(d)
        if "classes" in d:
            d["class_names"] = d.pop("classes")
        d.pop("inference", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown SoloConfig keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pixel_mean"], d["pixel_std"] = list(self.pixel_mean), list(self.pixel_std)
        return d


# ------------------------------------------------------------------------------------------- network
def _gn(c: int) -> nn.GroupNorm:
    g = next(g for g in (32, 16, 8, 4, 2, 1) if c % g == 0)
    return nn.GroupNorm(g, c)


def _conv_gn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), _gn(cout), nn.ReLU(inplace=True))


def coord_channels(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, 2, H, W] normalised (x, y) coordinates in [-1, 1]."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None].expand(b, 2, h, w)


class SoloFPN(nn.Module):
    """C2..C5 -> P2..P6 (P6 = stride-2 max-pool of P5), ``channels`` each."""

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class MaskFeatureBranch(nn.Module):
    """P2..P5 -> unified mask features [B, E, H/4, W/4] (coordinates added at P5)."""

    def __init__(self, in_channels: int, mid: int, out: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        for i in range(4):
            layers: list[nn.Module] = []
            if i == 0:
                layers.append(_conv_gn(in_channels, mid))
            for j in range(i):
                cin = (in_channels + (2 if i == 3 else 0)) if j == 0 else mid
                layers += [
                    _conv_gn(cin, mid),
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                ]
            self.levels.append(nn.Sequential(*layers))
        self.pred = nn.Sequential(nn.Conv2d(mid, out, 1, bias=False), _gn(out), nn.ReLU(inplace=True))

    def forward(self, p: list[torch.Tensor]) -> torch.Tensor:
        x = self.levels[0](p[0])
        for i in range(1, 4):
            f = p[i]
            if i == 3:
                f = torch.cat([f, coord_channels(f)], 1)
            y = self.levels[i](f)
            if y.shape[-2:] != x.shape[-2:]:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = x + y
        return self.pred(x)


class SoloHead(nn.Module):
    """Shared kernel and category towers; level feature -> (cate [B, C, S, S], kernel [B, E, S, S])."""

    def __init__(
        self, in_channels: int, channels: int, convs: int, num_classes: int, kernel_dim: int
    ) -> None:
        super().__init__()
        self.kernel_tower = nn.Sequential(
            *[_conv_gn(in_channels + 2 if i == 0 else channels, channels) for i in range(convs)]
        )
        self.cate_tower = nn.Sequential(*[_conv_gn(in_channels if i == 0 else channels, channels)
                                          for i in range(convs)])  # fmt: skip
        self.kernel_pred = nn.Conv2d(channels, kernel_dim, 3, padding=1)
        self.cate_pred = nn.Conv2d(channels, num_classes, 3, padding=1)
        nn.init.normal_(self.kernel_pred.weight, std=0.01)
        nn.init.zeros_(self.kernel_pred.bias)
        nn.init.normal_(self.cate_pred.weight, std=0.01)
        nn.init.constant_(self.cate_pred.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, x: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.cat([x, coord_channels(x)], 1)
        k = F.interpolate(k, size=(grid, grid), mode="bilinear", align_corners=False)
        c = k[:, :-2]
        return self.cate_pred(self.cate_tower(c)), self.kernel_pred(self.kernel_tower(k))


class SoloV2(nn.Module):
    """SOLOv2: x [B, 3, S, S] normalised RGB -> {cate [B,G,C], kernel [B,G,E], mask_feat [B,E,S/4,S/4]}."""

    def __init__(self, cfg: SoloConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ResNetBackbone(cfg.backbone)
        self.fpn = SoloFPN(self.backbone.channels, cfg.fpn_channels)
        self.mask_branch = MaskFeatureBranch(cfg.fpn_channels, cfg.mask_mid_channels, cfg.mask_channels)
        self.head = SoloHead(cfg.fpn_channels, cfg.head_channels, cfg.head_convs, cfg.num_classes,
                             cfg.mask_channels)  # fmt: skip
        for m in [self.fpn, self.mask_branch]:
            for mod in m.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_uniform_(mod.weight, a=1)
                    if mod.bias is not None:
                        nn.init.zeros_(mod.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.fpn(self.backbone(x))
        mask_feat = self.mask_branch(p[:4])
        levels = [
            F.interpolate(p[0], scale_factor=0.5, mode="bilinear", align_corners=False),
            p[1], p[2], p[3],
            F.interpolate(p[4], size=p[3].shape[-2:], mode="bilinear", align_corners=False),
        ]  # fmt: skip
        cates, kernels = [], []
        for f, s in zip(levels, self.cfg.num_grids):
            c, k = self.head(f, s)
            cates.append(c.flatten(2).transpose(1, 2))
            kernels.append(k.flatten(2).transpose(1, 2))
        return {"cate": torch.cat(cates, 1), "kernel": torch.cat(kernels, 1), "mask_feat": mask_feat}


def dynamic_masks(kernels: torch.Tensor, mask_feat: torch.Tensor) -> torch.Tensor:
    """kernels [N, E], mask_feat [E, h, w] -> mask logits [N, h, w] (1x1 dynamic convolution)."""
    return torch.einsum("ne,ehw->nhw", kernels, mask_feat)


def cell_strides(cfg: SoloConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """[G] feature stride of each grid cell's level (for the small-mask filter)."""
    return torch.cat([torch.full((s * s,), float(st), device=device)
                      for s, st in zip(cfg.num_grids, LEVEL_STRIDES)])  # fmt: skip


# -------------------------------------------------------------------------------------------- targets
def assign_targets(
    boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray, cfg: SoloConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SOLO grid assignment for one image already resized to ``input_size``.

    Args:
        boxes: [N, 4] xyxy input pixels; labels: [N] 0-based; masks: [N, S, S] uint8/bool.
    Returns:
        cate [G] int64 (``num_classes`` = background), pos_cells [P] int64, pos_gt [P] int64 (index into N).
        Larger instances are assigned first, so a smaller one takes over a shared cell.
    """
    size = cfg.input_size
    cate = np.full(cfg.num_cells, cfg.num_classes, np.int64)
    owner = np.full(cfg.num_cells, -1, np.int64)
    if len(boxes):
        wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
        scale = np.sqrt(wh[:, 0] * wh[:, 1])
        order = np.argsort(-scale, kind="stable")
        offset = 0
        for s, (lo, hi) in zip(cfg.num_grids, cfg.scale_ranges):
            for n in order:
                if not lo <= scale[n] <= hi:
                    continue
                ys, xs = np.nonzero(masks[n])
                if len(ys) == 0:
                    continue
                cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
                hh, hw = 0.5 * cfg.sigma * wh[n, 1], 0.5 * cfg.sigma * wh[n, 0]
                ch, cw = min(int(cy / size * s), s - 1), min(int(cx / size * s), s - 1)
                top = max(0, int((cy - hh) / size * s), ch - 1)
                down = min(s - 1, int((cy + hh) / size * s), ch + 1)
                left = max(0, int((cx - hw) / size * s), cw - 1)
                right = min(s - 1, int((cx + hw) / size * s), cw + 1)
                for i in range(top, down + 1):
                    g = offset + i * s + left
                    cate[g : g + right - left + 1] = labels[n]
                    owner[g : g + right - left + 1] = n
            offset += s * s
    pos = np.flatnonzero(owner >= 0)
    return cate, pos.astype(np.int64), owner[pos]


# ----------------------------------------------------------------------------------------- matrix NMS
def matrix_nms(
    masks: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    class_aware: bool = True,
) -> torch.Tensor:
    """Matrix NMS (SOLOv2): decayed scores of candidates sorted by descending ``scores``.

    Args:
        masks: [N, h, w] bool; labels: [N]; scores: [N] (sorted, descending).
    Returns:
        [N] scores x decay, decay_j = min_i f(iou_ij) / f(max_k iou_ki) over higher-scored i.
    """
    n = masks.shape[0]
    if n == 0:
        return scores
    m = masks.reshape(n, -1).float()
    inter = m @ m.t()
    area = m.sum(1)
    union = area[:, None] + area[None, :] - inter
    iou = (inter / union.clamp(min=1)).triu(diagonal=1)
    if class_aware:
        iou = iou * (labels[:, None] == labels[None, :]).float()
    comp = iou.max(0).values[:, None].expand(n, n)  # row i: max IoU of i with anything above it
    if kernel == "gaussian":
        decay = torch.exp(-sigma * (iou**2 - comp**2)).min(0).values
    else:
        decay = ((1 - iou) / (1 - comp).clamp(min=1e-6)).min(0).values
    return scores * decay


def mask_nms(
    masks: torch.Tensor, labels: torch.Tensor, iou_threshold: float, class_aware: bool = True
) -> torch.Tensor:
    """Greedy mask-IoU NMS over candidates sorted by score -> kept indices [K]."""
    n = masks.shape[0]
    m = masks.reshape(n, -1).float()
    inter = m @ m.t()
    area = m.sum(1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1)
    if class_aware:
        iou = iou * (labels[:, None] == labels[None, :]).float()
    keep: list[int] = []
    removed = torch.zeros(n, dtype=torch.bool)
    iou_cpu = iou.cpu()
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        removed |= iou_cpu[i] > iou_threshold
    return torch.as_tensor(keep, dtype=torch.long, device=masks.device)


# ------------------------------------------------------------------------------------------- segmenter
def _resolve_params(params: InferenceParams | dict[str, Any] | None) -> InferenceParams:
    if params is None:
        return InferenceParams()
    return InferenceParams(**params) if isinstance(params, dict) else params


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
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.to(dev).eval()
        if precision == "fp16":
            self.model.half()
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
        if allowed is not None:
            sel = torch.zeros(prob.shape[1], dtype=torch.bool, device=prob.device)
            sel[allowed] = True
            prob = prob * sel
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
        order = torch.argsort(scores, descending=True)[: cfg.pre_nms_top_k]
        mprob, seg, scores, classes = mprob[order], seg[order], scores[order], classes[order]
        if cfg.nms == "matrix":
            scores = matrix_nms(seg, classes, scores, cfg.matrix_kernel, cfg.matrix_sigma,
                                class_aware=not p.cross_class_nms)  # fmt: skip
            idx = torch.nonzero(scores >= p.score_threshold).flatten()
            idx = idx[torch.argsort(scores[idx], descending=True)][: p.top_k]
        else:
            idx = mask_nms(seg, classes, p.nms_threshold, class_aware=not p.cross_class_nms)
            idx = idx[scores[idx] >= p.score_threshold][: p.top_k]
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
            scores=scores[idx].cpu().numpy().astype(np.float32)[nonempty],
            class_ids=classes[idx].cpu().numpy().astype(np.int64)[nonempty],
            masks=masks,
            image_size=(h, w),
            class_names=self.class_names,
        )

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        x, metas = self.preprocess(images)
        return self.postprocess(self.forward_raw(x), metas, params)


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
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": 1, "config": cfg.to_dict(),
                "state_dict": model.state_dict(), **extra}, str(path))  # fmt: skip


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (state_dict, config mapping); ``ValueError`` naming the file for anything else."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SOLO weights file {p} does not exist")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file
        raise ValueError(f"{p}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        what = obj.get("format", "no 'format' key") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{p}: not a SOLO checkpoint (format {what!r}, expected {CHECKPOINT_FORMAT!r})")
    for key in ("config", "state_dict"):
        if not isinstance(obj.get(key), dict):
            raise ValueError(f"{p}: SOLO checkpoint lacks its {key!r} mapping")
    return obj["state_dict"], obj["config"]


def load_state_dict_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with errors naming the mismatching keys/shapes."""
    own = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]  # fmt: skip
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if bad or missing or unexpected:
        raise ValueError(f"{source}: state dict does not match the SOLO model: shapes {bad[:4]}, "
                         f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} "
                         f"({len(unexpected)})")  # fmt: skip
    model.load_state_dict(sd)


def load_model(
    weights: str | Path | None = None,
    config: str | Path | dict[str, Any] | SoloConfig | None = None,
    reinit_heads: bool = False,
) -> tuple[SoloV2, SoloConfig]:
    """Build a SoloV2 from a checkpoint and/or a config (config keys override the stored ones).

    A config whose class count differs from the checkpoint's is an error unless ``reinit_heads``
    (then the category predictor is re-initialised and everything else loaded).
    """
    from instaseg_ros.models.yolact import load_config_mapping

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
    from instaseg_ros.models.yolact import load_config_mapping

    mapping = config.to_dict() if isinstance(config, SoloConfig) else load_config_mapping(config)
    if params is None and isinstance(mapping.get("inference"), dict):
        params = InferenceParams(**mapping["inference"])
    model, cfg = load_model(weights, mapping)
    return SoloSegmenter(model, cfg, device=device, precision=precision, params=params)


register_family("solo", build_solo)
