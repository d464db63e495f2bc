"""YOLOv3 training loss: anchor/cell assignment, ignore rule, letterbox targets, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instaseg_ros.models.yolo_fcn.detector import build_yolov3
from instaseg_ros.training.yolov3_loss import init_head_biases, letterbox_batch, yolov3_loss


def _tiny(num_classes: int = 3, size: int = 64, width: float = 0.25):
    torch.manual_seed(0)
    return build_yolov3(num_classes, size, width=width, depth=(1, 1, 1, 1, 1)).init_weights(0)


def _raw_zeros(model, batch: int = 1):
    s = model.input_size
    return [
        torch.zeros(batch, 3 * (5 + model.num_classes), s // st, s // st, requires_grad=True)
        for st in (32, 16, 8)
    ]


def test_box_is_assigned_to_best_anchor_and_centre_cell():
    model = _tiny(3, 64)
    # a 30x61 box (anchor 3 of the COCO set -> mask 3,4,5 -> stride-16 layer, local anchor 0),
    # centred at (40, 24) -> stride-16 cell (col 2, row 1)
    target = [{"boxes": torch.tensor([[25.0, -6.5, 55.0, 54.5]]), "labels": torch.tensor([2])}]
    raw = _raw_zeros(model)
    loss = yolov3_loss(raw, model, target)
    (loss["box"] + loss["cls"]).backward()
    g16 = raw[1].grad.view(3, 8, 4, 4)
    nz = g16.abs().sum(1).nonzero().tolist()
    assert nz == [[0, 1, 2]]  # anchor 0, row 1, col 2
    assert raw[0].grad is None and raw[2].grad is None  # other layers take no part in box/class terms
    # class gradient only on the box's class being pushed up
    cls_grad = g16[0, 5:, 1, 2]
    assert cls_grad[2] < 0 and cls_grad[0] > 0 and cls_grad[1] > 0

    # the exact encoding of the box gives zero box gradient
    raw = [r.detach().clone().requires_grad_(True) for r in raw]
    with torch.no_grad():
        v = raw[1].view(1, 3, 8, 4, 4)
        v[0, 0, 0, 1, 2] = float(np.log(0.5 / 0.5))  # centre x offset 40/16 - 2 = 0.5
        v[0, 0, 1, 1, 2] = float(np.log(0.5 / 0.5))  # centre y offset 24/16 - 1 = 0.5
        v[0, 0, 2, 1, 2] = 0.0  # w = anchor w
        v[0, 0, 3, 1, 2] = 0.0
    loss = yolov3_loss(raw, model, target)
    loss["box"].backward()
    assert raw[1].grad.abs().max() < 1e-6


def test_ignore_rule_and_negatives():
    model = _tiny(1, 64)
    # a 33x23 box (= anchor 2) centred at (28, 28): the positive is stride-8 cell (3, 3), anchor 2;
    # the zero-logit prediction of the next cell (3, 4), anchor 2 (centre (36, 28), 33x23) overlaps
    # it with IoU 25 * 23 / (2 * 33 * 23 - 25 * 23) = 0.61
    target = [{"boxes": torch.tensor([[11.5, 16.5, 44.5, 39.5]]), "labels": torch.tensor([0])}]
    raw = _raw_zeros(model)
    yolov3_loss(raw, model, target)["obj"].backward()
    g8 = raw[2].grad.view(3, 6, 8, 8)
    assert g8[2, 4, 3, 3] < 0  # the positive: objectness pushed up
    assert g8[2, 4, 3, 4] == 0  # overlapping prediction: ignored, no objectness gradient
    assert g8[0, 4, 0, 0] > 0  # far prediction: a negative, pushed down
    raw = _raw_zeros(model)
    yolov3_loss(raw, model, target, ignore_thresh=0.7)["obj"].backward()
    assert raw[2].grad.view(3, 6, 8, 8)[2, 4, 3, 4] > 0
    with pytest.raises(ValueError, match="one per YOLO layer"):
        yolov3_loss(raw[:2], model, target)
    with pytest.raises(ValueError, match="2 targets for a batch of 1"):
        yolov3_loss(raw, model, target * 2)


def test_letterbox_batch_maps_boxes_like_inference():
    img = np.zeros((50, 100, 3), np.uint8)
    t = {"boxes": np.array([[10, 5, 30, 25], [0, 0, 5, 5]], np.float32), "labels": np.array([1, 0]),
         "iscrowd": np.array([0, 1], np.uint8)}  # fmt: skip
    x, out = letterbox_batch([img], [t], 64, class_index=[7, 9])
    assert x.shape == (1, 3, 64, 64)
    # scale 0.64, pad_y (64 - 32) // 2 = 16; the crowd instance is dropped; labels mapped
    torch.testing.assert_close(out[0]["boxes"], torch.tensor([[6.4, 19.2, 19.2, 32.0]]))
    assert out[0]["labels"].tolist() == [9]


@pytest.mark.slow
def test_tiny_detector_learns_boxes():
    """Trained from scratch with this loss on a fixed set, the detector finds its boxes."""
    rng = np.random.default_rng(0)
    images, targets = [], []
    for _ in range(4):
        img = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
        w, h = (int(v) for v in rng.integers(16, 40, 2))
        x0, y0 = int(rng.integers(0, 64 - w)), int(rng.integers(0, 64 - h))
        img[y0 : y0 + h, x0 : x0 + w] = (40, 220, 200)
        images.append(img)
        targets.append({"boxes": np.array([[x0, y0, x0 + w, y0 + h]], np.float32), "labels": np.array([0])})
    model = init_head_biases(_tiny(1, 64, width=0.125)).train()
    x, t = letterbox_batch(images, targets, 64)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = None
    for _ in range(50):
        loss = yolov3_loss(model(x, decode=False), model, t)
        first = first if first is not None else float(loss["total"])
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
    assert float(loss["total"]) < 0.3 * first
    model.eval()
    with torch.no_grad():
        boxes, scores = model(x)
    ious = []
    for b in range(4):
        top = boxes[b, scores[b, :, 0].argmax()]
        gt = t[b]["boxes"][0]
        centre = (top[:2] + top[2:]) / 2
        assert (centre > gt[:2]).all() and (centre < gt[2:]).all(), (b, top, gt)  # found the object
        lt, rb = torch.maximum(top[:2], gt[:2]), torch.minimum(top[2:], gt[2:])
        inter = (rb - lt).clamp(min=0).prod()
        ious.append(float(inter / ((top[2:] - top[:2]).prod() + (gt[2:] - gt[:2]).prod() - inter)))
    assert np.mean(ious) > 0.5, ious


def _experiment(tmp_path, **model_over):
    from instaseg_ros.training.config import config_from_dict

    model = {"detector": "yolov3-tiny", "darknet_width": 0.125, "input_size": 64,
             "fcn": {"arch": "resnet18", "width": 0.25, "crop_size": 32}, **model_over}  # fmt: skip
    return config_from_dict(
        {
            "task": "yolo_detector",
            "seed": 0,
            "out_dir": str(tmp_path / "run"),
            "model": model,
            "data": {
                "train": {"kind": "synthetic", "num_images": 2, "seed": 1, "width": 96, "height": 72},
                "val": {"kind": "synthetic", "num_images": 1, "seed": 2, "width": 96, "height": 72},
                "augment": {"hflip": 0, "photometric": 0, "blur": 0, "noise": 0, "jpeg": 0, "scale_crop": 0},
                "batch_size": 2,
            },
            "optim": {
                "optimizer": "adam",
                "lr": 1e-3,
                "schedule": "constant",
                "warmup_iters": 0,
                "max_iters": 3,
            },
            "train": {
                "val_interval": 0,
                "log_interval": 1,
                "checkpoint_interval": 1000,
                "num_threads": 1,
                "select_metric": "bbox.AP",
            },  # fmt: skip
        }
    )


def test_detector_task_trains_through_trainer_and_writes_a_yolo_fcn_checkpoint(tmp_path):
    from instaseg_ros.models import build_segmenter
    from instaseg_ros.models.yolo_fcn.fcn import FcnConfig, build_fcn, save_fcn_checkpoint
    from instaseg_ros.training.tasks.yolo_detector import YoloDetectorTask
    from instaseg_ros.training.trainer import Trainer

    fcn_cfg = FcnConfig("resnet18", 0.25, 32)
    save_fcn_checkpoint(tmp_path / "fcn.pt", build_fcn(fcn_cfg), fcn_cfg)
    cfg = _experiment(tmp_path, fcn_weights=str(tmp_path / "fcn.pt"))
    task = YoloDetectorTask(cfg)
    assert task.model_cfg.detector_classes == ["person", "chair", "couch", "dining table", "toilet"]
    before = {k: v.clone() for k, v in task.module.state_dict().items()}
    Trainer(cfg, task, cfg.out_dir, progress=False).run()
    assert any(not torch.equal(before[k], v) for k, v in task.module.state_dict().items())
    best = tmp_path / "run" / "best.pth"
    assert best.is_file()
    # a complete yolo_fcn model: detector from training, FCN from fcn_weights; no allow_random flags
    seg = build_segmenter("yolo_fcn", weights=str(best))
    assert seg.class_names == task.model_cfg.detector_classes and seg.config.detector == "yolov3-tiny"
    img = np.zeros((72, 96, 3), np.uint8)
    assert seg.segment([img])[0].image_size == (72, 96)
    x = torch.rand(1, 3, 64, 64)
    task.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(seg.darknet(x)[1], task.module(x)[1])

    # without fcn_weights the checkpoint holds the detector only and the segmenter asks for an FCN
    cfg2 = _experiment(tmp_path / "b")
    task2 = YoloDetectorTask(cfg2)
    (tmp_path / "b").mkdir()
    task2.save_inference(tmp_path / "b" / "det.pth")
    with pytest.raises(ValueError, match="no FCN mask-head weights"):
        build_segmenter("yolo_fcn", weights=str(tmp_path / "b" / "det.pth"))
    seg = build_segmenter("yolo_fcn", weights=str(tmp_path / "b" / "det.pth"),
                          config={"fcn_weights": str(tmp_path / "fcn.pt")})  # fmt: skip
    assert len(seg.class_names) == 5
