"""Native TensorRT backend: FP32/FP16/INT8 engines built from the exported ONNX, cached on disk.

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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from instaseg_ros.core.images import IMAGE_SUFFIXES
from instaseg_ros.runtime.base import Backend, BackendUnavailableError, module_available
from instaseg_ros.runtime.networks import MAIN, MASK_HEAD, NetworkSpec, network_specs
from instaseg_ros.runtime.onnx_export import (
    DEFAULT_OPSET,
    cached_export,
    check_onnx_matches,
    default_cache_dir,
    file_sha256,
    mask_head_path,
    read_metadata,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
INSTALL_TENSORRT = (
    "install TensorRT's Python package with `pip install tensorrt` (or `pip install '.[tensorrt]'` from the "
    "instaseg_ros source tree); on a Jetson it ships with JetPack (`apt install python3-libnvinfer`)"
)
ENGINE_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------- availability
def tensorrt_problems(device: str | None = None) -> list[str]:
    """What prevents native TensorRT from running here ([] = nothing). Imports nothing heavy."""
    problems = []
    if not module_available("tensorrt"):
        problems.append(f"the Python module 'tensorrt' is not installed ({INSTALL_TENSORRT})")
    if torch.version.cuda is None:
        problems.append(
            f"torch {torch.__version__} is a CPU-only build; TensorRT needs a CUDA build of torch "
            "(https://pytorch.org/get-started/locally/) for its GPU buffers"
        )
    elif not torch.cuda.is_available():
        problems.append(
            "no CUDA device: torch.cuda.is_available() is False (no NVIDIA GPU or driver visible to this "
            "process; check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
        )
    elif device is not None and str(device).startswith("cuda"):
        idx = torch.device(device).index or 0
        if idx >= torch.cuda.device_count():
            problems.append(f"CUDA device {device!r} does not exist ({torch.cuda.device_count()} visible)")
    return problems


def require_tensorrt(device: str | None = None) -> Any:
    """``import tensorrt`` after checking CUDA; :class:`BackendUnavailableError` naming what is missing."""
    problems = tensorrt_problems(device)
    if problems:
        raise BackendUnavailableError(
            "backend 'tensorrt' cannot run here: "
            + "; ".join(problems)
            + ". On a machine without an NVIDIA GPU use backend 'onnxruntime' (CPU) or 'torch'."
        )
    import tensorrt as trt

    major = int(str(trt.__version__).split(".")[0])
    minor = int(str(trt.__version__).split(".")[1])
    if (major, minor) < (8, 6):
        raise BackendUnavailableError(
            f"backend 'tensorrt': TensorRT {trt.__version__} is too old (need >= 8.6 for the tensor-name "
            f"API); {INSTALL_TENSORRT}"
        )
    return trt


# ------------------------------------------------------------------------------------ cache keys
@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; any change means a rebuild.

    Attributes:
        gpu_name: e.g. "NVIDIA H100 80GB HBM3".
        compute_capability: "major.minor", e.g. "9.0".
        tensorrt_version: e.g. "10.3.0".
        input_name: graph input.
        min_shape / opt_shape / max_shape: optimisation profile of the input (equal when static).
        precision: "fp32" | "fp16" | "int8".
        onnx_sha256: hash of the ONNX file's bytes.
        calibration: hash of the INT8 calibration set and settings ("" otherwise).
        workspace_mib: builder workspace limit.
        int8_modules: module-path filter of INT8 layers ("" = all layers may use INT8).
    """

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    input_name: str
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]
    precision: str
    onnx_sha256: str
    calibration: str = ""
    workspace_mib: int = 4096
    int8_modules: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"EngineKey.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("min_shape", "opt_shape", "max_shape"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not (len(self.min_shape) == len(self.opt_shape) == len(self.max_shape)):
            raise ValueError("EngineKey: min/opt/max shapes must have the same rank")
        if any(a > b for a, b in zip(self.min_shape, self.opt_shape)) or any(
            a > b for a, b in zip(self.opt_shape, self.max_shape)
        ):
            raise ValueError(
                f"EngineKey: need min <= opt <= max shapes, got {self.min_shape}, {self.opt_shape}, "
                f"{self.max_shape}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("min_shape", "opt_shape", "max_shape"):
            d[k] = list(d[k])
        d["format_version"] = ENGINE_FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineKey:
        fields_ = {k: v for k, v in d.items() if k != "format_version"}
        return cls(**fields_)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict`."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def file_name(self, stem: str) -> str:
        """``<stem>-<precision>-b<min>-<max>-<digest16>.engine``."""
        return f"{stem}-{self.precision}-b{self.min_shape[0]}-{self.max_shape[0]}-{self.digest()[:16]}.engine"


_FIELD_LABELS = {
    "gpu_name": "GPU",
    "compute_capability": "compute capability",
    "tensorrt_version": "TensorRT version",
    "input_name": "input name",
    "min_shape": "min input shape",
    "opt_shape": "opt input shape",
    "max_shape": "max input shape",
    "precision": "precision",
    "onnx_sha256": "ONNX file (hash)",
    "calibration": "calibration set (hash)",
    "workspace_mib": "workspace MiB",
    "int8_modules": "INT8 modules",
    "format_version": "engine cache format",
}


def stale_reasons(stored: dict[str, Any] | None, current: EngineKey) -> list[str]:
    """Why an engine built for ``stored`` (a sidecar dict) is not valid for ``current`` ([] = valid)."""
    if stored is None:
        return ["no engine key recorded (missing or unreadable sidecar)"]
    want = current.to_dict()
    reasons = []
    for k, v in want.items():
        have = stored.get(k)
        if have != v:
            label = _FIELD_LABELS.get(k, k)
            if k.endswith("sha256") or k == "calibration":
                reasons.append(f"{label} changed ({str(have)[:12]} -> {str(v)[:12]})")
            else:
                reasons.append(f"{label} changed ({have} -> {v})")
    return reasons


def gpu_identity(device: str = "cuda:0") -> tuple[str, str]:
    """(GPU name, "major.minor" compute capability) of a CUDA device."""
    idx = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(idx)
    return torch.cuda.get_device_name(idx), f"{major}.{minor}"


class EngineCache:
    """A folder of ``*.engine`` files, each with a ``*.engine.json`` sidecar holding its key."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path_for(self, key: EngineKey, stem: str) -> Path:
        return self.directory / key.file_name(stem)

    @staticmethod
    def sidecar(engine: Path) -> Path:
        return engine.with_name(engine.name + ".json")

    @staticmethod
    def read_key(engine: Path) -> dict[str, Any] | None:
        """The stored key of an engine file (None when the sidecar is missing/corrupt)."""
        try:
            with open(EngineCache.sidecar(engine)) as f:
                d = json.load(f)
            return d if isinstance(d, dict) else None
        except (OSError, ValueError):
            return None

    def lookup(self, key: EngineKey, stem: str) -> Path | None:
        """The cached engine for ``key`` if present and its sidecar matches, else None."""
        p = self.path_for(key, stem)
        if p.is_file() and not stale_reasons(self.read_key(p), key):
            return p
        return None

    def stale_entries(self, key: EngineKey, stem: str) -> list[tuple[Path, list[str]]]:
        """Other engines of the same network (``stem``, precision) and why they do not fit ``key``."""
        out = []
        if not self.directory.is_dir():
            return out
        for p in sorted(self.directory.glob(f"{stem}-{key.precision}-*.engine")):
            reasons = stale_reasons(self.read_key(p), key)
            if reasons:
                out.append((p, reasons))
        return out

    def store(self, key: EngineKey, stem: str, engine: bytes) -> Path:
        """Write ``engine`` + sidecar atomically; returns the engine path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        p = self.path_for(key, stem)
        for target, data in ((p, engine), (self.sidecar(p), json.dumps(key.to_dict(), indent=1).encode())):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return p

    def get_or_build(self, key: EngineKey, stem: str, build, prune: bool = True) -> tuple[Path, bool]:
        """Cached engine for ``key`` or ``build()`` -> bytes stored under it; returns (path, built)."""
        hit = self.lookup(key, stem)
        if hit is not None:
            return hit, False
        for p, reasons in self.stale_entries(key, stem):
            log.info("TensorRT engine %s is stale: %s", p.name, "; ".join(reasons))
            if prune:
                for f in (p, self.sidecar(p)):
                    f.unlink(missing_ok=True)
        return self.store(key, stem, build()), True


# ------------------------------------------------------------------------------- INT8 calibration
def calibration_images(source: str | Path, limit: int = 500) -> list[Path]:
    """Image files for INT8 calibration, in a deterministic order.

    Args:
        source: a folder (searched recursively for .jpg/.jpeg/.png/.bmp) or a COCO-format JSON
            (``images[*].file_name`` relative to the JSON's folder, or to its ``images/`` subfolder).
        limit: at most this many, evenly spread over the sorted list.
    Raises:
        FileNotFoundError / ValueError naming the source when nothing usable is found.
    """
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(
            f"calibration source {src} does not exist (give a folder of images or a COCO JSON)"
        )
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    else:
        try:
            data = json.loads(src.read_text())
        except ValueError as e:
            raise ValueError(f"calibration source {src}: not a COCO JSON ({e})") from e
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ValueError(f"calibration source {src}: a COCO JSON needs an 'images' list")
        files = []
        for im in data["images"]:
            name = im.get("file_name") if isinstance(im, dict) else None
            if not name:
                continue
            for cand in (src.parent / name, src.parent / "images" / name):
                if cand.is_file():
                    files.append(cand)
                    break
        files.sort()
    if not files:
        raise ValueError(f"calibration source {src}: no readable image files found")
    if limit and len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def calibration_hash(files: Sequence[Path], batch_size: int) -> str:
    """Identity of a calibration set: file names, sizes and the calibration batch size."""
    h = hashlib.sha256(f"entropy2|batch={batch_size}|n={len(files)}".encode())
    for f in files:
        h.update(f"{Path(f).name}|{Path(f).stat().st_size}".encode())
    return h.hexdigest()


def calibration_batches(segmenter: Any, files: Sequence[Path], batch_size: int = 8) -> Iterator[Tensor]:
    """Pre-processed calibration batches [b, 3, S, S] float32 (the segmenter's own ``preprocess``).

    Unreadable files are skipped with a warning; a last partial batch is dropped (the calibrator
    needs full batches).
    """
    import cv2

    buf = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("calibration: cannot read %s, skipped", f)
            continue
        buf.append(img)
        if len(buf) == batch_size:
            x, _ = segmenter.preprocess(buf)
            yield x.float()
            buf = []


def make_calibrator(
    trt: Any, batches: Iterator[Tensor], batch_size: int, cache_file: Path, device: str
) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` from CUDA memory, caching its table."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise RuntimeError(
            f"TensorRT {trt.__version__} has no implicit INT8 calibration (IInt8EntropyCalibrator2); "
            "use precision fp16, or quantise the ONNX explicitly (Q/DQ) before building"
        )

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._batches = batches
            self._current: Tensor | None = None
            self.count = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            try:
                x = next(self._batches)
            except StopIteration:
                return None
            self._current = x.to(device, torch.float32).contiguous()
            self.count += 1
            return [int(self._current.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


# --------------------------------------------------------------------------------------- building
def build_engine(
    trt: Any,
    onnx_path: Path,
    key: EngineKey,
    calibrator: Any = None,
    int8_modules: Sequence[str] = (),
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine for ``key`` (profile, precision)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(key.workspace_mib) << 20)
    inp = network.get_input(0)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, key.min_shape, key.opt_shape, key.max_shape)
    config.add_optimization_profile(profile)
    if key.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if key.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if calibrator is None:
            raise ValueError(
                "INT8 engine requested without a calibrator (give calib=<image folder or COCO JSON>)"
            )
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
        if int8_modules:
            kept = 0
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if any(m in layer.name for m in int8_modules):
                    kept += 1
                    continue
                outs = [layer.get_output(j) for j in range(layer.num_outputs)]
                if not outs or any(o.dtype not in (trt.float32, trt.float16) for o in outs):
                    continue  # shape/index computations keep their types
                layer.precision = trt.float16
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            log.info(
                "INT8 allowed in %d of %d layers (%s), FP16 elsewhere", kept, network.num_layers, int8_modules
            )
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {onnx_path} ({key.precision}); see the log above"
        )
    log.info(
        "built TensorRT %s engine from %s in %.1f s", key.precision, onnx_path.name, time.perf_counter() - t0
    )
    return bytes(serialized)


# -------------------------------------------------------------------------------------- execution
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


class TensorRTBackend(Backend):
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
        dev = torch.device(device)
        if dev.type != "cuda":
            raise ValueError(f"backend 'tensorrt': device must be a CUDA device, got {device!r}")
        super().__init__(segmenter, f"cuda:{dev.index or 0}", precision)
        self.trt = trt
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache = EngineCache(Path(engine_dir) if engine_dir is not None else cache / "tensorrt")
        if onnx is None:
            onnx = cached_export(segmenter, cache, opset, dynamic_batch=True)
        onnx = Path(onnx)
        meta = read_metadata(onnx)
        fixed = int(meta.get("batch_size", "1")) if meta.get("dynamic_batch") == "0" else None
        if fixed is not None:
            log.info("%s has a fixed batch of %d: the engine profile is that batch", onnx, fixed)
        specs = {s.name: s for s in network_specs(segmenter)}
        files = {MAIN: onnx}
        if MASK_HEAD in specs:
            files[MASK_HEAD] = (
                onnx.with_name(meta["mask_head_file"]) if meta.get("mask_head_file") else mask_head_path(onnx)
            )
        gpu, cc = gpu_identity(self.device)
        family = str(getattr(segmenter, "family", ""))
        if int8_modules is None:
            int8_modules = ["/backbone/"] if family == "yolact" else []
        self.engines: dict[str, Path] = {}
        self.runners: dict[str, EngineRunner] = {}
        self.built: dict[str, bool] = {}
        for name, path in files.items():
            spec = specs[name]
            check_onnx_matches(path, spec, segmenter)
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
        self._out_device = torch.device(seg_device)

    def _run(self, name: str, x: Tensor) -> Any:
        outs = self.runners[name](x)
        if self._out_device != self.runners[name].device:
            outs = [o.to(self._out_device) for o in outs]
        return self.runners[name].spec.to_raw(outs)

    def __call__(self, tensor: Tensor) -> Any:
        return self._run(MAIN, tensor)

    @property
    def has_mask_head(self) -> bool:
        return MASK_HEAD in self.runners

    def mask_head(self, crops: Tensor) -> Tensor:
        if MASK_HEAD not in self.runners:
            return super().mask_head(crops)
        return self._run(MASK_HEAD, crops)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "tensorrt_version": str(self.trt.__version__),
            "engines": {k: str(v) for k, v in self.engines.items()},
            "built": dict(self.built),
        }
