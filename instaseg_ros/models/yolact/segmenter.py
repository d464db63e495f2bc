"""YOLACT-SE as a ``Segmenter``: pre-processing, Fast NMS post-processing, masks, building from files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from instaseg_ros.core.images import validate_images
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.config import load_config_mapping
from instaseg_ros.models.fuse import inference_copy
from instaseg_ros.models.yolact.config import CHECKPOINT_FORMAT, YolactConfig
from instaseg_ros.models.yolact.network import YolactSE
from instaseg_ros.ops.boxes import crop_masks, decode_boxes, sanitize_coordinates
from instaseg_ros.ops.filter import apply_class_filter, filter_detections, keep_score
from instaseg_ros.weights.torch_io import save_our_checkpoint

log = logging.getLogger(__name__)


class YolactSegmenter(Segmenter):
    """``Segmenter`` for YOLACT-SE: preprocess -> forward_raw -> postprocess, all on ``device``.

    Args:
        model: a :class:`YolactSE` (moved to ``device``, set to eval).
        cfg: its config.
        device: torch device string ("cpu", "cuda", "cuda:1").
        precision: "fp32", or "fp16" (CUDA only; post-processing runs in fp32).
        params: default :class:`InferenceParams` (or a dict of them).
        optimize: run a copy of the network with BatchNorm folded into the convolutions and
            channels-last tensors (same outputs up to float rounding, ~35% less CPU time).
            ``self.model`` stays the original module; the copy is rebuilt automatically when
            ``self.model``'s tensors change (in-place updates by an optimiser or ``load_state_dict``).
    """

    family = "yolact"

    def __init__(
        self,
        model: YolactSE,
        cfg: YolactConfig,
        device: str = "cpu",
        precision: str = "fp32",
        params: InferenceParams | dict[str, Any] | None = None,
        optimize: bool = True,
    ) -> None:
        super().__init__(params)
        dev = self._attach(model, cfg, device, precision)
        self.optimize = optimize
        self.sync_weights()
        self._scale = (1.0 / torch.tensor(cfg.std, dtype=torch.float32, device=dev)).view(1, 3, 1, 1)
        self._shift = (-torch.tensor(cfg.mean, dtype=torch.float32, device=dev)).view(1, 3, 1, 1)

    def _weights_fingerprint(self) -> tuple[int, int]:
        """Changes whenever a parameter/buffer of ``self.model`` is modified in place or replaced."""
        ts = [*self.model.parameters(), *self.model.buffers()]
        return sum(t._version for t in ts), sum(t.data_ptr() for t in ts)

    def sync_weights(self) -> None:
        """Rebuild the optimised inference copy from ``self.model`` (no-op when ``optimize`` is off)."""
        self._net = inference_copy(self.model) if self.optimize else self.model
        self._fingerprint = self._weights_fingerprint() if self.optimize else None

    # -- stage 1
    def preprocess(self, images) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """BGR uint8 images (any sizes) -> ([B, 3, S, S] normalised RGB, metas with ``size`` (H, W))."""
        batch = validate_images(images)
        s = self.cfg.input_size
        dev = torch.device(self.device)
        resized = []
        metas = []
        for img in batch:
            h, w = img.shape[:2]
            t = torch.from_numpy(np.ascontiguousarray(img)).to(dev).permute(2, 0, 1)[None].float()
            if (h, w) != (s, s):
                t = F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False)
            resized.append(t)
            metas.append({"size": (h, w)})
        x = torch.cat(resized, 0) if len(resized) > 1 else resized[0]
        x = ((x + self._shift) * self._scale).flip(1)  # normalise in BGR, then BGR -> RGB
        return x.to(self.dtype).contiguous(), metas

    # -- stage 2
    def forward_raw(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network only: [B, 3, S, S] -> raw dict (``loc``, ``conf``, ``mask``, ``priors``, ``proto``)."""
        x = tensor.to(self.device, self.dtype)
        if self.optimize:
            if self._weights_fingerprint() != self._fingerprint:
                self.sync_weights()
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._net(x)

    # -- stage 3
    def postprocess(
        self, raw: dict[str, torch.Tensor], metas: list[dict[str, Any]], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Raw outputs -> one ``Instances`` per image, in original-image pixels."""
        p = params or self.params
        batch = raw["loc"].shape[0]
        if len(metas) != batch:
            raise ValueError(f"postprocess: {len(metas)} metas for a batch of {batch} raw outputs")
        allowed = self.class_filter_ids(p)
        with torch.inference_mode():
            return [self._postprocess_one(raw, b, metas[b]["size"], p, allowed) for b in range(batch)]

    def _postprocess_one(
        self, raw: dict[str, torch.Tensor], b: int, size: tuple[int, int], p: InferenceParams, allowed
    ) -> Instances:
        h, w = size
        conf = apply_class_filter(torch.softmax(raw["conf"][b].float(), dim=-1)[:, 1:], allowed)  # [P, C]
        cand = keep_score(conf.max(dim=1).values, p.score_threshold)
        if not bool(cand.any()):
            return Instances.empty((h, w), self.class_names)
        boxes = decode_boxes(raw["loc"][b].float()[cand], raw["priors"].float()[cand])
        coeffs = raw["mask"][b].float()[cand]
        idx, classes, det_scores = filter_detections(
            conf[cand], p, None, boxes=boxes, method="fast", pre_nms_top_k=self.cfg.nms_top_k
        )
        if idx.numel() == 0:
            return Instances.empty((h, w), self.class_names)
        boxes = boxes[idx]
        mask_scores = None
        if self.model.maskiou_net is not None:
            mask_scores = self._rescore(raw["proto"][b].float(), coeffs[idx], boxes, classes, det_scores)
        masks = assemble_masks(
            raw["proto"][b].float(), coeffs[idx], boxes, (h, w), p.mask_threshold, self.cfg.mask_crop_padding
        )
        scale = boxes.new_tensor([w, h, w, h])
        px = torch.minimum((boxes * scale).clamp(min=0), scale)
        return Instances(
            boxes=px.cpu().numpy(),
            scores=det_scores.cpu().numpy(),
            class_ids=classes.cpu().numpy(),
            masks=masks.cpu().numpy(),
            image_size=(h, w),
            class_names=self.class_names,
            mask_scores=None if mask_scores is None else mask_scores.cpu().numpy(),
        )

    def _rescore(self, proto, coeffs, boxes, classes, scores) -> torch.Tensor:
        """YOLACT++ mask scores [n]: box score x the predicted IoU of the mask for its class (the
        authors' ``rescore_mask``); the box scores, the threshold and the order stay as they are."""
        m = torch.sigmoid(torch.einsum("hwk,nk->nhw", proto, coeffs))
        m = crop_masks(m, boxes, self.cfg.mask_crop_padding)  # [n, h, w] as the authors feed it
        net = self.model.maskiou_net
        iou = net(m[:, None].to(next(net.parameters()).dtype)).float()  # [n, C]
        return scores * iou.gather(1, classes[:, None]).squeeze(1)


def bilinear_matrix(out_size: int, in_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[out, in] matrix ``R`` with ``R @ v`` = 1-D bilinear resampling of ``v`` (align_corners=False).

    Same source coordinates and weights as ``F.interpolate(mode="bilinear", align_corners=False)``
    (float32 arithmetic, negative coordinates clamped to 0, last index repeated at the border).
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long().clamp(max=in_size - 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    l1 = src - i0.float()
    r = torch.zeros(out_size, in_size, dtype=torch.float32)
    rows = torch.arange(out_size)
    r.index_put_((rows, i0), 1.0 - l1, accumulate=True)
    r.index_put_((rows, i1), l1, accumulate=True)
    return r.to(device)


def assemble_masks(
    proto: torch.Tensor,
    coeffs: torch.Tensor,
    boxes: torch.Tensor,
    image_size: tuple[int, int],
    threshold: float = 0.5,
    crop_padding: float = 1.0,
) -> torch.Tensor:
    """YOLACT mask assembly.

    Args:
        proto: [h, w, K] prototypes.
        coeffs: [N, K] coefficients.
        boxes: [N, 4] relative xyxy (crop region).
        image_size: (H, W) of the original image.
    Returns:
        [N, H, W] bool: bilinear-upsampled (align_corners=False) cropped sigmoid(proto @ coeffs) > threshold.

    On CUDA the whole [N, H, W] stack is upsampled at once. On CPU only each mask's crop window
    is resampled (the cropped mask is exactly zero elsewhere), as ``Ry[rows, ys] @ m[ys, xs] @
    Rx[cols, xs]^T`` with :func:`bilinear_matrix` weights: the same values up to float rounding at
    a fraction of the cost for many or small detections.
    """
    m = torch.sigmoid(torch.einsum("hwk,nk->nhw", proto, coeffs))
    m = crop_masks(m, boxes, crop_padding)
    n, h, w = m.shape
    big_h, big_w = (int(v) for v in image_size)
    if m.device.type != "cpu" or n == 0:
        m = F.interpolate(m[None], size=(big_h, big_w), mode="bilinear", align_corners=False)[0]
        return m > threshold
    ry = bilinear_matrix(big_h, h)
    rx = bilinear_matrix(big_w, w)
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, crop_padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, crop_padding)
    # integer window of kept prototype pixels: x1 <= col < x2
    xa, xb = x1.ceil().long().tolist(), x2.ceil().long().tolist()
    ya, yb = y1.ceil().long().tolist(), y2.ceil().long().tolist()
    out = torch.zeros(n, big_h, big_w, dtype=torch.bool)
    for i in range(n):
        if xb[i] <= xa[i] or yb[i] <= ya[i]:
            continue
        rows = torch.nonzero(ry[:, ya[i] : yb[i]].sum(1) > 0).flatten()
        cols = torch.nonzero(rx[:, xa[i] : xb[i]].sum(1) > 0).flatten()
        if rows.numel() == 0 or cols.numel() == 0:  # the window maps to no output pixel (images of 1-2 px)
            continue
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        win = m[i, ya[i] : yb[i], xa[i] : xb[i]]
        val = ry[r0:r1, ya[i] : yb[i]] @ win @ rx[c0:c1, xa[i] : xb[i]].t()
        out[i, r0:r1, c0:c1] = val > threshold
    return out


# ------------------------------------------------------------------------------- checkpoints/build
def save_checkpoint(path: str | Path, model: YolactSE, cfg: YolactConfig | None = None, **extra: Any) -> None:
    """Save our own checkpoint: {format, format_version, config, state_dict, **extra}.

    ``build_segmenter("yolact", weights=path)`` rebuilds the model from it without a config.
    ``extra`` values must be plain Python/tensors (loaded with ``weights_only=True``).
    """
    cfg = cfg or model.cfg
    save_our_checkpoint(path, CHECKPOINT_FORMAT, cfg.to_dict(), model.state_dict(), **extra)


def config_for_checkpoint(
    state_dict: dict[str, torch.Tensor],
    stored: dict[str, Any] | None,
    path: str | Path | None,
    user: dict[str, Any] | None = None,
) -> YolactConfig:
    """The config of a checkpoint: the stored one (ours) or the one inferred from an official state
    dict, with the ``user`` keys on top. A user ``input_size`` on an official file rescales its anchors."""
    from instaseg_ros.weights.yolact_checkpoint import infer_config_from_state_dict

    user = user or {}
    base = stored if stored is not None else infer_config_from_state_dict(state_dict, path)
    merged = {**base, **user}
    if "input_size" in user and "anchor_scales" not in user and stored is None:
        merged["anchor_scales"] = None  # rescale the official anchors to the requested size
    return YolactConfig.from_dict(merged)


def load_model(
    weights: str | Path | None = None, config: str | Path | dict[str, Any] | YolactConfig | None = None
) -> tuple[YolactSE, YolactConfig]:
    """Build a YolactSE from a checkpoint (ours or official) and/or a config; config keys override.

    Raises ``ValueError`` for files that are not YOLACT checkpoints or that do not match the config.
    """
    from instaseg_ros.weights.yolact_checkpoint import load_state_dict_into, read_checkpoint

    user = config.to_dict() if isinstance(config, YolactConfig) else load_config_mapping(config)
    if weights is None:
        cfg = YolactConfig.from_dict(user)
        return YolactSE(cfg), cfg
    state_dict, stored = read_checkpoint(weights)
    cfg = config_for_checkpoint(state_dict, stored, weights, user)
    model = YolactSE(cfg)
    load_state_dict_into(model, state_dict, source=str(weights))
    return model, cfg


def build_yolact(
    weights: str | None = None,
    config: str | dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | dict[str, Any] | None = None,
    optimize: bool = True,
    **_: Any,
) -> YolactSegmenter:
    """Registry builder: ``build_segmenter("yolact", weights=..., config=..., device=..., precision=...)``."""
    model, cfg = load_model(weights, config)
    return YolactSegmenter(model, cfg, device=device, precision=precision, params=params, optimize=optimize)
