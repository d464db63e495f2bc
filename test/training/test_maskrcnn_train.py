"""Mask R-CNN fine-tuning through the project's Trainer: falling loss, head swap, reload, CLI predict."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from instaseg_ros.models import build_segmenter
from instaseg_ros.models.maskrcnn import MaskRcnnConfig, build_model
from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.tasks.maskrcnn import MaskRcnnTask, maskrcnn_collate
from instaseg_ros.training.trainer import Trainer

# ResNet-18 FPN, tiny transform and few sampled RoIs: the mask head dominates CPU time
TINY = dict(backbone="resnet18", min_size=64, max_size=96, rpn_pre_nms_top_n_test=100,
            rpn_post_nms_top_n_test=30, rpn_batch_size_per_image=32, box_batch_size_per_image=16)  # fmt: skip
NOAUG = dict(hflip=0, photometric=0, blur=0, noise=0, jpeg=0, scale_crop=0)


def experiment(tmp_path, iters: int = 5, **over):
    d = {
        "task": "maskrcnn",
        "seed": 0,
        "out_dir": str(tmp_path / "run"),
        "model": dict(TINY),
        "data": {
            "train": {"kind": "synthetic", "num_images": 1, "seed": 1, "width": 96, "height": 72},
            "val": {"kind": "synthetic", "num_images": 1, "seed": 2, "width": 96, "height": 72},
            "augment": NOAUG,
            "batch_size": 1,
        },
        "optim": {
            "optimizer": "sgd",
            "lr": 0.01,
            "schedule": "constant",
            "warmup_iters": 0,
            "max_iters": iters,
        },
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 1000, "num_threads": 2},
    }
    d.update(over)
    return config_from_dict(d)


def test_collate_drops_crowd_and_degenerate_boxes():
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    masks = np.zeros((3, 10, 12), np.uint8)
    masks[0, 2:5, 2:6] = 1
    masks[1, 1:3, 1:3] = 1
    target = {
        "boxes": np.array([[2, 2, 6, 5], [1, 1, 3, 3], [4, 4, 4, 8]], np.float32),
        "labels": np.array([0, 3, 1]),
        "masks": masks,
        "iscrowd": np.array([0, 1, 0], np.uint8),
        "image_id": 1,
    }
    b = maskrcnn_collate([(img, target)])
    assert b["images"][0].shape == (3, 10, 12) and float(b["images"][0][0, 0, 0]) == 1.0  # RGB, [0, 1]
    t = b["targets"][0]
    assert t["labels"].tolist() == [1] and t["boxes"].tolist() == [[2, 2, 6, 5]]
    assert t["masks"].shape == (1, 10, 12) and t["masks"].dtype == torch.uint8


@pytest.mark.slow
def test_train_loss_falls_and_checkpoint_reloads(tmp_path):
    cfg = experiment(tmp_path)
    task = MaskRcnnTask(cfg)
    res = Trainer(cfg, task, cfg.out_dir, progress=False).run()
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    loss = [float(r["loss_total"]) for r in rows]
    assert len(loss) == 5 and np.mean(loss[-2:]) < 0.8 * np.mean(loss[:2]), loss
    assert {"loss_mask", "loss_classifier", "loss_objectness"} <= set(rows[0])
    assert "validation" in res.report
    seg = build_segmenter("maskrcnn", weights=str(tmp_path / "run" / "final.pth"))
    assert seg.cfg.backbone == "resnet18" and seg.cfg.min_size == 64
    live = task.segmenter()
    img = np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)
    p = seg.params.updated(score_threshold=0.0, top_k=5)
    a, b = live.segment([img], p)[0], seg.segment([img], p)[0]
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.masks, b.masks)


def test_finetune_from_torchvision_checkpoint_replaces_heads(tmp_path):
    """Seed 004: a torchvision checkpoint with another class count, predictors replaced, rest kept."""
    torch.manual_seed(0)
    src = build_model(MaskRcnnConfig(class_names=[f"c{i}" for i in range(9)], **TINY))
    torch.save(src.state_dict(), tmp_path / "tv10.pth")
    cfg = experiment(tmp_path, iters=1, init={"weights": str(tmp_path / "tv10.pth"), "reinit_heads": "auto"})
    cfg.model["class_names"] = ["person", "chair", "couch", "dining table", "toilet"]
    task = MaskRcnnTask(cfg)
    assert task.module.roi_heads.box_predictor.cls_score.out_features == 6
    assert torch.equal(task.module.rpn.head.cls_logits.weight, src.rpn.head.cls_logits.weight)
    cfg.init.reinit_heads = "never"
    with pytest.raises(ValueError, match="checkpoint has 9 classes"):
        MaskRcnnTask(cfg)
    with pytest.raises(ValueError, match="unknown Mask R-CNN loss terms"):
        MaskRcnnTask(experiment(tmp_path, loss={"mask_loss": 1.0}))


def test_predict_cli_runs_maskrcnn(tmp_path):
    import cv2

    from instaseg_ros.cli import main
    from instaseg_ros.models.maskrcnn import save_checkpoint

    torch.manual_seed(0)
    cfg = MaskRcnnConfig(**TINY)
    ckpt = tmp_path / "mr.pth"
    save_checkpoint(ckpt, build_model(cfg), cfg)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8))
    out = tmp_path / "out"
    argv = ["predict", "--model", "maskrcnn", "--weights", str(ckpt), "--top-k", "3",
            "--score-threshold", "0.0", "--out", str(out), str(img)]  # fmt: skip
    assert main(argv) == 0
    assert any(out.iterdir()), "predict wrote nothing"
