"""Modulated deformable convolution (DCNv2) on ``torchvision.ops.deform_conv2d``.

YOLACT++ replaces the 3x3 convolution of some ResNet bottlenecks by DCNv2 (Zhu et al., "Deformable
ConvNets v2", 2019). The authors' CUDA extension (``dcn_v2``) does not build with current PyTorch;
torchvision's ``deform_conv2d`` computes the same function on CPU and GPU. This module keeps the
extension's parameter layout, so official YOLACT++ checkpoints load unchanged:

* ``weight`` [Cout, Cin, k, k] and ``bias`` [Cout] of the deformable convolution;
* ``conv_offset_mask`` (a plain ``Conv2d`` with the same stride/padding/dilation) predicting
  ``3 * k * k`` channels per position: ``o1, o2, m = chunk(3)``, offsets = ``cat(o1, o2)`` as
  (dy, dx) pairs per kernel tap, modulation = ``sigmoid(m)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: [B, Cin, H, W] -> [B, Cout, H', W'] (H' as for ``nn.Conv2d`` with the same settings)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        deformable_groups: int = 1,
    ) -> None:
        super().__init__()
        k = kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        bound = 1.0 / math.sqrt(in_channels * k * k)
        nn.init.uniform_(self.weight, -bound, bound)
        self.conv_offset_mask = nn.Conv2d(
            in_channels, deformable_groups * 3 * k * k, k, stride=stride, padding=padding, dilation=dilation
        )
        nn.init.zeros_(self.conv_offset_mask.weight)  # start as a plain convolution (zero offsets,
        nn.init.zeros_(self.conv_offset_mask.bias)  # modulation 0.5), as the authors initialise it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import deform_conv2d

        o1, o2, m = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return deform_conv2d(
            x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
            dilation=self.dilation, mask=torch.sigmoid(m),
        )  # fmt: skip

    def fold_batchnorm(self, bn: nn.BatchNorm2d) -> None:
        """Fold an eval-mode ``bn`` that follows this convolution into ``weight`` and ``bias``."""
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        with torch.no_grad():
            self.weight.mul_(scale.view(-1, 1, 1, 1))
            self.bias.copy_((self.bias - bn.running_mean) * scale + bn.bias)


def dcn_uses(block: int, blocks: int, dcn_layers: int, dcn_interval: int) -> bool:
    """Whether block ``block`` of a stage with ``blocks`` blocks uses DCNv2 (the authors' rule)."""
    if block == 0:
        return dcn_layers >= blocks
    return block + dcn_layers >= blocks and block % dcn_interval == 0


def uses_deformable(module: nn.Module) -> bool:
    """Whether ``module`` contains a :class:`ModulatedDeformConv2d` (exports need ONNX opset >= 19)."""
    return any(isinstance(m, ModulatedDeformConv2d) for m in module.modules())


DEFORM_CONV_OPSET = 19  # ONNX DeformConv was added in opset 19


def register_onnx_symbolic() -> None:
    """Export ``torchvision::deform_conv2d`` as the ONNX ``DeformConv`` operator (opset 19), which ONNX
    Runtime (CPU) and the TensorRT ONNX parser (10.1 and newer) implement."""
    import torchvision  # noqa: F401 - registers the torchvision operators
    from torch.onnx import register_custom_op_symbolic
    from torch.onnx.symbolic_helper import parse_args

    @parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
    def deform_conv(g, x, w, offset, mask, bias, sh, sw, ph, pw, dh, dw, groups, offset_groups, _use_mask):
        kh, kw = w.type().sizes()[-2:]
        return g.op(
            "DeformConv", x, w, offset, bias, mask, dilations_i=[dh, dw], group_i=groups,
            offset_group_i=offset_groups, kernel_shape_i=[kh, kw], pads_i=[ph, pw, ph, pw],
            strides_i=[sh, sw],
        )  # fmt: skip

    register_custom_op_symbolic("torchvision::deform_conv2d", deform_conv, DEFORM_CONV_OPSET)
