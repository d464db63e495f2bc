"""Name -> builder registry for model families.

Each family module calls :func:`register_family` at import; the registry
imports family modules lazily so that importing it costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from instaseg_ros.core.segmenter import Segmenter

# family name -> module that registers it
_FAMILY_MODULES: dict[str, str] = {
    "yolact": "instaseg_ros.models.yolact",
    "yolo_fcn": "instaseg_ros.models.yolo_fcn",
    "solo": "instaseg_ros.models.solo",
    "maskrcnn": "instaseg_ros.models.maskrcnn",
}
_BUILDERS: dict[str, Callable[..., Segmenter]] = {}


def register_family(name: str, builder: Callable[..., Segmenter]) -> None:
    """Register ``builder(weights=, config=, device=, precision=, params=) -> Segmenter``."""
    _BUILDERS[name] = builder


def available_families() -> list[str]:
    """Families whose module exists in this installation."""
    return [n for n, m in _FAMILY_MODULES.items() if importlib.util.find_spec(m) is not None]


def build_segmenter(
    family: str,
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    **kwargs: Any,
) -> Segmenter:
    """Build the ``family`` segmenter from a weights file and/or a config (YAML path or dict)."""
    if family not in _FAMILY_MODULES and family not in _BUILDERS:  # plug-ins register at import
        raise ValueError(f"unknown model family {family!r}; known: {sorted(_FAMILY_MODULES)}")
    if family not in _BUILDERS:
        importlib.import_module(_FAMILY_MODULES[family])
    if family not in _BUILDERS:
        raise RuntimeError(f"module {_FAMILY_MODULES[family]} did not register family {family!r}")
    return _BUILDERS[family](weights=weights, config=config, device=device, precision=precision, **kwargs)
