"""Checkpoint parity with the official YOLACT key layout, our own round trip, and loader errors.

The fixtures ``test/fixtures/yolact_official_keys_*.json`` list every key and shape of the official
state dicts (derived from the authors' public code; no weights, no code).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.models import build_segmenter
from instaseg_ros.models.yolact import (
    YolactConfig,
    YolactSE,
    config_for_checkpoint,
    load_model,
    save_checkpoint,
)
from instaseg_ros.weights.yolact_checkpoint import load_state_dict_into, read_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _official_state_dict(tag: str) -> dict[str, torch.Tensor]:
    doc = json.loads((FIXTURES / f"yolact_official_keys_{tag}.json").read_text())
    assert doc["num_keys"] == len(doc["keys"])
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in doc["keys"]:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7, dtype=torch.long)
        else:
            sd[key] = (
                torch.empty(shape).uniform_(-0.1, 0.1, generator=g) if len(shape) == 1 else torch.zeros(shape)
            )
    return sd


@pytest.fixture(scope="module")
def r50_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ckpt") / "yolact_resnet50_54_800000.pth"
    torch.save(_official_state_dict("resnet50"), p)
    return p


@pytest.mark.parametrize(
    "tag,backbone", [("resnet50", "resnet50"), ("resnet101", "resnet101"), ("darknet53", "darknet53")]
)
def test_official_layout_loads_with_only_attention_keys_missing(tag, backbone):
    sd = _official_state_dict(tag)
    for attention in (False, True):
        model = YolactSE(YolactConfig(backbone=backbone, attention=attention))
        report = load_state_dict_into(model, sd)
        own = model.state_dict()
        assert set(own) - set(sd) == set(report.missing_attention)
        assert all(k.startswith("backbone.attention.") for k in report.missing_attention)
        assert bool(report.missing_attention) == attention
        assert set(sd) <= set(own) and report.ignored == []
        k = "prediction_layers.0.conf_layer.bias"
        assert torch.equal(own[k], sd[k])
        del model


def test_official_file_config_is_inferred(r50_file, tmp_path):
    sd, stored = read_checkpoint(r50_file)
    assert stored is None and len(sd) == 354
    seg = build_segmenter("yolact", weights=str(r50_file), optimize=False)
    cfg = seg.cfg
    assert (cfg.backbone, cfg.num_classes, cfg.input_size, cfg.attention, cfg.semantic_head) == (
        "resnet50",
        80,
        550,
        False,
        True,
    )
    assert seg.class_names[0] == "person" and len(seg.class_names) == 80
    assert seg.model.priors.shape == (19248, 4)
    # im700 in the file name selects the 700 input and its anchors; config keys override
    cfg700 = config_for_checkpoint(sd, None, tmp_path / "yolact_im700_54_800000.pth")
    assert cfg700.input_size == 700 and cfg700.anchor_scales == [30, 61, 122, 244, 488]
    cfg_se = config_for_checkpoint(sd, None, r50_file, {"attention": True, "input_size": 400})
    assert cfg_se.attention and cfg_se.input_size == 400 and cfg_se.anchor_scales[0] == 17


def test_wrapped_state_dicts_are_unwrapped(tmp_path):
    sd = _official_state_dict("resnet50")
    p = tmp_path / "wrapped.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, p)
    assert set(read_checkpoint(p)[0]) == set(sd)
    torch.save({"state_dict": sd, "epoch": 3}, p)
    assert set(read_checkpoint(p)[0]) == set(sd)


def test_legacy_keys_are_ignored_like_the_official_loader():
    sd = _official_state_dict("resnet50")
    sd["fpn.downsample_layers.2.weight"] = torch.zeros(256, 256, 3, 3)
    sd["backbone.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    model = YolactSE(YolactConfig(attention=False))
    report = load_state_dict_into(model, sd)
    assert sorted(report.ignored) == ["backbone.layer1.0.conv1.weight", "fpn.downsample_layers.2.weight"]


def test_wrong_class_count_names_the_key(r50_file):
    with pytest.raises(
        ValueError, match=r"wrong class count: prediction_layers\.0\.conf_layer\.weight .*80 classes"
    ):
        load_model(r50_file, {"num_classes": 5})


def test_wrong_backbone_names_keys(r50_file):
    with pytest.raises(
        ValueError,
        match=r"wrong backbone: checkpoint backbone is resnet50, config asks for resnet101"
        r".*backbone\.layers\.2\.\d+",
    ):
        load_model(r50_file, {"backbone": "resnet101"})


def test_not_a_yolact_checkpoint(tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, p)
    with pytest.raises(ValueError, match=r"not a YOLACT checkpoint: missing keys \['prediction_layers"):
        read_checkpoint(p)
    q = tmp_path / "text.pth"
    q.write_text("hello")
    with pytest.raises(ValueError, match="cannot be read as a PyTorch checkpoint"):
        read_checkpoint(q)
    r = tmp_path / "list.pth"
    torch.save([1, 2], r)
    with pytest.raises(ValueError, match="not a YOLACT checkpoint"):
        read_checkpoint(r)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pth")


def test_own_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    cfg = YolactConfig(
        backbone="resnet18", num_classes=2, class_names=["x", "y"], input_size=96, attention=True
    )
    model = YolactSE(cfg)
    with torch.no_grad():  # make the attention non-trivial so that it must round-trip too
        for prm in model.backbone.attention.parameters():
            prm.normal_(0, 0.1)
    p = tmp_path / "mine.pth"
    save_checkpoint(p, model, cfg)
    seg = build_segmenter("yolact", weights=str(p))
    assert seg.cfg == cfg and seg.class_names == ["x", "y"]
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    ref = YolactSE(cfg)
    ref.load_state_dict(model.state_dict())
    ref.eval()
    x, _ = seg.preprocess([img])
    with torch.no_grad():
        a = ref(x)
    b = seg.forward_raw(x)  # BN-folded, channels-last copy: equal up to float rounding
    exact = build_segmenter("yolact", weights=str(p), optimize=False).forward_raw(x)
    for k in ("loc", "conf", "mask", "proto"):
        torch.testing.assert_close(b[k], a[k], atol=1e-4, rtol=1e-4)
        assert torch.equal(exact[k], a[k])


def test_official_file_with_shipped_config(r50_file):
    cfg_file = Path(__file__).resolve().parents[2] / "config" / "models" / "yolact_resnet50.yaml"
    _, cfg = load_model(r50_file, str(cfg_file))
    assert cfg.backbone == "resnet50" and not cfg.attention
