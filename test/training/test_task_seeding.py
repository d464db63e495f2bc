"""Every training task is reproducible from the experiment seed: two runs with one seed see the same
first batch (augmentation included), another seed another batch.

The SOLO and Mask R-CNN tasks used to build their augmentation without the seed (random pipeline):
this is the test that catches such drift for every family at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from tiny_tasks import MODELS

from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.tasks import build_task
from instaseg_ros.training.trainer import Trainer

# every random augmentation on: a seeded pipeline is the only way two runs can agree
AUGMENT = {"hflip": 0.5, "photometric": 1.0, "brightness": 0.3, "contrast": 0.3, "saturation": 0.3,
           "hue": 0.05, "noise": 0.5, "blur": 0.0, "jpeg": 0.0, "scale_crop": 0.5}


def first_batch(task_name: str, seed: int, out) -> Any:
    """The first batch the trainer would train on for ``task_name`` with experiment seed ``seed``."""
    cfg = config_from_dict({
        "task": task_name, "seed": seed, "out_dir": str(out), "model": MODELS[task_name],
        # one image: the sampler order cannot differ, only the augmentation can
        "data": {"train": {"kind": "synthetic", "num_images": 1, "seed": 1, "width": 96, "height": 72},
                 "augment": AUGMENT, "batch_size": 1},
        "optim": {"max_iters": 1},
    })  # fmt: skip
    task = build_task(cfg)
    return next(iter(Trainer(cfg, task, out, progress=False)._loader(task.train_dataset(), 0)))  # noqa: SLF001


def tensors(x: Any) -> list[torch.Tensor]:
    """Every tensor / array in a (nested) batch, in a fixed order, as tensors."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, np.ndarray):
        return [torch.from_numpy(np.ascontiguousarray(x))]
    if isinstance(x, dict):
        return [t for k in sorted(x) for t in tensors(x[k])]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in tensors(v)]
    return []


def same(a: Any, b: Any) -> bool:
    ta, tb = tensors(a), tensors(b)
    assert ta, "the batch holds no tensors"
    return len(ta) == len(tb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb))


@pytest.mark.parametrize("task_name", sorted(MODELS))
def test_one_seed_gives_identical_first_batches_and_another_seed_another(task_name, tmp_path):
    torch.set_num_threads(1)
    a = first_batch(task_name, 7, tmp_path / "a")
    b = first_batch(task_name, 7, tmp_path / "b")
    assert same(a, b), f"{task_name}: two runs with seed 7 trained on different first batches"
    c = first_batch(task_name, 8, tmp_path / "c")
    assert not same(a, c), f"{task_name}: seeds 7 and 8 gave the same first batch (augmentation not seeded)"
