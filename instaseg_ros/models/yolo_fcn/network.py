"""The YOLO+FCN detection network: YOLOv3 (``detector``) with class-subset selection."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from instaseg_ros.models.yolo_fcn.detector import Darknet


class YoloDetector(nn.Module):
    """YOLOv3 + class-subset selection: ``forward(x [B, 3, S, S]) -> (boxes [B, N, 4], scores [B, N, K])``."""

    def __init__(self, darknet: Darknet, class_index: list[int]) -> None:
        super().__init__()
        self.darknet = darknet
        self.register_buffer("class_index", torch.tensor(class_index, dtype=torch.long), persistent=False)
        self._all = class_index == list(range(darknet.num_classes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        boxes, scores = self.darknet(x)
        if not self._all:
            scores = scores.index_select(2, self.class_index)
        return boxes, scores
