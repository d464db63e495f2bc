"""SOLOv2: config, raw output shapes, grid target assignment, Matrix NMS, segmenter, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models import build_segmenter
from instaseg_ros.models.solo import (
    SoloConfig,
    SoloSegmenter,
    SoloV2,
    assign_targets,
    mask_nms,
    matrix_nms,
    save_checkpoint,
)

CLASSES = ["person", "chair", "couch", "dining table", "toilet"]
TINY = dict(backbone="resnet18", input_size=64, fpn_channels=32, head_channels=32, head_convs=1,
            mask_channels=16, mask_mid_channels=16, num_grids=[8, 6, 4, 3, 2])  # fmt: skip


@pytest.fixture(scope="module")
def seg() -> SoloSegmenter:
    torch.manual_seed(0)
    cfg = SoloConfig(**TINY)
    return SoloSegmenter(SoloV2(cfg), cfg, params=InferenceParams(score_threshold=0.05))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown SoloConfig keys \\['grids'\\]"):
        SoloConfig.from_dict({"grids": [1]})
    with pytest.raises(ValueError, match="multiple of 32"):
        SoloConfig(input_size=100)
    with pytest.raises(ValueError, match="num_grids needs 5"):
        SoloConfig(num_grids=[4, 3])
    with pytest.raises(ValueError, match="unknown backbone"):
        SoloConfig(backbone="vgg")
    # default scale ranges follow the input size (official ranges at 800 px)
    assert SoloConfig(input_size=320).scale_ranges[1] == pytest.approx([19.2, 76.8])


def test_raw_shapes(seg):
    cfg = seg.cfg
    x, metas = seg.preprocess([np.zeros((50, 70, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)])
    assert x.shape == (2, 3, 64, 64) and metas[0]["size"] == (50, 70)
    raw = seg.forward_raw(x)
    g = sum(s * s for s in cfg.num_grids)
    assert raw["cate"].shape == (2, g, 5)
    assert raw["kernel"].shape == (2, g, cfg.mask_channels)
    assert raw["mask_feat"].shape == (2, cfg.mask_channels, 16, 16)


def test_assign_targets_centre_cells_and_levels():
    cfg = SoloConfig(input_size=64, num_grids=[8, 6, 4, 3, 2],
                     scale_ranges=[[0, 12], [8, 24], [16, 48], [32, 96], [64, 200]])  # fmt: skip
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 16:48, 16:48] = 1  # 32 px square centred at (32, 32): levels 2 (16-48) and 3 (32-96)
    masks[1, 4:10, 52:58] = 1  # 6 px square at (55, 7): level 0 only
    boxes = np.array([[16, 16, 48, 48], [52, 4, 58, 10]], np.float32)
    cate, pos, gt = assign_targets(boxes, np.array([2, 4]), masks, cfg)
    offs = np.cumsum([0] + [s * s for s in cfg.num_grids])
    # small object: grid 8 cell (row 0, col 6) only (centre region 0.2 x 6 px lies in one cell)
    small = pos[gt == 1]
    assert small.tolist() == [offs[0] + 0 * 8 + 6] and cate[small[0]] == 4
    big = pos[gt == 0]
    lvl2 = big[(big >= offs[2]) & (big < offs[3])] - offs[2]
    lvl3 = big[(big >= offs[3]) & (big < offs[4])] - offs[3]
    # centre of mass (32, 32) lies on a 4x4 grid line: the sigma box (+-3.2 px) covers rows/cols 1..2
    assert lvl2.tolist() == [1 * 4 + 1, 1 * 4 + 2, 2 * 4 + 1, 2 * 4 + 2]
    # 3x3 grid: (32 +- 3.2) / 64 * 3 stays in cell (1, 1)
    assert lvl3.tolist() == [1 * 3 + 1]
    assert set(cate[big].tolist()) == {2}
    assert np.count_nonzero(cate < 5) == len(pos) == 6


def test_assign_targets_smaller_instance_wins_shared_cell():
    cfg = SoloConfig(input_size=64, num_grids=[2, 2, 2, 2, 2], scale_ranges=[[0, 100]] * 5)
    masks = np.zeros((2, 64, 64), np.uint8)
    masks[0, 0:40, 0:40] = 1
    masks[1, 10:20, 10:20] = 1
    boxes = np.array([[0, 0, 40, 40], [10, 10, 20, 20]], np.float32)
    cate, pos, gt = assign_targets(boxes, np.array([0, 1]), masks, cfg)
    assert cate[0] == 1 and gt[pos.tolist().index(0)] == 1


def test_matrix_nms_decays_duplicates_only():
    m = torch.zeros(3, 8, 8, dtype=torch.bool)
    m[0, :4] = True
    m[1, :4] = True  # duplicate of 0
    m[2, 4:] = True  # disjoint
    scores = torch.tensor([0.9, 0.8, 0.7])
    out = matrix_nms(m, torch.tensor([0, 0, 0]), scores, "gaussian", 2.0)
    assert out[0] == pytest.approx(0.9) and out[2] == pytest.approx(0.7)
    assert out[1] == pytest.approx(0.8 * np.exp(-2.0))
    lin = matrix_nms(m, torch.tensor([0, 0, 0]), scores, "linear")
    assert lin[1] == pytest.approx(0.0, abs=1e-6)
    # class-aware: a duplicate of another class is not decayed
    aware = matrix_nms(m, torch.tensor([0, 1, 0]), scores)
    assert aware[1] == pytest.approx(0.8)
    assert mask_nms(m, torch.tensor([0, 0, 0]), 0.5).tolist() == [0, 2]


def test_postprocess_places_masks_in_original_pixels(seg):
    """A hand-made raw output with one confident cell and an all-on kernel -> one full-frame instance."""
    cfg = seg.cfg
    g = sum(s * s for s in cfg.num_grids)
    cate = torch.full((1, g, 5), -10.0)
    cate[0, 20, 3] = 5.0
    kernel = torch.zeros(1, g, cfg.mask_channels)
    kernel[0, 20, 0] = 1.0
    feat = torch.zeros(1, cfg.mask_channels, 16, 16)
    feat[0, 0, 4:12, 2:10] = 10.0
    feat[0, 0] -= 5.0
    inst = seg.postprocess({"cate": cate, "kernel": kernel, "mask_feat": feat}, [{"size": (32, 48)}])[0]
    assert len(inst) == 1 and inst.class_ids.tolist() == [3] and inst.masks.shape == (1, 32, 48)
    # rows 4..12 of 16 -> 8..24 of 32; cols 2..10 of 16 -> 6..30 of 48 (bilinear, threshold 0.5)
    np.testing.assert_allclose(inst.boxes[0], [6, 8, 30, 24], atol=1.01)
    assert inst.scores[0] == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item() * torch.sigmoid(
        torch.tensor(5.0)).item(), rel=1e-3)  # fmt: skip
    filtered = seg.postprocess({"cate": cate, "kernel": kernel, "mask_feat": feat}, [{"size": (32, 48)}],
                               InferenceParams(score_threshold=0.05, class_filter=["person"]))[0]  # fmt: skip
    assert len(filtered) == 0


def test_segment_equals_stages_and_reload_is_identical(seg, tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (48, 80, 3), np.uint8)
    x, metas = seg.preprocess([img])
    staged = seg.postprocess(seg.forward_raw(x), metas)[0]
    direct = seg.segment([img])[0]
    assert len(staged) == len(direct)
    path = tmp_path / "solo.pth"
    save_checkpoint(path, seg.model, seg.cfg)
    again = build_segmenter("solo", weights=str(path), params=InferenceParams(score_threshold=0.05))
    assert again.class_names == CLASSES and again.cfg.num_grids == seg.cfg.num_grids
    a, b = seg.forward_raw(x), again.forward_raw(x)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    out = again.segment([img])[0]
    assert np.array_equal(out.masks, direct.masks) and np.array_equal(out.scores, direct.scores)


def test_checkpoint_errors(seg, tmp_path):
    path = tmp_path / "solo.pth"
    save_checkpoint(path, seg.model, seg.cfg)
    with pytest.raises(ValueError, match="checkpoint has 5 classes .* config names 2"):
        build_segmenter("solo", weights=str(path), config={"classes": ["a", "b"]})
    other = tmp_path / "plain.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a SOLO checkpoint"):
        build_segmenter("solo", weights=str(other))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_segmenter("solo", weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        build_segmenter("solo", weights=str(junk))


def test_shipped_model_configs_parse():
    from pathlib import Path

    from instaseg_ros.models.config import load_config_mapping

    files = sorted((Path(__file__).resolve().parents[2] / "config" / "models").glob("solo_*.yaml"))
    assert files
    for f in files:
        cfg = SoloConfig.from_dict(load_config_mapping(f))
        assert cfg.class_names == CLASSES and len(cfg.scale_ranges) == 5, f
        InferenceParams(**load_config_mapping(f)["inference"])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1), st.sampled_from(["gaussian", "linear"]), st.booleans())
def test_matrix_nms_never_raises_scores_and_keeps_the_top(n, seed, kernel, aware):
    g = torch.Generator().manual_seed(seed)
    masks = torch.rand(n, 6, 6, generator=g) > 0.5
    labels = torch.randint(0, 2, (n,), generator=g)
    scores = torch.sort(torch.rand(n, generator=g), descending=True).values
    out = matrix_nms(masks, labels, scores, kernel, 2.0, class_aware=aware)
    assert out.shape == scores.shape
    assert torch.all(out <= scores + 1e-6) and torch.all(out >= 0)
    assert out[0] == pytest.approx(float(scores[0]))
