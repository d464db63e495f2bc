"""SOLO training through the project's Trainer: falling loss, reloadable checkpoint, losses, CLI predict."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from instaseg_ros.models import build_segmenter
from instaseg_ros.models.solo import SoloConfig
from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.tasks.solo import SoloLossConfig, SoloTask, dice_loss, solo_collate, solo_loss
from instaseg_ros.training.trainer import Trainer

TINY = dict(backbone="resnet18", input_size=64, fpn_channels=32, head_channels=32, head_convs=1,
            mask_channels=16, mask_mid_channels=16, num_grids=[8, 6, 4, 3, 2])  # fmt: skip
NOAUG = dict(hflip=0, photometric=0, blur=0, noise=0, jpeg=0, scale_crop=0)


def experiment(tmp_path, iters: int = 6, **over):
    d = {
        "task": "solo",
        "seed": 0,
        "out_dir": str(tmp_path / "run"),
        "model": dict(TINY),
        "data": {
            "train": {"kind": "synthetic", "num_images": 2, "seed": 1, "width": 96, "height": 72},
            "val": {"kind": "synthetic", "num_images": 1, "seed": 2, "width": 96, "height": 72},
            "augment": NOAUG,
            "batch_size": 2,
        },
        "optim": {
            "optimizer": "adamw",
            "lr": 2e-3,
            "schedule": "constant",
            "warmup_iters": 0,
            "max_iters": iters,
        },
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 1000, "num_threads": 2},
    }
    d.update(over)
    return config_from_dict(d)


def test_dice_loss_values():
    t = torch.zeros(2, 4, 4)
    t[:, :2] = 1
    assert dice_loss(t.clone(), t).tolist() == pytest.approx([0.0, 0.0], abs=1e-3)
    assert dice_loss(1 - t, t).tolist() == pytest.approx([1.0, 1.0])


def test_loss_terms_and_gradients():
    torch.manual_seed(0)
    from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset

    cfg = SoloConfig(**TINY)
    from instaseg_ros.models.solo import SoloV2

    model = SoloV2(cfg)
    ds = SyntheticDataset(2, seed=1, config=SynthConfig(width=96, height=72))
    batch = solo_collate([ds[0], ds[1]], cfg)
    assert batch["images"].shape == (2, 3, 64, 64) and batch["cate"].shape == (2, cfg.num_cells)
    assert sum(len(p) for p in batch["pos"]) > 0
    assert all(m.shape[-2:] == (16, 16) for m in batch["masks"])
    out = solo_loss(model(batch["images"]), batch, cfg, SoloLossConfig())
    out["total"].backward()
    assert torch.isfinite(out["total"]) and float(out["mask"]) > 0 and float(out["cate"]) > 0
    assert model.head.kernel_pred.weight.grad.abs().sum() > 0
    assert model.head.cate_pred.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown SOLO loss keys \\['focal'\\]"):
        SoloLossConfig.from_dict({"focal": 1})


@pytest.mark.slow
def test_train_loss_falls_and_checkpoint_reloads(tmp_path):
    cfg = experiment(tmp_path)
    task = SoloTask(cfg)
    res = Trainer(cfg, task, cfg.out_dir, progress=False).run()
    assert res.iterations == 6
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    loss = [float(r["loss_total"]) for r in rows]
    assert len(loss) == 6 and np.mean(loss[-2:]) < 0.8 * np.mean(loss[:2]), loss
    assert "validation" in res.report and "segm" in res.report["validation"]
    # the inference checkpoint rebuilds the same network: identical raw outputs and instances
    seg = build_segmenter("solo", weights=str(tmp_path / "run" / "final.pth"))
    live = task.segmenter()
    img = np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)
    x, _ = seg.preprocess([img])
    a, b = live.forward_raw(x), seg.forward_raw(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ia, ib = live.segment([img], seg.params)[0], seg.segment([img])[0]
    assert np.array_equal(ia.masks, ib.masks) and np.array_equal(ia.scores, ib.scores)


def test_finetune_with_new_class_count(tmp_path):
    src = experiment(tmp_path, iters=1)
    Trainer(src, SoloTask(src), src.out_dir, progress=False).run()
    cfg = experiment(tmp_path / "ft", iters=1, init={"weights": str(tmp_path / "run" / "final.pth")})
    cfg.model["class_names"] = ["person", "chair"]
    task = SoloTask(cfg)
    assert task.module.head.cate_pred.out_channels == 2
    old = torch.load(tmp_path / "run" / "final.pth", weights_only=True)["state_dict"]
    assert torch.equal(task.module.head.kernel_pred.weight, old["head.kernel_pred.weight"])
    cfg.init.reinit_heads = "never"
    with pytest.raises(ValueError, match="checkpoint has 5 classes"):
        SoloTask(cfg)


def test_predict_cli_runs_solo(tmp_path):
    import cv2

    from instaseg_ros.cli import main
    from instaseg_ros.models.solo import SoloV2, save_checkpoint

    torch.manual_seed(0)
    cfg = SoloConfig(**TINY)
    ckpt = tmp_path / "solo.pth"
    save_checkpoint(ckpt, SoloV2(cfg), cfg)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8))
    out = tmp_path / "out"
    argv = ["predict", "--model", "solo", "--weights", str(ckpt), "--out", str(out), str(img)]
    rc = main(argv)
    assert rc == 0, f"instaseg {' '.join(argv)} failed"
    assert any(out.iterdir()), "predict wrote nothing"
