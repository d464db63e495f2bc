"""THE single way to load a model: ``load_model(family, weights, config, backend, device, precision)``.

The node, ``instaseg predict``, ``eval-bag``, the benchmark, the demo and the web app all call
:func:`load_model`; nothing else builds a segmenter from files. Every failure is a
:class:`ModelLoadError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from typing import Any

from instaseg_ros.core.resources import resolve_path
from instaseg_ros.core.segmenter import InferenceParams, Segmenter

PRECISIONS = ("fp32", "fp16", "int8")


class ModelLoadError(ValueError):
    """A model cannot be loaded; the message names the file (or setting) and the problem."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda:N``/``cpu`` pass through."""
    device = str(device).strip().lower()
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device == "cuda" or device.startswith("cuda:"):
        return device
    raise ModelLoadError(f"device {device!r} is not one of auto, cpu, cuda, cuda:N")


def check_model_file(path: str | None, what: str = "weights") -> str | None:
    """``path`` resolved (``package://``, ``~``) and checked to be a readable regular file.

    Raises:
        ModelLoadError: naming the file and whether it is missing, a directory, or not a regular file.
    """
    if path is None or path == "":
        return None
    try:
        resolved = resolve_path(str(path))
    except FileNotFoundError as e:
        raise ModelLoadError(f"model {what} {path!r}: {e}") from None
    from instaseg_ros.weights.torch_io import check_readable_file

    try:
        check_readable_file(resolved, f"model {what}")
    except (FileNotFoundError, ValueError) as e:
        raise ModelLoadError(str(e)) from None
    if not os.access(resolved, os.R_OK):
        raise ModelLoadError(f"model {what} file {resolved!r} is not readable (permissions)")
    return resolved


def load_model(
    family: str,
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    *,
    backend: str = "torch",
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | None = None,
    backend_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Segmenter:
    """Build the ``family`` segmenter from ``weights``/``config`` and run it on ``backend``.

    Args:
        family: a registered family ("yolact", "yolo_fcn", "solo", "maskrcnn", ...).
        weights: checkpoint path (``package://`` and ``~`` allowed); its format is recognised
            (ours, official YOLACT/YOLACT++, Darknet, torchvision) by the family's reader.
        config: YAML path or mapping with the family's config (optional where the checkpoint has one).
        backend: "torch", "onnxruntime" or "tensorrt". For the non-torch backends the segmenter's
            pre/post-processing runs in fp32 and ``precision`` selects the engine precision.
        device: "auto", "cpu", "cuda", "cuda:N".
        precision: "fp32", "fp16" or "int8" (int8: ONNX Runtime on the CPU or TensorRT; both need
            calibration images in ``backend_options["calib"]``).
        params: inference thresholds shared with the returned segmenter.
        backend_options: extra options for the backend (cache dir, calibration data, ...).
        **kwargs: family builder options (e.g. ``allow_random_fcn``).

    Raises:
        ModelLoadError: any problem, with the file and the difference named.
        BackendUnavailableError: the backend cannot run on this machine (what is missing, how to install).
    """
    from instaseg_ros.models.registry import available_families, build_segmenter
    from instaseg_ros.runtime.base import BackendUnavailableError

    if family not in available_families():
        raise ModelLoadError(f"unknown model family {family!r}; known: {', '.join(available_families())}")
    from instaseg_ros.runtime.base import canonical_backend

    try:
        backend = canonical_backend(backend)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "int8" and backend == "torch":
        raise ModelLoadError("precision int8 needs backend onnxruntime (CPU) or tensorrt (GPU)")
    weights = check_model_file(weights, "weights")
    if weights is not None:
        _check_family(family, weights)
    if isinstance(config, str) or config is None:
        config = check_model_file(config, "config")
    dev = resolve_device(device)
    seg_precision = precision if backend == "torch" else "fp32"
    try:
        seg = build_segmenter(
            family,
            weights=weights,
            config=config,
            device=dev,
            precision=seg_precision,
            params=params,
            **kwargs,
        )
    except ModelLoadError:
        raise
    except (ValueError, KeyError, RuntimeError, OSError, TypeError) as e:
        where = f"weights {weights!r}" if weights else f"config {config!r}" if config else "defaults"
        raise ModelLoadError(f"cannot load the {family!r} model from {where}: {e}") from e
    if backend == "torch":
        return seg
    from instaseg_ros.runtime import wrap_segmenter

    opts = dict(backend_options or {})
    if backend in ("tensorrt", "onnxruntime") and precision != "fp32":
        opts.setdefault("precision", precision)
    try:
        return wrap_segmenter(seg, backend, **opts)
    except BackendUnavailableError:
        raise
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelLoadError(f"backend {backend!r} for the {family!r} model: {e}") from e


def _check_family(family: str, weights: str) -> None:
    """A file another family reads -> ModelLoadError saying what the file is."""
    from instaseg_ros.weights.identify import identify_weights

    try:
        kind = identify_weights(weights)
    except (ValueError, OSError) as e:
        raise ModelLoadError(f"model weights {weights!r}: {e}") from None
    if kind.family and kind.family != family and family != "oracle":
        raise ModelLoadError(f"model weights {weights!r}: {kind.detail}, not a {family!r} model")
