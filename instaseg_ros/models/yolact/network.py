"""The YOLACT-SE network: backbone (+ channel attention), FPN, prototypes, prediction head, priors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instaseg_ros.models.backbones import build_backbone, selected_stages
from instaseg_ros.models.yolact.config import YolactConfig


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
        return self.output_phase(self.lateral_phase(convouts)[0])

    def lateral_phase(self, convouts: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Phase 1 (YolactEdge's ``FPN_phase_1``): [C3, C4, C5] -> (merged, laterals).

        ``laterals[j]`` = 1x1 lateral conv of ``convouts[j]`` [B, channels, hj, wj]; ``merged[j]`` =
        ``laterals[j]`` + bilinear upsampling of ``merged[j + 1]`` (top-down), before the 3x3 convs.
        """
        n = len(convouts)
        merged: list[torch.Tensor] = [convouts[0]] * n
        laterals: list[torch.Tensor] = [convouts[0]] * n
        x = None
        for i, lat in enumerate(self.lat_layers):
            j = n - 1 - i
            y = lat(convouts[j])
            laterals[j] = y
            if x is not None:
                y = y + F.interpolate(x, size=convouts[j].shape[-2:], mode="bilinear", align_corners=False)
            x = y
            merged[j] = x
        return merged, laterals

    def output_phase(self, merged: list[torch.Tensor]) -> list[torch.Tensor]:
        """Phase 2: merged [P3', P4', P5'] -> [P3..P7] (ReLU(3x3 conv) per level, strided extras)."""
        n = len(merged)
        out = list(merged)
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


class FastMaskIoUNet(nn.Module):
    """YOLACT++'s mask re-scoring head (official keys ``maskiou_net.maskiou_net.<i>``).

    forward(masks [N, 1, h, w] cropped prototype-resolution mask probabilities) -> [N, C] predicted
    mask IoU per class: stride-2 3x3 convolutions (no padding) and a 1x1 to C, each followed by
    ReLU, then a global max pool.
    """

    def __init__(
        self, num_classes: int, channels: list[int] | tuple[int, ...] = (8, 16, 32, 64, 128)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, stride=2), nn.ReLU(inplace=True)]
            cin = c
        layers += [nn.Conv2d(cin, num_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        x = self.maskiou_net(masks)
        return torch.amax(x, dim=(2, 3))


class YolactSE(nn.Module):
    """The YOLACT-SE network; see the module docstring for the output dict.

    Submodules carry the official names (``backbone``, ``fpn``, ``proto_net``,
    ``prediction_layers``, ``semantic_seg_conv``) so official state dicts load unchanged.
    """

    OUTPUT_NAMES = ("loc", "conf", "mask", "priors", "proto")

    def __init__(self, cfg: YolactConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(
            cfg.backbone, cfg.attention, cfg.attention_reduction, cfg.dcn_layers, cfg.dcn_interval
        )
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
        self.maskiou_net = (
            FastMaskIoUNet(cfg.num_classes, cfg.maskiou_channels) if cfg.mask_rescoring else None
        )
        self.register_buffer("priors", priors_for_config(cfg), persistent=False)
        self._init_non_backbone()

    def _init_non_backbone(self) -> None:
        """Xavier-uniform weights and zero biases for every conv outside the backbone (official init)."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith(("backbone.", "maskiou_net.")):
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
        return self.heads(p)

    # -- the stages separately (YolactEdge's partial backbone; same ops as ``forward``)
    @property
    def partial_stages(self) -> int:
        """Backbone stages up to and including C3 (stride 8): 2 for ResNets, 3 for Darknet-53."""
        return self.selected_layers[0] + 1

    def backbone_features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Stem + backbone stages ``[0, stop)`` -> their outputs (``stop=None``: all, = ``self.backbone(x)``).

        x [B, 3, S, S] -> list of [B, channels[i], S/2^(i+2), ...] (ResNet; Darknet strides start at 2).
        """
        bb = self.backbone
        if hasattr(bb, "_preconv"):  # DarkNetBackbone
            h = bb._preconv(x)
        else:  # ResNetBackbone
            h = bb.maxpool(bb.relu(bb.bn1(bb.conv1(x))))
        return self.backbone_resume([], h, stop)

    def backbone_resume(
        self, feats: list[torch.Tensor], x: torch.Tensor | None = None, stop: int | None = None
    ) -> list[torch.Tensor]:
        """Continue the backbone after the stages in ``feats`` (from ``feats[-1]``, or the stem output
        ``x`` when ``feats`` is empty) up to stage ``stop`` -> all stage outputs so far."""
        bb = self.backbone
        out = list(feats)
        h = out[-1] if out else x
        end = len(bb.layers) if stop is None else stop
        for i in range(len(out), end):
            h = bb.layers[i](h)
            if bb.attention is not None:
                h = bb.attention[i](h)
            out.append(h)
        return out

    def heads(self, p: list[torch.Tensor], proto: torch.Tensor | None = None) -> dict[str, Any]:
        """FPN levels [P3..P7] -> the raw output dict (prototypes on P3, the shared head on every level).

        ``proto`` [B, h, w, K]: prototypes computed elsewhere (temporal reuse); the proto net is skipped.
        """
        if proto is None:
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
