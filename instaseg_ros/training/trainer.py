"""The generic training loop shared by every model family.

A :class:`TrainTask` supplies the model, the datasets, the loss of a batch, validation and
checkpoint writing; :class:`Trainer` does the rest:

* optimiser (SGD/Adam/AdamW) with linear warm-up and cosine / step / constant decay per iteration,
* an optional wall-clock budget (``optim.time_budget_min``): the run stops there and the schedule
  follows ``max(iteration fraction, time fraction)``, so a short budget still ends annealed,
* an optional EMA of the weights (``optim.ema``) for validation and checkpoints,
* mixed precision on CUDA (``torch.autocast`` + ``GradScaler``), gradient clipping,
* DDP when launched by ``torchrun`` (``WORLD_SIZE`` > 1): process group, ``DistributedSampler``,
  only rank 0 validates and writes,
* tqdm progress (loss, images/s), CSV + TensorBoard scalars, a loss-curve PNG,
* periodic validation (COCO box/mask AP via :mod:`instaseg_ros.evaluation.coco_eval`),
  best-checkpoint selection, resumable state (``last_state.pth``: weights, optimiser, schedule,
  scaler, position in the epoch and every random state, as tensors and plain values, so it loads
  with ``weights_only=True`` and a resumed run ends with the weights of an uninterrupted one when
  ``data.num_workers`` is 0; with workers their augmentation restarts within the interrupted epoch),
* a final validation report (``report.json`` + ``report.md``) of the best checkpoint, with the
  training's wall and process CPU seconds and what stopped it (``max_iters`` or ``time_budget``).

Output folder::

    config.yaml  metrics.csv  val.csv  tb/  loss_curve.png  last_state.pth
    best.pth  final.pth  report.json  report.md  data_report.json (dataset problems, if any)
    final_raw.pth (with ``optim.ema``: the last raw weights; final.pth holds the average)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.training.config import ExperimentConfig, OptimConfig
from instaseg_ros.training.report import (
    plain,
    plot_curves,
    read_csv,
    report_markdown,
    tensorboard_writer,
    write_csv,
    write_yaml,
)

log = logging.getLogger(__name__)


class TrainTask(ABC):
    """What a model family provides to :class:`Trainer`.

    Attributes:
        module: the trainable ``nn.Module`` (its state dict is what ``last_state.pth`` stores).
    """

    module: nn.Module

    @abstractmethod
    def train_dataset(self) -> Any:
        """Map-style dataset of ``(image, target)`` samples (augmented)."""

    @abstractmethod
    def val_dataset(self) -> Any | None:
        """Validation dataset (no augmentation) with ``coco_gt()``, or None."""

    @abstractmethod
    def collate(self, samples: list) -> Any:
        """List of samples -> one batch (CPU tensors)."""

    @abstractmethod
    def loss(self, module: nn.Module, batch: Any, device: torch.device) -> dict[str, Tensor]:
        """Forward ``batch`` through ``module`` (maybe DDP-wrapped) -> loss terms incl. ``total``."""

    @abstractmethod
    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        """COCO metrics of the current weights on ``dataset`` (``evaluate_coco`` layout)."""

    @abstractmethod
    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        """Write a checkpoint that ``models.loading.load_model(family, path)`` loads."""

    def load_inference(self, path: Path) -> None:
        """Load weights written by :meth:`save_inference` into ``module`` (for the final report)."""
        raise NotImplementedError

    def data_reports(self) -> dict[str, Any]:
        """Problems found in the datasets (bad annotations, unreadable images), per split."""
        return {}

    def rng_state(self) -> dict[str, Any]:
        """The task's own random states (tensors and plain Python values) for the resumable state."""
        return {}

    def set_rng_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook, default: nothing
        """Restore what :meth:`rng_state` returned."""


def lr_factor(it: int, cfg: OptimConfig, time_fraction: float = 0.0) -> float:
    """Multiplier of ``cfg.lr`` at iteration ``it`` (warm-up x decay).

    The decay follows the progress ``t = max(it / max_iters, time_fraction)`` (``time_fraction``:
    elapsed / ``optim.time_budget_min``, 0 without a budget); "step" milestones are iterations,
    scaled by ``t * max_iters / it`` when time runs ahead of iterations.
    """
    warm = 1.0
    if cfg.warmup_iters > 0 and it < cfg.warmup_iters:
        warm = cfg.warmup_factor + (1.0 - cfg.warmup_factor) * it / cfg.warmup_iters
    t = min(1.0, max(min(it, cfg.max_iters) / cfg.max_iters, float(time_fraction)))
    if cfg.schedule == "cosine":
        decay = cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))
    elif cfg.schedule == "step":
        pos = max(it, t * cfg.max_iters)
        decay = cfg.gamma ** sum(pos >= s for s in cfg.steps)
    else:
        decay = 1.0
    return warm * decay


def build_optimizer(module: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD / Adam / AdamW; no weight decay on biases and normalisation parameters; per-prefix
    learning-rate multipliers from ``cfg.lr_mult``."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        prefixes = [k for k in cfg.lr_mult if name.startswith(k)]
        mult = float(cfg.lr_mult[max(prefixes, key=len)]) if prefixes else 1.0
        groups.setdefault((mult, p.dim() > 1), []).append(p)
    params = [
        {"params": ps, "lr": cfg.lr * mult, "weight_decay": cfg.weight_decay if decay else 0.0}
        for (mult, decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.AdamW(params, lr=cfg.lr)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def global_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU, CUDA) random states as tensors and plain Python values, so a
    training state loads with ``torch.load(weights_only=True)``."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class DistInfo:
    """Distributed context (world size 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> tuple[DistInfo, torch.device]:
    """Initialise ``torch.distributed`` when launched by torchrun (``WORLD_SIZE`` > 1).

    Returns the context and the device of this process (``cuda:LOCAL_RANK`` on GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), torch.device(device)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, local, world), torch.device(f"cuda:{local}" if use_cuda else "cpu")


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns."""

    out_dir: Path
    iterations: int
    best_metric: float
    best_iteration: int
    history: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stopped_by: str = "max_iters"


class Trainer:
    """Runs ``cfg`` on ``task``; see the module docstring.

    Args:
        cfg: the experiment config.
        task: the family task.
        out_dir: output folder (created).
        device: "cpu", "cuda", "cuda:1" (torchrun picks ``cuda:LOCAL_RANK``).
        resume: a ``last_state.pth`` to continue from.
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        task: TrainTask,
        out_dir: str | Path,
        device: str = "cpu",
        resume: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.task = task
        self.out = Path(out_dir)
        self.dist, self.device = init_distributed(device)
        self.resume = Path(resume) if resume else None
        self.progress = progress and self.dist.main
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)

    # ------------------------------------------------------------------ helpers
    def _loader(self, dataset: Any, epoch: int, skip_batches: int = 0) -> torch.utils.data.DataLoader:
        """Batches of ``epoch`` (a permutation drawn from ``(seed, epoch)``), the first
        ``skip_batches`` left out (a run resumed within an epoch continues where it stopped).

        The loader draws from its own generator, never from torch's global RNG, so a resumed run
        and an uninterrupted one consume the global RNG identically.
        """
        from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

        bs = self.cfg.data.batch_size
        if self.dist.world_size > 1:
            sampler = DistributedSampler(dataset, shuffle=True, seed=self.cfg.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
            sampler = RandomSampler(dataset, generator=g)
        drop_last = len(dataset) // self.dist.world_size >= bs
        order = list(sampler)[skip_batches * bs:]
        return DataLoader(
            dataset, batch_size=bs, sampler=order, collate_fn=self.task.collate,
            num_workers=self.cfg.data.num_workers, drop_last=drop_last,
            persistent_workers=False, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch + 1),
        )

    def _metric(self, metrics: dict[str, Any], mean_loss: float) -> float:
        sel = self.cfg.train.select_metric
        if sel == "loss":
            return -mean_loss
        kind, key = sel.split(".")
        return float(metrics.get(kind, {}).get(key, 0.0))

    # ------------------------------------------------------------------ main loop
    def run(self) -> TrainResult:
        """Train for ``optim.max_iters`` iterations; returns the outcome (rank 0 has the report)."""
        cfg, task, dev, main = self.cfg, self.task, self.device, self.dist.main
        seed_everything(cfg.seed + self.dist.rank)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_yaml(self.out / "config.yaml", cfg.to_dict())
        module = task.module.to(dev)
        opt = build_optimizer(module, cfg.optim)
        budget_s = 60.0 * cfg.optim.time_budget_min
        clock = {"t0": time.perf_counter(), "c0": time.process_time(), "wall": 0.0, "cpu": 0.0}

        def elapsed() -> float:  # wall seconds of training so far (earlier sessions of a resumed run too)
            return clock["wall"] + time.perf_counter() - clock["t0"]

        def time_fraction() -> float:
            return elapsed() / budget_s if budget_s > 0 else 0.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(i, cfg.optim, time_fraction()))
        ema = None
        if cfg.optim.ema:
            from instaseg_ros.training.ema import ModelEMA

            ema = ModelEMA(module, cfg.optim.ema_decay, cfg.optim.ema_tau)
        self._ema = ema
        use_amp = bool(cfg.train.amp and dev.type == "cuda")
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        start, best, best_it, history = 0, -math.inf, -1, []
        epoch, done_in_epoch, running = 0, 0, {}
        state = self._load_state() if self.resume is not None else None
        if state is not None:
            module.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start, best, best_it = int(state["iteration"]), float(state["best"]), int(state["best_iteration"])
            history = list(state.get("history", []))
            epoch, done_in_epoch = int(state.get("epoch", 0)), int(state.get("batches_in_epoch", 0))
            running = dict(state.get("running", {}))
            clock["wall"], clock["cpu"] = float(state.get("wall_s", 0.0)), float(state.get("cpu_s", 0.0))
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            elif ema is not None:  # a state written without EMA: start the average from its weights
                ema = self._ema = type(ema)(module, cfg.optim.ema_decay, cfg.optim.ema_tau, updates=start)
            log.info("resumed from %s at iteration %d", self.resume, start)
        model: nn.Module = module
        if self.dist.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                module, device_ids=[dev.index] if dev.type == "cuda" else None, find_unused_parameters=True
            )
        train_ds = task.train_dataset()
        val_ds = task.val_dataset() if main else None
        if len(train_ds) == 0:
            raise ValueError("the training set is empty (see data_report.json for skipped entries)")
        if state is not None and "rng" in state:  # after the datasets exist: augmentation RNGs too
            set_global_rng_state(state["rng"]["global"])
            task.set_rng_state(state["rng"]["task"])
        elif state is not None:  # a state written before the RNG states were stored
            torch.set_rng_state(state["torch_rng"])
        writer = tensorboard_writer(self.out / "tb") if main else None
        csv_rows: list[dict[str, Any]] = []
        if main and start:  # rows logged after the saved state (an interrupted run) are dropped
            csv_rows = [r for r in read_csv(self.out / "metrics.csv") if r["iteration"] <= start]
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.optim.max_iters, initial=start, desc=f"train {cfg.task}", dynamic_ncols=True)
        it = start
        t_last, n_img = time.perf_counter(), 0
        stopped_by = "max_iters"
        clock["t0"], clock["c0"] = time.perf_counter(), time.process_time()
        module.train()
        while it < cfg.optim.max_iters and stopped_by == "max_iters":
            for batch in self._loader(train_ds, epoch, done_in_epoch):
                if it >= cfg.optim.max_iters or stopped_by != "max_iters":
                    break
                if hasattr(task, "set_iteration"):  # per-batch choices (multi-scale input size)
                    task.set_iteration(it)
                done_in_epoch += 1
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                    losses = task.loss(model, batch, dev)
                total = losses["total"]
                opt.zero_grad(set_to_none=True)
                if not torch.isfinite(total):
                    log.warning("iteration %d: non-finite loss %s, step skipped", it, float(total))
                    sched.step()
                    it += 1
                    if budget_s > 0 and self._out_of_time(elapsed() >= budget_s):
                        stopped_by = "time_budget"
                    continue
                scaler.scale(total).backward()
                scaler.unscale_(opt)
                gnorm = (
                    float(nn.utils.clip_grad_norm_(module.parameters(), cfg.optim.grad_clip))
                    if cfg.optim.grad_clip > 0 else float("nan")
                )
                scaler.step(opt)
                scaler.update()
                if ema is not None:
                    ema.update(module)
                it += 1
                if budget_s > 0 and self._out_of_time(elapsed() >= budget_s):
                    stopped_by = "time_budget"
                sched.step()
                last = it >= cfg.optim.max_iters or stopped_by != "max_iters"
                n_img += _batch_size(batch) * self.dist.world_size
                for k, v in losses.items():
                    fv = float(v.detach())
                    running[k] = 0.9 * running.get(k, fv) + 0.1 * fv
                if main and (it % cfg.train.log_interval == 0 or last):
                    dt = time.perf_counter() - t_last
                    rate = n_img / max(dt, 1e-9)
                    row = {"iteration": it, "lr": opt.param_groups[0]["lr"], "grad_norm": gnorm,
                           "images_per_s": rate}
                    row.update({f"loss_{k}": float(v.detach()) for k, v in losses.items()})
                    csv_rows.append(row)
                    write_csv(self.out / "metrics.csv", csv_rows)
                    if writer is not None:
                        for k, v in row.items():
                            if k != "iteration":
                                writer.add_scalar(f"train/{k}", v, it)
                    t_last, n_img = time.perf_counter(), 0
                    if bar is not None:
                        bar.set_postfix(loss=f"{running['total']:.3f}", img_s=f"{rate:.1f}")
                if bar is not None:
                    bar.update(1)
                do_val = cfg.train.val_interval > 0 and it % cfg.train.val_interval == 0
                if do_val or last:
                    if main:
                        with self._weights_for_eval():
                            best, best_it = self._validate(val_ds, it, running, history, best, best_it,
                                                           writer)
                    module.train()
                    self._barrier()
                if main and (it % cfg.train.checkpoint_interval == 0 or last):
                    self._save_state({
                        "model": module.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "scaler": scaler.state_dict() if use_amp else None,
                        "iteration": it, "epoch": epoch, "batches_in_epoch": done_in_epoch, "best": best,
                        "best_iteration": best_it, "history": history, "running": running,
                        "ema": ema.state_dict() if ema is not None else None,
                        "wall_s": elapsed(), "cpu_s": clock["cpu"] + time.process_time() - clock["c0"],
                    })  # fmt: skip
            if stopped_by == "max_iters":
                epoch, done_in_epoch = epoch + 1, 0
        if bar is not None:
            bar.close()
        wall_s, cpu_s = elapsed(), clock["cpu"] + time.process_time() - clock["c0"]
        result = TrainResult(self.out, it, best, best_it, history, wall_s=wall_s, cpu_s=cpu_s,
                             stopped_by=stopped_by)
        if stopped_by == "time_budget":
            log.info("time budget of %.1f min reached at iteration %d", cfg.optim.time_budget_min, it)
        if main:
            if ema is not None:
                task.save_inference(self.out / "final_raw.pth", fp16=cfg.train.save_fp16, iteration=it,
                                    ema=False)
            tag = {"ema": True} if ema is not None else {}
            with self._weights_for_eval():
                task.save_inference(self.out / "final.pth", fp16=cfg.train.save_fp16, iteration=it, **tag)
                if not (self.out / "best.pth").exists():
                    task.save_inference(self.out / "best.pth", fp16=cfg.train.save_fp16, iteration=it, **tag)
            if writer is not None:
                writer.close()
            plot_curves(self.out)
            result.report = self._final_report(val_ds, result)
        self._barrier()
        return result

    # ------------------------------------------------------------------ pieces
    def _weights_for_eval(self) -> Any:
        """Context in which ``task.module`` holds the weights to validate and save: the EMA with
        ``optim.ema``, else the trained ones."""
        from contextlib import nullcontext

        ema = getattr(self, "_ema", None)
        return ema.applied(self.task.module) if ema is not None else nullcontext()

    def _validate(self, val_ds, it, running, history, best, best_it, writer) -> tuple[float, int]:
        cfg = self.cfg
        metrics: dict[str, Any] = {}
        t0 = time.perf_counter()
        if val_ds is not None and len(val_ds):
            metrics = self.task.evaluate(val_ds, self.device, cfg.train.val_max_images)
        score = self._metric(metrics, running.get("total", math.inf))
        row = {
            "iteration": it,
            "train_loss": running.get("total", float("nan")),
            "bbox_AP": metrics.get("bbox", {}).get("AP", float("nan")),
            "segm_AP": metrics.get("segm", {}).get("AP", float("nan")),
            "segm_AP50": metrics.get("segm", {}).get("AP50", float("nan")),
            "select": score,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        write_csv(self.out / "val.csv", history)
        if writer is not None:
            for k in ("bbox_AP", "segm_AP", "segm_AP50"):
                writer.add_scalar(f"val/{k}", row[k], it)
        improved = score > best
        if improved:
            best, best_it = score, it
            self.task.save_inference(self.out / "best.pth", fp16=cfg.train.save_fp16, iteration=it,
                                     metrics=plain(metrics))
        log.info("validation at %d: box AP %.4f mask AP %.4f%s", it, row["bbox_AP"], row["segm_AP"],
                 " (best)" if improved else "")
        if self.progress:
            from tqdm import tqdm

            tqdm.write(f"[{it}] val box AP {row['bbox_AP']:.4f} mask AP {row['segm_AP']:.4f}"
                       f"{' *best*' if improved else ''}")
        return best, best_it

    def _save_state(self, state: dict[str, Any]) -> None:
        """Write ``last_state.pth``: ``state`` plus every random state and the config, all tensors and
        plain Python values (it loads with ``weights_only=True``; no code runs on resume)."""
        state = {**state, "history": plain(state["history"]), "running": plain(state["running"]),
                 "rng": {"global": global_rng_state(), "task": self.task.rng_state()},
                 "config": plain(self.cfg.to_dict())}  # fmt: skip
        tmp = self.out / "last_state.pth.tmp"
        torch.save(state, str(tmp))
        os.replace(tmp, self.out / "last_state.pth")

    def _load_state(self) -> dict[str, Any]:
        """The resumable state of ``self.resume``, loaded without running code (``weights_only``)."""
        from instaseg_ros.weights.torch_io import load_torch_file

        state = load_torch_file(self.resume, "training state")
        if not isinstance(state, dict) or "model" not in state or "iteration" not in state:
            raise ValueError(f"{self.resume} is not a training state (needs 'model' and 'iteration')")
        return state

    def _final_report(self, val_ds, result: TrainResult) -> dict[str, Any]:
        cfg = self.cfg
        report: dict[str, Any] = {
            "task": cfg.task, "iterations": result.iterations, "best_iteration": result.best_iteration,
            "select_metric": cfg.train.select_metric, "best_metric": result.best_metric,
            "history": result.history, "data_problems": self.task.data_reports(),
            "stopped_by": result.stopped_by, "train_wall_s": round(result.wall_s, 2),
            "train_cpu_s": round(result.cpu_s, 2), "time_budget_min": cfg.optim.time_budget_min,
            "ema": cfg.optim.ema, "num_threads": torch.get_num_threads(),
            "loadavg_end": list(os.getloadavg()),
        }
        if val_ds is not None and len(val_ds):
            try:
                self.task.load_inference(self.out / "best.pth")
            except NotImplementedError:
                pass
            report["validation"] = plain(self.task.evaluate(val_ds, self.device, 0))
            report["validation_images"] = len(val_ds)
        (self.out / "report.json").write_text(json.dumps(report, indent=2))
        (self.out / "report.md").write_text(report_markdown(report))
        if report["data_problems"]:
            (self.out / "data_report.json").write_text(json.dumps(report["data_problems"], indent=2))
        return report

    def _out_of_time(self, local: bool) -> bool:
        """Whether the time budget is spent; under DDP every rank stops together (any rank's clock)."""
        if self.dist.world_size <= 1:
            return local
        import torch.distributed as dist

        flag = torch.tensor([1.0 if local else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def _barrier(self) -> None:
        if self.dist.world_size > 1:
            import torch.distributed as dist

            dist.barrier()



def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict) and "images" in batch:
        return len(batch["images"])
    if isinstance(batch, (list, tuple)) and batch:
        return len(batch[0])
    return 1
