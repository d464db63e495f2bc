"""Issue 24 recipe pieces in the YOLACT task's data path: mosaic / copy-paste on the real synthetic
training set, and multi-scale input sizes per batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_tasks import MODELS

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.training.config import ConfigError, config_from_dict
from instaseg_ros.training.tasks import build_task
from instaseg_ros.training.trainer import Trainer


def experiment(out: Path, augment: dict[str, Any], multi_scale: list[int] | None = None,
               task: str = "yolact") -> dict[str, Any]:
    return {
        "task": task, "seed": 2, "out_dir": str(out), "model": MODELS[task],
        "data": {"train": {"kind": "synthetic", "num_images": 6, "seed": 1, "width": 96, "height": 72},
                 "val": None, "augment": {"photometric": 0.0, "blur": 0.0, "noise": 0.0, "jpeg": 0.0,
                                          **augment},
                 "batch_size": 2, "multi_scale": multi_scale or []},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "warmup_iters": 1, "max_iters": 4},
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 2, "num_threads": 1,
                  "select_metric": "loss"},
    }  # fmt: skip


def test_mosaic_and_copy_paste_samples_of_the_synthetic_set_stay_consistent(tmp_path):
    cfg = config_from_dict(experiment(tmp_path, {"mosaic": 1.0, "copy_paste": 1.0}))
    task = build_task(cfg)
    ds = task.train_dataset()
    plain = task._train_ds  # noqa: SLF001 - the per-image pipeline underneath
    assert ds is not plain and len(ds) == len(plain) and "mix" in task.rngs
    n_classes = len(task.model_cfg.class_names)
    more = 0
    for i in range(len(ds)):
        img, t = ds[i]
        assert img.shape == (64, 64, 3)
        n = len(t["labels"])
        assert t["masks"].shape == (n, 64, 64) and len(t["iscrowd"]) == n
        np.testing.assert_allclose(t["boxes"], masks_to_boxes(t["masks"].astype(bool)))
        assert (t["masks"].reshape(n, -1).sum(1) >= 1).all()
        assert ((t["labels"] >= 0) & (t["labels"] < n_classes)).all()
        more += int(n > len(plain[i][1]["labels"]))
    assert more >= 1, "mosaic + copy-paste never added instances"
    batch = task.collate([ds[0], ds[1]])
    assert batch["images"].shape == (2, 3, 64, 64)


def test_multi_scale_draws_sizes_from_the_list_and_trains(tmp_path):
    cfg = config_from_dict(experiment(tmp_path / "run", {"mosaic": 0.5}, multi_scale=[32, 64, 96]))
    task = build_task(cfg)
    assert task.augment_size() == (96, 96)
    sides = [task.input_side_for(i) for i in range(40)]
    assert set(sides) == {32, 64, 96} and sides == [task.input_side_for(i) for i in range(40)]
    seen: list[tuple[int, int]] = []
    forward = task._forward  # noqa: SLF001

    def spy(module, x):
        out = forward(module, x)
        seen.append((x.shape[-1], out["priors"].shape[0]))
        assert out["loc"].shape[1] == out["priors"].shape[0]  # the priors of this size
        return out

    task._forward = spy  # noqa: SLF001
    torch.set_num_threads(1)
    res = Trainer(cfg, task, cfg.out_dir, progress=False).run()
    assert res.iterations == 4
    assert [s for s, _ in seen] == [task.input_side_for(i) for i in range(4)]
    assert (tmp_path / "run" / "final.pth").is_file()


def test_multi_scale_and_mix_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="multi_scale"):
        config_from_dict(experiment(tmp_path, {}, multi_scale=[250]))
    with pytest.raises(ConfigError, match="fixed input size"):
        build_task(config_from_dict(experiment(tmp_path, {}, multi_scale=[64], task="fcn")))
    with pytest.raises(ConfigError, match="mosaic_scale"):
        build_task(config_from_dict(experiment(tmp_path, {"mosaic": 0.5, "mosaic_scale": [0.5, 3.0]}))
                   ).train_dataset()
