"""The engine cache: one ``*.engine`` per :class:`EngineKey` (everything an engine depends on) with
a JSON sidecar; a key mismatch means a rebuild, and :func:`stale_reasons` names what changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
ENGINE_FORMAT_VERSION = 1


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

    def get_or_build(
        self, key: EngineKey, stem: str, build: Callable[[], bytes], prune: bool = True
    ) -> tuple[Path, bool]:
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
