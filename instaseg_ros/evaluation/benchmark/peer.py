"""The peer: torchvision's Mask R-CNN ResNet-50 FPN (random init, ``weights=None``), split into the
same stages as our models, on the same images, batch sizes and torch threads, with the same score
threshold and detection cap."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from instaseg_ros.evaluation.benchmark.harness import BenchRow, Runner, Sample, time_interleaved


class MaskRcnnRunner(Runner):
    """torchvision Mask R-CNN split into pre (transform) / net (backbone, RPN, ROI heads) /
    post (box rescaling, mask pasting, threshold, to NumPy)."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str = "cpu",
        mask_threshold: float = 0.5,
        model_name: str = "maskrcnn_resnet50_fpn",
    ) -> None:
        self.dev = torch.device(device)
        self.net = model.to(self.dev).eval()
        self.mask_threshold = mask_threshold
        self.model, self.backend, self.device, self.precision = model_name, "torch", str(self.dev), "fp32"

    def _sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    @torch.inference_mode()
    def __call__(self, imgs: list[np.ndarray]) -> Sample:
        model, dev = self.net, self.dev
        t0 = time.perf_counter()
        tensors = [
            torch.from_numpy(np.ascontiguousarray(im[..., ::-1])).to(dev).permute(2, 0, 1).float() / 255
            for im in imgs
        ]
        sizes = [tuple(t.shape[-2:]) for t in tensors]
        il, _ = model.transform(tensors)
        self._sync()
        t1 = time.perf_counter()
        feats = model.backbone(il.tensors)
        proposals, _ = model.rpn(il, feats)
        detections, _ = model.roi_heads(feats, proposals, il.image_sizes)
        self._sync()
        t2 = time.perf_counter()
        detections = model.transform.postprocess(detections, il.image_sizes, sizes)
        results = [
            (
                d["boxes"].cpu().numpy(),
                d["scores"].cpu().numpy(),
                (d["masks"][:, 0] > self.mask_threshold).cpu().numpy(),
            )
            for d in detections
        ]
        t3 = time.perf_counter()
        return Sample(t1 - t0, t2 - t1, t3 - t2, t3 - t0, sum(len(r[0]) for r in results) / len(imgs))

    def info(self) -> dict[str, Any]:
        return {
            "weights": None,
            "min_size": self.net.transform.min_size[0],
            "max_size": self.net.transform.max_size,
            "box_score_thresh": self.net.roi_heads.score_thresh,
            "detections_per_img": self.net.roi_heads.detections_per_img,
        }


def build_maskrcnn_peer(
    score_threshold: float, max_detections: int, min_size: int = 800, max_size: int = 1333
) -> torch.nn.Module:
    """torchvision Mask R-CNN ResNet-50 FPN, random init (no download), eval mode."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=91,
        box_score_thresh=score_threshold,
        box_detections_per_img=max_detections,
        min_size=min_size,
        max_size=max_size,
    )
    return model.eval()


def time_maskrcnn(
    model: torch.nn.Module,
    images: list[np.ndarray],
    batch: int,
    warmup: int,
    runs: int,
    mask_threshold: float = 0.5,
    model_name: str = "maskrcnn_resnet50_fpn",
    device: str = "cpu",
) -> BenchRow:
    """Stage timings of the Mask R-CNN peer (see :class:`MaskRcnnRunner`)."""
    runner = MaskRcnnRunner(model, device, mask_threshold, model_name)
    return time_interleaved([runner], images, batch, warmup, runs)[0]
