"""INT8 for ONNX Runtime on the CPU: static QDQ quantisation of the exported graphs, cached.

``onnxruntime.quantization.quantize_static`` with QDQ nodes, unsigned 8-bit activations and signed
per-channel 8-bit weights (U8S8: ONNX Runtime's fast path on x86 with VNNI; signed activations
(S8S8) ran YOLACT R50 550 about 3x slower than U8S8 on this Xeon, barely faster than FP32),
calibrated (MinMax) on the segmenter's own pre-processing of a calibration set: an image folder or
a COCO JSON, read exactly as the TensorRT INT8 path reads it
(:func:`instaseg_ros.runtime.tensorrt.calibration.calibration_images`). The quantised file is cached
next to the FP32 export, keyed by the FP32 graph's hash, the calibration set and the settings; a
changed calibration set gives a new file.

Sensitive layers stay in FP32 (``keep_fp32``): by default the final convolutions of the prediction
head (box offsets, class logits, mask coefficients) and the last convolution of the prototype net,
whose outputs are decoded directly into boxes, scores and masks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# node-name fragments of the graph's output convolutions (torchscript exporter names: /module/path/Op)
# ("proto_net:last" = the last convolution of the prototype net, whatever its index)
DEFAULT_KEEP_FP32 = ("bbox_layer", "conf_layer", "mask_layer", "proto_net:last")
QUANT_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def quantization_key(
    fp32: Path, calib_hash: str, keep_fp32: Sequence[str], per_channel: bool
) -> dict[str, Any]:
    """What an INT8 file depends on (stored in its sidecar, compared on reuse)."""
    return {
        "version": QUANT_VERSION,
        "fp32_sha256": file_sha256(fp32),
        "calibration": calib_hash,
        "keep_fp32": sorted(keep_fp32),
        "per_channel": bool(per_channel),
        "format": "QDQ/QUInt8 activations/QInt8 weights/MinMax",
    }


def fp32_nodes(model_path: Path, patterns: Sequence[str]) -> list[str]:
    """Names of the graph's Conv/Gemm nodes whose name contains one of ``patterns``."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    convs = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm")]
    names = [n for n in convs if any(p in n for p in patterns if not p.endswith(":last"))]
    for p in patterns:
        if p.endswith(":last"):
            hits = [n for n in convs if p[: -len(":last")] in n]
            names += hits[-1:]
    return names


class _Reader:
    """``CalibrationDataReader`` over pre-processed calibration images (one image per batch)."""

    def __init__(self, input_name: str, batches: Iterator[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = batches

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self.batches, None)
        return None if x is None else {self.input_name: x}


def calibration_arrays(segmenter: Any, files: Sequence[Path]) -> Iterator[np.ndarray]:
    """[1, 3, S, S] float32 arrays: ``segmenter.preprocess`` of each readable calibration image."""
    import cv2

    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("INT8 calibration: cannot read %s, skipped", f)
            continue
        x, _ = segmenter.preprocess([img])
        yield x.detach().float().cpu().numpy()


def quantize_int8(
    segmenter: Any,
    fp32: Path,
    calib: str | Path,
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    per_channel: bool = True,
    limit: int = 64,
) -> Path:
    """The INT8 QDQ version of ``fp32`` (built once per key, then reused from its cache file).

    Raises:
        FileNotFoundError / ValueError naming the calibration source when it holds no usable image.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from instaseg_ros.runtime.tensorrt.calibration import calibration_hash, calibration_images

    fp32 = Path(fp32)
    files = calibration_images(calib, limit=limit)
    key = quantization_key(fp32, calibration_hash(files, 1), keep_fp32, per_channel)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    out = fp32.with_name(f"{fp32.stem}.int8-{digest}.onnx")
    sidecar = out.with_suffix(".json")
    if out.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == key:
        log.info("INT8 model from cache: %s", out)
        return out
    import onnx

    input_name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    excluded = fp32_nodes(fp32, keep_fp32)
    tmp = out.with_suffix(".tmp.onnx")
    quantize_static(
        str(fp32), str(tmp), _Reader(input_name, calibration_arrays(segmenter, files)),
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        per_channel=per_channel, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=excluded,
    )  # fmt: skip
    tmp.replace(out)
    sidecar.write_text(json.dumps(key, indent=1, sort_keys=True))
    log.info("INT8 model built: %s (%d calibration images, %d layers FP32)", out, len(files), len(excluded))
    return out
