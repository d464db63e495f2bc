"""ONNX Runtime backend: the exported network(s) on the CPU execution provider (CUDA/TensorRT EPs
when onnxruntime-gpu provides them).

CPU settings: ``intra_op_num_threads`` = ``threads`` (default: torch's thread count, i.e. the
physical cores this process may use, so torch and ONNX Runtime are compared on equal terms),
one inter-op thread, sequential execution, all graph optimisations (constant folding, Conv+BN+ReLU
fusion, layout transforms). Inputs/outputs are converted between torch and NumPy without copies
on the CPU; outputs are moved to the segmenter's device for post-processing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from instaseg_ros.runtime.base import BackendUnavailableError, GraphBackend
from instaseg_ros.runtime.networks import MAIN, NetworkSpec
from instaseg_ros.runtime.onnx_export import DEFAULT_OPSET, default_cache_dir, exported_networks

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it with `pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` (CUDA and TensorRT "
    "execution providers), or `pip install '.[onnx]'` from the instaseg_ros source tree"
)
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def import_onnxruntime() -> Any:
    """``import onnxruntime`` or a :class:`BackendUnavailableError` saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend 'onnxruntime': the Python module 'onnxruntime' is not installed ({e}); {INSTALL_HINT}"
        ) from e
    return onnxruntime


def resolve_providers(
    providers: str | list[str] | None, available: list[str], device: str = "cpu"
) -> list[str]:
    """Requested execution providers -> full ONNX Runtime names, CPU always appended as fallback.

    Args:
        providers: "auto"/None (CUDA when ``device`` is a CUDA device and the EP exists, else CPU),
            or names/aliases ("cpu", "cuda", "tensorrt", full EP names) as a list or comma string.
        available: ``onnxruntime.get_available_providers()``.
    Raises:
        BackendUnavailableError: a requested provider is not in this onnxruntime build.
    """
    if providers is None or providers == "auto":
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    resolved = []
    for p in providers:
        full = PROVIDER_ALIASES.get(p.lower(), p)
        if full not in available:
            hint = (
                "the CUDA and TensorRT providers come with `pip install onnxruntime-gpu` (replacing "
                "onnxruntime) and need an NVIDIA GPU"
                if full in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
                else "install an onnxruntime build that includes it"
            )
            raise BackendUnavailableError(
                f"backend 'onnxruntime': execution provider {full!r} is not available in this onnxruntime "
                f"build (available: {available}); {hint}"
            )
        if full not in resolved:
            resolved.append(full)
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")
    return resolved


def default_threads() -> int:
    """Thread count used when none is given: torch's intra-op thread count."""
    return max(1, torch.get_num_threads())


class _Session:
    """One ONNX Runtime session for one network, torch in / torch out."""

    def __init__(self, ort: Any, path: Path, spec: NetworkSpec, options: Any, providers: list[Any]) -> None:
        self.spec = spec
        self.path = path
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one graph input, found {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        b = inputs[0].shape[0]
        self.fixed_batch = b if isinstance(b, int) and b > 0 else None
        self.output_names = [o.name for o in self.session.get_outputs()]
        missing = [n for n in spec.output_names if n not in self.output_names]
        if missing:
            raise ValueError(f"{path}: graph outputs {self.output_names} lack {missing}")

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        n = x.shape[0]
        if self.fixed_batch is None or n == self.fixed_batch:
            return self.session.run(list(self.spec.output_names), {self.input_name: x})
        if n % self.fixed_batch:
            raise ValueError(
                f"{self.path}: exported with fixed batch {self.fixed_batch}; got a batch of {n} "
                "(re-export with --dynamic-batch)"
            )
        parts = [self.run(x[i : i + self.fixed_batch]) for i in range(0, n, self.fixed_batch)]
        return [np.concatenate(col, 0) for col in zip(*parts)]


class OnnxRuntimeBackend(GraphBackend):
    """Runs the exported network(s) with ONNX Runtime.

    Args:
        segmenter: the segmenter whose networks the ONNX files hold.
        onnx: main ONNX file from ``instaseg export`` (its mask-head sibling is found by name);
            None exports the segmenter once into the cache (``cache_dir``/onnx).
        providers: "auto", or execution providers (see :func:`resolve_providers`).
        threads: intra-op threads for the CPU provider (default: :func:`default_threads`).
        optimization: graph optimisation level: "disable" | "basic" | "extended" | "all".
        precision: "fp32" (the exported graphs); "int8": the graphs statically quantised for the CPU
            provider (:mod:`instaseg_ros.runtime.quantize`, needs ``calib``); "fp16" only with the
            TensorRT provider.
        calib: INT8 calibration images (a folder or a COCO JSON), as for TensorRT INT8.
        int8_keep_fp32: node-name fragments of layers kept in FP32 in the INT8 graph.
        cache_dir: where exports (and TensorRT-EP engines) are cached.
        opset, dynamic_batch: settings of the automatic export.
    """

    name = "onnxruntime"

    def __init__(
        self,
        segmenter: Any,
        onnx: str | Path | None = None,
        providers: str | list[str] | None = "auto",
        threads: int | None = None,
        optimization: str = "all",
        precision: str | None = None,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        opset: int = DEFAULT_OPSET,
        dynamic_batch: bool = True,
        calib: str | Path | None = None,
        int8_keep_fp32: tuple[str, ...] | None = None,
    ) -> None:
        ort = import_onnxruntime()
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        seg_device = str(device or getattr(segmenter, "device", "cpu"))
        names = resolve_providers(providers, ort.get_available_providers(), seg_device)
        precision = precision or "fp32"
        if precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"backend onnxruntime: precision must be fp32, fp16 or int8, not {precision!r}")
        if precision == "int8" and calib is None:
            raise ValueError(
                "backend onnxruntime: precision int8 needs calibration images (calib: a folder or COCO JSON)"
            )
        if precision == "fp16" and names[0] != "TensorrtExecutionProvider":
            raise ValueError(
                "backend 'onnxruntime': fp16 needs the TensorRT execution provider (providers='tensorrt'); "
                "the exported graphs are fp32"
            )
        dev_index = (torch.device(seg_device).index or 0) if seg_device.startswith("cuda") else 0
        provider_list: list[Any] = []
        for n in names:
            if n == "CUDAExecutionProvider":
                provider_list.append((n, {"device_id": dev_index}))
            elif n == "TensorrtExecutionProvider":
                trt_cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
                provider_list.append(
                    (
                        n,
                        {
                            "device_id": dev_index,
                            "trt_fp16_enable": precision == "fp16",
                            "trt_engine_cache_enable": True,
                            "trt_engine_cache_path": str(trt_cache / "ort_tensorrt"),
                        },
                    )
                )
            else:
                provider_list.append(n)
        device_out = f"cuda:{dev_index}" if names[0] != "CPUExecutionProvider" else "cpu"
        super().__init__(segmenter, device_out, precision)
        self.providers = names
        self.threads = threads or default_threads()
        self.optimization = optimization

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]

        nets = exported_networks(segmenter, onnx, cache_dir, opset, dynamic_batch)
        self.files, self.specs, self.metadata = nets.files, nets.specs, nets.metadata
        if precision == "int8":
            from instaseg_ros.runtime.quantize import DEFAULT_KEEP_FP32, quantize_int8

            keep = DEFAULT_KEEP_FP32 if int8_keep_fp32 is None else tuple(int8_keep_fp32)
            self.files = {n: quantize_int8(segmenter, f, calib, keep) for n, f in self.files.items()}
        self.sessions = {
            name: _Session(ort, path, self.specs[name], opts, provider_list)
            for name, path in self.files.items()
        }
        log.info(
            "onnxruntime %s: %s with %s, %d threads, optimisation %s",
            ort.__version__,
            self.files[MAIN],
            names,
            self.threads,
            optimization,
        )

    def run_graph(self, name: str, x: Tensor) -> list[Tensor]:
        """Network ``name`` through its session (CPU NumPy in and out, no copies on the CPU)."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return [torch.from_numpy(o) for o in self.sessions[name].run(arr)]

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "providers": self.providers,
            "threads": self.threads,
            "optimization": self.optimization,
            "onnx": {k: str(v) for k, v in self.files.items()},
            "opset": self.metadata.get("opset"),
            "dynamic_batch": self.metadata.get("dynamic_batch") == "1",
            "output_names": json.loads(self.metadata.get("output_names", "[]")),
        }
