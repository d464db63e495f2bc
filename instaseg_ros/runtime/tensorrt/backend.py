"""The TensorRT backend: engines for a segmenter's networks (built or cached) and running them.

Execution uses torch CUDA tensors as I/O buffers (``set_tensor_address`` + ``execute_async_v3``
on torch's current stream): no pycuda needed. Requires TensorRT >= 8.6.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from instaseg_ros.runtime.base import GraphBackend
from instaseg_ros.runtime.networks import MAIN, NetworkSpec
from instaseg_ros.runtime.onnx_export import DEFAULT_OPSET, default_cache_dir, exported_networks, file_sha256
from instaseg_ros.runtime.tensorrt.availability import check_deformable_support, require_tensorrt
from instaseg_ros.runtime.tensorrt.build import build_engine
from instaseg_ros.runtime.tensorrt.cache import PRECISIONS, EngineCache, EngineKey, gpu_identity
from instaseg_ros.runtime.tensorrt.calibration import (
    calibration_batches,
    calibration_hash,
    calibration_images,
    make_calibrator,
)

log = logging.getLogger(__name__)


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int8: torch.int8, trt.bool: torch.bool}  # fmt: skip
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    if dt not in table:
        raise RuntimeError(f"TensorRT tensor dtype {dt} is not supported by this backend")
    return table[dt]


class EngineRunner:
    """One deserialized engine + execution context; torch CUDA tensors in and out."""

    def __init__(self, trt: Any, engine_path: Path, spec: NetworkSpec, device: str) -> None:
        self.trt = trt
        self.spec = spec
        self.device = torch.device(device)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"TensorRT could not deserialize {engine_path} (corrupt file or other TensorRT)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(self.inputs) != 1:
            raise RuntimeError(f"{engine_path}: expected one input tensor, found {self.inputs}")
        self.input = self.inputs[0]
        outputs = [n for n in names if n not in self.inputs]
        missing = [n for n in spec.output_names if n not in outputs]
        if missing:
            raise RuntimeError(f"{engine_path}: engine outputs {outputs} lack {missing}")
        self.outputs = list(spec.output_names)
        self.max_batch = int(self.engine.get_tensor_profile_shape(self.input, 0)[2][0])
        self.input_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input))
        self.out_dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in self.outputs}

    def _run(self, x: Tensor) -> list[Tensor]:
        x = x.to(self.device, self.input_dtype).contiguous()
        self.context.set_input_shape(self.input, tuple(x.shape))
        self.context.set_tensor_address(self.input, int(x.data_ptr()))
        outs = []
        for n in self.outputs:
            t = torch.empty(
                tuple(self.context.get_tensor_shape(n)), dtype=self.out_dtypes[n], device=self.device
            )
            self.context.set_tensor_address(n, int(t.data_ptr()))
            outs.append(t)
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution failed for network {self.spec.name!r}")
        return outs

    def __call__(self, x: Tensor) -> list[Tensor]:
        n = x.shape[0]
        if n == 0:  # e.g. no boxes for the mask head: run one dummy sample, return empty outputs
            return [o[:0] for o in self._run(torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device))]
        if n <= self.max_batch:
            return self._run(x)
        parts = [self._run(x[i : i + self.max_batch]) for i in range(0, n, self.max_batch)]
        return [torch.cat(col, 0) for col in zip(*parts)]


class TensorRTBackend(GraphBackend):
    """Runs the segmenter's network(s) as TensorRT engines on a CUDA device.

    Args:
        segmenter: build it on the same CUDA device (pre/post-processing then stay on the GPU);
            its own precision should be fp32 (the engine's precision is ``precision``).
        onnx: main ONNX file (+ mask-head sibling); None exports into the cache.
        precision: "fp16" (default), "fp32" or "int8" (needs ``calib``).
        device: CUDA device (default: the segmenter's if CUDA, else "cuda:0").
        cache_dir: engine/ONNX cache (default :func:`default_cache_dir`/tensorrt).
        engine_dir: alias of an explicit engine folder (overrides ``cache_dir``/tensorrt).
        max_batch / opt_batch: batch profile of the main network (mask head: 1 .. its max_batch).
        calib: INT8 calibration images: a folder or a COCO JSON.
        calib_images / calib_batch: how many calibration images, and per batch.
        int8_modules: ONNX node-name fragments of the layers allowed to run in INT8 (default for
            YOLACT: "/backbone/", as YolactEdge; [] = all layers). The mask head of YOLO+FCN is
            built in FP16 when the main network is INT8 (crops are not calibrated).
        workspace_mib: builder workspace limit.
        rebuild: ignore cached engines.
    """

    name = "tensorrt"

    def __init__(
        self,
        segmenter: Any,
        onnx: str | Path | None = None,
        precision: str = "fp16",
        device: str | None = None,
        cache_dir: str | Path | None = None,
        engine_dir: str | Path | None = None,
        max_batch: int = 8,
        opt_batch: int = 1,
        calib: str | Path | None = None,
        calib_images: int = 256,
        calib_batch: int = 8,
        int8_modules: Sequence[str] | None = None,
        workspace_mib: int = 4096,
        rebuild: bool = False,
        opset: int = DEFAULT_OPSET,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"backend 'tensorrt': precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "int8" and calib is None:
            raise ValueError(
                "backend 'tensorrt': precision int8 needs calibration images: "
                "calib=<folder of images or COCO JSON>"
            )
        if not 1 <= opt_batch <= max_batch:
            raise ValueError(
                f"backend 'tensorrt': need 1 <= opt_batch <= max_batch, got {opt_batch}, {max_batch}"
            )
        seg_device = str(getattr(segmenter, "device", "cpu"))
        device = device or (seg_device if seg_device.startswith("cuda") else "cuda:0")
        trt = require_tensorrt(device)
        check_deformable_support(trt.__version__, getattr(segmenter, "model", segmenter))
        dev = torch.device(device)
        if dev.type != "cuda":
            raise ValueError(f"backend 'tensorrt': device must be a CUDA device, got {device!r}")
        super().__init__(segmenter, f"cuda:{dev.index or 0}", precision)
        self.trt = trt
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = EngineCache(Path(engine_dir) if engine_dir is not None else cache / "tensorrt")
        nets = exported_networks(segmenter, onnx, cache, opset, dynamic_batch=True)
        self.specs = nets.specs
        onnx, meta = nets.files[MAIN], nets.metadata
        fixed = int(meta.get("batch_size", "1")) if meta.get("dynamic_batch") == "0" else None
        if fixed is not None:
            log.info("%s has a fixed batch of %d: the engine profile is that batch", onnx, fixed)
        gpu, cc = gpu_identity(self.device)
        family = str(getattr(segmenter, "family", ""))
        if int8_modules is None:
            int8_modules = ["/backbone/"] if family == "yolact" else []
        self.engines: dict[str, Path] = {}
        self.runners: dict[str, EngineRunner] = {}
        self.built: dict[str, bool] = {}
        for name, path in nets.files.items():
            spec = self.specs[name]
            if name != MAIN:
                lo, opt, hi = 1, min(8, spec.max_batch), spec.max_batch
            elif fixed is not None:
                lo = opt = hi = fixed
            else:
                lo, opt, hi = 1, opt_batch, max_batch
            shape = tuple(spec.input_shape)
            calib_hash, imgs = "", []
            # the mask head (crops) is not calibrated: FP16 when the main network is INT8
            prec = precision if name == MAIN else ("fp16" if precision == "int8" else precision)
            if prec == "int8":
                imgs = calibration_images(calib, calib_images)
                calib_hash = calibration_hash(imgs, calib_batch)
            key = EngineKey(
                gpu_name=gpu,
                compute_capability=cc,
                tensorrt_version=str(trt.__version__),
                input_name=spec.input_name,
                min_shape=(lo, *shape),
                opt_shape=(opt, *shape),
                max_shape=(hi, *shape),
                precision=prec,
                onnx_sha256=file_sha256(path),
                calibration=calib_hash,
                workspace_mib=workspace_mib,
                int8_modules=",".join(int8_modules) if prec == "int8" else "",
            )
            stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name

            def build(path=path, key=key, prec=prec, stem=stem, imgs=imgs) -> bytes:
                cal = None
                if prec == "int8":
                    # the table depends on the network and on the images
                    cal_file = (
                        self.cache.directory / f"{stem}-{key.onnx_sha256[:8]}-{key.calibration[:16]}.calib"
                    )
                    cal = make_calibrator(
                        trt,
                        calibration_batches(segmenter, imgs, calib_batch),
                        calib_batch,
                        cal_file,
                        self.device,
                    )
                return build_engine(trt, path, key, cal, int8_modules if prec == "int8" else ())

            if rebuild:
                self.cache.path_for(key, stem).unlink(missing_ok=True)
            engine_path, built = self.cache.get_or_build(key, stem, build)
            self.engines[name], self.built[name] = engine_path, built
            self.runners[name] = EngineRunner(trt, engine_path, spec, self.device)
            log.info(
                "TensorRT %s engine for %s: %s (%s)", prec, name, engine_path, "built" if built else "cached"
            )

    def run_graph(self, name: str, x: Tensor) -> list[Tensor]:
        """Network ``name`` through its engine (CUDA tensors on this backend's device)."""
        return self.runners[name](x)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "tensorrt_version": str(self.trt.__version__),
            "engines": {k: str(v) for k, v in self.engines.items()},
            "built": dict(self.built),
        }
