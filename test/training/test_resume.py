"""Resuming: the state file loads with ``weights_only=True`` and a run resumed after k iterations ends
with the weights of an uninterrupted run; a pickle that would run code is refused, for ``--resume`` and
for fine-tuning weights, and its code never runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tiny_tasks import MODELS, KeepingStates

from instaseg_ros.cli import main
from instaseg_ros.training.config import config_from_dict
from instaseg_ros.training.tasks import build_task
from instaseg_ros.training.trainer import Trainer

# random augmentations on, so the pipeline's RNG state matters
AUGMENT = {"hflip": 0.5, "photometric": 0.8, "noise": 0.3, "blur": 0.0, "jpeg": 0.0, "scale_crop": 0.5}


def experiment(task: str, out: Path, iters: int = 5) -> dict[str, Any]:
    return {
        "task": task, "seed": 3, "out_dir": str(out), "model": MODELS[task],
        # 3 images, batch 1: the interruption falls inside an epoch and the resumed run crosses one
        "data": {"train": {"kind": "synthetic", "num_images": 3, "seed": 1, "width": 96, "height": 72},
                 "val": None, "augment": AUGMENT, "batch_size": 1},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine", "warmup_iters": 2,
                  "max_iters": iters},
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 2, "num_threads": 1,
                  "select_metric": "loss"},
    }  # fmt: skip


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "last_state.pth", map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("task_name", sorted(MODELS))
def test_resume_after_k_iterations_gives_the_weights_of_an_uninterrupted_run(task_name, tmp_path):
    torch.set_num_threads(1)
    cfg = config_from_dict(experiment(task_name, tmp_path / "full"))
    KeepingStates(cfg, build_task(cfg), cfg.out_dir, progress=False).run()
    state2 = torch.load(tmp_path / "full" / "state_2.pth", weights_only=True)  # plain tensors and values
    assert state2["iteration"] == 2 and state2["batches_in_epoch"] == 2
    # a new process would start from scratch: a fresh task, another folder, the state after 2 iterations
    cfg2 = config_from_dict(experiment(task_name, tmp_path / "resumed"))
    res = Trainer(cfg2, build_task(cfg2), cfg2.out_dir, resume=tmp_path / "full" / "state_2.pth",
                  progress=False).run()
    assert res.iterations == 5
    full, resumed = final_weights(tmp_path / "full"), final_weights(tmp_path / "resumed")
    assert full.keys() == resumed.keys()
    moved = [k for k in full if full[k].is_floating_point() and not torch.equal(full[k], state2["model"][k])]
    assert moved, "training did not change the weights after the interruption"
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


class _RunsCode:
    """Unpickling calls ``open(marker, "w")``: the file appears only if the pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil(path: Path, marker: Path) -> Path:
    torch.save({"model": {"w": torch.zeros(1)}, "iteration": 1, "payload": _RunsCode(marker)}, path)
    return path


def _write_config(task: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{task}.yaml"
    path.write_text(yaml.safe_dump(experiment(task, tmp_path / "run", iters=1)))
    return path


def _one_error_line(err: str, name: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("instaseg train:")]
    assert len(lines) == 1 and name in lines[0], err
    assert "Traceback" not in err, err
    return lines[0]


def test_resume_refuses_a_pickle_that_runs_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "last_state.pth", marker)
    rc = main(["train", "--config", str(_write_config("fcn", tmp_path)), "--resume", str(evil),
               "--no-progress", "--device", "cpu"])
    line = _one_error_line(capsys.readouterr().err, str(evil))
    assert rc == 2 and "refused" in line
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize("task_name", sorted(MODELS))
def test_finetune_weights_refuse_a_pickle_that_runs_code(task_name, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "init.pth", marker)
    rc = main(["train", "--config", str(_write_config(task_name, tmp_path)), "--weights", str(evil),
               "--no-progress", "--device", "cpu"])
    _one_error_line(capsys.readouterr().err, str(evil))
    assert rc == 2
    assert not marker.exists(), "the pickle's code ran"
