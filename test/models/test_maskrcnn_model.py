"""Mask R-CNN wrapper: parity with torchvision on torchvision checkpoints, loading errors, head swaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models import build_segmenter
from instaseg_ros.models.maskrcnn import (
    MaskRcnnConfig,
    build_model,
    infer_config,
    load_model,
    read_checkpoint,
    save_checkpoint,
)

CLASSES = ["person", "chair", "couch", "dining table", "toilet"]
# small transform sizes and proposal counts keep the ResNet-50 runs short on CPU; both sides use them
SMALL = dict(min_size=128, max_size=160, rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50)
PARAMS = InferenceParams(score_threshold=0.05, nms_threshold=0.5, top_k=20, mask_threshold=0.5)


@pytest.fixture(scope="module")
def tv_model(tmp_path_factory):
    """torchvision's own maskrcnn_resnet50_fpn (random weights, 5 classes + background) and its files."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=6, **SMALL)
    model.roi_heads.detections_per_img = PARAMS.top_k
    model.eval()
    d = tmp_path_factory.mktemp("tv")
    torch.save(model.state_dict(), d / "plain.pth")
    torch.save({"model": model.state_dict(), "epoch": 3}, d / "wrapped.pth")
    return model, d


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)


def test_torchvision_checkpoint_gives_torchvision_detections(tv_model, image):
    model, d = tv_model
    name = "plain.pth"
    with torch.no_grad():
        ref = model([torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0])[0]
    assert len(ref["boxes"]) > 0, "random torchvision model produced no detections to compare"
    seg = build_segmenter("maskrcnn", weights=str(d / name), config={**SMALL, "classes": CLASSES})
    assert seg.cfg.backbone == "resnet50" and seg.class_names == CLASSES
    inst = seg.segment([image], PARAMS)[0]
    keep = ref["scores"] >= PARAMS.score_threshold
    assert len(inst) == int(keep.sum())
    np.testing.assert_array_equal(inst.boxes, ref["boxes"][keep].numpy())
    np.testing.assert_array_equal(inst.scores, ref["scores"][keep].numpy())
    np.testing.assert_array_equal(inst.class_ids, ref["labels"][keep].numpy() - 1)
    np.testing.assert_array_equal(inst.masks, (ref["masks"][keep, 0] > 0.5).numpy())


def test_wrapped_and_ddp_checkpoints_read_like_plain(tv_model, tmp_path):
    model, d = tv_model
    plain, _ = read_checkpoint(d / "plain.pth")
    wrapped, _ = read_checkpoint(d / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pth")
    ddp, _ = read_checkpoint(tmp_path / "ddp.pth")
    assert plain.keys() == wrapped.keys() == ddp.keys()
    assert all(torch.equal(plain[k], wrapped[k]) and torch.equal(plain[k], ddp[k]) for k in plain)


def test_stage_split_equals_segment_and_own_checkpoint_roundtrip(image, tmp_path):
    torch.manual_seed(1)
    model = build_model(MaskRcnnConfig(backbone="resnet18", **SMALL)).eval()
    torch.save(model.state_dict(), tmp_path / "r18.pth")
    seg = build_segmenter("maskrcnn", weights=str(tmp_path / "r18.pth"), config=SMALL)
    assert seg.class_names == [f"class_{i}" for i in range(1, 6)]  # placeholder names, 5 classes
    assert seg.cfg.backbone == "resnet18"
    P5 = PARAMS.updated(top_k=5)  # noqa: N806 - fewer detections, fewer mask-head runs
    direct = seg.segment([image], P5)[0]
    seg.apply_params(P5)
    x, metas = seg.preprocess([image])
    assert x.shape[0] == 1 and x.shape[2] % 32 == 0 and x.shape[3] % 32 == 0
    assert metas[0]["size"] == (72, 96) and metas[0]["resized"] == (120, 160)
    staged = seg.postprocess(seg.forward_raw(x, [metas[0]["resized"]]), metas, P5)[0]
    np.testing.assert_array_equal(staged.boxes, direct.boxes)
    np.testing.assert_array_equal(staged.masks, direct.masks)
    ours = tmp_path / "ours.pth"
    seg.cfg.class_names = list(CLASSES)
    save_checkpoint(ours, seg.model, seg.cfg)
    again = build_segmenter("maskrcnn", weights=str(ours))
    assert again.class_names == CLASSES and again.cfg.min_size == 128
    out = again.segment([image], P5)[0]
    np.testing.assert_array_equal(out.boxes, direct.boxes)
    np.testing.assert_array_equal(out.scores, direct.scores)
    # class filter and top-k apply on top of torchvision's post-processing
    only = again.segment([image], P5.updated(class_filter=["chair"], top_k=3))[0]
    assert len(only) <= 3 and set(only.class_ids.tolist()) <= {1}


def test_loading_errors_name_the_problem(tv_model, tmp_path):
    _, d = tv_model
    with pytest.raises(ValueError, match=r"checkpoint has 5 classes .*cls_score.weight.*config names 2"):
        build_segmenter("maskrcnn", weights=str(d / "plain.pth"), config={"classes": ["a", "b"]})
    bad = tmp_path / "not_maskrcnn.pth"
    torch.save({"backbone.body.conv1.weight": torch.zeros(64, 3, 7, 7), "head.weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match=r"not a torchvision Mask R-CNN state dict: missing keys .*rpn.head"):
        build_segmenter("maskrcnn", weights=str(bad))
    solo_like = tmp_path / "solo.pth"
    torch.save({"format": "instaseg_ros.solo", "state_dict": {}, "config": {}}, solo_like)
    with pytest.raises(ValueError, match="is not a Mask R-CNN checkpoint"):
        build_segmenter("maskrcnn", weights=str(solo_like))
    with pytest.raises(FileNotFoundError):
        build_segmenter("maskrcnn", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="unknown MaskRcnnConfig keys"):
        MaskRcnnConfig.from_dict({"backbone_name": "resnet50"})


def test_head_replacement_and_backbone_inference(tmp_path):
    torch.manual_seed(0)
    cfg = MaskRcnnConfig(class_names=["a", "b", "c"], backbone="resnet18", min_size=64, max_size=96)
    model = build_model(cfg)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    sd, stored = read_checkpoint(path)
    assert stored is None and infer_config(sd)["backbone"] == "resnet18"
    # fine-tune to a new class count: predictors replaced, everything else loaded
    new, ncfg = load_model(path, {"classes": CLASSES, "min_size": 64, "max_size": 96}, reinit_heads=True)
    assert new.roi_heads.box_predictor.cls_score.out_features == 6
    assert new.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 6
    assert ncfg.class_names == CLASSES
    assert torch.equal(new.backbone.body.layer1[0].conv1.weight, model.backbone.body.layer1[0].conv1.weight)
    assert torch.equal(new.roi_heads.box_head.fc6.weight, model.roi_heads.box_head.fc6.weight)
    with pytest.raises(ValueError, match="resnet18 backbone, config asks for 'resnet50'"):
        load_model(path, {"backbone": "resnet50"})


def test_shipped_model_configs_parse():
    from pathlib import Path

    from instaseg_ros.models.config import load_config_mapping

    files = sorted((Path(__file__).resolve().parents[2] / "config" / "models").glob("maskrcnn_*.yaml"))
    assert files
    for f in files:
        cfg = MaskRcnnConfig.from_dict(load_config_mapping(f))
        assert cfg.class_names == CLASSES and cfg.num_classes == 6, f
        InferenceParams(**load_config_mapping(f)["inference"])
