"""Inference-time graph simplification shared by the model families.

``fold_batchnorm`` merges every eval-mode ``BatchNorm2d`` that directly follows a ``Conv2d``
(as consecutive children of one module, or as ``convN``/``bnN`` attribute pairs) into the
convolution, replacing the norm by ``Identity``. Outputs change only by float rounding
(~1e-6 relative); the state-dict layout of the copy changes, so keep the original module for
training and checkpoints.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from instaseg_ros.ops.deform import ModulatedDeformConv2d


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold Conv2d+BatchNorm2d pairs of ``module`` (in place, eval mode) and return it."""
    module.eval()
    for child in module.children():
        fold_batchnorm(child)
    names = [n for n, _ in module.named_children()]
    pairs = list(zip(names, names[1:]))
    # attribute pairs like conv1/bn1 of ResNet blocks, which are not consecutive children
    pairs += [(n, "bn" + n[4:]) for n in names if n.startswith("conv") and "bn" + n[4:] in names]
    for a, b in pairs:
        conv, bn = getattr(module, a), getattr(module, b)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, a, fuse_conv_bn_eval(conv, bn))
            setattr(module, b, nn.Identity())
        elif isinstance(conv, ModulatedDeformConv2d) and isinstance(bn, nn.BatchNorm2d):
            conv.fold_batchnorm(bn)
            setattr(module, b, nn.Identity())
    return module


def inference_copy(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` with BatchNorm folded and (optionally) channels-last weights.

    Folding is computed in fp32 and the copy is cast back to ``model``'s dtype (fp16 models keep
    the precision of folding in fp32).
    """
    dtype = next(model.parameters()).dtype
    fast = fold_batchnorm(copy.deepcopy(model).float().eval()).to(dtype)
    for p in fast.parameters():
        p.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast
