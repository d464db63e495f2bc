"""FCN mask-head training on ground-truth box crops (seed 001) and the channel attention block."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.tasks.fcn import FcnTask, jitter_boxes
from instaseg_ros.training.trainer import Trainer

NO_AUG = {"hflip": 0.0, "photometric": 0.0, "blur": 0.0, "noise": 0.0, "jpeg": 0.0, "scale_crop": 0.0}


def fcn_config(out, iters=20):
    return {
        "task": "fcn",
        "seed": 0,
        "out_dir": str(out),
        "model": {"arch": "resnet18", "width": 0.25, "crop_size": 32},
        "data": {
            "train": {"kind": "synthetic", "num_images": 4, "seed": 3, "width": 96, "height": 72,
                      "synth": {"min_objects": 2}},
            "val": {"kind": "synthetic", "num_images": 2, "seed": 4, "width": 96, "height": 72},
            "augment": dict(NO_AUG),
            "batch_size": 4,
        },
        "loss": {"dice_weight": 0.5, "box_jitter": 0.0, "max_crops": 16},
        "optim": {"lr": 0.003, "max_iters": iters, "warmup_iters": 2},
        "train": {"val_interval": 0, "log_interval": 1, "num_threads": 1},
    }


def test_fcn_head_trains_on_box_crops_and_loads_into_yolo_fcn(tmp_path):
    from instaseg_ros.models.yolo_fcn import build_yolo_fcn
    from instaseg_ros.models.yolo_fcn.fcn import FcnConfig

    cfg = config_from_dict(fcn_config(tmp_path / "run"))
    task = FcnTask(cfg)
    batch = task.collate([task.train_dataset()[i] for i in range(2)])
    assert batch["crops"].shape[1:] == (3, 32, 32) and batch["targets"].shape[1:] == (32, 32)
    assert set(batch["targets"].unique().tolist()) <= {0.0, 1.0}
    Trainer(cfg, task, cfg.out_dir, progress=False).run()
    with open(tmp_path / "run" / "metrics.csv") as f:
        losses = [float(r["loss_total"]) for r in csv.DictReader(f)]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert 0.0 <= report["validation"]["mean_iou"] <= 1.0 and "segm" in report["validation"]
    # the shipped head is the yolo_fcn family's fcn_weights file
    seg = build_yolo_fcn(config={"input_size": 64, "detector": "yolov3-tiny", "allow_random_detector": True,
                                 "fcn": FcnConfig(width=0.25, crop_size=32).to_dict(),
                                 "fcn_weights": str(tmp_path / "run" / "best.pth")})
    x = torch.rand(3, 3, 32, 32)
    task.module.eval()
    with torch.inference_mode():
        ref = task.module(x)
    assert torch.equal(seg.mask_head_raw(x), ref)


def test_jitter_boxes_stays_in_image_and_moves_boxes():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 10, 50, 40], [0, 0, 5, 5], [90, 60, 96, 72]], np.float32)
    out = jitter_boxes(boxes, 0.2, (72, 96), rng)
    assert out.shape == boxes.shape and not np.allclose(out, boxes)
    assert (out[:, 0] >= 0).all() and (out[:, 2] <= 96).all() and (out[:, 3] <= 72).all()
    assert (out[:, 2] > out[:, 0]).all() and (out[:, 3] > out[:, 1]).all()
    assert np.array_equal(jitter_boxes(boxes, 0.0, (72, 96), rng), boxes)


def test_channel_attention_identity_values_and_gradients():
    from instaseg_ros.models.attention import ChannelAttention

    torch.manual_seed(0)
    att = ChannelAttention(16, reduction=4)
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    y = att(x)
    assert y.shape == x.shape and torch.equal(y, x)  # identity at initialisation
    # hand-made gate: hidden layers silent, output biases b_avg + b_max = ln 3 -> gate 2 * 0.75 = 1.5
    with torch.no_grad():
        for fc in (att.avg_fc, att.max_fc):
            fc[0].weight.zero_()
            fc[0].bias.zero_()
            fc[2].bias.fill_(0.5 * np.log(3.0))
    assert torch.allclose(att(x), 1.5 * x, atol=1e-6)
    # gradients reach the input and both pooling paths once the block is trained away from identity
    att2 = ChannelAttention(16, reduction=4)
    opt = torch.optim.SGD(att2.parameters(), lr=0.5)
    target = x.detach() * torch.linspace(0.5, 1.5, 16).view(1, 16, 1, 1)
    for _ in range(2):
        opt.zero_grad()
        loss = (att2(x) - target).pow(2).mean()
        loss.backward()
        opt.step()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for fc in (att2.avg_fc, att2.max_fc):
        assert fc[0].weight.grad.abs().sum() > 0 and fc[2].weight.grad.abs().sum() > 0


def test_slim_resnet18_backbone_widths():
    from instaseg_ros.models.backbones import build_backbone

    bb = build_backbone("resnet18_slim", attention=True, attention_reduction=8)
    assert bb.channels == [32, 64, 128, 256]
    outs = bb(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 64, 128, 256] and outs[-1].shape[-1] == 2
