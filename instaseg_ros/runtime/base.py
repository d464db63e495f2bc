"""The ``Backend`` interface: runs a segmenter's raw network(s), nothing else.

A backend replaces ``segmenter.forward_raw`` (and ``segmenter.mask_head_raw`` for families with a
second network run during post-processing, YOLO+FCN). Pre- and post-processing stay the
segmenter's own, so every backend produces ``Instances`` through the same code.

``backend(tensor)`` takes the pre-processed batch ([B, 3, S, S] float, as ``preprocess`` returns)
and returns the same structure ``forward_raw`` returns (YOLACT: a dict with ``loc``, ``conf``,
``mask``, ``priors``, ``proto``; YOLO+FCN: ``(boxes, scores)``), as torch tensors on the
segmenter's device so ``postprocess`` runs unchanged.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from instaseg_ros.runtime.networks import MAIN, MASK_HEAD, NetworkSpec

#: every backend name ``create_backend`` knows, in order of preference on a GPU machine
BACKEND_NAMES = ("torch", "onnxruntime", "tensorrt")
#: accepted spellings (lower case, without "-" and "_") -> backend name
BACKEND_ALIASES = {"torch": "torch", "pytorch": "torch", "onnxruntime": "onnxruntime", "ort": "onnxruntime",
                   "onnx": "onnxruntime", "tensorrt": "tensorrt", "trt": "tensorrt"}  # fmt: skip


class BackendUnavailableError(RuntimeError):
    """A backend cannot run here: the message says what is missing and how to install it."""


def canonical_backend(name: str) -> str:
    """A backend name as users spell it ("ORT", "onnx_runtime", "trt", ...) -> one of :data:`BACKEND_NAMES`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in BACKEND_ALIASES:
        raise ValueError(f"unknown backend {name!r}; known: {list(BACKEND_NAMES)}")
    return BACKEND_ALIASES[key]


class Backend(ABC):
    """Runs the raw network(s) of one segmenter.

    Attributes:
        name: backend name as selected by ``create_backend`` ("torch", "onnxruntime", "tensorrt").
        device: where the network runs ("cpu", "cuda:0").
        precision: "fp32", "fp16" or "int8".
        segmenter: the segmenter whose networks this backend runs.
    """

    name: str = ""

    def __init__(self, segmenter: Any, device: str, precision: str) -> None:
        self.segmenter = segmenter
        self.device = device
        self.precision = precision

    @abstractmethod
    def __call__(self, tensor: Tensor) -> Any:
        """[B, 3, S, S] pre-processed batch -> raw outputs, same structure as ``forward_raw``."""

    @property
    def has_mask_head(self) -> bool:
        """Whether this backend also runs the family's mask-head network (``mask_head``)."""
        return False

    def mask_head(self, crops: Tensor) -> Tensor:
        """[N, 3, s, s] box crops -> mask logits [N, 1, s, s] (YOLO+FCN only)."""
        raise NotImplementedError(f"backend {self.name!r} has no mask-head network for this segmenter")

    def info(self) -> dict[str, Any]:
        """Description for logs, diagnostics and benchmark JSON."""
        return {"backend": self.name, "device": self.device, "precision": self.precision}

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); a no-op on the CPU."""
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        """Release sessions/engines (optional)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r})"


class GraphBackend(Backend):
    """A backend running exported graphs (ONNX Runtime sessions, TensorRT engines), one per network.

    Subclasses fill ``self.specs`` (network name -> :class:`NetworkSpec`: ``main``, and
    ``mask_head`` for YOLO+FCN) and implement :meth:`run_graph`; the dispatch (``__call__`` runs
    ``main``, :meth:`mask_head` runs ``mask_head``), moving outputs to the segmenter's device and
    rebuilding the ``forward_raw`` structure live here once.
    """

    def __init__(self, segmenter: Any, device: str, precision: str) -> None:
        super().__init__(segmenter, device, precision)
        self.specs: dict[str, NetworkSpec] = {}
        self._out_device = torch.device(str(getattr(segmenter, "device", "cpu")))

    @abstractmethod
    def run_graph(self, name: str, x: Tensor) -> list[Tensor]:
        """Network ``name`` on a batch ``x`` [N, ...] -> its outputs in ``specs[name].output_names`` order."""

    def run_network(self, name: str, x: Tensor) -> Any:
        """Network ``name`` -> what ``forward_raw``/``mask_head_raw`` returns, on the segmenter's device."""
        outs = [o.to(self._out_device) for o in self.run_graph(name, x)]
        return self.specs[name].to_raw(outs)

    def __call__(self, tensor: Tensor) -> Any:
        return self.run_network(MAIN, tensor)

    @property
    def has_mask_head(self) -> bool:
        return MASK_HEAD in self.specs

    def mask_head(self, crops: Tensor) -> Tensor:
        if MASK_HEAD not in self.specs:
            return super().mask_head(crops)
        return self.run_network(MASK_HEAD, crops)


def module_available(name: str) -> bool:
    """Whether ``import name`` would find a module (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
