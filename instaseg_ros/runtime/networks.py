"""What a backend runs: the exportable networks of a segmenter and how their outputs map back.

Every family splits into ``preprocess -> forward_raw -> postprocess``. ``forward_raw`` (and, for
YOLO+FCN, the FCN mask head ``mask_head_raw`` run inside post-processing) are the only parts a
backend replaces. :func:`network_specs` describes them as plain tensor-in/tuple-out modules so
that ONNX export, ONNX Runtime and TensorRT treat every family alike:

* ``yolact``: one network ``main``: images [B, 3, S, S] -> (loc [B, P, 4], conf [B, P, C+1],
  mask [B, P, K], proto [B, h, w, K]). The priors [P, 4] are a constant of the configuration and
  are not a graph output: :meth:`NetworkSpec.to_raw` re-attaches the segmenter's buffer.
* ``yolo_fcn``: ``main``: images [B, 3, S, S] -> (boxes [B, N, 4] letterbox px, scores [B, N, K]),
  with the anchors/grid decoding inside the graph (constants); ``mask_head``: crops [N, 3, s, s]
  -> logits [N, 1, s, s] (always dynamic in N: the number of boxes varies per image).

A family not listed here can still be served by every backend by giving its segmenter an
``export_specs()`` method returning ``list[NetworkSpec]``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

MAIN = "main"
MASK_HEAD = "mask_head"


@dataclass
class NetworkSpec:
    """One exportable network of a segmenter.

    Attributes:
        name: ``"main"`` (what ``forward_raw`` runs) or ``"mask_head"`` (``mask_head_raw``).
        module: tensor -> tuple of tensors (the graph that is exported).
        input_name: graph input name.
        input_shape: [3, H, W] of one sample (the batch dimension is separate).
        output_names: graph output names, in the module's output order.
        to_raw: graph outputs (torch tensors, in ``output_names`` order) -> the structure the
            segmenter's ``forward_raw`` / ``mask_head_raw`` returns.
        dynamic_batch: the batch dimension must stay dynamic (mask head: one crop per box).
        max_batch: largest batch a fixed-shape engine (TensorRT profile) must accept.
        params: state tensors hashed into the identity of the network (:meth:`weights_hash`).
    """

    name: str
    module: nn.Module
    input_name: str
    input_shape: tuple[int, int, int]
    output_names: tuple[str, ...]
    to_raw: Callable[[Sequence[Tensor]], Any]
    dynamic_batch: bool = False
    max_batch: int = 8
    params: dict[str, Tensor] = field(default_factory=dict)

    def sample_input(self, batch: int = 1, seed: int = 0) -> Tensor:
        """A deterministic float32 CPU input [batch, *input_shape] in the network's value range."""
        g = torch.Generator().manual_seed(seed)
        return torch.rand((batch, *self.input_shape), generator=g)

    def weights_hash(self) -> str:
        """SHA-256 over parameter/buffer names, shapes, dtypes and values (fp32, CPU)."""
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.input_shape}|{self.output_names}".encode())
        state = self.params or self.module.state_dict()
        for k in sorted(state):
            v = state[k]
            if not isinstance(v, Tensor):
                continue
            t = v.detach().to("cpu")
            if t.is_floating_point():
                t = t.float()
            h.update(f"{k}|{tuple(t.shape)}|{t.dtype}".encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()


class _YolactGraph(nn.Module):
    """YolactSE without the constant priors output: x -> (loc, conf, mask, proto)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.model(x)
        return out["loc"], out["conf"], out["mask"], out["proto"]


class _TupleGraph(nn.Module):
    """Any module -> tuple outputs (a single tensor becomes a 1-tuple)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.module(x)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _yolact_specs(seg: Any) -> list[NetworkSpec]:
    s = int(seg.cfg.input_size)
    priors = seg.model.priors

    def to_raw(outs: Sequence[Tensor]) -> dict[str, Tensor]:
        loc, conf, mask, proto = outs
        return {"loc": loc, "conf": conf, "mask": mask, "priors": priors.to(loc.device), "proto": proto}

    return [
        NetworkSpec(
            name=MAIN,
            module=_YolactGraph(seg.model).eval(),
            input_name="images",
            input_shape=(3, s, s),
            output_names=("loc", "conf", "mask", "proto"),
            to_raw=to_raw,
        )
    ]


def _yolo_fcn_specs(seg: Any) -> list[NetworkSpec]:
    s = int(seg.config.input_size)
    c = int(seg.crop_size)
    top_k = int(getattr(seg.params, "top_k", 100))
    return [
        NetworkSpec(
            name=MAIN,
            module=_TupleGraph(seg.detector).eval(),
            input_name="images",
            input_shape=(3, s, s),
            output_names=("boxes", "scores"),
            to_raw=lambda outs: (outs[0].float(), outs[1].float()),
        ),
        NetworkSpec(
            name=MASK_HEAD,
            module=_TupleGraph(seg.fcn).eval(),
            input_name="crops",
            input_shape=(3, c, c),
            output_names=("logits",),
            to_raw=lambda outs: outs[0],
            dynamic_batch=True,
            max_batch=max(top_k, 1),
        ),
    ]


_FAMILY_SPECS: dict[str, Callable[[Any], list[NetworkSpec]]] = {
    "yolact": _yolact_specs,
    "yolo_fcn": _yolo_fcn_specs,
}


def network_specs(segmenter: Any) -> list[NetworkSpec]:
    """The exportable networks of ``segmenter`` (``main`` first).

    Raises:
        NotImplementedError: the family has no export description.
    """
    own = getattr(segmenter, "export_specs", None)
    if callable(own):
        return list(own())
    family = getattr(segmenter, "family", "")
    if family not in _FAMILY_SPECS:
        raise NotImplementedError(
            f"family {family!r} cannot run on an exported backend yet: known families "
            f"{sorted(_FAMILY_SPECS)} (or give the segmenter an export_specs() method); use backend 'torch'"
        )
    return _FAMILY_SPECS[family](segmenter)


def cpu_fp32_copy(module: nn.Module) -> nn.Module:
    """``module`` itself if it is already fp32 on the CPU, else an fp32 CPU deep copy (for export)."""
    tensors = list(module.parameters()) + list(module.buffers())
    if all(
        t.device.type == "cpu" and (not t.is_floating_point() or t.dtype == torch.float32) for t in tensors
    ):
        return module
    return copy.deepcopy(module).to("cpu").float()
