"""ONNX export + ONNX Runtime (CPU) vs PyTorch for both families on generated images.

Parity criteria (the issue's): same classes, boxes within 1 px, mask IoU > 0.98 per instance.
Models are small and randomly initialised; score thresholds are chosen so that every image has
detections (random networks score many boxes alike, which makes the matching a real test).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.evaluation.benchmark import TimedBackend
from instaseg_ros.models import build_segmenter
from instaseg_ros.runtime import BackendSegmenter, create_backend, wrap_segmenter
from instaseg_ros.runtime.onnx_export import (
    cached_export,
    export_onnx,
    mask_head_path,
    read_metadata,
)
from instaseg_ros.runtime.parity import compare_instances, mask_iou, raw_differences

ROOT = Path(__file__).resolve().parents[2]
YOLACT_CFG = dict(backbone="resnet18", num_classes=5, input_size=128)
YOLO_CFG = str(ROOT / "config" / "models" / "yolo_fcn_tiny_random.yaml")
CASES = {
    "yolact": (YOLACT_CFG, InferenceParams(score_threshold=0.25, top_k=20)),
    "yolo_fcn": (YOLO_CFG, InferenceParams(score_threshold=0.33, top_k=20)),
}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Three generated indoor scenes, two sizes (non-square, not the network size)."""
    return [generate_scene(i, SynthConfig(width=160, height=120)).image for i in range(2)] + [
        generate_scene(7, SynthConfig(width=120, height=200)).image
    ]


def _export(family: str, folder: Path):
    cfg, params = CASES[family]
    torch.manual_seed(0)
    seg = build_segmenter(family, config=cfg)
    res = export_onnx(seg, folder / f"{family}.onnx", opset=17, dynamic_batch=True)
    return family, seg, params, res


@pytest.fixture(scope="module")
def yolact_export(tmp_path_factory):
    """(family, segmenter, params, dynamic-batch export) for a small YOLACT."""
    return _export("yolact", tmp_path_factory.mktemp("yolact"))


@pytest.fixture(scope="module")
def yolo_fcn_export(tmp_path_factory):
    """(family, segmenter, params, dynamic-batch export) for the tiny YOLO+FCN."""
    return _export("yolo_fcn", tmp_path_factory.mktemp("yolo_fcn"))


@pytest.fixture(params=sorted(CASES))
def exported(request):
    return request.getfixturevalue(f"{request.param}_export")


def test_export_files_opset_and_metadata(exported):
    family, seg, _, res = exported
    assert res.opset == 17 and res.main.is_file()
    model = onnx.load(str(res.main))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == (
        ["loc", "conf", "mask", "proto"] if family == "yolact" else ["boxes", "scores"]
    )
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = read_metadata(res.main)
    assert meta["family"] == family and meta["network"] == "main" and meta["opset"] == "17"
    assert meta["class_names"].count('"') == 2 * len(seg.class_names)
    if family == "yolo_fcn":
        assert res.files["mask_head"] == mask_head_path(res.main) and res.files["mask_head"].is_file()
        assert meta["mask_head_file"] == res.files["mask_head"].name
        assert read_metadata(res.files["mask_head"])["network"] == "mask_head"
    else:
        assert set(res.files) == {"main"}
    # priors/anchors are constants: the only graph input is the image batch
    assert [i.name for i in model.graph.input] == ["images"]


def test_raw_outputs_match_pytorch(exported, images):
    family, seg, _, res = exported
    backend = create_backend("onnxruntime", seg, onnx=res.main, threads=1)
    x, _ = seg.preprocess(images)
    diffs = raw_differences(seg.forward_raw(x), backend(x))
    assert max(diffs.values()) < 1e-3, diffs
    if family == "yolo_fcn":
        crops = torch.rand(5, 3, seg.crop_size, seg.crop_size, generator=torch.Generator().manual_seed(1))
        d = (seg.mask_head_raw(crops) - backend.mask_head(crops)).abs().max()
        assert float(d) < 1e-3


def test_detections_match_pytorch(exported, images):
    """Same classes, boxes within 1 px, mask IoU > 0.98 for every instance of every image."""
    family, seg, params, res = exported
    timed = TimedBackend(create_backend("onnxruntime", seg, onnx=res.main, threads=1))
    fast = wrap_segmenter(seg, timed)
    assert isinstance(fast, BackendSegmenter) and fast.class_names == seg.class_names
    ref = seg.segment(images, params)
    test = fast.segment(images, params)
    total = 0
    for a, b in zip(ref, test):
        assert a.image_size == b.image_size
        c = compare_instances(a, b, params.score_threshold)
        assert len(c.matched) == len(a) == len(b), (c.unmatched_ref, c.unmatched_test)
        for i, j in c.matched:
            assert a.class_ids[i] == b.class_ids[j]
            assert np.abs(a.boxes[i] - b.boxes[j]).max() <= 1.0
            assert mask_iou(a.masks[i], b.masks[j]) > 0.98
        total += len(c.matched)
    assert total >= 10, f"{family}: too few detections ({total}) for a meaningful comparison"
    # YOLO+FCN's mask head ran through ONNX Runtime, not through the torch FCN
    assert (timed.mask_head_s > 0) == (family == "yolo_fcn")


def test_fixed_batch_export_runs_larger_batches_in_chunks(tmp_path, images):
    torch.manual_seed(0)
    seg = build_segmenter("yolact", config=YOLACT_CFG)
    res = export_onnx(seg, tmp_path / "fixed.onnx", dynamic_batch=False, batch_size=1)
    model = onnx.load(str(res.main))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert read_metadata(res.main)["batch_size"] == "1"
    backend = create_backend("onnxruntime", seg, onnx=res.main, threads=1)
    x, _ = seg.preprocess(images[:2])
    out = backend(x)
    assert out["loc"].shape[0] == 2
    assert raw_differences(seg.forward_raw(x), out)["conf"] < 1e-3


def test_onnx_for_another_input_size_is_rejected(yolact_export):
    _, _, _, res = yolact_export
    other = build_segmenter("yolact", config={**YOLACT_CFG, "input_size": 160})
    with pytest.raises(ValueError, match=r"exported for input \[3, 128, 128\].*expects \[3, 160, 160\]"):
        create_backend("onnxruntime", other, onnx=res.main)


def test_missing_mask_head_file_is_named(yolo_fcn_export, tmp_path):
    _, seg, _, res = yolo_fcn_export
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(res.main.read_bytes())
    with pytest.raises(FileNotFoundError, match="mask-head network"):
        create_backend("onnxruntime", seg, onnx=lone)


def test_onnx_of_another_family_is_rejected(yolact_export, yolo_fcn_export):
    _, seg, _, _ = yolact_export
    _, _, _, res = yolo_fcn_export
    with pytest.raises(ValueError, match="exported for family 'yolo_fcn', the segmenter is 'yolact'"):
        create_backend("onnxruntime", seg, onnx=res.main)


def test_cached_export_reuses_file_and_changes_with_weights(tmp_path):
    torch.manual_seed(0)
    seg = build_segmenter("yolact", config=YOLACT_CFG)
    a = cached_export(seg, tmp_path)
    mtime = a.stat().st_mtime_ns
    assert cached_export(seg, tmp_path) == a and a.stat().st_mtime_ns == mtime
    with torch.no_grad():
        seg.model.fpn.pred_layers[0].bias.add_(0.5)
    b = cached_export(seg, tmp_path)
    assert b != a and b.is_file()
    # backend without an explicit file exports into the cache itself
    be = create_backend("onnxruntime", seg, cache_dir=tmp_path, threads=1)
    assert be.files["main"] == b


def test_export_rejects_low_opset(tmp_path):
    torch.manual_seed(0)
    seg = build_segmenter("yolact", config=YOLACT_CFG)
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(seg, tmp_path / "x.onnx", opset=13)
