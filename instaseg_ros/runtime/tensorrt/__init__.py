"""Native TensorRT: FP32/FP16/INT8 engines built from the exported ONNX, cached on disk.

* Engines are built from the ONNX file(s) of :mod:`instaseg_ros.runtime.onnx_export` (exported
  automatically into the cache when none is given) with an optimisation profile over the batch
  dimension (1 .. ``max_batch``, optimised for ``opt_batch``).
* INT8 uses entropy calibration (``IInt8EntropyCalibrator2``) over images from a folder or a
  COCO-format JSON, pre-processed by the segmenter's own ``preprocess``; FP16 stays enabled so
  TensorRT can fall back per layer. Following YolactEdge's per-module mixed precision,
  ``int8_modules`` (default: the backbone) restricts INT8 to layers whose ONNX node names contain
  one of the given module paths; every other layer is constrained to FP16.
* Engine cache: one file per :class:`EngineKey` (GPU name + compute capability, TensorRT version,
  input shape profile, precision, ONNX file hash, calibration-set hash, workspace) with a JSON
  sidecar. A key mismatch means a rebuild; :func:`stale_reasons` names what changed (e.g. a
  TensorRT upgrade) and stale entries of the same network are pruned.
* Execution uses torch CUDA tensors as I/O buffers (``set_tensor_address`` +
  ``execute_async_v3`` on torch's current stream): no pycuda needed. Requires TensorRT >= 8.6.

Without the ``tensorrt`` module or a CUDA device, constructing the backend raises
:class:`BackendUnavailableError` listing what is missing and how to install it.

Modules: :mod:`.availability` (what is missing here), :mod:`.cache` (engine keys and the cache
folder), :mod:`.calibration` (INT8 images, batches, calibrator), :mod:`.build` (ONNX -> engine),
:mod:`.backend` (:class:`TensorRTBackend` and the engine runner).
"""

from __future__ import annotations

from instaseg_ros.runtime.tensorrt.availability import INSTALL_TENSORRT, require_tensorrt, tensorrt_problems
from instaseg_ros.runtime.tensorrt.backend import EngineRunner, TensorRTBackend
from instaseg_ros.runtime.tensorrt.build import build_engine
from instaseg_ros.runtime.tensorrt.cache import (
    ENGINE_FORMAT_VERSION,
    PRECISIONS,
    EngineCache,
    EngineKey,
    gpu_identity,
    stale_reasons,
)
from instaseg_ros.runtime.tensorrt.calibration import (
    calibration_batches,
    calibration_hash,
    calibration_images,
    make_calibrator,
)

__all__ = [
    "ENGINE_FORMAT_VERSION",
    "INSTALL_TENSORRT",
    "PRECISIONS",
    "EngineCache",
    "EngineKey",
    "EngineRunner",
    "TensorRTBackend",
    "build_engine",
    "calibration_batches",
    "calibration_hash",
    "calibration_images",
    "gpu_identity",
    "make_calibrator",
    "require_tensorrt",
    "stale_reasons",
    "tensorrt_problems",
]
