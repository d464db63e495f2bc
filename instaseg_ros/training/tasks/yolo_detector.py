"""YOLOv3 detector training for YOLO+FCN on our data (the shared :class:`Trainer` runs it).

``model:`` holds :class:`~instaseg_ros.models.yolo_fcn.YoloFcnConfig` fields. The detector's
classes are the dataset's (``detector_classes`` defaults to them); ``fcn`` / ``fcn_weights``
name the mask head that goes into the written checkpoint, so that with a trained FCN
(``instaseg train`` task ``fcn``) ``best.pth`` is a complete yolo_fcn model::

    task: yolo_detector
    model: {detector: yolov3-tiny, darknet_width: 0.5, input_size: 256,
            fcn: {arch: resnet18, width: 0.5, crop_size: 96}, fcn_weights: models/fcn_r18_indoor.pth}
    init: {weights: null}      # or a Darknet .weights / yolo_fcn checkpoint of the same network
    loss: {ignore_thresh: 0.5}
    train: {select_metric: bbox.AP}

Validation reports COCO box AP (and mask AP of box-shaped masks: the mask head is not trained here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.training.config import ConfigError, ExperimentConfig, check_fields
from instaseg_ros.training.tasks.base import BaseTask, coco_metrics, write_atomic
from instaseg_ros.training.yolov3_loss import init_head_biases, letterbox_batch, yolov3_loss


class YoloDetectorTask(BaseTask):
    """Trains the Darknet of a yolo_fcn model with :func:`yolov3_loss`."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        from instaseg_ros.models.yolo_fcn import YoloFcnConfig
        from instaseg_ros.models.yolo_fcn.detector import build_yolov3

        super().__init__(cfg)
        check_fields(cfg.model, YoloFcnConfig, "model")
        loss = dict(cfg.loss or {})
        unknown = set(loss) - {"ignore_thresh"}
        if unknown:
            raise ConfigError(
                f"loss: unknown keys {sorted(unknown)} for task yolo_detector; known: ['ignore_thresh']"
            )
        self.ignore_thresh = float(loss.get("ignore_thresh", 0.5))
        model = dict(cfg.model)
        model.pop("family", None)
        model.setdefault("detector_classes", self.source_class_names())
        model["allow_random_detector"] = True
        model["allow_random_fcn"] = True
        try:
            self.model_cfg = YoloFcnConfig.from_dict(model, "model")
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        m = self.model_cfg
        self.module = build_yolov3(
            len(m.detector_classes),
            m.input_size,
            m.darknet_width,
            m.darknet_depth,
            m.cfg,
            m.anchors,
            m.detector,
        )
        self.module.init_weights(cfg.seed)
        init_head_biases(self.module)
        if cfg.init.weights:
            self._load(Path(cfg.init.weights))

    def _load(self, path: Path) -> None:
        if path.suffix.lower() == ".weights":
            from instaseg_ros.weights.darknet import load_darknet_weights

            load_darknet_weights(self.module, path)
            return
        from instaseg_ros.weights.torch_io import load_torch_file

        obj = load_torch_file(path)
        sd = obj.get("detector") if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise ValueError(f"{path}: not a yolo_fcn checkpoint (expected a dict with 'detector')")
        missing, unexpected = self.module.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path}: detector weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    # ------------------------------------------------------------------ data
    def collate(self, samples: list) -> dict[str, Any]:
        """Samples -> ``{"x": [B, 3, S, S] letterboxed, "targets": [{boxes (net px), labels}], "images"}``."""
        samples = [s for s in samples if s is not None]
        images = [s[0] for s in samples]
        x, targets = letterbox_batch(images, [s[1] for s in samples], self.model_cfg.input_size,
                                     self.model_cfg.pad_value)  # fmt: skip
        return {"x": x, "targets": targets, "images": images}

    def loss(self, module: nn.Module, batch: dict[str, Any], device: torch.device) -> dict[str, Tensor]:
        net = module.module if hasattr(module, "module") else module  # DDP-wrapped
        targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
        raw = module(batch["x"].to(device), decode=False)
        return yolov3_loss(raw, net, targets, self.ignore_thresh)

    # ------------------------------------------------------------------ validation / checkpoints
    def _segmenter(self, device: torch.device):
        from instaseg_ros.models.yolo_fcn import YoloFcnSegmenter
        from instaseg_ros.models.yolo_fcn.fcn import build_fcn

        return YoloFcnSegmenter(
            self.module, build_fcn(self.model_cfg.fcn), self.model_cfg, device=str(device)
        )

    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        """COCO box AP of the detector (masks are the boxes: the mask head is not trained here)."""
        from instaseg_ros.core.instances import Instances
        from instaseg_ros.ops.paste import paste_masks

        was = self.module.training
        seg = self._segmenter(device)
        params = seg.params.updated(score_threshold=self.cfg.train.score_threshold, top_k=100)

        def predict(image: np.ndarray, _target: dict[str, Any]) -> Instances:
            x, metas = seg.preprocess([image])
            boxes, scores, cls = seg.detect(seg.forward_raw(x), metas, params)[0]
            boxes = boxes.cpu()
            masks = paste_masks(torch.ones(len(boxes), 2, 2), boxes, image.shape[:2])  # box-shaped
            return Instances(boxes.numpy(), scores.cpu().numpy(), cls.cpu().numpy(), masks, image.shape[:2])

        try:
            return coco_metrics(dataset, predict, max_images)
        finally:
            self.module.train(was)

    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        """A yolo_fcn checkpoint: this detector + the FCN of ``model.fcn_weights`` (or none: then
        the segmenter needs ``fcn_weights`` in its config when it loads this file)."""
        from instaseg_ros.models.yolo_fcn import CHECKPOINT_FORMAT
        from instaseg_ros.weights.torch_io import load_torch_file

        cfg = self.model_cfg.to_dict()
        fcn_state = None
        if self.model_cfg.fcn_weights:
            obj = load_torch_file(self.model_cfg.fcn_weights, "FCN weights")
            fcn_state = obj.get("fcn", obj)
            if "fcn_config" in obj:
                cfg["fcn"] = dict(obj["fcn_config"])
        cfg.update(fcn_weights=None, allow_random_fcn=False, allow_random_detector=False)

        def cast(sd: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.detach().cpu().half() if fp16 and v.is_floating_point() else v.detach().cpu()
                    for k, v in sd.items()}  # fmt: skip

        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "config": cfg,
            "detector": cast(self.module.state_dict()),
            "fcn": cast(fcn_state) if fcn_state is not None else None,
            "training": {"iteration": int(extra.pop("iteration", -1)), **extra},
        }
        write_atomic(path, lambda tmp: torch.save(ckpt, tmp))

    def load_inference(self, path: Path) -> None:
        self._load(Path(path))

