"""Darknet-53 backbone in the key layout of the official ``yolact_darknet53`` checkpoint.

Keys (under ``backbone.``): ``_preconv.{0,1}`` (conv, BN), ``layers.<stage>.0.{0,1}`` (the strided
downsampling conv + BN) and ``layers.<stage>.<k>.conv{1,2}.{0,1}`` for the residual blocks.
Optional channel attention under ``attention.<stage>``.
"""

from __future__ import annotations

import torch
from torch import nn

from instaseg_ros.models.attention import ChannelAttention


def _conv_bn_leaky(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BN -> LeakyReLU(0.1), 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


class DarkNetBlock(nn.Module):
    """1x1 (C/2) -> 3x3 (C) with a residual connection. [B,C,H,W] -> [B,C,H,W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_leaky(channels, channels // 2, 1)
        self.conv2 = _conv_bn_leaky(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class DarkNetBackbone(nn.Module):
    """Darknet-53: 5 stages (strides 2..32) with [1, 2, 8, 8, 4] residual blocks.

    Attributes:
        channels: [64, 128, 256, 512, 1024].
    """

    def __init__(
        self, attention: bool = False, attention_reduction: int = 16, counts=(1, 2, 8, 8, 4)
    ) -> None:
        super().__init__()
        self.name = "darknet53"
        self._preconv = _conv_bn_leaky(3, 32, 3)
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        cin = 32
        for width, n in zip((64, 128, 256, 512, 1024), counts):
            self.layers.append(
                nn.Sequential(
                    _conv_bn_leaky(cin, width, 3, stride=2), *[DarkNetBlock(width) for _ in range(n)]
                )
            )
            self.channels.append(width)
            cin = width
        self.attention = (
            nn.ModuleList(ChannelAttention(c, attention_reduction) for c in self.channels)
            if attention
            else None
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, 3, S, S] -> 5 stage outputs, stage i of stride 2^(i+1)."""
        x = self._preconv(x)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.attention is not None:
                x = self.attention[i](x)
            outs.append(x)
        return outs
