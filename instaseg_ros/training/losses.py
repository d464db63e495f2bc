"""Training losses as pure functions: the YOLACT multibox loss and the FCN binary mask loss.

YOLACT loss (Bolya et al., 2019), per batch::

    L = a_conf * L_conf + a_box * L_box + a_mask * L_mask + a_sem * L_sem

* Matching: every prior (anchor) is matched to the ground-truth box of highest IoU.
  IoU >= ``pos_iou`` -> positive (class ``label + 1``), IoU < ``neg_iou`` -> background (0),
  in between -> neutral (ignored). Each ground-truth box's best prior is always positive.
  Priors overlapping a crowd box by more than ``crowd_iou`` are neutral.
* ``L_conf``: softmax cross-entropy over positives and the hardest negatives (online hard
  example mining, ``negpos_ratio`` negatives per positive, ranked by background loss),
  summed and divided by the number of positives.
* ``L_box``: smooth-L1 on the encoded offsets (``encode_boxes``) of the positives / #positives.
* ``L_mask``: for each positive prior (at most ``masks_to_train`` per image) the mask logit
  ``proto @ coef`` is compared with the matched ground-truth mask by binary cross-entropy,
  counted only inside the ground-truth box and divided by the box area (in prototype pixels),
  then averaged over the positives.
* ``L_sem``: per-class binary cross-entropy of the semantic head against the union of the
  class's instance masks, summed over pixels / (h * w), averaged over images.

FCN loss: binary cross-entropy on per-crop mask logits (+ optional soft dice).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Targets = Sequence[dict[str, Tensor]]


@dataclass
class YolactLossConfig:
    """Weights and thresholds of the YOLACT loss (defaults follow the YOLACT paper/code)."""

    pos_iou: float = 0.5
    neg_iou: float = 0.4
    crowd_iou: float = 0.7
    negpos_ratio: int = 3
    conf_weight: float = 1.0
    box_weight: float = 1.5
    mask_weight: float = 6.125
    semantic_weight: float = 1.0
    masks_to_train: int = 100
    variances: tuple[float, float] = (0.1, 0.2)
    maskiou_weight: float = 25.0  # YOLACT++ mask-IoU loss (the authors' maskiou_alpha)
    discard_mask_area: int = 25  # ground-truth masks of at most this many prototype pixels train no IoU

    def __post_init__(self) -> None:
        if not 0.0 <= self.neg_iou <= self.pos_iou <= 1.0:
            raise ValueError(f"need 0 <= neg_iou <= pos_iou <= 1, got {self.neg_iou}, {self.pos_iou}")
        if self.negpos_ratio < 1:
            raise ValueError(f"negpos_ratio must be >= 1, got {self.negpos_ratio}")
        self.variances = tuple(float(v) for v in self.variances)  # type: ignore[assignment]


# ----------------------------------------------------------------------------- boxes


def cxcywh_to_xyxy(b: Tensor) -> Tensor:
    """[N, 4] cx, cy, w, h -> [N, 4] x1, y1, x2, y2 (same units)."""
    return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], dim=1)


def encode_boxes(matched: Tensor, priors: Tensor, variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """YOLACT/SSD box encoding.

    Args:
        matched: [P, 4] xyxy ground-truth boxes (relative to the input size) matched to each prior.
        priors: [P, 4] cx, cy, w, h relative.

    Returns:
        [P, 4] offsets ``((c_gt - c_p) / (v0 * wh_p), log(wh_gt / wh_p) / v1)``.
    """
    c = (matched[:, :2] + matched[:, 2:]) / 2
    wh = (matched[:, 2:] - matched[:, :2]).clamp(min=1e-6)
    g_c = (c - priors[:, :2]) / (variances[0] * priors[:, 2:])
    g_wh = torch.log(wh / priors[:, 2:]) / variances[1]
    return torch.cat([g_c, g_wh], dim=1)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU (0 for degenerate boxes)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp(min=1e-12)


@dataclass
class Matches:
    """Result of :func:`match_priors` for one image.

    Attributes:
        conf_t: [P] int64; 0 background, ``label + 1`` positive, -1 neutral (ignored).
        loc_t: [P, 4] encoded box targets (meaningful where ``conf_t > 0``).
        idx_t: [P] int64 index of the matched ground-truth box (-1 when there is none).
    """

    conf_t: Tensor
    loc_t: Tensor
    idx_t: Tensor


def match_priors(
    priors: Tensor,
    boxes: Tensor,
    labels: Tensor,
    iscrowd: Tensor | None = None,
    cfg: YolactLossConfig | None = None,
    encode: Callable[[Tensor, Tensor, tuple[float, float]], Tensor] = encode_boxes,
) -> Matches:
    """Assign ground truth to priors by IoU.

    Args:
        priors: [P, 4] cx, cy, w, h relative.
        boxes: [G, 4] xyxy relative ground-truth boxes.
        labels: [G] int64 0-based classes.
        iscrowd: [G] crowd flags (crowd boxes never become positives; priors covering
            them by more than ``crowd_iou`` are ignored).
    """
    cfg = cfg or YolactLossConfig()
    p = priors.shape[0]
    dev = priors.device
    if iscrowd is None:
        iscrowd = torch.zeros(len(boxes), dtype=torch.bool, device=dev)
    iscrowd = iscrowd.to(dev).bool()
    keep = ~iscrowd
    gt, gl = boxes[keep].float(), labels[keep].long()
    crowd = boxes[iscrowd].float()
    conf_t = torch.zeros(p, dtype=torch.long, device=dev)
    loc_t = torch.zeros(p, 4, dtype=priors.dtype, device=dev)
    idx_t = torch.full((p,), -1, dtype=torch.long, device=dev)
    pbox = cxcywh_to_xyxy(priors.float())
    if len(gt):
        iou = box_iou(gt, pbox)  # [G, P]
        best_gt_iou, best_gt = iou.max(dim=0)  # per prior
        best_prior = iou.argmax(dim=1)  # per gt
        # every gt keeps its best prior, even below the threshold (later gts win conflicts)
        best_gt_iou[best_prior] = 2.0
        best_gt[best_prior] = torch.arange(len(gt), device=dev)
        conf_t = gl[best_gt] + 1
        conf_t[best_gt_iou < cfg.pos_iou] = -1
        conf_t[best_gt_iou < cfg.neg_iou] = 0
        idx_t = best_gt.clone()
        idx_t[conf_t <= 0] = -1
        loc_t = encode(gt[best_gt], priors.float(), cfg.variances).to(priors.dtype)
    if len(crowd):
        crowd_iou = box_iou(crowd, pbox).max(dim=0).values
        conf_t[(conf_t == 0) & (crowd_iou > cfg.crowd_iou)] = -1
    return Matches(conf_t=conf_t, loc_t=loc_t, idx_t=idx_t)


# ----------------------------------------------------------------------------- YOLACT terms


def ohem_conf_loss(conf: Tensor, conf_t: Tensor, negpos_ratio: int = 3) -> tuple[Tensor, int]:
    """Cross-entropy over positives and the hardest negatives.

    Args:
        conf: [B, P, C+1] class logits (index 0 = background).
        conf_t: [B, P] targets (0 background, >0 class + 1, -1 ignored).

    Returns:
        (summed loss, number of positives). Negatives per image: ``negpos_ratio`` x positives
        (at least ``negpos_ratio`` so images without objects still learn background).
    """
    b, p, _ = conf.shape
    conf = conf.float()
    pos = conf_t > 0
    with torch.no_grad():
        bg_loss = torch.logsumexp(conf, dim=2) - conf[..., 0]  # [B, P]
        bg_loss[pos | (conf_t < 0)] = -1.0  # never mined
        num_pos = pos.sum(dim=1, keepdim=True)
        num_neg = (negpos_ratio * num_pos).clamp(min=negpos_ratio, max=p - 1)
        num_neg = torch.minimum(num_neg, (conf_t == 0).sum(dim=1, keepdim=True))
        order = bg_loss.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        neg = rank < num_neg
    sel = pos | neg
    loss = F.cross_entropy(conf[sel], conf_t[sel].clamp(min=0), reduction="sum")
    return loss, int(pos.sum())


def box_loss(loc: Tensor, loc_t: Tensor, pos: Tensor) -> Tensor:
    """Summed smooth-L1 over positive priors. ``loc``/``loc_t``: [B, P, 4], ``pos``: [B, P] bool."""
    if not pos.any():
        return loc.sum() * 0.0
    return F.smooth_l1_loss(loc[pos].float(), loc_t[pos].float(), reduction="sum")


def mask_loss(
    proto: Tensor,
    coef: Tensor,
    gt_masks: Tensor,
    gt_boxes: Tensor,
    crop: bool = True,
) -> Tensor:
    """Summed per-instance mask BCE of one image (each instance: mean over its box).

    Args:
        proto: [h, w, K] prototypes.
        coef: [N, K] coefficients of N positive priors.
        gt_masks: [N, h, w] binary targets (already at prototype resolution).
        gt_boxes: [N, 4] xyxy relative boxes of the matched ground truth.
        crop: count only pixels inside the box and normalise by its area (YOLACT's
            ``mask_proto_normalize_emulate_roi_pooling``); else mean over all pixels.

    Returns:
        scalar: sum over the N instances of their mean box BCE.
    """
    h, w, _ = proto.shape
    logits = (proto.float() @ coef.float().t()).permute(2, 0, 1)  # [N, h, w]
    bce = F.binary_cross_entropy_with_logits(logits, gt_masks.float(), reduction="none")
    if not crop:
        return bce.mean(dim=(1, 2)).sum()
    inside = box_crop_mask(gt_boxes, h, w)
    area = inside.sum(dim=(1, 2)).clamp(min=1.0)
    return ((bce * inside).sum(dim=(1, 2)) / area).sum()


def box_crop_mask(boxes: Tensor, h: int, w: int) -> Tensor:
    """[N, 4] xyxy relative -> [N, h, w] float, 1 on pixels whose centre lies in the box
    widened by half a pixel (so each box covers at least its nearest pixel)."""
    dev = boxes.device
    ys = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) / w
    b = boxes.float()
    # half a pixel of slack on each side, so even a tiny box owns its nearest pixel
    in_x = (xs[None, :] >= b[:, 0:1] - 0.5 / w) & (xs[None, :] < b[:, 2:3] + 0.5 / w)
    in_y = (ys[None, :] >= b[:, 1:2] - 0.5 / h) & (ys[None, :] < b[:, 3:4] + 0.5 / h)
    return (in_y[:, :, None] & in_x[:, None, :]).float()


def semantic_targets(masks: Tensor, labels: Tensor, num_classes: int, size: tuple[int, int]) -> Tensor:
    """[N, H, W] instance masks + [N] labels -> [C, h, w] float per-class union at ``size``."""
    h, w = size
    out = torch.zeros(num_classes, h, w, device=masks.device)
    if len(masks) == 0:
        return out
    small = F.interpolate(masks[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0]
    small = (small > 0.5).float()
    for c in labels.unique().tolist():
        out[c] = small[labels == c].amax(dim=0)
    return out


def semantic_loss(segm: Tensor, targets: Targets) -> Tensor:
    """Mean over images of ``sum(BCE) / (h * w)`` of the semantic head ``segm`` [B, C, h, w]."""
    b, c, h, w = segm.shape
    total = segm.new_zeros((), dtype=torch.float32)
    for i, t in enumerate(targets):
        crowd = _crowd(t)
        tgt = semantic_targets(t["masks"][~crowd], t["labels"][~crowd], c, (h, w))
        total = total + F.binary_cross_entropy_with_logits(segm[i].float(), tgt, reduction="sum") / (h * w)
    return total / b


def _crowd(t: dict[str, Tensor]) -> Tensor:
    n = len(t["labels"])
    ic = t.get("iscrowd")
    if ic is None:
        return torch.zeros(n, dtype=torch.bool, device=t["labels"].device)
    return ic.to(t["labels"].device).bool()


def yolact_loss(
    pred: dict[str, Tensor],
    targets: Targets,
    cfg: YolactLossConfig | None = None,
    encode: Callable[[Tensor, Tensor, tuple[float, float]], Tensor] = encode_boxes,
    generator: torch.Generator | None = None,
    maskiou_net: torch.nn.Module | None = None,
) -> dict[str, Tensor]:
    """The YOLACT multibox loss (+ YOLACT++'s mask-IoU loss when ``maskiou_net`` is given).

    Args:
        pred: model outputs ``loc [B, P, 4]``, ``conf [B, P, C+1]``, ``mask [B, P, K]``,
            ``priors [P, 4]`` (cx, cy, w, h relative), ``proto [B, h, w, K]`` and optionally
            ``segm [B, C, h', w']``.
        targets: per image ``boxes [N, 4]`` xyxy relative to the network input, ``labels [N]``
            0-based, ``masks [N, H, W]`` (any resolution, resized to the prototypes), optional
            ``iscrowd [N]``.
        generator: RNG for choosing which positives train masks when there are more than
            ``masks_to_train``.
        maskiou_net: YOLACT++'s FastMaskIoUNet; it learns the IoU of each positive's cropped predicted
            mask (binarised at 0.5) with its ground truth, smooth-L1 summed and divided by the positives
            (the authors' loss; masks of at most ``discard_mask_area`` prototype pixels are left out).

    Returns:
        dict with weighted ``conf``, ``box``, ``mask``, ``semantic``, ``maskiou`` (0 when absent) and
        ``total``.
    """
    cfg = cfg or YolactLossConfig()
    loc, conf, coef, priors, proto = pred["loc"], pred["conf"], pred["mask"], pred["priors"], pred["proto"]
    b = loc.shape[0]
    if len(targets) != b:
        raise ValueError(f"got {len(targets)} targets for a batch of {b}")
    priors = priors.detach().float()
    dev = priors.device
    matches = [
        match_priors(priors, t["boxes"].to(dev), t["labels"].to(dev), _crowd(t), cfg, encode) for t in targets
    ]
    conf_t = torch.stack([m.conf_t for m in matches])
    loc_t = torch.stack([m.loc_t for m in matches])
    pos = conf_t > 0
    l_conf, num_pos = ohem_conf_loss(conf, conf_t, cfg.negpos_ratio)
    l_box = box_loss(loc, loc_t, pos)

    h, w = proto.shape[1:3]
    l_mask = proto.new_zeros((), dtype=torch.float32)
    n_mask = 0
    iou_inputs: list[tuple[Tensor, Tensor, Tensor]] = []
    for i, (t, m) in enumerate(zip(targets, matches)):
        pidx = torch.nonzero(m.conf_t > 0).flatten()
        if len(pidx) == 0:
            continue
        if len(pidx) > cfg.masks_to_train:
            perm = torch.randperm(len(pidx), generator=generator)[: cfg.masks_to_train]
            pidx = pidx[perm.to(pidx.device)]
        gidx = m.idx_t[pidx]
        keep = ~_crowd(t)
        gmasks = t["masks"][keep].to(proto.device).float()
        gboxes = t["boxes"][keep].to(proto.device).float()
        small = F.interpolate(gmasks[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        small = (small > 0.5).float()
        l_mask = l_mask + mask_loss(proto[i], coef[i, pidx], small[gidx], gboxes[gidx])
        n_mask += len(pidx)
        if maskiou_net is not None:
            iou_inputs.append(_maskiou_sample(proto[i], coef[i, pidx], small[gidx], gboxes[gidx],
                                              t["labels"][keep][gidx], cfg.discard_mask_area))  # fmt: skip

    denom = max(num_pos, 1)
    out = {
        "conf": cfg.conf_weight * l_conf / denom,
        "box": cfg.box_weight * l_box / denom,
        "mask": cfg.mask_weight * l_mask / max(n_mask, 1),
    }
    segm = pred.get("segm")
    if segm is not None and cfg.semantic_weight > 0:
        out["semantic"] = cfg.semantic_weight * semantic_loss(segm, targets)
    else:
        out["semantic"] = loc.new_zeros((), dtype=torch.float32)
    out["maskiou"] = loc.new_zeros((), dtype=torch.float32)
    if maskiou_net is not None and iou_inputs:
        masks, iou_t, labels = (torch.cat(parts) for parts in zip(*iou_inputs))
        if len(masks):
            iou_p = maskiou_net(masks[:, None]).gather(1, labels[:, None]).squeeze(1)
            l_iou = F.smooth_l1_loss(iou_p.float(), iou_t, reduction="sum")
            out["maskiou"] = cfg.maskiou_weight * l_iou / denom
    out["total"] = out["conf"] + out["box"] + out["mask"] + out["semantic"] + out["maskiou"]
    return out


def _maskiou_sample(
    proto: Tensor, coef: Tensor, gt_small: Tensor, gt_boxes: Tensor, labels: Tensor, discard_area: int
) -> tuple[Tensor, Tensor, Tensor]:
    """(cropped predicted masks [n, h, w] (the IoU head's input), IoU targets [n], labels [n]) of one
    image's positives whose ground truth is larger than ``discard_area`` prototype pixels."""
    h, w, _ = proto.shape
    pred = torch.sigmoid((proto.float() @ coef.float().t()).permute(2, 0, 1)) * box_crop_mask(gt_boxes, h, w)
    keep = gt_small.sum(dim=(1, 2)) > discard_area
    pred, gt = pred[keep], gt_small[keep]
    with torch.no_grad():
        binary = (pred > 0.5).float()
        inter = (binary * gt).sum(dim=(1, 2))
        union = binary.sum(dim=(1, 2)) + gt.sum(dim=(1, 2)) - inter
        iou_t = inter / union.clamp(min=1.0)
    return pred, iou_t, labels[keep].long()


# ----------------------------------------------------------------------------- FCN


def dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """Mean soft dice loss ``1 - (2|P.T| + eps) / (|P| + |T| + eps)`` over [N, ...] masks."""
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    inter = (p * t).sum(dim=1)
    return (1.0 - (2 * inter + eps) / (p.sum(dim=1) + t.sum(dim=1) + eps)).mean()


def fcn_mask_loss(logits: Tensor, target: Tensor, dice_weight: float = 0.0) -> dict[str, Tensor]:
    """Binary mask loss of the FCN head on box crops.

    Args:
        logits: [N, 1, S, S] or [N, S, S] foreground logits; a 2-channel [N, 2, S, S]
            (background, object) output is reduced to ``l1 - l0``.
        target: [N, S, S] binary crop masks.
        dice_weight: weight of the soft dice term (0 disables).

    Returns:
        dict with ``bce``, ``dice`` and ``total``.
    """
    if logits.dim() == 4:
        if logits.shape[1] == 2:
            logits = logits[:, 1] - logits[:, 0]
        elif logits.shape[1] == 1:
            logits = logits[:, 0]
        else:
            raise ValueError(f"FCN logits need 1 or 2 channels, got shape {tuple(logits.shape)}")
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    dice = dice_loss(logits, target) if dice_weight > 0 else bce.new_zeros(())
    return {"bce": bce, "dice": dice_weight * dice, "total": bce + dice_weight * dice}
