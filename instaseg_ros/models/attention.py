"""Channel attention (the "SE" of YOLACT-SE).

Squeeze-and-excitation style attention with both pooling paths: global average pooling and
global max pooling each go through their own FC-ReLU-FC bottleneck, the two results are summed,
squashed and multiplied onto the feature map channel-wise.

Identity at initialisation: the gate is ``2 * sigmoid(z)`` and the last FC of both paths starts
with zero weights and zero bias, so ``z = 0`` and the gate is exactly 1 for any input. An untrained
block therefore leaves (pretrained) backbone features bit-for-bit unchanged, and training moves the
gate within (0, 2).
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """x [B, C, H, W] -> x * 2 * sigmoid(fc_avg(GAP(x)) + fc_max(GMP(x))) [B, C, H, W].

    Args:
        channels: C.
        reduction: bottleneck ratio (hidden size ``max(C // reduction, 8)``).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.avg_fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.max_fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.reset_identity()

    def reset_identity(self) -> None:
        """Zero the last FC of both paths so the block is the identity map."""
        for fc in (self.avg_fc[2], self.max_fc[2]):
            nn.init.zeros_(fc.weight)
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean(dim=(2, 3))
        mx = x.amax(dim=(2, 3))
        gate = 2.0 * torch.sigmoid(self.avg_fc(avg) + self.max_fc(mx))
        return x * gate[:, :, None, None]
