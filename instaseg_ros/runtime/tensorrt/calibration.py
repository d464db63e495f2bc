"""INT8 entropy calibration: the image set (a folder or a COCO JSON), its identity, the batches
(pre-processed by the segmenter's own ``preprocess``) and the ``IInt8EntropyCalibrator2``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from instaseg_ros.core.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)


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
