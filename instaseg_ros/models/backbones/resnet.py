"""ResNet-18/34/50/101 backbones in the key layout of the official YOLACT checkpoints.

State-dict keys (under ``backbone.`` in a YOLACT model): ``conv1``, ``bn1``,
``layers.<stage>.<block>.{conv1,bn1,conv2,bn2[,conv3,bn3]}``, ``layers.<stage>.0.downsample.{0,1}``.
The optional channel attention blocks live under ``attention.<stage>`` (absent from official files).
The stride sits on the 3x3 convolution of the bottleneck, as in the official code and torchvision.
"""

from __future__ import annotations

import torch
from torch import nn

from instaseg_ros.models.attention import ChannelAttention
from instaseg_ros.ops.deform import ModulatedDeformConv2d, dcn_uses

RESNET_SPECS: dict[str, tuple[str, list[int]]] = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet18_slim": ("basic", [2, 2, 2, 2]),
}
# stem/stage-1 width per ResNet (default 64); "resnet18_slim" is a half-width ResNet-18 for
# small CPU models trained from scratch (4x fewer multiply-adds, no official weights exist)
RESNET_BASE_WIDTH: dict[str, int] = {"resnet18_slim": 32}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut. [B,Cin,H,W] -> [B,C,H/s,W/s]."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 x4 bottleneck. [B,Cin,H,W] -> [B,4*planes,H/s,W/s]."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        use_dcn: bool = False,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        if use_dcn:  # YOLACT++: modulated deformable 3x3 (keys conv2.weight/bias/conv_offset_mask.*)
            self.conv2 = ModulatedDeformConv2d(planes, planes, 3, stride=stride, padding=1)
        else:
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(nn.Module):
    """ResNet stem + 4 stages; returns the 4 stage outputs (C2..C5, strides 4..32).

    Args:
        name: one of ``RESNET_SPECS`` ("resnet18", "resnet34", "resnet50", "resnet101").
        attention: add a :class:`ChannelAttention` block after every stage (identity at init).
        attention_reduction: bottleneck ratio of the attention FCs.
        dcn_layers: per stage, how many of the last blocks may use DCNv2 (YOLACT++: [0, 4, 6, 3]).
        dcn_interval: of those, every ``dcn_interval``-th block does (YOLACT++: 3); the authors'
            rule: block 0 iff ``dcn_layers >= blocks``, block i iff ``i + dcn_layers >= blocks``
            and ``i % dcn_interval == 0``. Bottleneck ResNets only.

    Attributes:
        channels: output channels of the 4 stages, e.g. [256, 512, 1024, 2048] for ResNet-50.
    """

    def __init__(
        self,
        name: str = "resnet50",
        attention: bool = False,
        attention_reduction: int = 16,
        dcn_layers: tuple[int, ...] | list[int] = (0, 0, 0, 0),
        dcn_interval: int = 1,
    ):
        super().__init__()
        if name not in RESNET_SPECS:
            raise ValueError(f"unknown ResNet {name!r}; known: {sorted(RESNET_SPECS)}")
        kind, counts = RESNET_SPECS[name]
        if len(dcn_layers) != 4 or dcn_interval < 1:
            raise ValueError(
                f"dcn_layers needs 4 entries and dcn_interval >= 1, got {dcn_layers}, {dcn_interval}"
            )
        if any(dcn_layers) and kind != "bottleneck":
            raise ValueError(f"deformable convolutions need a bottleneck ResNet (resnet50/101), got {name!r}")
        base = RESNET_BASE_WIDTH.get(name, 64)
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        self.name = name
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        self.channels: list[int] = []
        inplanes = base
        for stage, (planes, n) in enumerate(zip((base, 2 * base, 4 * base, 8 * base), counts)):
            stride = 1 if stage == 0 else 2
            out = planes * block.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
                )
            dcn = [dcn_uses(i, n, dcn_layers[stage], dcn_interval) for i in range(n)]
            extra = [{"use_dcn": True} if d else {} for d in dcn]
            blocks = [block(inplanes, planes, stride, downsample, **extra[0])]
            blocks += [block(out, planes, **extra[i]) for i in range(1, n)]
            self.layers.append(nn.Sequential(*blocks))
            self.channels.append(out)
            inplanes = out
        self.attention = (
            nn.ModuleList(ChannelAttention(c, attention_reduction) for c in self.channels)
            if attention
            else None
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, 3, S, S] -> [C2, C3, C4, C5], Ci of shape [B, channels[i-2], S/2^i, S/2^i] (ceil)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.attention is not None:
                x = self.attention[i](x)
            outs.append(x)
        return outs
