"""The SOLOv2 network (backbone, FPN, category and kernel heads, mask features) and grid targets."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instaseg_ros.models.backbones.resnet import ResNetBackbone
from instaseg_ros.models.solo.config import LEVEL_STRIDES, SoloConfig


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
