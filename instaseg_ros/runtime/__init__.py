"""Inference backends behind one interface: torch, ONNX Runtime, TensorRT.

Callers load a model on a backend with :func:`instaseg_ros.models.loading.load_model`
(``backend="onnxruntime"``), which does exactly this::

    seg = build_segmenter("yolact", weights=..., device="cpu")
    fast = wrap_segmenter(seg, create_backend("onnxruntime", seg))
    instances = fast.segment([image_bgr])

``create_backend`` fails at once (at configure time) with a :class:`BackendUnavailableError`
that says what is missing and how to install it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.runtime.base import BACKEND_NAMES, Backend, BackendUnavailableError, canonical_backend

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendSegmenter",
    "BackendUnavailableError",
    "available_backends",
    "canonical_backend",
    "create_backend",
    "wrap_segmenter",
]


def create_backend(name: str, segmenter: Any, **opts: Any) -> Backend:
    """Backend ``name`` ("torch", "onnxruntime", "tensorrt") for ``segmenter``'s network(s).

    ``opts`` go to the backend's constructor (see :class:`TorchBackend`,
    :class:`OnnxRuntimeBackend`, :class:`TensorRTBackend`); unknown keys are a ``ValueError``.

    Raises:
        ValueError: unknown backend name or option.
        BackendUnavailableError: the backend cannot run here (message: what is missing, how to install).
    """
    import inspect

    canonical = canonical_backend(name)
    if canonical == "torch":
        from instaseg_ros.runtime.torch_backend import TorchBackend as cls
    elif canonical == "onnxruntime":
        from instaseg_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend as cls
    else:
        from instaseg_ros.runtime.tensorrt import TensorRTBackend as cls
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [p for p in params if p not in ("self", "segmenter")]
        unknown = sorted(set(opts) - set(known))
        if unknown:
            raise ValueError(f"backend {canonical!r}: unknown option(s) {unknown}; known: {known}")
    return cls(segmenter, **opts)


def available_backends() -> dict[str, str | None]:
    """Backend name -> None when it can run here, else the reason it cannot (cheap; builds nothing)."""
    from instaseg_ros.runtime.base import module_available
    from instaseg_ros.runtime.tensorrt.availability import tensorrt_problems

    out: dict[str, str | None] = {"torch": None}
    out["onnxruntime"] = (
        None if module_available("onnxruntime") else "the Python module 'onnxruntime' is not installed"
    )
    problems = tensorrt_problems()
    out["tensorrt"] = "; ".join(problems) if problems else None
    return out


class BackendSegmenter(Segmenter):
    """A ``Segmenter`` running ``inner.preprocess -> backend -> inner.postprocess``.

    ``params`` is shared with ``inner`` at construction (changing one's thresholds changes both,
    as long as neither is reassigned). Other attributes (``cfg``, ``config``, ...) are read
    from ``inner``.
    """

    def __init__(self, inner: Segmenter, backend: Backend) -> None:
        super().__init__(inner.params)
        self.inner = inner
        self.backend = backend
        self.family = inner.family
        self.class_names = list(inner.class_names)
        self.device = backend.device
        self.precision = backend.precision
        # post-processing of families with a second network (YOLO+FCN's mask head) calls
        # ``mask_head_raw``: a shallow copy of the segmenter routes it through the backend.
        self._post = inner
        if getattr(inner, "has_mask_head", False):
            self._post = copy.copy(inner)
            self._post.mask_head_raw = self.mask_head_raw

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def preprocess(self, images: Sequence[np.ndarray] | np.ndarray) -> tuple[Tensor, Any]:
        """The inner segmenter's pre-processing (validates the batch)."""
        from instaseg_ros.core.images import validate_images

        return self.inner.preprocess(validate_images(images))

    def forward_raw(self, tensor: Tensor) -> Any:
        """The backend: [B, 3, S, S] -> raw outputs (same structure as ``inner.forward_raw``)."""
        return self.backend(tensor)

    def mask_head_raw(self, crops: Tensor) -> Tensor:
        """Mask-head network through the backend when it has one, else the inner segmenter's."""
        if self.backend.has_mask_head:
            return self.backend.mask_head(crops)
        return self.inner.mask_head_raw(crops)

    def postprocess(self, raw: Any, metas: Any, params: InferenceParams | None = None) -> list[Instances]:
        """The inner segmenter's post-processing (mask head through the backend)."""
        return self._post.postprocess(raw, metas, params or self.params)

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        x, metas = self.inner.preprocess(images)
        return self.postprocess(self.backend(x), metas, params)

    def __repr__(self) -> str:
        return f"BackendSegmenter({self.family}, {self.backend!r})"


def wrap_segmenter(segmenter: Segmenter, backend: Backend | str, **opts: Any) -> Segmenter:
    """``segmenter`` with its network(s) run by ``backend`` (a Backend or a name + ``opts``)."""
    if isinstance(backend, str):
        backend = create_backend(backend, segmenter, **opts)
    elif opts:
        raise ValueError("options are only accepted together with a backend name")
    if backend.segmenter is not segmenter:
        raise ValueError("the backend was created for a different segmenter")
    return BackendSegmenter(segmenter, backend)
