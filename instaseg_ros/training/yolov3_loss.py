"""YOLOv3 detector training loss (for training the YOLO+FCN detector on our own data).

The public ``yolov3.weights`` cover COCO; to train or fine-tune the detector on other data
(e.g. the synthetic indoor set) this is the YOLOv3 objective, computed on the raw outputs of
:class:`instaseg_ros.models.yolo_fcn.detector.Darknet` (``model(x, decode=False)``):

* every ground-truth box is assigned to the single anchor (over all YOLO layers) whose shape
  best matches it (IoU of centred (w, h)), at the grid cell holding its centre;
* that prediction learns ``sigmoid(t_xy) = centre offset in the cell`` (BCE),
  ``t_wh = log(box wh / anchor wh)`` (squared error), objectness 1 and the one-hot class (BCE),
  with box terms weighted by ``2 - w * h / S^2`` (small boxes count more);
* every other prediction learns objectness 0, except those whose decoded box already overlaps
  a ground-truth box by more than ``ignore_thresh`` IoU (not penalised, as in Darknet).

Sums are divided by the batch size. Boxes are in network-input (letterbox) pixels:
:func:`letterbox_batch` turns dataset samples into network tensors and targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from instaseg_ros.models.yolo_fcn.detector import Darknet, YoloLayer


def _box_iou(a: Tensor, b: Tensor) -> Tensor:
    """[N, 4] x [M, 4] xyxy -> [N, M] IoU."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def _wh_iou(wh: Tensor, anchors: Tensor) -> Tensor:
    """[N, 2] x [A, 2] -> [N, A] IoU of boxes sharing a centre."""
    inter = torch.minimum(wh[:, None], anchors[None]).prod(-1)
    return inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)


def yolov3_loss(
    raw: Sequence[Tensor],
    model: Darknet,
    targets: Sequence[dict[str, Tensor]],
    ignore_thresh: float = 0.5,
) -> dict[str, Tensor]:
    """YOLOv3 loss.

    Args:
        raw: per YOLO layer [B, A * (5 + C), H, W] (``model(x, decode=False)``).
        model: the Darknet whose YOLO layers produced ``raw`` (anchors, strides).
        targets: per image ``{"boxes": [n, 4] xyxy network px, "labels": [n] int64 class index}``.
        ignore_thresh: predictions overlapping a ground truth more than this are not negatives.

    Returns:
        ``{"box", "obj", "cls", "total"}`` scalars (sums over the batch / batch size).
    """
    layers: list[YoloLayer] = [model.layers[i] for i in model.yolo_indices]
    if len(raw) != len(layers):
        raise ValueError(f"expected {len(layers)} raw outputs (one per YOLO layer), got {len(raw)}")
    bsz = raw[0].shape[0]
    if len(targets) != bsz:
        raise ValueError(f"{len(targets)} targets for a batch of {bsz}")
    device = raw[0].device
    size = float(model.input_size)
    anchors = torch.cat([layer.anchors.view(-1, 2).float() for layer in layers]).to(device)  # [sum A, 2]
    owner = torch.cat([torch.full((layer.num_anchors,), i) for i, layer in enumerate(layers)])
    local = torch.cat([torch.arange(layer.num_anchors) for layer in layers])

    # assignment of every ground truth: (image, layer, anchor, row, col)
    assign = []
    for t in targets:
        boxes = torch.as_tensor(t["boxes"], dtype=torch.float32, device=device).reshape(-1, 4)
        labels = torch.as_tensor(t["labels"], dtype=torch.long, device=device).reshape(-1)
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
        best = _wh_iou(wh, anchors).argmax(1) if len(boxes) else torch.zeros(0, dtype=torch.long)
        assign.append((boxes, labels, wh, best.cpu()))

    box_loss = raw[0].new_zeros(())
    obj_loss = raw[0].new_zeros(())
    cls_loss = raw[0].new_zeros(())
    for li, (p, layer) in enumerate(zip(raw, layers)):
        _, _, h, w = p.shape
        na, nc, stride = layer.num_anchors, layer.num_classes, float(layer.stride)
        p = p.float().view(bsz, na, 5 + nc, h, w).permute(0, 1, 3, 4, 2)  # [B, A, H, W, 5 + C]
        obj_t = torch.zeros(p.shape[:4], device=device)
        neg = torch.ones(p.shape[:4], dtype=torch.bool, device=device)
        with torch.no_grad():
            ys, xs = torch.meshgrid(
                torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
            )
            cxy = (torch.sigmoid(p[..., :2]) + torch.stack((xs, ys), -1)) * stride
            awh = layer.anchors.view(1, na, 1, 1, 2).float().to(device)
            pwh = torch.exp(p[..., 2:4].clamp(max=10)) * awh
            pred = torch.cat((cxy - pwh / 2, cxy + pwh / 2), -1)  # [B, A, H, W, 4]
        for b, (boxes, labels, wh, best) in enumerate(assign):
            if len(boxes) == 0:
                continue
            ious = _box_iou(pred[b].reshape(-1, 4), boxes).amax(1).view(na, h, w)
            neg[b] &= ious <= ignore_thresh
            sel = (owner[best] == li).nonzero().flatten()
            if len(sel) == 0:
                continue
            a = local[best[sel]].to(device)
            bx, bl, bwh = boxes[sel.to(device)], labels[sel.to(device)], wh[sel.to(device)]
            gxy = (bx[:, :2] + bx[:, 2:]) / 2 / stride
            gi = gxy[:, 0].long().clamp(0, w - 1)
            gj = gxy[:, 1].long().clamp(0, h - 1)
            pp = p[b, a, gj, gi]  # [k, 5 + C]
            scale = 2.0 - bwh.prod(-1) / (size * size)
            txy = (gxy - torch.stack((gi, gj), -1).float()).clamp(0, 1)
            twh = torch.log(bwh / layer.anchors.view(-1, 2).float().to(device)[a])
            box_loss = (
                box_loss
                + (F.binary_cross_entropy_with_logits(pp[:, :2], txy, reduction="none").sum(-1) * scale).sum()
            )
            box_loss = box_loss + (0.5 * ((pp[:, 2:4] - twh) ** 2).sum(-1) * scale).sum()
            onehot = F.one_hot(bl, nc).float()
            cls_loss = cls_loss + F.binary_cross_entropy_with_logits(pp[:, 5:], onehot, reduction="sum")
            obj_t[b, a, gj, gi] = 1.0
            neg[b, a, gj, gi] = True  # positives always count
        weight = neg.float()
        obj_loss = (
            obj_loss + (F.binary_cross_entropy_with_logits(p[..., 4], obj_t, reduction="none") * weight).sum()
        )
    out = {"box": box_loss / bsz, "obj": obj_loss / bsz, "cls": cls_loss / bsz}
    out["total"] = out["box"] + out["obj"] + out["cls"]
    return out


def init_head_biases(model: Darknet, obj_prior: float = 0.01, cls_prior: float = 0.01) -> Darknet:
    """Set the YOLO head biases to low objectness/class priors before training from scratch.

    Without this a random head predicts objectness ~0.5 everywhere and the first iterations
    are spent suppressing thousands of negatives.
    """
    from instaseg_ros.models.yolo_fcn.detector import DarknetConv

    with torch.no_grad():
        for i in model.yolo_indices:
            head, layer = model.layers[i - 1], model.layers[i]
            if not isinstance(head, DarknetConv) or head.conv.bias is None:
                raise ValueError(f"layer {i - 1} (before YOLO layer {i}) is not a biased convolution")
            bias = head.conv.bias.view(layer.num_anchors, 5 + layer.num_classes)
            bias[:, 4] = float(np.log(obj_prior / (1 - obj_prior)))
            bias[:, 5:] = float(np.log(cls_prior / (1 - cls_prior)))
    return model


def letterbox_batch(
    images: Sequence[np.ndarray],
    targets: Sequence[dict],
    size: int,
    pad_value: float = 0.5,
    class_index: Sequence[int] | None = None,
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Dataset samples -> (network input [B, 3, S, S], targets in letterbox pixels).

    Args:
        images: BGR uint8 images; targets: dataset targets (``boxes`` xyxy px, ``labels``;
            ``iscrowd`` instances are dropped).
        size: network input S (letterboxed exactly as at inference).
        class_index: maps dataset label -> detector class (default identity).
    """
    from instaseg_ros.models.yolo_fcn import letterbox

    arrays, out = [], []
    for img, t in zip(images, targets):
        canvas, meta = letterbox(img, size, pad_value)
        arrays.append(canvas)
        boxes = np.asarray(t["boxes"], np.float32).reshape(-1, 4).copy()
        labels = np.asarray(t["labels"], np.int64).reshape(-1)
        keep = np.asarray(t.get("iscrowd", np.zeros(len(labels))), bool) == 0
        boxes, labels = boxes[keep], labels[keep]
        boxes[:, 0::2] = boxes[:, 0::2] * meta.scale_x + meta.pad_x
        boxes[:, 1::2] = boxes[:, 1::2] * meta.scale_y + meta.pad_y
        if class_index is not None:
            labels = np.asarray(class_index, np.int64)[labels]
        out.append({"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)})
    return torch.from_numpy(np.stack(arrays)), out
