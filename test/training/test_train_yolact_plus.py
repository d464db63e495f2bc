"""YOLACT-SE++ trains: DCNv2 backbone + mask re-scoring head, the mask-IoU loss falls with the rest."""

from __future__ import annotations

import torch

from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.losses import _maskiou_sample
from instaseg_ros.training.tasks import build_task

MODEL = {"backbone": "resnet50", "input_size": 128, "fpn_channels": 16, "num_prototypes": 4,
         "attention": True, "attention_reduction": 4, "dcn_layers": [0, 2, 2, 1], "dcn_interval": 1,
         "mask_rescoring": True, "maskiou_channels": [8, 16]}  # fmt: skip


def test_a_tiny_yolact_se_plus_run_lowers_every_loss_term_including_mask_iou(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = config_from_dict({
        "task": "yolact", "seed": 0, "out_dir": str(tmp_path), "model": MODEL,
        "data": {"train": {"kind": "synthetic", "num_images": 2, "seed": 5, "width": 128, "height": 96},
                 "batch_size": 2},
        "optim": {"max_iters": 1},
    })  # fmt: skip
    task = build_task(cfg)
    module = task.module.train()
    assert any(".conv_offset_mask." in k for k in module.state_dict())
    batch = task.collate([task.train_dataset()[i] for i in range(2)])
    opt = torch.optim.Adam(module.parameters(), lr=2e-3)
    history = []
    for _ in range(12):
        terms = task.loss(module, batch, torch.device("cpu"))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()})
    assert history[0]["maskiou"] > 0
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    assert min(h["maskiou"] for h in history[-3:]) < history[0]["maskiou"]
    grads = [p.grad for n, p in module.named_parameters() if "conv_offset_mask" in n]
    assert grads and all(g is not None for g in grads)  # the deformable offsets learn


def test_mask_iou_targets_are_the_iou_of_the_binarised_prediction():
    proto = torch.zeros(8, 8, 1)
    proto[2:6, 2:6, 0] = 10.0  # a 4x4 square where the prediction is ~1
    coef = torch.ones(2, 1)
    gt = torch.zeros(2, 8, 8)
    gt[0, 2:6, 2:6] = 1  # identical: IoU 1
    gt[1, 2:6, 2:4] = 1  # half of it: IoU 0.5
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    masks, iou_t, labels = _maskiou_sample(proto, coef, gt, boxes, torch.tensor([0, 1]), discard_area=4)
    torch.testing.assert_close(iou_t, torch.tensor([1.0, 0.5]))
    assert masks.shape == (2, 8, 8) and labels.tolist() == [0, 1]
    _, kept, _ = _maskiou_sample(proto, coef, gt, boxes, torch.tensor([0, 1]), discard_area=10)
    assert len(kept) == 1  # the 8-pixel ground truth is at most discard_area: no IoU target
