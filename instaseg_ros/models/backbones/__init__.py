"""Backbones shared by the model families.

``build_backbone(name, attention)`` returns a module whose ``forward(x)`` gives a list of stage
outputs and whose ``channels`` lists their widths; ``selected_stages(name)`` says which stages
feed the FPN (C3-C5).
"""

from __future__ import annotations

from torch import nn

from instaseg_ros.models.backbones.darknet_yolact import DarkNetBackbone
from instaseg_ros.models.backbones.resnet import RESNET_SPECS, ResNetBackbone

BACKBONES = [*RESNET_SPECS, "darknet53"]


def build_backbone(
    name: str,
    attention: bool = False,
    attention_reduction: int = 16,
    dcn_layers: list[int] | tuple[int, ...] = (0, 0, 0, 0),
    dcn_interval: int = 1,
) -> nn.Module:
    """Backbone by name: resnet18/34/50/101 (optionally with YOLACT++'s DCNv2 blocks) or darknet53."""
    if name in RESNET_SPECS:
        return ResNetBackbone(name, attention, attention_reduction, dcn_layers, dcn_interval)
    if any(dcn_layers):
        raise ValueError(f"deformable convolutions are only available in the ResNet backbones, not {name!r}")
    if name == "darknet53":
        return DarkNetBackbone(attention=attention, attention_reduction=attention_reduction)
    raise ValueError(f"unknown backbone {name!r}; known: {BACKBONES}")


def selected_stages(name: str) -> list[int]:
    """Indices of the stride-8/16/32 stages (C3, C4, C5) in the backbone's output list."""
    return [2, 3, 4] if name == "darknet53" else [1, 2, 3]


__all__ = ["BACKBONES", "DarkNetBackbone", "ResNetBackbone", "build_backbone", "selected_stages"]
