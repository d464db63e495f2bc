"""Exponential moving average (EMA) of a model's weights, for validation and checkpoints.

After every optimiser step::

    d(n) = decay * (1 - exp(-n / tau))          # n = updates so far; ramps from 0 to ``decay``
    ema = d(n) * ema + (1 - d(n)) * weights     # every floating parameter and buffer

so early on the average follows the fast-changing weights closely and later it smooths over about
``1 / (1 - d)`` steps (the ramp of Ultralytics' ``ModelEMA``; ``tau`` is in optimiser steps).
Integer buffers (BatchNorm's ``num_batches_tracked``) are copied.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class ModelEMA:
    """EMA of ``module``'s state dict.

    Args:
        module: the trained model (not wrapped by DDP).
        decay: the asymptotic decay in (0, 1).
        tau: ramp length in updates (> 0).
        updates: updates already done (a resumed run).
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999, tau: float = 2000.0,
                 updates: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        if tau <= 0:
            raise ValueError(f"EMA tau must be > 0, got {tau}")
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = int(updates)
        self.state: dict[str, Tensor] = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def current_decay(self) -> float:
        """``d(n)`` of the next update (``n = updates + 1``)."""
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.tau))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the current weights of ``module`` into the average."""
        d = self.current_decay()
        self.updates += 1
        for k, v in module.state_dict().items():
            e = self.state[k]
            if e.is_floating_point():
                e.mul_(d).add_(v.detach().to(e.dtype), alpha=1.0 - d)
            else:
                e.copy_(v)

    def state_dict(self) -> dict[str, object]:
        """``{"state": averaged tensors, "updates": n}`` (tensors and ints: loads with weights_only)."""
        return {"state": self.state, "updates": self.updates}

    def load_state_dict(self, sd: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        state = sd["state"]
        assert isinstance(state, dict)
        missing = set(self.state) - set(state)
        if missing:
            raise ValueError(f"EMA state lacks {sorted(missing)[:5]}")
        for k, e in self.state.items():
            e.copy_(state[k])
        self.updates = int(sd["updates"])  # type: ignore[arg-type]

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Within the block ``module`` holds the averaged weights; its own are restored afterwards."""
        own = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(self.state)
        try:
            yield
        finally:
            module.load_state_dict(own)
