"""INT8 on ONNX Runtime: detections agree with FP32, the cache follows the calibration set."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.models.loading import load_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = str(ROOT / "models/yolact_se_r18_indoor.pth")


def _folder(path: Path, seed: int, n: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(
            str(path / f"{i:03d}.png"), generate_scene((seed, i), SynthConfig(width=320, height=240)).image
        )
    return path


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("calib"), 4242, 16)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_int8_detections_agree_with_fp32(calib, tmp_path):
    """Tolerance: >= 90 % of FP32 detections (score >= 0.3) have an INT8 detection of the same class with
    mask IoU >= 0.8, and matched scores differ by < 0.1."""
    p = InferenceParams(score_threshold=0.3)
    opts = {"threads": 1, "cache_dir": str(tmp_path)}
    fp32 = load_model("yolact", SHIPPED, backend="onnxruntime", params=p, backend_options=opts)
    int8 = load_model("yolact", SHIPPED, backend="onnxruntime", precision="int8", params=p,
                      backend_options={**opts, "calib": str(calib)})  # fmt: skip
    images = [generate_scene((2000, i), SynthConfig(width=320, height=240)).image for i in range(8)]
    matched, total, score_diffs = 0, 0, []
    for a, b in zip(fp32.segment(images, p), int8.segment(images, p)):
        for i in range(len(a)):
            total += 1
            cands = [
                (j, _mask_iou(a.masks[i], b.masks[j]))
                for j in range(len(b))
                if b.class_ids[j] == a.class_ids[i]
            ]
            j, iou = max(cands, key=lambda c: c[1], default=(-1, 0.0))
            if iou >= 0.8:
                matched += 1
                score_diffs.append(abs(float(a.scores[i]) - float(b.scores[j])))
    assert total >= 10
    assert matched / total >= 0.9, (matched, total)
    assert max(score_diffs) < 0.1


def test_int8_cache_key_follows_the_calibration_set(calib, tmp_path):
    from instaseg_ros.runtime.quantize import quantize_int8

    seg = load_model("yolact", SHIPPED, backend="onnxruntime", backend_options={"cache_dir": str(tmp_path)})
    fp32 = seg.backend.files["main"]
    first = quantize_int8(seg.inner, fp32, calib)
    assert quantize_int8(seg.inner, fp32, calib) == first  # reused
    other = _folder(tmp_path / "other", 99, 6)
    second = quantize_int8(seg.inner, fp32, other)
    assert second != first and second.is_file() and first.is_file()


def test_int8_needs_calibration_and_a_quantising_backend():
    from instaseg_ros.models.loading import ModelLoadError

    with pytest.raises(ValueError, match="int8 needs calibration images"):
        load_model("yolact", SHIPPED, backend="onnxruntime", precision="int8")
    with pytest.raises(ModelLoadError, match="int8 needs backend onnxruntime"):
        load_model("yolact", SHIPPED, precision="int8")
