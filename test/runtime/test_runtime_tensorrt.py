"""TensorRT backend: engine-cache keys, staleness, the cache folder, INT8 calibration inputs.

Everything here except the ``gpu`` tests runs without TensorRT or CUDA: the key/cache logic is
plain Python and the calibration batches come from the segmenter's real pre-processing. The
``gpu`` tests build real FP16/INT8 engines and compare them with PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.models import build_segmenter
from instaseg_ros.runtime.tensorrt import (
    EngineCache,
    EngineKey,
    calibration_batches,
    calibration_hash,
    calibration_images,
    stale_reasons,
)

YOLACT_CFG = dict(backbone="resnet18", num_classes=5, input_size=96)


def _key(**changes) -> EngineKey:
    base = dict(
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
        tensorrt_version="10.3.0",
        input_name="images",
        min_shape=(1, 3, 550, 550),
        opt_shape=(1, 3, 550, 550),
        max_shape=(8, 3, 550, 550),
        precision="fp16",
        onnx_sha256="ab" * 32,
    )
    base.update(changes)
    return EngineKey(**base)


def test_key_digest_is_stable_and_sensitive_to_every_field():
    k = _key()
    assert k.digest() == _key().digest()
    assert EngineKey.from_dict(json.loads(json.dumps(k.to_dict()))) == k
    changes = dict(
        gpu_name="NVIDIA GeForce RTX 4090",
        compute_capability="8.9",
        tensorrt_version="10.4.0",
        min_shape=(1, 3, 512, 512),
        opt_shape=(4, 3, 550, 550),
        max_shape=(16, 3, 550, 550),
        precision="int8",
        onnx_sha256="cd" * 32,
        calibration="ef" * 32,
        workspace_mib=1024,
        int8_modules="/backbone/",
    )
    digests = {k.digest()}
    for field, value in changes.items():
        digests.add(_key(**{field: value}).digest())
    assert len(digests) == len(changes) + 1


def test_key_file_name_carries_precision_and_batch_range():
    name = _key().file_name("yolact-0123")
    assert name.startswith("yolact-0123-fp16-b1-8-") and name.endswith(".engine")
    assert _key().digest()[:16] in name


def test_key_rejects_bad_profiles_and_precisions():
    with pytest.raises(ValueError, match="min <= opt <= max"):
        _key(opt_shape=(16, 3, 550, 550))
    with pytest.raises(ValueError, match="precision must be one of"):
        _key(precision="int4")
    with pytest.raises(ValueError, match="same rank"):
        _key(min_shape=(1, 3, 550))


def test_stale_reasons_name_what_changed():
    old = _key(tensorrt_version="8.6.1", gpu_name="Orin").to_dict()
    reasons = stale_reasons(old, _key())
    assert "TensorRT version changed (8.6.1 -> 10.3.0)" in reasons
    assert "GPU changed (Orin -> NVIDIA H100 80GB HBM3)" in reasons
    assert len(reasons) == 2
    assert stale_reasons(_key().to_dict(), _key()) == []
    assert stale_reasons(None, _key()) == ["no engine key recorded (missing or unreadable sidecar)"]
    r = stale_reasons(_key(onnx_sha256="00" * 32).to_dict(), _key())
    assert r == [f"ONNX file (hash) changed ({'00' * 6} -> {'ab' * 6})"]
    r = stale_reasons(_key(max_shape=(4, 3, 550, 550)).to_dict(), _key())
    assert r == ["max input shape changed ([4, 3, 550, 550] -> [8, 3, 550, 550])"]


def test_cache_builds_once_then_hits(tmp_path):
    cache = EngineCache(tmp_path)
    calls = []

    def build() -> bytes:
        calls.append(1)
        return b"engine-bytes"

    p, built = cache.get_or_build(_key(), "net", build)
    assert built and p.read_bytes() == b"engine-bytes" and len(calls) == 1
    assert json.loads(EngineCache.sidecar(p).read_text()) == _key().to_dict()
    p2, built2 = cache.get_or_build(_key(), "net", build)
    assert p2 == p and not built2 and len(calls) == 1


def test_cache_rebuilds_when_stale_and_prunes_the_old_engine(tmp_path):
    cache = EngineCache(tmp_path)
    old, _ = cache.get_or_build(_key(tensorrt_version="8.6.1"), "net", lambda: b"old")
    new_key = _key()
    assert cache.lookup(new_key, "net") is None
    stale = cache.stale_entries(new_key, "net")
    assert [p for p, _ in stale] == [old]
    assert stale[0][1] == ["TensorRT version changed (8.6.1 -> 10.3.0)"]
    new, built = cache.get_or_build(new_key, "net", lambda: b"new")
    assert built and new != old and new.read_bytes() == b"new"
    assert not old.exists() and not EngineCache.sidecar(old).exists()
    # another precision of the same network is not "stale": it is a different engine
    cache.get_or_build(_key(precision="fp32"), "net", lambda: b"fp32")
    assert cache.lookup(new_key, "net") == new


def test_tampered_or_missing_sidecar_means_rebuild(tmp_path):
    cache = EngineCache(tmp_path)
    p, _ = cache.get_or_build(_key(), "net", lambda: b"v1")
    side = EngineCache.sidecar(p)
    d = json.loads(side.read_text())
    d["compute_capability"] = "8.7"
    side.write_text(json.dumps(d))
    assert cache.lookup(_key(), "net") is None
    side.write_text("{not json")
    assert cache.lookup(_key(), "net") is None
    side.unlink()
    p2, built = cache.get_or_build(_key(), "net", lambda: b"v2")
    assert built and p2 == p and p.read_bytes() == b"v2"


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        img = generate_scene(i, SynthConfig(width=96, height=64)).image
        target = folder / ("sub" if i % 2 else "") / f"img_{i}.png"
        cv2.imwrite(str(target), img)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_calibration_images_from_a_folder(image_folder):
    files = calibration_images(image_folder)
    assert len(files) == 5 and all(f.suffix == ".png" for f in files)
    assert files == sorted(files)
    assert len(calibration_images(image_folder, limit=2)) == 2


def test_calibration_images_from_a_coco_json(image_folder, tmp_path):
    coco = {
        "images": [
            {"id": 1, "file_name": "img_0.png"},
            {"id": 2, "file_name": "sub/img_1.png"},
            {"id": 3, "file_name": "missing.png"},
        ],
        "annotations": [],
        "categories": [],
    }
    path = image_folder / "ann.json"
    path.write_text(json.dumps(coco))
    files = calibration_images(path)
    assert [f.name for f in files] == ["img_0.png", "img_1.png"]


def test_calibration_source_errors_name_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="calibration source .*nope does not exist"):
        calibration_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no readable image files"):
        calibration_images(tmp_path / "empty")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="needs an 'images' list"):
        calibration_images(bad)


def test_calibration_hash_tracks_files_and_batch(image_folder):
    files = calibration_images(image_folder)
    h = calibration_hash(files, 2)
    assert h == calibration_hash(files, 2)
    assert h != calibration_hash(files, 4)
    assert h != calibration_hash(files[:-1], 2)


def test_calibration_batches_use_the_segmenter_preprocessing(image_folder):
    torch.manual_seed(0)
    seg = build_segmenter("yolact", config=YOLACT_CFG)
    files = calibration_images(image_folder)
    batches = list(calibration_batches(seg, files, batch_size=2))
    assert len(batches) == 2  # 5 images -> two full batches, the partial one dropped
    assert all(b.shape == (2, 3, 96, 96) and b.dtype == torch.float32 for b in batches)
    first = [cv2.imread(str(f)) for f in files[:2]]
    expected, _ = seg.preprocess(first)
    torch.testing.assert_close(batches[0], expected)


# ------------------------------------------------------------------------------- on a real GPU
#: largest relative L2 error of each raw output against PyTorch FP32 (INT8: backbone only, FP16 elsewhere)
RAW_TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 0.15}
#: per matched detection: (score difference, box difference px, smallest mask IoU)
DETECTION_TOLERANCE = {"fp32": (1e-3, 0.5, 0.98), "fp16": (5e-3, 1.0, 0.9), "int8": (0.1, 8.0, 0.7)}
SHIPPED_YOLACT = Path(__file__).resolve().parents[2] / "models" / "yolact_se_r18_indoor.pth"


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_matches_pytorch_fp32(precision, tmp_path, image_folder):  # pragma: no cover
    pytest.importorskip("tensorrt")
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.runtime import create_backend, wrap_segmenter
    from instaseg_ros.runtime.parity import compare_instances, relative_errors

    # the shipped trained model: real detections to compare (a random init detects little)
    seg = load_model("yolact", str(SHIPPED_YOLACT), device="cuda")
    opts = dict(precision=precision, cache_dir=tmp_path, max_batch=2, calib=image_folder, calib_batch=2)
    be = create_backend("tensorrt", seg, **opts)
    assert be.built["main"]
    again = create_backend("tensorrt", seg, **opts)
    assert not again.built["main"] and again.engines == be.engines
    imgs = [generate_scene(i, SynthConfig(width=320, height=240)).image for i in range(4)]

    # raw outputs: relative L2 error per output against the FP32 PyTorch network
    x, _ = seg.preprocess(imgs[:2])
    with torch.inference_mode():
        errors = relative_errors(seg.forward_raw(x), be(x))
    assert max(errors.values()) <= RAW_TOLERANCE[precision], errors

    # detections: each confident FP32 detection is found again with the same class and a similar mask
    params = InferenceParams(score_threshold=0.3, top_k=20)
    ref = seg.segment(imgs, params)
    test = wrap_segmenter(seg, be).segment(imgs, params)
    assert sum(len(r) for r in ref) >= 4, "the reference detects too little for a comparison"
    for a, b in zip(ref, test):
        assert b.image_size == a.image_size
        c = compare_instances(a, b, params.score_threshold, score_tol=DETECTION_TOLERANCE[precision][0])
        assert len(c.unmatched_ref) + len(c.unmatched_test) <= c.borderline, c
        assert c.max_score_diff <= DETECTION_TOLERANCE[precision][0], c
        assert c.max_box_diff <= DETECTION_TOLERANCE[precision][1], c
        assert c.min_mask_iou >= DETECTION_TOLERANCE[precision][2], c
