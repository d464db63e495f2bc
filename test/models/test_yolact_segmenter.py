"""YolactSegmenter: pre/post-processing in original-image pixels, exact mask assembly, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models import build_segmenter
from instaseg_ros.models.yolact import YolactConfig, YolactSE, YolactSegmenter, assemble_masks
from instaseg_ros.ops.boxes import crop_masks, point_form

CFG = dict(backbone="resnet18", num_classes=3, class_names=["a", "b", "c"], input_size=128)


@pytest.fixture(scope="module")
def seg() -> YolactSegmenter:
    torch.manual_seed(0)
    cfg = YolactConfig(**CFG)
    return YolactSegmenter(YolactSE(cfg), cfg, params=InferenceParams(score_threshold=0.2))


def _raw_with_detections(seg: YolactSegmenter, picks: list[tuple[int, int, float]], batch: int = 1):
    """Raw outputs whose only confident priors are ``picks`` = (prior, class, logit); masks all-on."""
    pri = seg.model.priors
    p, k = pri.shape[0], seg.cfg.num_prototypes
    conf = torch.zeros(batch, p, seg.cfg.num_classes + 1)
    conf[..., 0] = 5.0  # background everywhere else
    for prior, cls, logit in picks:
        conf[:, prior, cls + 1] = logit
    mask = torch.zeros(batch, p, k)
    mask[..., 0] = 1.0
    proto = torch.zeros(batch, 32, 32, k)
    proto[..., 0] = 20.0  # sigmoid(20) ~ 1 everywhere before cropping
    return {"loc": torch.zeros(batch, p, 4), "conf": conf, "mask": mask, "priors": pri, "proto": proto}


def test_postprocess_boxes_and_masks_in_original_pixels_non_square(seg):
    pri = seg.model.priors
    k = int(torch.nonzero((pri[:, 2] > 0.3) & (pri[:, 0] > 0.4) & (pri[:, 0] < 0.6))[0])
    raw = _raw_with_detections(seg, [(k, 1, 12.0)])
    h, w = 90, 300
    inst = seg.postprocess(raw, [{"size": (h, w)}])[0]
    assert len(inst) == 1 and inst.class_ids.tolist() == [1] and inst.image_size == (h, w)
    assert inst.masks.shape == (1, h, w)
    rel = point_form(pri[k : k + 1])[0].clamp(0, 1).numpy()
    np.testing.assert_allclose(inst.boxes[0], rel * [w, h, w, h], atol=1e-3)
    # mask: the prototype pixels inside the box grown by 1 prototype pixel (crop padding), upsampled
    lo = np.clip(np.ceil(rel[:2] * 32 - 1), 0, 32)
    hi = np.clip(np.ceil(rel[2:] * 32 + 1), 0, 32)
    expected = np.concatenate([lo, hi]) * [w / 32, h / 32, w / 32, h / 32]
    assert np.all(np.abs(masks_to_boxes(inst.masks)[0] - expected) <= 1.0)
    assert np.isclose(inst.scores[0], np.exp(12) / (np.exp(12) + np.exp(5) + 2), atol=1e-6)


def test_postprocess_filters_nms_and_top_k(seg):
    pri = seg.model.priors
    k = int(torch.nonzero(pri[:, 2] > 0.3)[0])
    # prior k (ar 1) and k+1 (ar 1/2, same centre, square anchors -> IoU 0.5): same class
    far = int(torch.nonzero((pri[:, 0] > 0.9) & (pri[:, 1] > 0.9) & (pri[:, 2] < 0.2))[0])
    raw = _raw_with_detections(seg, [(k, 0, 9.0), (k + 1, 0, 8.0), (far, 2, 7.0)])
    inst = seg.postprocess(
        raw, [{"size": (128, 128)}], InferenceParams(score_threshold=0.2, nms_threshold=0.3)
    )[0]
    assert inst.class_ids.tolist() == [0, 2]  # k+1 suppressed by k
    inst = seg.postprocess(
        raw, [{"size": (128, 128)}], InferenceParams(score_threshold=0.2, nms_threshold=0.9)
    )[0]
    assert inst.class_ids.tolist() == [0, 0, 2]
    inst = seg.postprocess(raw, [{"size": (128, 128)}], InferenceParams(score_threshold=0.2, top_k=1))[0]
    assert len(inst) == 1
    inst = seg.postprocess(
        raw, [{"size": (128, 128)}], InferenceParams(score_threshold=0.2, class_filter=["c"])
    )[0]
    assert inst.class_ids.tolist() == [2]
    inst = seg.postprocess(raw, [{"size": (128, 128)}], InferenceParams(score_threshold=0.9999))[0]
    assert len(inst) == 0 and inst.masks.shape == (0, 128, 128)


def test_assemble_masks_matches_direct_computation():
    g = torch.Generator().manual_seed(1)
    proto = torch.rand(20, 20, 4, generator=g)
    coeffs = torch.randn(3, 4, generator=g)
    boxes = torch.tensor(
        [[0.125, 0.25, 0.625, 0.75], [0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5625, 0.59375]]
    )  # exact in fp32
    out = assemble_masks(proto, coeffs, boxes, (37, 51), threshold=0.5, crop_padding=1)
    ref = torch.sigmoid(proto @ coeffs.t()).permute(2, 0, 1)
    keep = torch.zeros_like(ref)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        xa, xb = max(x1 * 20 - 1, 0), min(x2 * 20 + 1, 20)
        ya, yb = max(y1 * 20 - 1, 0), min(y2 * 20 + 1, 20)
        for yy in range(20):
            for xx in range(20):
                keep[i, yy, xx] = float(xa <= xx < xb and ya <= yy < yb)
    ref = F.interpolate((ref * keep)[None], size=(37, 51), mode="bilinear", align_corners=False)[0] > 0.5
    assert torch.equal(out, ref)


def test_segment_batch_of_different_sizes(seg):
    rng = np.random.default_rng(0)
    imgs = [
        rng.integers(0, 255, (60, 200, 3), dtype=np.uint8),
        rng.integers(0, 255, (150, 80, 3), dtype=np.uint8),
    ]
    x, metas = seg.preprocess(imgs)
    assert x.shape == (2, 3, 128, 128) and [m["size"] for m in metas] == [(60, 200), (150, 80)]
    raw = seg.forward_raw(x)
    res = seg.postprocess(raw, metas, InferenceParams(score_threshold=0.0, top_k=5))
    assert [r.image_size for r in res] == [(60, 200), (150, 80)]
    assert res[0].masks.shape[1:] == (60, 200) and res[1].masks.shape[1:] == (150, 80)
    assert all(len(r) == 5 for r in res)
    for r, (h, w) in zip(res, [(60, 200), (150, 80)]):
        assert np.all(r.boxes >= 0) and np.all(r.boxes[:, [0, 2]] <= w) and np.all(r.boxes[:, [1, 3]] <= h)
    assert seg.segment(imgs)[0].image_size == (60, 200)


def test_preprocess_matches_official_transform(seg):
    img = np.random.default_rng(3).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    x, _ = seg.preprocess([img])
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, (128, 128), mode="bilinear", align_corners=False)
    mean = torch.tensor([103.94, 116.78, 123.68]).view(1, 3, 1, 1)
    std = torch.tensor([57.38, 57.12, 58.40]).view(1, 3, 1, 1)
    ref = ((t - mean) / std)[:, [2, 1, 0]]
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=1e-5)


def test_bad_input_raises_clear_errors(seg):
    ok = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="dtype uint8"):
        seg.segment([ok.astype(np.float32)])
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        seg.segment([np.zeros((32, 32, 4), np.uint8)])
    with pytest.raises(ValueError, match="zero-size"):
        seg.segment([np.zeros((0, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="empty batch"):
        seg.segment([])
    x, metas = seg.preprocess([ok, ok])
    raw = seg.forward_raw(x)
    with pytest.raises(ValueError, match="1 metas for a batch of 2"):
        seg.postprocess(raw, metas[:1])
    with pytest.raises(ValueError, match="class_filter"):
        seg.segment([ok], InferenceParams(class_filter=["zebra"]))
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        YolactSegmenter(seg.model, seg.cfg, device="cpu", precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            YolactSegmenter(seg.model, seg.cfg, device="cuda")


def test_registry_builds_from_config_dict():
    s = build_segmenter("yolact", config=dict(CFG), params={"score_threshold": 0.4})
    assert isinstance(s, YolactSegmenter) and s.family == "yolact"
    assert s.class_names == ["a", "b", "c"] and s.params.score_threshold == 0.4


def test_optimized_copy_follows_weight_updates():
    torch.manual_seed(0)
    cfg = YolactConfig(backbone="resnet18_slim", num_classes=2, input_size=96)
    model = YolactSE(cfg)
    seg = YolactSegmenter(model, cfg)
    plain = YolactSegmenter(model, cfg, optimize=False)
    x = torch.randn(1, 3, 96, 96)
    before = seg.forward_raw(x)["conf"]
    torch.testing.assert_close(before, plain.forward_raw(x)["conf"], atol=1e-4, rtol=1e-4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    model(x)["conf"].mean().backward()
    opt.step()
    model.eval()
    after = seg.forward_raw(x)["conf"]
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, plain.forward_raw(x)["conf"], atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_fp16_cuda_matches_fp32():
    torch.manual_seed(0)
    cfg = YolactConfig(**CFG)
    model = YolactSE(cfg)
    s32 = YolactSegmenter(model, cfg, device="cuda")
    img = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    x, metas = s32.preprocess([img])
    r32 = s32.forward_raw(x)
    s16 = YolactSegmenter(copy.deepcopy(model), cfg, device="cuda", precision="fp16")
    r16 = s16.forward_raw(s16.preprocess([img])[0])
    assert r16["loc"].dtype == torch.float16
    torch.testing.assert_close(r16["conf"].float(), r32["conf"].half().float(), atol=0.05, rtol=0.05)
    assert len(s16.postprocess(r16, metas)) == 1


def test_cpu_window_upsampling_equals_full_interpolation():
    g = torch.Generator().manual_seed(5)
    proto = torch.relu(torch.randn(40, 40, 8, generator=g))
    coeffs = torch.tanh(torch.randn(30, 8, generator=g)) * 3
    xy = torch.rand(30, 2, generator=g) * 0.8
    boxes = torch.cat([xy, xy + 0.02 + torch.rand(30, 2, generator=g) * 0.5], 1)
    boxes[0] = torch.tensor([-0.2, -0.1, 1.3, 1.2])  # beyond the image
    boxes[1] = torch.tensor([0.5, 0.5, 0.5, 0.7])  # zero width
    out = assemble_masks(proto, coeffs, boxes, (97, 131))
    m = crop_masks(torch.sigmoid(torch.einsum("hwk,nk->nhw", proto, coeffs)), boxes, 1.0)
    ref = F.interpolate(m[None], size=(97, 131), mode="bilinear", align_corners=False)[0] > 0.5
    assert out.shape == ref.shape and out.dtype == torch.bool
    assert torch.equal(out, ref)


def test_overlapping_masks_resolved_by_confidence_in_id_image(seg):
    pri = seg.model.priors
    big = torch.nonzero(pri[:, 2] > 0.5).flatten()
    k1, k2 = int(big[0]), int(big[-1])  # two large anchors that overlap, different classes
    raw = _raw_with_detections(seg, [(k1, 0, 8.0), (k2, 1, 10.0)])
    inst = seg.postprocess(raw, [{"size": (64, 96)}])[0]
    assert inst.class_ids.tolist() == [1, 0]  # sorted by score: k2 first
    both = inst.masks[0] & inst.masks[1]
    assert both.any()
    ids = inst.instance_id_image()
    assert np.all(ids[both] == 1)
    assert np.all(ids[inst.masks[1] & ~inst.masks[0]] == 2)
    assert np.all(ids[~(inst.masks[0] | inst.masks[1])] == 0)
    sem = inst.semantic_image()
    assert np.all(sem[both] == 2) and np.all(sem[inst.masks[1] & ~inst.masks[0]] == 1)
