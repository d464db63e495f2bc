"""YOLO+FCN as a ``Segmenter``: letterbox, THE filter, FCN masks pasted by confidence, building."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.models.yolo_fcn.config import (
    ARCHITECTURE_KEYS,
    CHECKPOINT_FORMAT,
    FCN_CHECKPOINT_FORMAT,
    YoloFcnConfig,
    _fcn_config,
    _read_yaml,
)
from instaseg_ros.models.yolo_fcn.detector import Darknet, build_yolov3
from instaseg_ros.models.yolo_fcn.fcn import bgr_to_tensor, build_fcn
from instaseg_ros.models.yolo_fcn.network import YoloDetector
from instaseg_ros.ops.filter import apply_class_filter, filter_detections, keep_score
from instaseg_ros.ops.paste import crop_and_resize, exclusive_masks, paste_masks
from instaseg_ros.weights.torch_io import check_readable_file, load_torch_file, strict_load

log = logging.getLogger(__name__)


@dataclass
class LetterboxMeta:
    """How one image was letterboxed: ``x_net = x_orig * scale_x + pad_x`` (likewise y).

    ``image`` is the original BGR image (crops for the mask head come from it).
    """

    image: np.ndarray
    image_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def to_original(self, boxes: Tensor) -> Tensor:
        """[N, 4] xyxy letterbox px -> original-image px, clipped to the image."""
        h, w = self.image_size
        out = boxes.clone()
        out[:, 0::2] = ((boxes[:, 0::2] - self.pad_x) / self.scale_x).clamp(0, w)
        out[:, 1::2] = ((boxes[:, 1::2] - self.pad_y) / self.scale_y).clamp(0, h)
        return out


def letterbox(image: np.ndarray, size: int, pad_value: float = 0.5) -> tuple[np.ndarray, LetterboxMeta]:
    """BGR uint8 [H, W, 3] -> RGB float32 [3, size, size] in [0, 1], aspect kept, centred.

    The image is resized by ``min(size / W, size / H)`` to ``(round(W * s), round(H * s))``
    (bilinear) and placed at ``((size - w') // 2, (size - h') // 2)`` on a ``pad_value`` canvas.
    """
    h, w = image.shape[:2]
    s = min(size / w, size / h)
    nw, nh = max(1, min(size, round(w * s))), max(1, min(size, round(h * s)))
    resized = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas = np.full((3, size, size), pad_value, np.float32)
    canvas[:, py : py + nh, px : px + nw] = resized[..., ::-1].transpose(2, 0, 1) * np.float32(1 / 255)
    return canvas, LetterboxMeta(image, (h, w), nw / w, nh / h, px, py)


class YoloFcnSegmenter(Segmenter):
    """YOLOv3 detections + FCN masks behind the ``Segmenter`` interface."""

    family = "yolo_fcn"
    has_mask_head = True

    def __init__(
        self,
        darknet: Darknet,
        fcn: nn.Module,
        config: YoloFcnConfig,
        device: str = "cpu",
        precision: str = "fp32",
        params: InferenceParams | None = None,
    ) -> None:
        super().__init__(params or config.inference_params())
        self._init_device(device, precision)
        self.config = config
        self.class_names = config.class_names
        index = [config.detector_classes.index(c) for c in self.class_names]
        self.darknet = darknet
        self.detector = YoloDetector(darknet, index).to(self.device).eval()
        self.fcn = fcn.to(self.device).eval()
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if precision == "fp16":
            self.detector.half()
            self.fcn.half()
        self.crop_size = config.fcn.crop_size

    # ------------------------------------------------------------------ split
    def preprocess(self, images: list[np.ndarray]) -> tuple[Tensor, list[LetterboxMeta]]:
        """Letterbox a validated batch -> ([B, 3, S, S] on the device, metas)."""
        arrays, metas = [], []
        for img in images:
            a, m = letterbox(img, self.config.input_size, self.config.pad_value)
            arrays.append(a)
            metas.append(m)
        x = torch.from_numpy(np.stack(arrays)).to(self.device, self.dtype)
        return x, metas

    @torch.inference_mode()
    def forward_raw(self, tensor: Tensor) -> tuple[Tensor, Tensor]:
        """YOLOv3 -> ``(boxes [B, N, 4] xyxy letterbox px, scores [B, N, K])`` (fp32)."""
        boxes, scores = self.detector(tensor)
        return boxes.float(), scores.float()

    @torch.inference_mode()
    def mask_head_raw(self, crops: Tensor) -> Tensor:
        """FCN on box crops: [N, 3, s, s] RGB [0, 1] -> logits [N, 1, s, s]."""
        return self.fcn(crops.to(self.device, self.dtype))

    @torch.inference_mode()
    def detect(
        self, raw: tuple[Tensor, Tensor], metas: list[LetterboxMeta], params: InferenceParams | None = None
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Threshold + NMS -> per image ``(boxes [n, 4] original px, scores [n], class_ids [n])`` (device)."""
        p = params or self.params
        boxes_all, scores_all = raw
        allowed = self.class_filter_ids(p)
        out = []
        for b, meta in enumerate(metas):
            scores = apply_class_filter(scores_all[b], allowed)
            idx, cls = torch.nonzero(keep_score(scores, p.score_threshold), as_tuple=True)
            sc = scores[idx, cls]
            if len(sc) > self.config.pre_nms_top_n:
                sc, order = sc.topk(self.config.pre_nms_top_n)
                idx, cls = idx[order], cls[order]
            boxes = meta.to_original(boxes_all[b][idx])
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, sc, cls = boxes[valid], sc[valid], cls[valid]
            keep, cls, sc = filter_detections(sc, p, None, boxes=boxes, classes=cls, method="greedy")
            out.append((boxes[keep], sc, cls))
        return out

    @torch.inference_mode()
    def box_mask_probs(self, image: np.ndarray, boxes: Tensor | np.ndarray) -> Tensor:
        """Crop ``boxes`` ([n, 4] original px) from BGR ``image``; FCN as one batch -> [n, s, s] probs."""
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=self.device).reshape(-1, 4)
        if len(boxes) == 0:
            return torch.zeros((0, self.crop_size, self.crop_size), device=self.device)
        crops = crop_and_resize(bgr_to_tensor(image, self.device), boxes, self.crop_size)
        return torch.sigmoid(self.mask_head_raw(crops)[:, 0].float())

    def assemble(
        self,
        probs: Tensor,
        boxes: Tensor | np.ndarray,
        scores: Tensor | np.ndarray,
        class_ids: Tensor | np.ndarray,
        image_size: tuple[int, int],
        params: InferenceParams | None = None,
    ) -> Instances:
        """Paste per-box probabilities ([n, s, s]) into the image and resolve overlaps -> ``Instances``."""
        p = params or self.params
        boxes = torch.as_tensor(boxes).float()
        scores_np = torch.as_tensor(scores).float().cpu().numpy()
        masks = paste_masks(probs, boxes, image_size, p.mask_threshold)
        if self.config.exclusive_masks:
            masks = exclusive_masks(masks, scores_np)
        return Instances(
            boxes=boxes.cpu().numpy(),
            scores=scores_np,
            class_ids=torch.as_tensor(class_ids).cpu().numpy(),
            masks=masks,
            image_size=image_size,
            class_names=self.class_names,
        )

    def segment_boxes(
        self,
        image: np.ndarray,
        boxes: Tensor | np.ndarray,
        scores: Tensor | np.ndarray,
        class_ids: Tensor | np.ndarray,
        params: InferenceParams | None = None,
    ) -> Instances:
        """Mask head + pasting for given boxes ([n, 4] original px) on one BGR image."""
        probs = self.box_mask_probs(image, boxes)
        return self.assemble(probs, boxes, scores, class_ids, image.shape[:2], params)

    def postprocess(
        self, raw: tuple[Tensor, Tensor], metas: list[LetterboxMeta], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Decode + NMS + FCN masks + pasting -> one ``Instances`` per image (original pixels)."""
        p = params or self.params
        results = []
        for meta, (boxes, scores, cls) in zip(metas, self.detect(raw, metas, p)):
            results.append(self.segment_boxes(meta.image, boxes, scores, cls, p))
        return results

    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        x, metas = self.preprocess(images)
        return self.postprocess(self.forward_raw(x), metas, params)

    # ------------------------------------------------------------------ persistence
    def save_checkpoint(self, path: str | Path, fp16: bool = False) -> None:
        """Save config + detector + FCN state dicts (combined format; loads with ``weights_only=True``).

        ``fp16`` stores floating tensors as half (half the file size; loaded back into fp32 models).
        """
        cfg = self.config.to_dict()
        cfg.update(fcn_weights=None, allow_random_fcn=False, allow_random_detector=False)

        def cast(sd: dict[str, Tensor]) -> dict[str, Tensor]:
            dtype = torch.float16 if fp16 else torch.float32
            return {
                k: v.detach().cpu().to(dtype) if v.is_floating_point() else v.cpu() for k, v in sd.items()
            }

        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "version": 1,
                "config": cfg,
                "detector": cast(self.darknet.state_dict()),
                "fcn": cast(self.fcn.state_dict()),
            },
            path,
        )


def _load_torch(path: Path) -> dict[str, Any]:
    obj = load_torch_file(path, "yolo_fcn weights")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def _load_state(module: nn.Module, state: dict[str, Tensor], what: str, path: Path | str) -> None:
    strict_load(module, state, str(path), what)


def _is_torch_file(path: Path) -> bool:
    """A torch.save file (zip archive, or a .pt/.pth/.ckpt name); anything else is read as Darknet."""
    if path.suffix.lower() in (".pt", ".pth", ".ckpt"):
        return True
    with open(path, "rb") as f:
        return f.read(2) == b"PK"


def build_yolo_fcn(
    weights: str | Path | None = None,
    config: str | Path | dict[str, Any] | YoloFcnConfig | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    params: InferenceParams | None = None,
    **overrides: Any,
) -> YoloFcnSegmenter:
    """Build the YOLO+FCN segmenter (registered as family ``"yolo_fcn"``).

    Args:
        weights: a Darknet ``.weights`` file (detector only) or a yolo_fcn checkpoint
            (config + detector + FCN); ``None`` needs ``allow_random_detector``.
        config: YAML path, dict or :class:`YoloFcnConfig`; for a checkpoint, the given
            run-time keys (classes, input_size, inference, ...) override the checkpoint's config,
            network keys (:data:`ARCHITECTURE_KEYS`) come from the checkpoint.
        overrides: config keys given as keyword arguments (override ``config``).
    """
    if isinstance(config, YoloFcnConfig):
        user = config.to_dict()
    elif isinstance(config, (str, Path)):
        user = _read_yaml(config)
    else:
        user = copy.deepcopy(dict(config or {}))
    user.pop("family", None)
    user.update(overrides)

    ckpt = None
    wpath = Path(weights) if weights is not None else None
    if wpath is not None:
        check_readable_file(wpath, "yolo_fcn weights")
        if _is_torch_file(wpath):
            ckpt = _load_torch(wpath)
            if ckpt.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(
                    f"{wpath}: not a yolo_fcn checkpoint (format {ckpt.get('format')!r}); pass a Darknet "
                    f".weights file or a checkpoint written by YoloFcnSegmenter.save_checkpoint"
                )
            base = dict(ckpt["config"])
            for k, v in user.items():
                if k in ARCHITECTURE_KEYS and v != base.get(k):
                    if k == "fcn" and user.get("fcn_weights"):
                        continue  # the FCN file's own architecture is used
                    log.warning(
                        "%s: ignoring config %s=%r: the checkpoint's network has %r", wpath, k, v, base.get(k)
                    )
                    continue
                base[k] = v
            user = base
    cfg = YoloFcnConfig.from_dict(user)

    torch.manual_seed(cfg.seed)
    darknet = build_yolov3(
        len(cfg.detector_classes),
        cfg.input_size,
        cfg.darknet_width,
        cfg.darknet_depth,
        cfg.cfg,
        cfg.anchors,
        cfg.detector,
    )
    if ckpt is not None:
        _load_state(darknet, ckpt["detector"], "detector", wpath)
    elif wpath is not None:
        from instaseg_ros.weights.darknet import load_darknet_weights

        load_darknet_weights(darknet, wpath)
    elif cfg.allow_random_detector:
        darknet.init_weights(cfg.seed)
    else:
        raise ValueError(
            "yolo_fcn: no detector weights: pass weights=<yolov3.weights or a yolo_fcn checkpoint>, "
            "or set allow_random_detector: true in the config (tests/benchmarks only)"
        )

    fcn_cfg = cfg.fcn
    fcn_state = None
    fcn_source: Path | str = "fcn"
    if ckpt is not None and ckpt.get("fcn") is not None and not cfg.fcn_weights:
        fcn_state, fcn_source = ckpt["fcn"], wpath
    elif cfg.fcn_weights:
        fcn_source = Path(cfg.fcn_weights)
        if not fcn_source.is_file():
            raise FileNotFoundError(f"yolo_fcn: fcn_weights file not found: {fcn_source}")
        obj = _load_torch(fcn_source)
        if obj.get("format") == FCN_CHECKPOINT_FORMAT:
            fcn_cfg = _fcn_config(obj["fcn_config"])
            fcn_state = obj["fcn"]
        elif obj.get("format") == CHECKPOINT_FORMAT:
            fcn_cfg = _fcn_config(obj["config"]["fcn"])
            fcn_state = obj["fcn"]
        else:
            fcn_state = obj  # a bare state dict for the configured architecture
        cfg.fcn = fcn_cfg
    elif not cfg.allow_random_fcn:
        raise ValueError(
            "yolo_fcn: no FCN mask-head weights: set fcn_weights: <file> in the config (an FCN checkpoint "
            "from training), pass weights=<a yolo_fcn checkpoint>, or set allow_random_fcn: true "
            "(tests/benchmarks only: masks will be meaningless)"
        )
    torch.manual_seed(cfg.seed + 1)
    fcn = build_fcn(fcn_cfg)
    if fcn_state is not None:
        _load_state(fcn, fcn_state, "FCN", fcn_source)
    return YoloFcnSegmenter(darknet, fcn, cfg, device=device, precision=precision, params=params)
