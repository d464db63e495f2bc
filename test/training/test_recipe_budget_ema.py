"""Issue 24 recipe pieces in the trainer: the wall-clock budget (stop + schedule by time) and the EMA
of weights (decay ramp, used for checkpoints, resumable)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_tasks import MODELS, KeepingStates
from torch import nn

from instaseg_ros.training.config import ConfigError, OptimConfig, config_from_dict
from instaseg_ros.training.ema import ModelEMA
from instaseg_ros.training.tasks import build_task
from instaseg_ros.training.trainer import Trainer, lr_factor
from instaseg_ros.weights.yolact_checkpoint import read_checkpoint


def experiment(out: Path, optim: dict[str, Any], iters: int = 4) -> dict[str, Any]:
    return {
        "task": "yolact", "seed": 5, "out_dir": str(out), "model": MODELS["yolact"],
        "data": {"train": {"kind": "synthetic", "num_images": 3, "seed": 1, "width": 96, "height": 72},
                 "val": None, "augment": {"photometric": 0.0, "blur": 0.0, "noise": 0.0, "jpeg": 0.0},
                 "batch_size": 1},
        "optim": {"optimizer": "adamw", "lr": 1e-3, "schedule": "cosine", "warmup_iters": 2,
                  "max_iters": iters, "min_lr_factor": 0.01, **optim},
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 2, "num_threads": 1,
                  "select_metric": "loss"},
    }  # fmt: skip


def test_lr_factor_follows_the_larger_of_iteration_and_time_progress():
    cfg = OptimConfig(max_iters=1000, warmup_iters=10, min_lr_factor=0.01)
    assert lr_factor(500, cfg) == pytest.approx(0.505)  # half way by iterations
    assert lr_factor(500, cfg, time_fraction=0.1) == pytest.approx(0.505)  # iterations ahead
    assert lr_factor(100, cfg, time_fraction=0.5) == pytest.approx(0.505)  # time ahead
    assert lr_factor(100, cfg, time_fraction=1.0) == pytest.approx(0.01)  # budget spent: annealed
    assert lr_factor(100, cfg, time_fraction=3.0) == pytest.approx(0.01)
    assert lr_factor(0, cfg, time_fraction=0.0) == pytest.approx(0.01)  # warm-up still by iterations
    step = OptimConfig(schedule="step", steps=[600, 900], gamma=0.1, max_iters=1000)
    assert lr_factor(100, step, time_fraction=0.7) == pytest.approx(0.1)


def test_budget_and_ema_keys_are_checked():
    base = experiment(Path("x"), {})
    for bad, word in (({"time_budget_min": -1}, "time_budget_min"), ({"ema_decay": 1.0}, "ema_decay"),
                      ({"ema_tau": 0}, "ema_tau")):
        cfg = experiment(Path("x"), bad)
        with pytest.raises(ConfigError, match=word):
            config_from_dict(cfg)
    assert config_from_dict(base).optim.time_budget_min == 0.0


def test_ema_decay_ramps_and_averages_floating_tensors_only():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(m, decay=0.9, tau=2.0)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    d1 = 0.9 * (1 - math.exp(-1 / 2.0))
    assert ema.current_decay() == pytest.approx(d1)
    with torch.no_grad():
        m[0].weight.add_(1.0)
    m[1].num_batches_tracked += 7
    ema.update(m)
    want = d1 * start["0.weight"] + (1 - d1) * m.state_dict()["0.weight"]
    torch.testing.assert_close(ema.state["0.weight"], want)
    assert int(ema.state["1.num_batches_tracked"]) == 7
    assert ema.current_decay() == pytest.approx(0.9 * (1 - math.exp(-2 / 2.0)))
    raw = {k: v.clone() for k, v in m.state_dict().items()}
    with ema.applied(m):
        torch.testing.assert_close(m.state_dict()["0.weight"], want)
    for k, v in m.state_dict().items():
        assert torch.equal(v, raw[k]), k
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(m, decay=1.5)


@pytest.mark.slow
def test_time_budget_stops_the_run_annealed_and_records_wall_and_cpu_seconds(tmp_path):
    torch.set_num_threads(1)
    budget_min = 0.04  # 2.4 s
    cfg = config_from_dict(experiment(tmp_path / "run", {"time_budget_min": budget_min}, iters=100000))
    res = Trainer(cfg, build_task(cfg), cfg.out_dir, progress=False).run()
    assert res.stopped_by == "time_budget"
    assert 1 <= res.iterations < 100000
    assert res.wall_s >= 60 * budget_min
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["stopped_by"] == "time_budget" and rep["iterations"] == res.iterations
    assert rep["train_wall_s"] >= 60 * budget_min and 0 < rep["train_cpu_s"]
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    head = rows[0].split(",")
    last = dict(zip(head, rows[-1].split(","), strict=True))
    # the schedule ended annealed although the iterations are far from max_iters
    assert float(last["lr"]) == pytest.approx(1e-3 * 0.01, rel=1e-6)
    assert int(last["iteration"]) == res.iterations
    assert (tmp_path / "run" / "final.pth").is_file()


@pytest.mark.slow
def test_ema_weights_are_checkpointed_and_resume_like_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    optim = {"ema": True, "ema_decay": 0.9, "ema_tau": 1.0}
    cfg = config_from_dict(experiment(tmp_path / "full", optim))
    KeepingStates(cfg, build_task(cfg), cfg.out_dir, progress=False).run()
    state = torch.load(tmp_path / "full" / "last_state.pth", weights_only=True)
    assert state["ema"]["updates"] == 4
    final, _ = read_checkpoint(tmp_path / "full" / "final.pth")
    raw, _ = read_checkpoint(tmp_path / "full" / "final_raw.pth")
    differs = 0
    for k, v in final.items():
        torch.testing.assert_close(v, state["ema"]["state"][k], msg=lambda m, k=k: f"final.pth {k}: {m}")
        torch.testing.assert_close(raw[k], state["model"][k], msg=lambda m, k=k: f"final_raw.pth {k}: {m}")
        differs += int(v.is_floating_point() and not torch.equal(v, raw[k]))
    assert differs, "the EMA weights equal the raw weights"
    # a fresh task resuming from the state after 2 iterations ends with the same EMA
    assert torch.load(tmp_path / "full" / "state_2.pth", weights_only=True)["ema"]["updates"] == 2
    cfg3 = config_from_dict(experiment(tmp_path / "resumed", optim))
    Trainer(cfg3, build_task(cfg3), cfg3.out_dir, resume=tmp_path / "full" / "state_2.pth",
            progress=False).run()
    resumed = torch.load(tmp_path / "resumed" / "last_state.pth", weights_only=True)
    for k, v in state["ema"]["state"].items():
        torch.testing.assert_close(resumed["ema"]["state"][k], v, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, k=k: f"{k}: {m}")
