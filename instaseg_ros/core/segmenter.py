"""The ``Segmenter`` contract every model family implements, and its run-time ``InferenceParams``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances


@dataclass
class InferenceParams:
    """Run-time knobs shared by every family (all changeable without reloading).

    Attributes:
        score_threshold: keep instances scoring at least this (``>=``, the rule of
            :func:`instaseg_ros.ops.filter.keep_score`, the same in every family).
        nms_threshold: IoU above which the lower-scoring box is suppressed.
        top_k: keep at most this many instances per image.
        class_filter: class names to keep; empty keeps all.
        mask_threshold: probability above which a mask pixel is foreground.
        cross_class_nms: suppress across classes instead of per class.
    """

    score_threshold: float = 0.3
    nms_threshold: float = 0.5
    top_k: int = 100
    class_filter: list[str] = field(default_factory=list)
    mask_threshold: float = 0.5
    cross_class_nms: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {self.nms_threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")

    def updated(self, **changes) -> InferenceParams:
        """A validated copy with ``changes`` applied."""
        return replace(self, **changes)


class Segmenter(ABC):
    """Segments every object instance in a batch of BGR images, in three stages.

    The staged contract (every family implements it; the runtime backends replace only stage 2)::

        tensor, metas = seg.preprocess(images)     # [B, 3, S, S] float on ``device`` + per-image metas
        raw = seg.forward_raw(tensor)              # the network(s): tensors only (what ONNX exports)
        results = seg.postprocess(raw, metas, p)   # decode, THE filter (instaseg_ros.ops.filter),
                                                   # masks -> one Instances per image
    Families with a second network that runs on crops chosen in post-processing (YOLO+FCN's mask
    head) set ``has_mask_head = True`` and implement :meth:`mask_head_raw`; a backend may run it.

    Subclasses set ``family`` and ``class_names`` and call :meth:`_init_device` in ``__init__``.
    """

    family: str = ""
    class_names: list[str]
    device: str = "cpu"
    precision: str = "fp32"
    has_mask_head: bool = False

    def __init__(self, params: InferenceParams | dict[str, Any] | None = None) -> None:
        if params is None:
            params = InferenceParams()
        elif isinstance(params, dict):
            params = InferenceParams(**params)
        self.params = params

    def _init_device(self, device: str, precision: str) -> Any:
        """Validate and set ``device``/``precision`` ("fp32", or "fp16" on CUDA only) -> torch.device."""
        import torch

        if precision not in ("fp32", "fp16"):
            raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
        if precision == "fp16" and dev.type != "cuda":
            raise ValueError(f"precision fp16 needs a CUDA device, got device {device!r}")
        self.device = str(dev)
        self.precision = precision
        return dev

    def _attach(self, model: Any, cfg: Any, device: str, precision: str, cast_fp16: bool = True) -> Any:
        """The shared constructor step: validated ``device``/``precision``, ``cfg``, ``class_names``,
        ``dtype``, and ``model`` on the device in eval mode (cast to fp16 for precision fp16 unless the
        family runs fp16 under autocast: ``cast_fp16=False``) -> the torch.device."""
        import torch

        dev = self._init_device(device, precision)
        self.cfg = cfg
        self.class_names = list(cfg.class_names)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.to(dev).eval()
        if precision == "fp16" and cast_fp16:
            self.model.half()
        return dev

    def segment(
        self, images: Sequence[np.ndarray] | np.ndarray, params: InferenceParams | None = None
    ) -> list[Instances]:
        """Segment ``images`` ([H, W, 3] uint8 BGR each) -> one ``Instances`` per image."""
        from instaseg_ros.core.images import validate_images

        batch = validate_images(images)
        p = params or self.params
        unknown = [c for c in p.class_filter if c not in self.class_names]
        if unknown:
            raise ValueError(f"class_filter names unknown classes {unknown}; known: {self.class_names}")
        return self._segment(batch, p)

    @abstractmethod
    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[Any, list[Any]]:
        """Stage 1: validated BGR uint8 images -> (input tensor [B, 3, S, S] on ``device``, metas [B])."""

    @abstractmethod
    def forward_raw(self, tensor: Any) -> Any:
        """Stage 2: the network(s) on the input tensor -> raw output tensors (a dict or tuple)."""

    @abstractmethod
    def postprocess(
        self, raw: Any, metas: list[Any], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Stage 3: raw outputs + metas -> one ``Instances`` per image, in original-image pixels."""

    def mask_head_raw(self, crops: Any) -> Any:
        """Optional second network on crops ([N, 3, s, s] -> logits [N, 1, s, s]); see ``has_mask_head``."""
        raise NotImplementedError(f"{type(self).__name__} has no mask head")

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        """The three stages in order (families override only to pass extra stage arguments)."""
        x, metas = self.preprocess(images)
        return self.postprocess(self.forward_raw(x), metas, params)

    def class_filter_ids(self, params: InferenceParams) -> list[int] | None:
        """Class indices allowed by ``params.class_filter`` (None = all)."""
        if not params.class_filter:
            return None
        return [self.class_names.index(c) for c in params.class_filter]
