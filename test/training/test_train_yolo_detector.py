"""`instaseg train` runs the YOLOv3(-tiny) detector task of YOLO+FCN from the shipped config's layout."""

from __future__ import annotations

import numpy as np
import torch
import yaml

from instaseg_ros.cli import main
from instaseg_ros.models.loading import load_model


def test_cli_trains_yolo_detector_and_writes_a_loadable_checkpoint(tmp_path):
    with open("config/train/yolo_detector_synthetic.yaml") as f:
        cfg = yaml.safe_load(f)
    cfg["out_dir"] = str(tmp_path / "run")
    cfg["model"]["input_size"] = 128
    cfg["model"]["fcn_weights"] = "models/fcn_r18_indoor.pth"  # the shipped head: best.pth is a whole model
    cfg["data"]["train"].update(num_images=8, width=160, height=120)
    cfg["data"]["val"].update(num_images=2, width=160, height=120)
    cfg["data"]["batch_size"] = 2
    cfg["optim"].update(max_iters=3, warmup_iters=1)
    cfg["train"].update(val_interval=3, checkpoint_interval=3, log_interval=1, val_max_images=2)
    path = tmp_path / "det.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--no-progress", "--device", "cpu"]) == 0
    state = torch.load(tmp_path / "run" / "last_state.pth", weights_only=True)
    assert state["iteration"] == 3
    # the written checkpoint loads through the one model loader and holds the trained detector
    seg = load_model("yolo_fcn", str(tmp_path / "run" / "final.pth"))
    assert seg.class_names == ["person", "chair", "couch", "dining table", "toilet"]
    assert cfg["train"]["save_fp16"]  # the shipped config stores fp16 tensors
    for k, v in state["model"].items():
        torch.testing.assert_close(seg.darknet.state_dict()[k].float(), v.half().float(), msg=k)
    out = seg.segment([np.zeros((120, 160, 3), np.uint8)])[0]
    assert out.image_size == (120, 160)
