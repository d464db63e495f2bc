"""YoloFcnSegmenter: Segmenter split, letterbox coordinates, class subsets, NMS, weights, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.core.labels import COCO_CLASSES
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models import build_segmenter
from instaseg_ros.models.yolo_fcn import (
    INDOOR_CLASSES,
    YoloFcnConfig,
    YoloFcnSegmenter,
    build_yolo_fcn,
    letterbox,
)
from instaseg_ros.models.yolo_fcn.fcn import save_fcn_checkpoint
from instaseg_ros.ops.paste import box_pixel_range
from instaseg_ros.weights.darknet import save_darknet_weights

ROOT = Path(__file__).resolve().parents[2]
TINY_YAML = ROOT / "config" / "models" / "yolo_fcn_tiny_random.yaml"
TINY = {
    "input_size": 160,
    "darknet_width": 0.25,
    "darknet_depth": [1, 1, 1, 1, 1],
    "fcn": {"arch": "resnet18", "width": 0.25, "crop_size": 64},
    "allow_random_detector": True,
    "allow_random_fcn": True,
}


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    img[h // 4 : h // 2, w // 3 : w // 2] = (30, 200, 90)
    return img


@pytest.fixture(scope="module")
def seg() -> YoloFcnSegmenter:
    return build_segmenter("yolo_fcn", config=str(TINY_YAML))


def _forced_raw(seg: YoloFcnSegmenter, boxes_net: list[list[float]], scores: list[list[float]]):
    """Detector output with exactly the given detections (all other scores 0)."""
    k = len(seg.class_names)
    n = 50
    b = torch.zeros(1, n, 4)
    b[..., 2:] = 1.0
    s = torch.zeros(1, n, k)
    for i, (box, sc) in enumerate(zip(boxes_net, scores)):
        b[0, i] = torch.tensor(box)
        s[0, i] = torch.tensor(sc)
    return b, s


def test_registered_and_split_matches_segment(seg):
    assert seg.family == "yolo_fcn" and seg.class_names == INDOOR_CLASSES
    imgs = [_image(120, 200, 0), _image(90, 60, 1)]
    x, metas = seg.preprocess(imgs)
    assert x.shape == (2, 3, 160, 160) and x.dtype == torch.float32
    raw = seg.forward_raw(x)
    assert raw[0].shape == (2, 3 * (25 + 100 + 400), 4) and raw[1].shape == (2, 1575, 5)
    p = InferenceParams(score_threshold=0.26, top_k=15)
    split = seg.postprocess(raw, metas, p)
    direct = seg.segment(imgs, p)
    assert len(split) == len(direct) == 2
    for a, b, img in zip(split, direct, imgs):
        assert a.image_size == img.shape[:2] and a.masks.shape[1:] == img.shape[:2]
        assert 0 < len(a) <= 15
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.masks, b.masks)
        assert np.all(np.diff(a.scores) <= 0) and a.scores.min() > 0.26
        assert (a.boxes[:, [0, 2]] <= img.shape[1]).all() and (a.boxes[:, [1, 3]] <= img.shape[0]).all()
        assert (a.boxes >= 0).all()
        # exclusive masks (seed 001): no pixel belongs to two instances
        assert a.masks.sum(0).max() <= 1
        ids = a.instance_id_image()
        for i in range(len(a)):
            np.testing.assert_array_equal(ids == i + 1, a.masks[i])


def test_letterbox_geometry():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 100:140] = (0, 0, 255)  # a red patch (BGR)
    canvas, meta = letterbox(img, 160)
    assert canvas.shape == (3, 160, 160)
    assert (meta.scale_x, meta.scale_y, meta.pad_x, meta.pad_y) == (0.8, 0.8, 0, 40)
    assert np.all(canvas[:, :40] == 0.5) and np.all(canvas[:, 120:] == 0.5)  # grey bars
    red = canvas[0] > 0.9  # RGB order: channel 0 is red
    ys, xs = np.nonzero(red)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (40 + 32, 40 + 48, 80, 112)
    back = meta.to_original(torch.tensor([[80.0, 72.0, 112.0, 88.0], [-50.0, 0.0, 500.0, 500.0]]))
    torch.testing.assert_close(back, torch.tensor([[100.0, 40.0, 140.0, 60.0], [0.0, 0.0, 200.0, 100.0]]))


def test_outputs_in_original_pixels_for_non_square_input(seg):
    """A detection at a known letterbox position comes back in original pixels, masks from the original."""
    img = _image(100, 200, 3)  # scale 0.8, pad_y 40
    _, metas = seg.preprocess([img])
    raw = _forced_raw(seg, [[16.0, 48.0, 96.0, 88.0]], [[0.0, 0.9, 0.0, 0.0, 0.0]])
    p = InferenceParams(score_threshold=0.5, mask_threshold=0.5)
    (inst,) = seg.postprocess(raw, metas, p)
    assert len(inst) == 1 and inst.class_ids[0] == 1 and inst.class_name(0) == "chair"
    np.testing.assert_allclose(inst.boxes[0], [20.0, 10.0, 120.0, 60.0], atol=1e-4)
    assert inst.masks.shape == (1, 100, 200)
    r0, r1, c0, c1 = box_pixel_range(inst.boxes[0], (100, 200))
    outside = inst.masks[0].copy()
    outside[r0:r1, c0:c1] = False
    assert not outside.any() and inst.masks[0].any()
    # the same masks as running the mask head on that box in the original image directly
    ref = seg.segment_boxes(img, inst.boxes, inst.scores, inst.class_ids, p)
    np.testing.assert_array_equal(ref.masks, inst.masks)


def test_training_crops_match_inference_crops(seg):
    """fcn_training_pair (used by FCN training on ground-truth boxes) crops exactly as inference does."""
    from instaseg_ros.models.yolo_fcn.fcn import fcn_training_pair

    img = _image(90, 130, 4)
    boxes = np.array([[43.0, 22.0, 65.0, 45.0], [10.5, 5.25, 100.0, 80.0]], np.float32)
    masks = np.zeros((2, 90, 130), np.uint8)
    masks[0, 22:45, 43:65] = 1
    masks[1, 40:80, 10:50] = 1
    crops, targets = fcn_training_pair(img, boxes, masks, seg.crop_size)
    assert crops.shape == (2, 3, 64, 64) and targets.shape == (2, 64, 64)
    # enlarging blends the outermost half pixel with the outside (same as the image crop): corners drop
    assert targets[0, 1:-1, 1:-1].eq(1).all() and targets[0, 0, 0] == 0 and 0 < targets[1].mean() < 1
    with torch.no_grad():
        train_probs = torch.sigmoid(seg.fcn(crops)[:, 0])
    torch.testing.assert_close(seg.box_mask_probs(img, boxes), train_probs)
    # the object colour patch (BGR (30, 200, 90)) appears in RGB order in the crop
    torch.testing.assert_close(crops[0, :, 5, 5], torch.tensor([90.0, 200.0, 30.0]) / 255)


def test_class_aware_nms_and_cross_class(seg):
    _, metas = seg.preprocess([_image(160, 160)])
    same = [[10.0, 10.0, 70.0, 70.0], [12.0, 12.0, 72.0, 72.0], [100.0, 100.0, 150.0, 150.0]]
    sc = [[0.9, 0, 0, 0, 0], [0, 0.8, 0, 0, 0], [0, 0, 0, 0, 0.7]]
    p = InferenceParams(score_threshold=0.5, nms_threshold=0.5)
    (inst,) = seg.postprocess(_forced_raw(seg, same, sc), metas, p)
    assert inst.class_ids.tolist() == [0, 1, 4]  # overlapping boxes of different classes both stay
    (inst,) = seg.postprocess(_forced_raw(seg, same, sc), metas, p.updated(cross_class_nms=True))
    assert inst.class_ids.tolist() == [0, 4]
    sc_same = [[0.9, 0, 0, 0, 0], [0.8, 0, 0, 0, 0], [0, 0, 0, 0, 0.7]]
    (inst,) = seg.postprocess(_forced_raw(seg, same, sc_same), metas, p)
    np.testing.assert_allclose(inst.scores, [0.9, 0.7])
    (inst,) = seg.postprocess(_forced_raw(seg, same, sc), metas, p.updated(class_filter=["toilet"]))
    assert inst.class_ids.tolist() == [4]
    (inst,) = seg.postprocess(_forced_raw(seg, same, sc), metas, p.updated(top_k=1))
    assert len(inst) == 1 and inst.scores[0] == pytest.approx(0.9)
    (inst,) = seg.postprocess(_forced_raw(seg, [], []), metas, p)
    assert len(inst) == 0 and inst.masks.shape == (0, 160, 160)
    with pytest.raises(ValueError, match="unknown classes"):
        seg.segment([_image(20, 20)], p.updated(class_filter=["giraffe"]))


def test_class_subset_is_a_column_selection_without_retraining():
    full = build_yolo_fcn(config={**TINY, "classes": None})
    indoor = build_yolo_fcn(config={**TINY, "classes": INDOOR_CLASSES})
    assert full.class_names == COCO_CLASSES and len(full.class_names) == 80
    x, _ = full.preprocess([_image(64, 96)])
    b_all, s_all = full.forward_raw(x)
    b_in, s_in = indoor.forward_raw(x)
    idx = [COCO_CLASSES.index(c) for c in INDOOR_CLASSES]
    assert idx == [0, 56, 57, 60, 61]
    torch.testing.assert_close(b_in, b_all)
    torch.testing.assert_close(s_in, s_all[..., idx])
    reordered = build_yolo_fcn(config={**TINY, "classes": ["toilet", "person"]})
    torch.testing.assert_close(reordered.forward_raw(x)[1], s_all[..., [61, 0]])


def test_yolov3_tiny_detector_variant(tmp_path):
    seg = build_yolo_fcn(config={**TINY, "detector": "yolov3-tiny", "input_size": 128})
    x, metas = seg.preprocess([_image(60, 100)])
    boxes, scores = seg.forward_raw(x)
    assert boxes.shape == (1, 3 * (16 + 64), 4) and scores.shape == (1, 240, 80)
    save_darknet_weights(seg.darknet, tmp_path / "tiny.weights")
    again = build_yolo_fcn(
        weights=tmp_path / "tiny.weights",
        config={**TINY, "detector": "yolov3-tiny", "input_size": 128, "seed": 9},
    )
    torch.testing.assert_close(again.forward_raw(x)[1], scores)
    with pytest.raises(ValueError, match="detector must be one of"):
        YoloFcnConfig(detector="yolov5")


def test_missing_weights_are_refused_with_clear_messages(tmp_path):
    cfg = {k: v for k, v in TINY.items() if k != "allow_random_fcn"}
    with pytest.raises(ValueError, match="no FCN mask-head weights: set fcn_weights.*allow_random_fcn"):
        build_yolo_fcn(config=cfg)
    cfg = {k: v for k, v in TINY.items() if k != "allow_random_detector"}
    with pytest.raises(ValueError, match="no detector weights.*yolov3.weights"):
        build_yolo_fcn(config=cfg)
    with pytest.raises(FileNotFoundError, match="fcn_weights file not found"):
        build_yolo_fcn(config={**TINY, "fcn_weights": str(tmp_path / "none.pt")})
    with pytest.raises(FileNotFoundError, match="weights file .* does not exist"):
        build_yolo_fcn(weights=tmp_path / "none.weights", config=TINY)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown YoloFcnConfig keys.*'backbone'"):
        build_yolo_fcn(config={**TINY, "backbone": "x"})
    with pytest.raises(ValueError, match=r"classes \['sofa'\] are not detector classes"):
        YoloFcnConfig(classes=["person", "sofa"])
    with pytest.raises(ValueError, match="multiple of 32"):
        YoloFcnConfig(input_size=100)
    with pytest.raises(ValueError, match="unknown inference keys"):
        YoloFcnConfig(inference={"thresh": 0.3})
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        build_yolo_fcn(config=TINY, precision="fp16")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        build_yolo_fcn(config=str(bad))


def test_darknet_weights_plus_fcn_checkpoint_and_combined_checkpoint(tmp_path, seg):
    """Building from yolov3-style .weights + fcn_weights, or from our checkpoint, reproduces the model."""
    img = _image(120, 160, 5)
    p = InferenceParams(score_threshold=0.26, top_k=10)
    ref = seg.segment([img], p)[0]
    assert len(ref) > 0
    save_darknet_weights(seg.darknet, tmp_path / "det.weights")
    save_fcn_checkpoint(tmp_path / "fcn.pt", seg.fcn, seg.config.fcn)
    cfg = {**TINY, "classes": INDOOR_CLASSES, "seed": 123, "allow_random_detector": False,
           "allow_random_fcn": False, "fcn": {"arch": "resnet18", "width": 1.0, "crop_size": 64},
           "fcn_weights": str(tmp_path / "fcn.pt")}  # fmt: skip
    loaded = build_segmenter("yolo_fcn", weights=str(tmp_path / "det.weights"), config=cfg)
    assert loaded.config.fcn.width == 0.25  # the FCN file's architecture wins
    got = loaded.segment([img], p)[0]
    np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-4)
    np.testing.assert_array_equal(got.masks, ref.masks)

    seg.save_checkpoint(tmp_path / "combined.pt")
    seg.save_checkpoint(tmp_path / "half.pt", fp16=True)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "combined.pt").stat().st_size
    half = build_segmenter("yolo_fcn", weights=str(tmp_path / "half.pt"))
    assert half.darknet.layers[0].conv.weight.dtype == torch.float32
    assert len(half.segment([img], p)[0]) > 0
    obj = torch.load(tmp_path / "combined.pt", weights_only=True)
    assert obj["format"] == "instaseg_yolo_fcn" and set(obj) >= {"config", "detector", "fcn"}
    again = build_segmenter("yolo_fcn", weights=str(tmp_path / "combined.pt"))
    assert again.class_names == INDOOR_CLASSES and not again.config.allow_random_fcn
    got = again.segment([img], p)[0]
    np.testing.assert_array_equal(got.boxes, ref.boxes)
    np.testing.assert_array_equal(got.masks, ref.masks)
    # run-time overrides on top of a checkpoint: a different class subset, same weights
    sub = build_segmenter("yolo_fcn", weights=str(tmp_path / "combined.pt"), config={"classes": ["person"]})
    assert sub.class_names == ["person"]
    # a shipped model config with another network description: the checkpoint's networks (and its
    # trained input size, which the YAML leaves unset) win, its run-time keys (thresholds) apply
    node_like = build_segmenter(
        "yolo_fcn",
        weights=str(tmp_path / "combined.pt"),
        config=str(ROOT / "config/models/yolo_fcn_indoor.yaml"),
    )
    assert node_like.config.darknet_width == 0.25 and node_like.config.fcn.crop_size == 64
    assert node_like.config.input_size == 160 and node_like.params.score_threshold == 0.5
    resized = build_segmenter("yolo_fcn", weights=str(tmp_path / "combined.pt"), config={"input_size": 224})
    assert resized.preprocess([img])[0].shape[-1] == 224
    assert node_like.segment([img])[0].image_size == img.shape[:2]

    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "something"}, wrong)
    with pytest.raises(ValueError, match="not a yolo_fcn checkpoint"):
        build_segmenter("yolo_fcn", weights=str(wrong))
    mismatched = {**TINY, "darknet_width": 0.5}
    with pytest.raises(ValueError, match="size mismatch"):
        build_yolo_fcn(weights=tmp_path / "det.weights", config=mismatched)


def test_yaml_configs_parse():
    paths = sorted((ROOT / "config" / "models").glob("yolo_fcn_*.yaml"))
    assert len(paths) >= 2, "the shipped yolo_fcn model configs are missing"
    for path in paths:
        cfg = YoloFcnConfig.from_yaml(path)
        assert cfg.input_size % 32 == 0, path


@pytest.mark.gpu
def test_cuda_fp16_matches_fp32_detections():
    fp32 = build_yolo_fcn(config=TINY, device="cuda")
    fp16 = build_yolo_fcn(config=TINY, device="cuda", precision="fp16")
    img = _image(120, 200, 7)
    p = InferenceParams(score_threshold=0.3, top_k=10)
    a, b = fp32.segment([img], p)[0], fp16.segment([img], p)[0]
    assert len(a) > 0 and abs(len(a) - len(b)) <= 2
    np.testing.assert_allclose(a.scores[:3], b.scores[:3], atol=1e-2)
