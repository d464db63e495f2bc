"""Binary FCN mask heads for YOLO+FCN: one object mask per box crop.

Two encoders behind one interface, ``forward(crops [N, 3, s, s] RGB in [0, 1])
-> logits [N, 1, s, s]`` (sigmoid > threshold = object):

* :class:`FCN8s`: the VGG16-style FCN-8s of Long et al. as in the YOLOv3 + FCN8s work (conv blocks
  64-128-256-512-512, fc6/fc7 as convolutions, learned 2x/2x/8x up-sampling with
  the pool4 and pool3 skips), with a ``width`` multiplier. Full width is 134 M
  parameters (~537 MB fp32): a GPU model.
* :class:`ResNetFCN`: a ResNet-18 encoder with the same FCN-8s skip structure
  (layer4 -> +layer3 -> +layer2 -> x8), bilinear up-sampling, and a ``width``
  multiplier: the CPU default (width 0.5: 2.8 M parameters, ~11 MB fp32).

ImageNet mean/std normalisation is inside the module (buffers), so training,
inference and exported graphs all feed crops in [0, 1] RGB. Crops of one image
run as one batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from instaseg_ros.ops.paste import crop_and_resize, crop_masks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FCN_ARCHS = ("resnet18", "fcn8s_vgg16")


@dataclass
class FcnConfig:
    """Mask-head architecture.

    Attributes:
        arch: ``"resnet18"`` (CPU default) or ``"fcn8s_vgg16"`` (the YOLOv3 + FCN8s work).
        width: channel multiplier for the encoder (1.0 = the published widths).
        crop_size: side of the square box crops (>= 32; a multiple of 32 for FCN8s).
        fc_channels: FCN8s fc6/fc7 channels (default ``4096 * width``).
    """

    arch: str = "resnet18"
    width: float = 0.5
    crop_size: int = 112
    fc_channels: int | None = None

    def __post_init__(self) -> None:
        if self.arch not in FCN_ARCHS:
            raise ValueError(f"fcn.arch must be one of {FCN_ARCHS}, got {self.arch!r}")
        if not 0.0 < self.width <= 4.0:
            raise ValueError(f"fcn.width must be in (0, 4], got {self.width}")
        if self.crop_size > 1024 or (self.fc_channels or 0) > 16384:
            raise ValueError(f"fcn: crop_size {self.crop_size} / fc_channels {self.fc_channels} too large "
                             "(supported: crop_size <= 1024, fc_channels <= 16384)")  # fmt: skip
        if self.crop_size < 32 or (self.arch == "fcn8s_vgg16" and self.crop_size % 32):
            raise ValueError(
                f"fcn.crop_size must be >= 32 (a multiple of 32 for fcn8s_vgg16), got {self.crop_size}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def _ch(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8.0)) * 8) if width != 1.0 else c


def _bilinear_kernel(channels: int, k: int) -> Tensor:
    """[C, 1, k, k] bilinear up-sampling weights for a depthwise-style ConvTranspose2d."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    w = filt[:, None] * filt[None, :]
    return w.expand(channels, 1, k, k).clone()


class _Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class FCN8s(nn.Module):
    """VGG16-style FCN-8s with one output channel (binary object logit)."""

    def __init__(self, width: float = 1.0, fc_channels: int | None = None) -> None:
        super().__init__()
        self.normalize = _Normalize()
        cfg = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]
        stages = []
        cin = 3
        for n, c in cfg:
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(cin, _ch(c, width), 3, padding=1), nn.ReLU(inplace=True)]
                cin = _ch(c, width)
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3, self.stage4, self.stage5 = stages
        fc = fc_channels or _ch(4096, width)
        self.fc6 = nn.Conv2d(cin, fc, 7, padding=3)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.drop = nn.Dropout2d(0.5)
        self.score_fr = nn.Conv2d(fc, 1, 1)
        self.score_pool4 = nn.Conv2d(_ch(512, width), 1, 1)
        self.score_pool3 = nn.Conv2d(_ch(256, width), 1, 1)
        self.upscore2 = nn.ConvTranspose2d(1, 1, 4, 2, 1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(1, 1, 4, 2, 1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(1, 1, 16, 8, 4, bias=False)
        _init(self)
        with torch.no_grad():
            for up in (self.upscore2, self.upscore_pool4, self.upscore8):
                up.weight.copy_(_bilinear_kernel(1, up.kernel_size[0]))

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        x = self.normalize(x)
        x = self.stage2(self.stage1(x))
        pool3 = self.stage3(x)
        pool4 = self.stage4(pool3)
        x = self.stage5(pool4)
        x = self.drop(F.relu(self.fc6(x), inplace=True))
        x = self.drop(F.relu(self.fc7(x), inplace=True))
        x = self.upscore2(self.score_fr(x)) + self.score_pool4(pool4)
        x = self.upscore_pool4(x) + self.score_pool3(pool3)
        x = self.upscore8(x)
        if x.shape[-2:] != size:
            x = x[..., : size[0], : size[1]]
        return x


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)), inplace=True)


class ResNetFCN(nn.Module):
    """ResNet-18 encoder with FCN-8s style skips (layer4, layer3, layer2) and a binary logit."""

    def __init__(self, width: float = 0.5) -> None:
        super().__init__()
        self.normalize = _Normalize()
        c = [_ch(v, width) for v in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, c[0], 7, 2, 3, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )  # fmt: skip
        self.layer1 = nn.Sequential(_BasicBlock(c[0], c[0], 1), _BasicBlock(c[0], c[0], 1))
        self.layer2 = nn.Sequential(_BasicBlock(c[0], c[1], 2), _BasicBlock(c[1], c[1], 1))
        self.layer3 = nn.Sequential(_BasicBlock(c[1], c[2], 2), _BasicBlock(c[2], c[2], 1))
        self.layer4 = nn.Sequential(_BasicBlock(c[2], c[3], 2), _BasicBlock(c[3], c[3], 1))
        self.score4 = nn.Conv2d(c[3], 1, 1)
        self.score3 = nn.Conv2d(c[2], 1, 1)
        self.score2 = nn.Conv2d(c[1], 1, 1)
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        x = self.normalize(x)
        f2 = self.layer2(self.layer1(self.stem(x)))
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        s = F.interpolate(self.score4(f4), size=f3.shape[-2:], mode="bilinear", align_corners=False)
        s = F.interpolate(s + self.score3(f3), size=f2.shape[-2:], mode="bilinear", align_corners=False)
        s = s + self.score2(f2)
        return F.interpolate(s, size=size, mode="bilinear", align_corners=False)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.out_channels == 1:  # score layers: small, so random models give mixed masks
                m.weight.data.mul_(0.1 / math.sqrt(2.0))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_fcn(cfg: FcnConfig | dict | None = None) -> nn.Module:
    """The mask head described by ``cfg`` (randomly initialised)."""
    if cfg is None:
        cfg = FcnConfig()
    elif isinstance(cfg, dict):
        unknown = set(cfg) - set(FcnConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown fcn config keys {sorted(unknown)}; known: {sorted(FcnConfig.__dataclass_fields__)}"
            )
        cfg = FcnConfig(**cfg)
    if cfg.arch == "fcn8s_vgg16":
        return FCN8s(cfg.width, cfg.fc_channels)
    return ResNetFCN(cfg.width)


def save_fcn_checkpoint(path, model: nn.Module, cfg: FcnConfig, **extra) -> None:
    """Save a mask head as ``{"format": "instaseg_fcn", "fcn_config": {...}, "fcn": state_dict, **extra}``.

    ``extra`` must hold only plain Python values (loaded with ``weights_only=True``).
    """
    torch.save(
        {
            "format": "instaseg_fcn",
            "version": 1,
            "fcn_config": cfg.to_dict(),
            "fcn": model.state_dict(),
            **extra,
        },
        path,
    )


def bgr_to_tensor(image: np.ndarray, device: str | torch.device = "cpu") -> Tensor:
    """BGR uint8 [H, W, 3] -> RGB float32 [3, H, W] in [0, 1] on ``device`` (the mask head's input space)."""
    t = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))
    return t.to(device).float().mul_(1.0 / 255.0)


def fcn_training_pair(
    image: np.ndarray, boxes: Tensor | np.ndarray, masks: Tensor | np.ndarray, size: int
) -> tuple[Tensor, Tensor]:
    """FCN training inputs/targets from a dataset sample, cropped exactly as at inference.

    Args:
        image: BGR uint8 [H, W, 3] (dataset ``image``).
        boxes: [N, 4] float xyxy pixels (ground-truth or jittered boxes).
        masks: [N, H, W] uint8/bool, instance ``i``'s full-image mask for box ``i``.
        size: crop side (``FcnConfig.crop_size``).

    Returns:
        crops [N, 3, size, size] RGB in [0, 1] (feed to the FCN as is) and
        targets [N, size, size] float32 in {0, 1} (for ``fcn_mask_loss``).
    """
    return crop_and_resize(bgr_to_tensor(image), boxes, size), crop_masks(masks, boxes, size)
