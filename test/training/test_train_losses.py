"""YOLACT multibox loss and FCN mask loss on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from instaseg_ros.training.losses import (
    YolactLossConfig,
    box_crop_mask,
    encode_boxes,
    fcn_mask_loss,
    mask_loss,
    match_priors,
    ohem_conf_loss,
    semantic_loss,
    yolact_loss,
)

LOG2 = math.log(2.0)


def test_encode_zero_for_identical_box_and_known_offsets():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    same = torch.tensor([[0.4, 0.3, 0.6, 0.7]])
    assert torch.allclose(encode_boxes(same, priors), torch.zeros(1, 4), atol=1e-6)
    shifted = torch.tensor([[0.42, 0.3, 0.62, 1.1]])  # centre +0.02 in x, h doubled
    enc = encode_boxes(shifted, priors, (0.1, 0.2))
    cy = (0.3 + 1.1) / 2
    expected = torch.tensor([[0.02 / (0.1 * 0.2), (cy - 0.5) / (0.1 * 0.4), 0.0, math.log(2.0) / 0.2]])
    assert torch.allclose(enc, expected, atol=1e-5)


def _priors():
    # cx, cy, w, h: p0 exactly the gt, p1 IoU 0.45 with it, p2 far away, p3 inside the crowd box
    return torch.tensor(
        [
            [0.25, 0.25, 0.2, 0.2],
            [0.25 + 0.2 * (1 - 0.45) / (1 + 0.45), 0.25, 0.2, 0.2],
            [0.8, 0.2, 0.1, 0.1],
            [0.75, 0.75, 0.2, 0.2],
        ]
    )


def test_match_thresholds_best_prior_and_crowd():
    priors = _priors()
    boxes = torch.tensor([[0.15, 0.15, 0.35, 0.35], [0.66, 0.66, 0.86, 0.86]])
    labels = torch.tensor([2, 0])
    m = match_priors(priors, boxes, labels, iscrowd=torch.tensor([0, 1]))
    assert m.conf_t.tolist() == [3, -1, 0, -1]
    assert m.idx_t.tolist() == [0, -1, -1, -1]
    assert torch.allclose(m.loc_t[0], torch.zeros(4), atol=1e-5)


def test_match_forces_best_prior_of_a_poorly_covered_box():
    priors = _priors()
    tiny = torch.tensor([[0.78, 0.18, 0.80, 0.20]])  # IoU with p2 = 0.04 < neg_iou
    m = match_priors(priors, tiny, torch.tensor([1]))
    assert m.conf_t.tolist() == [0, 0, 2, 0]
    assert m.idx_t.tolist() == [-1, -1, 0, -1]


def test_match_without_ground_truth_is_all_background():
    m = match_priors(_priors(), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert m.conf_t.tolist() == [0, 0, 0, 0]


def test_ohem_picks_the_three_hardest_negatives():
    conf = torch.zeros(1, 8, 3)
    conf[0, 0] = torch.tensor([0.0, 2.0, 0.0])  # positive, class 1
    # background losses of negatives grow with the logit of class 2
    for j, v in enumerate([0.1, 3.0, 0.5, 2.0, 1.0, 0.0, 4.0]):
        conf[0, j + 1, 2] = v
    conf_t = torch.tensor([[2, 0, 0, 0, 0, 0, 0, 0]])
    conf_t[0, 7] = -1  # the hardest one is neutral and must not be mined
    loss, npos = ohem_conf_loss(conf, conf_t, negpos_ratio=3)
    assert npos == 1
    sel = [0, 2, 4, 5]  # positive + negatives with logits 3.0, 2.0, 1.0
    expected = F.cross_entropy(conf[0, sel], conf_t[0, sel].clamp(min=0), reduction="sum")
    assert torch.allclose(loss, expected)


def test_box_crop_mask_and_mask_loss_normalised_by_box_area():
    crop = box_crop_mask(torch.tensor([[0.0, 0.0, 0.5, 1.0]]), 4, 4)
    assert crop[0].sum() == 8 and crop[0, :, :2].all()
    tiny = box_crop_mask(torch.tensor([[0.30, 0.30, 0.31, 0.31]]), 4, 4)
    assert tiny.sum() == 1
    proto = torch.zeros(4, 4, 2)
    coef = torch.zeros(1, 2)
    target = torch.ones(1, 4, 4)
    box = torch.tensor([[0.0, 0.0, 0.5, 1.0]])
    # zero logits: BCE = log 2 at every pixel, mean inside the box = log 2
    assert torch.allclose(mask_loss(proto, coef, target, box), torch.tensor(LOG2), atol=1e-6)
    # a confident, correct prediction inside the box and a wrong one outside: only the box counts
    proto = torch.zeros(4, 4, 1)
    proto[:, :2, 0] = 10.0
    proto[:, 2:, 0] = -10.0
    assert mask_loss(proto, torch.ones(1, 1), target, box) < 1e-3
    assert mask_loss(proto, torch.ones(1, 1), target, box, crop=False) > 4.0


def test_semantic_loss_zero_logits_is_log2():
    segm = torch.zeros(2, 3, 4, 4)
    t = {"masks": torch.ones(1, 8, 8), "labels": torch.tensor([1]), "boxes": torch.tensor([[0.0, 0, 1, 1]])}
    assert torch.allclose(semantic_loss(segm, [t, t]), torch.tensor(3 * LOG2), atol=1e-6)


def _random_pred(b=2, p=30, c=3, k=4, h=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    cxy = torch.rand(p, 2, generator=g)
    wh = 0.1 + 0.4 * torch.rand(p, 2, generator=g)
    pred = {
        "loc": torch.randn(b, p, 4, generator=g).requires_grad_(),
        "conf": torch.randn(b, p, c + 1, generator=g).requires_grad_(),
        "mask": torch.tanh(torch.randn(b, p, k, generator=g)).requires_grad_(),
        "priors": torch.cat([cxy, wh], dim=1),
        "proto": torch.relu(torch.randn(b, h, h, k, generator=g)).requires_grad_(),
        "segm": torch.randn(b, c, h // 2, h // 2, generator=g).requires_grad_(),
    }
    return pred


def _target(n=2):
    masks = torch.zeros(n, 32, 32)
    boxes = []
    for i in range(n):
        x0 = 4 + 12 * i
        masks[i, 6:20, x0 : x0 + 10] = 1
        boxes.append([x0 / 32, 6 / 32, (x0 + 10) / 32, 20 / 32])
    return {"boxes": torch.tensor(boxes), "labels": torch.arange(n) % 3, "masks": masks,
            "iscrowd": torch.zeros(n, dtype=torch.uint8)}


def test_yolact_loss_terms_finite_and_gradients_reach_every_output():
    pred = _random_pred()
    out = yolact_loss(pred, [_target(2), _target(1)], YolactLossConfig())
    for k in ("conf", "box", "mask", "semantic", "total"):
        assert torch.isfinite(out[k]) and out[k] > 0, k
    assert torch.allclose(out["total"], out["conf"] + out["box"] + out["mask"] + out["semantic"])
    out["total"].backward()
    for k in ("loc", "conf", "mask", "proto", "segm"):
        assert pred[k].grad is not None and pred[k].grad.abs().sum() > 0, k


def test_yolact_loss_image_without_objects_and_weights():
    pred = _random_pred()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    empty["masks"] = torch.zeros(0, 32, 32)
    out = yolact_loss(pred, [empty, empty])
    assert out["box"] == 0 and out["mask"] == 0 and out["conf"] > 0
    no_sem = yolact_loss(pred, [_target(), _target()], YolactLossConfig(semantic_weight=0.0))
    assert no_sem["semantic"] == 0
    with pytest.raises(ValueError, match="targets"):
        yolact_loss(pred, [empty])


def test_yolact_loss_decreases_under_gradient_descent():
    pred = _random_pred(seed=1)
    targets = [_target(2), _target(2)]
    params = [pred[k] for k in ("loc", "conf", "mask", "proto", "segm")]
    opt = torch.optim.Adam(params, lr=0.05)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = yolact_loss(pred, targets)["total"]
        first = first if first is not None else float(loss.detach())
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_fcn_mask_loss_channels_and_dice():
    target = torch.zeros(2, 8, 8)
    target[:, 2:6, 2:6] = 1
    perfect = (target * 2 - 1) * 20
    out = fcn_mask_loss(perfect[:, None], target, dice_weight=1.0)
    assert out["bce"] < 1e-6 and out["dice"] < 1e-3
    two = torch.stack([torch.zeros_like(perfect), perfect], dim=1)
    assert torch.allclose(fcn_mask_loss(two, target)["total"], out["bce"])
    zero = fcn_mask_loss(torch.zeros(2, 8, 8), target, dice_weight=0.5)
    assert torch.allclose(zero["bce"], torch.tensor(LOG2))
    # dice of p = 0.5 everywhere: 1 - (2 * 8 + 1) / (32 + 16 + 1)
    assert torch.allclose(zero["dice"], torch.tensor(0.5 * (1 - 17 / 49)), atol=1e-6)
    with pytest.raises(ValueError, match="differ"):
        fcn_mask_loss(torch.zeros(2, 4, 4), target)
    with pytest.raises(ValueError, match="channels"):
        fcn_mask_loss(torch.zeros(2, 3, 8, 8), target)
