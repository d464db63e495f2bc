"""Name -> builder registry for model families.

Adding a family touches its own folder (``models/<family>/``: config, network, segmenter), ONE line
in ``_FAMILY_BUILDERS`` below, and its training task. Builders are imported lazily, so importing the
registry costs nothing; plug-ins outside the package call :func:`register_family`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from instaseg_ros.core.segmenter import Segmenter

# family name -> "module:builder(weights=, config=, device=, precision=, params=, **kw) -> Segmenter"
_FAMILY_BUILDERS: dict[str, str] = {
    "yolact": "instaseg_ros.models.yolact.segmenter:build_yolact",
    "yolo_fcn": "instaseg_ros.models.yolo_fcn.segmenter:build_yolo_fcn",
    "solo": "instaseg_ros.models.solo.segmenter:build_solo",
    "maskrcnn": "instaseg_ros.models.maskrcnn.segmenter:build_maskrcnn",
}
_BUILDERS: dict[str, Callable[..., Segmenter]] = {}


def register_family(name: str, builder: Callable[..., Segmenter]) -> None:
    """Register ``builder(weights=, config=, device=, precision=, params=) -> Segmenter``."""
    _BUILDERS[name] = builder


def available_families() -> list[str]:
    """Every family name that :func:`build_segmenter` accepts."""
    return sorted({*_FAMILY_BUILDERS, *_BUILDERS})


def build_segmenter(
    family: str,
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    **kwargs: Any,
) -> Segmenter:
    """Build the ``family`` segmenter from a weights file and/or a config (YAML path or dict)."""
    if family not in _BUILDERS:
        if family not in _FAMILY_BUILDERS:
            raise ValueError(f"unknown model family {family!r}; known: {available_families()}")
        module, _, name = _FAMILY_BUILDERS[family].partition(":")
        _BUILDERS[family] = getattr(importlib.import_module(module), name)
    return _BUILDERS[family](weights=weights, config=config, device=device, precision=precision, **kwargs)
