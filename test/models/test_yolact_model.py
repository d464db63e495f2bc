"""YOLACT-SE architecture: priors, shapes, channel attention, config round trips."""

from __future__ import annotations

import math

import pytest
import torch

from instaseg_ros.core.labels import COCO_CLASSES
from instaseg_ros.models.attention import ChannelAttention
from instaseg_ros.models.backbones import ResNetBackbone, build_backbone
from instaseg_ros.models.yolact import (
    YolactConfig,
    YolactSE,
    feature_sizes,
    make_priors,
    priors_for_config,
)


def test_feature_sizes_match_official_550_and_700():
    assert feature_sizes(550) == [69, 35, 18, 9, 5]
    assert feature_sizes(700) == [88, 44, 22, 11, 6]


def test_priors_official_550_layout_and_square_anchor_rule():
    cfg = YolactConfig()
    pri = priors_for_config(cfg)
    assert pri.shape == (3 * (69**2 + 35**2 + 18**2 + 9**2 + 5**2), 4) == (19248, 4)
    # first cell of P3: centre (0.5/69, 0.5/69), aspect ratios 1, 1/2, 2 with h = w (v1 square anchors)
    c = 0.5 / 69
    for a, ar in enumerate([1.0, 0.5, 2.0]):
        w = 24 * math.sqrt(ar) / 550
        torch.testing.assert_close(pri[a], torch.tensor([c, c, w, w]))
    # cell order is row-major: prior 3 is row 0, column 1
    torch.testing.assert_close(pri[3, :2], torch.tensor([1.5 / 69, 0.5 / 69]))
    # last prior: P7 (5x5) bottom-right cell, ar 2, scale 384
    w = 384 * math.sqrt(2.0) / 550
    torch.testing.assert_close(pri[-1], torch.tensor([4.5 / 5, 4.5 / 5, w, w]))
    rect = make_priors([2], [[10]], [0.5], 100, square=False)
    torch.testing.assert_close(
        rect[0], torch.tensor([0.25, 0.25, 10 * math.sqrt(0.5) / 100, 10 / math.sqrt(0.5) / 100])
    )


def test_config_defaults_scale_anchors_with_input_size():
    assert YolactConfig(input_size=700).anchor_scales == [30, 61, 122, 244, 488]  # official yolact_im700
    assert YolactConfig().class_names == COCO_CLASSES
    assert YolactConfig(num_classes=2).class_names == ["class_0", "class_1"]
    dark = YolactConfig(backbone="darknet53")
    assert dark.mean == [0.0, 0.0, 0.0] and dark.std == [255.0, 255.0, 255.0]


def test_config_yaml_round_trip_and_errors(tmp_path):
    import yaml

    cfg = YolactConfig(backbone="resnet18", num_classes=3, class_names=["a", "b", "c"], input_size=320)
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump({"family": "yolact", "model": cfg.to_dict()}))
    assert YolactConfig.from_yaml(p) == cfg
    with pytest.raises(ValueError, match="unknown YolactConfig keys.*bogus"):
        YolactConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="backbone"):
        YolactConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="class_names"):
        YolactConfig(num_classes=2, class_names=["x"])


def test_channel_attention_identity_at_init_and_learnable():
    torch.manual_seed(0)
    att = ChannelAttention(32)
    x = torch.randn(2, 32, 5, 7)
    assert torch.equal(att(x), x)
    torch.nn.init.normal_(att.avg_fc[2].weight)
    torch.nn.init.normal_(att.max_fc[2].weight)
    y = att(x)
    assert not torch.allclose(y, x)
    gate = y / x
    assert torch.all(gate > 0) and torch.all(gate < 2)
    # gate is constant over space (channel attention)
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-5)


def test_untrained_attention_leaves_backbone_features_unchanged():
    torch.manual_seed(0)
    plain = ResNetBackbone("resnet18", attention=False).eval()
    se = ResNetBackbone("resnet18", attention=True).eval()
    missing, unexpected = se.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("attention.") for k in missing)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), se(x)):
            assert torch.equal(a, b)


@pytest.mark.parametrize(
    "name,channels",
    [
        ("resnet18", [64, 128, 256, 512]),
        ("resnet34", [64, 128, 256, 512]),
        ("resnet50", [256, 512, 1024, 2048]),
    ],
)
def test_resnet_channels(name, channels):
    assert build_backbone(name).channels == channels


def test_forward_eval_and_train_outputs():
    torch.manual_seed(0)
    cfg = YolactConfig(backbone="resnet18", num_classes=3, input_size=128, embedding_dim=8)
    model = YolactSE(cfg).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        out = model(x)
    p = model.priors.shape[0]
    assert p == 3 * sum(s * s for s in feature_sizes(128))
    assert out["loc"].shape == (2, p, 4)
    assert out["conf"].shape == (2, p, 4)
    assert out["mask"].shape == (2, p, 32)
    assert out["mask"].abs().max() <= 1
    assert out["priors"].shape == (p, 4)
    assert out["proto"].shape == (2, 32, 32, 32) and out["proto"].min() >= 0
    assert set(out) == {"loc", "conf", "mask", "priors", "proto"}
    model.train()
    out = model(x)
    assert out["segm"].shape == (2, 3, 16, 16)
    assert out["embed"].shape == (2, 8, 16, 16)
    assert [f.shape[-1] for f in out["features"]] == feature_sizes(128)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, 128, 128\]"):
        model(torch.zeros(1, 3, 100, 128))


def test_darknet53_forward_shapes():
    torch.manual_seed(0)
    cfg = YolactConfig(backbone="darknet53", num_classes=2, input_size=96, attention=True)
    model = YolactSE(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 96, 96))
    assert out["loc"].shape[1] == model.priors.shape[0] == 3 * sum(s * s for s in feature_sizes(96))


def test_shipped_model_configs_parse():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "config" / "models").glob("yolact_*.yaml"))
    assert len(files) >= 4
    for f in files:
        cfg = YolactConfig.from_yaml(f)
        assert len(cfg.class_names) == cfg.num_classes
