"""PyTorch backend: the segmenter's own modules (CPU, CUDA fp32, CUDA fp16).

The device and precision are the segmenter's: build it with the ones you want
(``build_segmenter(family, ..., device="cuda", precision="fp16")``). Asking this backend for a
different device/precision than the segmenter was built with is an error, because moving the
model behind the segmenter's back would desynchronise its pre-/post-processing tensors.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from instaseg_ros.runtime.base import Backend, BackendUnavailableError


def _same_device(a: str, b: str) -> bool:
    """ "cuda" and "cuda:0" are the same device; "cpu" is "cpu"."""
    import torch

    da, db = torch.device(a), torch.device(b)
    return da.type == db.type and (da.index or 0) == (db.index or 0)


class TorchBackend(Backend):
    """Runs ``segmenter.forward_raw`` / ``segmenter.mask_head_raw`` unchanged."""

    name = "torch"

    def __init__(
        self, segmenter: Any, device: str | None = None, precision: str | None = None, **_: Any
    ) -> None:
        seg_device = str(getattr(segmenter, "device", "cpu"))
        seg_precision = str(getattr(segmenter, "precision", "fp32"))
        if device is not None and not _same_device(device, seg_device):
            raise ValueError(
                f"torch backend: the segmenter was built on device {seg_device!r} but device {device!r} "
                "was requested; build the segmenter with device=... instead"
            )
        if precision is not None and precision != seg_precision:
            raise ValueError(
                f"torch backend: the segmenter was built with precision {seg_precision!r} but "
                f"{precision!r} was requested; build it with precision=... (fp16 needs CUDA)"
            )
        if seg_device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"torch backend: device {seg_device!r} requested but torch.cuda.is_available() is False "
                    f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use device 'cpu' or "
                    "install a CUDA build of torch and an NVIDIA driver"
                )
        super().__init__(segmenter, seg_device, seg_precision)

    def __call__(self, tensor: Tensor) -> Any:
        return self.segmenter.forward_raw(tensor)

    @property
    def has_mask_head(self) -> bool:
        return bool(getattr(self.segmenter, "has_mask_head", False))

    def mask_head(self, crops: Tensor) -> Tensor:
        return self.segmenter.mask_head_raw(crops)
