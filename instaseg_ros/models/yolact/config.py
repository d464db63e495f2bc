"""YOLACT / YOLACT-SE configuration (YAML <-> dataclass)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from instaseg_ros.core.labels import COCO_CLASSES
from instaseg_ros.models.backbones import BACKBONES
from instaseg_ros.models.config import ConfigMixin, check_bounds
from instaseg_ros.weights.torch_io import YOLACT_FORMAT

# official YOLACT pixel statistics, BGR order
IMAGENET_MEAN_BGR = (103.94, 116.78, 123.68)


IMAGENET_STD_BGR = (57.38, 57.12, 58.40)


# anchor sizes (pixels) of the official 550 models for P3..P7; other input sizes scale them
BASE_ANCHOR_SCALES = (24, 48, 96, 192, 384)


CHECKPOINT_FORMAT = YOLACT_FORMAT


# sizes a network is built from, bounded before anything is allocated (checkpoint configs are user input)
YOLACT_BOUNDS = {
    "num_classes": (1, 1000), "input_size": (32, 2048), "num_prototypes": (1, 256), "fpn_channels": (1, 1024),
    "fpn_num_downsample": (0, 4), "attention_reduction": (1, 1024), "embedding_dim": (0, 256),
    "nms_top_k": (1, 10000), "dcn_layers": (0, 64), "dcn_interval": (1, 64), "maskiou_channels": (1, 1024),
}  # fmt: skip


@dataclass
class YolactConfig(ConfigMixin):
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
        dcn_layers, dcn_interval: YOLACT++'s modulated deformable 3x3 convolutions (DCNv2) in the
            ResNet bottlenecks (the authors' settings: [0, 4, 6, 3] and 3; see
            :class:`~instaseg_ros.models.backbones.resnet.ResNetBackbone`). [0, 0, 0, 0] = YOLACT.
        mask_rescoring: YOLACT++'s FastMaskIoUNet (``maskiou_net``): it predicts each mask's IoU from
            the cropped prototype-resolution mask and the instance score becomes class score x
            predicted IoU (the authors' ``rescore_mask``), so mask quality follows confidence.
        maskiou_channels: widths of its stride-2 3x3 convolutions (the authors': 8, 16, 32, 64, 128).
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
    dcn_layers: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    dcn_interval: int = 1
    mask_rescoring: bool = False
    maskiou_channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])

    def __post_init__(self) -> None:
        check_bounds(self, YOLACT_BOUNDS, "YolactConfig")
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
        if self.mask_rescoring:
            side = 2 * math.ceil(self.input_size / 8)  # prototype resolution (2x P3)
            for _ in self.maskiou_channels:
                side = (side - 3) // 2 + 1
            if side < 1:
                raise ValueError(
                    f"YolactConfig: mask_rescoring needs a larger input_size than {self.input_size}: the "
                    f"prototypes are too small for {len(self.maskiou_channels)} stride-2 convolutions"
                )
        self.dcn_layers = [int(v) for v in self.dcn_layers]
        if len(self.dcn_layers) != 4 or self.dcn_interval < 1:
            raise ValueError(f"YolactConfig.dcn_layers needs 4 values and dcn_interval >= 1, got "
                             f"{self.dcn_layers}, {self.dcn_interval}")  # fmt: skip
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("YolactConfig.mean and .std need 3 values (BGR)")

    @property
    def num_anchors(self) -> int:
        """Anchors per feature-map cell and level."""
        s = self.anchor_scales[0]
        return len(self.anchor_aspect_ratios) * (len(s) if isinstance(s, (list, tuple)) else 1)
