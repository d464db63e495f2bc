"""Tiny model configs of every training task (cheap to build and to train a few iterations on CPU), and a
trainer that keeps each resumable state it writes."""

from __future__ import annotations

import shutil
from typing import Any

from instaseg_ros.training.trainer import Trainer

MODELS: dict[str, dict[str, Any]] = {
    "yolact": {"backbone": "resnet18_slim", "input_size": 64, "fpn_channels": 16, "num_prototypes": 4,
               "attention_reduction": 4},
    "fcn": {"arch": "resnet18", "width": 0.25, "crop_size": 32},
    "yolo_detector": {"detector": "yolov3-tiny", "darknet_width": 0.125, "input_size": 64},
    "solo": {"backbone": "resnet18", "input_size": 64, "fpn_channels": 32, "head_channels": 32,
             "head_convs": 1, "mask_channels": 16, "mask_mid_channels": 16, "num_grids": [8, 6, 4, 3, 2]},
    "maskrcnn": {"backbone": "resnet18", "min_size": 64, "max_size": 96, "rpn_batch_size_per_image": 32,
                 "box_batch_size_per_image": 16},
}


class KeepingStates(Trainer):
    """A trainer that also keeps a copy of each resumable state it writes (``state_<it>.pth``)."""

    def _save_state(self, state: dict[str, Any]) -> None:
        super()._save_state(state)
        shutil.copy(self.out / "last_state.pth", self.out / f"state_{state['iteration']}.pth")
