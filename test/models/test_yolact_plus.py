"""YOLACT++: DCNv2 backbone, mask re-scoring, official key layout and config inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models.fuse import inference_copy
from instaseg_ros.models.loading import load_model
from instaseg_ros.models.yolact import YolactConfig, YolactSE, YolactSegmenter
from instaseg_ros.ops.deform import ModulatedDeformConv2d, dcn_uses
from instaseg_ros.weights.yolact_checkpoint import infer_config_from_state_dict

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "test/fixtures/yolact_plus_official_keys_resnet50.json"


def plus_r50(size: int = 550, num_classes: int = 80) -> YolactConfig:
    base = [s * size / 550 for s in (24, 48, 96, 192, 384)]
    return YolactConfig(
        backbone="resnet50",
        num_classes=num_classes,
        input_size=size,
        attention=False,
        dcn_layers=[0, 4, 6, 3],
        dcn_interval=1,
        mask_rescoring=True,
        square_anchors=False,
        anchor_scales=[[b * 2 ** (j / 3) for j in range(3)] for b in base],
    )


def test_state_dict_matches_the_official_yolact_plus_r50_layout():
    doc = json.loads(FIXTURE.read_text())
    official = {k: tuple(s) for k, s in doc["keys"]}
    ours = {k: tuple(v.shape) for k, v in YolactSE(plus_r50()).state_dict().items()}
    assert sorted(set(ours) ^ set(official)) == []
    assert {k: v for k, v in ours.items() if v != official[k]} == {}


def test_config_is_inferred_from_an_official_yolact_plus_state_dict(tmp_path):
    doc = json.loads(FIXTURE.read_text())
    sd = {k: torch.zeros(s) for k, s in doc["keys"]}
    inferred = infer_config_from_state_dict(sd, "yolact_plus_resnet50_54_800000.pth")
    assert inferred["dcn_layers"] == [0, 4, 6, 3] and inferred["dcn_interval"] == 1
    assert inferred["mask_rescoring"] and inferred["maskiou_channels"] == [8, 16, 32, 64, 128]
    assert inferred["square_anchors"] is False and len(inferred["anchor_scales"][0]) == 3
    path = tmp_path / "yolact_plus_resnet50_54_800000.pth"
    torch.save(sd, path)
    seg = load_model("yolact", str(path))
    assert seg.model.maskiou_net is not None and seg.cfg.num_anchors == 9


@pytest.mark.parametrize("interval", [1, 3])
def test_dcn_layout_rule_of_the_authors(interval):
    # ResNet-101 with dcn_layers 23 and interval 3 (YOLACT++ base): blocks 0, 3, 6, ... of stage 3
    assert [i for i in range(23) if dcn_uses(i, 23, 23, interval)] == list(range(0, 23, interval))
    assert [i for i in range(3) if dcn_uses(i, 3, 0, interval)] == []


def test_deformable_conv_with_zero_offsets_is_half_a_plain_conv():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(8, 16, 3, stride=2, padding=1)
    with torch.no_grad():
        dcn.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 17, 13)
    ref = 0.5 * F.conv2d(x, dcn.weight, None, stride=2, padding=1) + dcn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(dcn(x), ref, atol=1e-5, rtol=1e-5)  # zero offsets, modulation sigmoid(0)


def test_batchnorm_folds_into_deformable_convs():
    torch.manual_seed(1)
    model = YolactSE(plus_r50(size=256, num_classes=3)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, ModulatedDeformConv2d):
                m.conv_offset_mask.weight.normal_(0, 0.05)
    x = torch.randn(1, 3, 256, 256)
    a, b = model(x), inference_copy(model, channels_last=False)(x)
    torch.testing.assert_close(a["conf"], b["conf"], atol=2e-3, rtol=1e-3)


def test_rescoring_changes_mask_scores_and_leaves_box_scores_alone():
    torch.manual_seed(2)
    cfg = plus_r50(size=256, num_classes=3)
    model = YolactSE(cfg).eval()
    with torch.no_grad():
        model.prediction_layers[0].conf_layer.weight.mul_(30)  # confident classes
        model.maskiou_net.maskiou_net[-2].bias.fill_(0.5)
    plain_cfg = YolactConfig.from_dict({**cfg.to_dict(), "mask_rescoring": False})
    plain = YolactSE(plain_cfg).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("maskiou_net.")})
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    p = InferenceParams(score_threshold=0.05, top_k=50)
    plus = YolactSegmenter(model, cfg, optimize=False).segment([img], p)[0]
    base = YolactSegmenter(plain, plain_cfg, optimize=False).segment([img], p)[0]
    assert len(base) > 0 and base.mask_scores is None
    np.testing.assert_array_equal(plus.scores, base.scores)  # box scores, order and boxes unchanged
    np.testing.assert_array_equal(plus.boxes, base.boxes)
    assert plus.mask_scores is not None and len(plus.mask_scores) == len(plus)
    assert not np.allclose(plus.mask_scores, plus.scores)
    # mask score = box score x predicted IoU of its class (>= 0 after the head's ReLU)
    assert np.all(plus.mask_scores >= 0)
    from instaseg_ros.evaluation.coco_eval import instances_to_coco

    res = instances_to_coco(plus, 1)
    assert [r["mask_score"] for r in res] == pytest.approx(plus.mask_scores.tolist())
    assert [r["score"] for r in res] == pytest.approx(plus.scores.tolist())


def test_official_yolact_plus_r101_layout_loads(tmp_path):
    doc = json.loads((ROOT / "test/fixtures/yolact_plus_official_keys_resnet101.json").read_text())
    sd = {k: torch.zeros(s) for k, s in doc["keys"]}
    inferred = infer_config_from_state_dict(sd, "yolact_plus_base_54_800000.pth")
    assert inferred["backbone"] == "resnet101"
    assert inferred["dcn_layers"][1:] == [4, 23, 3] and inferred["dcn_interval"] == 3
    model = YolactSE(YolactConfig.from_dict(inferred))
    assert sorted(set(model.state_dict()) ^ set(sd)) == []


def test_yolact_se_plus_composes_channel_attention_with_dcn():
    cfg = YolactConfig.from_dict({**plus_r50(size=256, num_classes=3).to_dict(), "attention": True})
    model = YolactSE(cfg).eval()
    keys = model.state_dict().keys()
    assert any(k.startswith("backbone.attention.") for k in keys)
    assert any(".conv_offset_mask." in k for k in keys) and any(k.startswith("maskiou_net.") for k in keys)
    img = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    assert isinstance(YolactSegmenter(model, cfg).segment([img])[0].boxes, np.ndarray)


def test_yolact_plus_runs_in_onnx_runtime_with_deformconv():
    """DCNv2 exports as ONNX DeformConv (opset 19) and ONNX Runtime's CPU kernel gives our detections."""
    from instaseg_ros.runtime import wrap_segmenter

    torch.manual_seed(0)
    cfg = plus_r50(size=256, num_classes=3)
    model = YolactSE(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ModulatedDeformConv2d):
                m.conv_offset_mask.weight.normal_(0, 0.01)  # real offsets, not the zero init
        model.prediction_layers[0].conf_layer.weight.mul_(30)
    seg = YolactSegmenter(model, cfg)
    fast = wrap_segmenter(seg, "onnxruntime")
    img = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    a, b = seg.segment([img])[0], fast.segment([img])[0]
    assert len(a) >= 10 and len(a) == len(b)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.mask_scores, b.mask_scores, atol=1e-4)
    assert np.mean([np.array_equal(x, y) for x, y in zip(a.masks, b.masks)]) > 0.9


def test_tensorrt_refuses_deformable_models_before_10_1():
    from instaseg_ros.runtime.base import BackendUnavailableError
    from instaseg_ros.runtime.tensorrt.availability import check_deformable_support

    dcn = torch.nn.Sequential(ModulatedDeformConv2d(2, 2))
    with pytest.raises(BackendUnavailableError, match="DeformConv.*TensorRT 10.0.1.*>= 10.1.*'onnxruntime'"):
        check_deformable_support("10.0.1", dcn)
    check_deformable_support("10.1.0", dcn)
    check_deformable_support("8.6.1", torch.nn.Conv2d(1, 1, 1))  # no DCN: any supported version


def test_predict_cli_writes_mask_scores_for_a_yolact_plus_checkpoint(tmp_path):
    import cv2

    from instaseg_ros.cli import main
    from instaseg_ros.models.yolact import save_checkpoint

    torch.manual_seed(3)
    cfg = plus_r50(size=256, num_classes=3)
    model = YolactSE(cfg).eval()
    with torch.no_grad():
        model.prediction_layers[0].conf_layer.weight.mul_(30)
        model.maskiou_net.maskiou_net[-2].bias.fill_(0.5)
    save_checkpoint(tmp_path / "plus.pth", model, cfg)
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(
        str(tmp_path / "imgs" / "a.png"),
        (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8),
    )
    weights = str(tmp_path / "plus.pth")
    args = ["predict", str(tmp_path / "imgs"), "--model", "yolact", "--weights", weights]
    rc = main([*args, "--score-threshold", "0.05", "--out", str(tmp_path / "out"), "--no-overlay"])
    assert rc == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results and all("mask_score" in r and r["mask_score"] != r["score"] for r in results)
