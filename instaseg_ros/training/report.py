"""What a training run writes besides checkpoints: the final report (JSON + Markdown), the loss
curves, CSV and TensorBoard scalars, and conversion of metrics to plain (JSON / ``weights_only``-safe)
Python values."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def report_markdown(report: dict[str, Any]) -> str:
    """The final report as Markdown (box/mask AP table and per-class AP)."""
    lines = [f"# Training report ({report['task']})", "",
             f"- iterations: {report['iterations']}",
             f"- best checkpoint: iteration {report['best_iteration']} "
             f"({report['select_metric']} = {report['best_metric']:.4f})", ""]
    val = report.get("validation")
    if val:
        lines += [f"## Validation ({report.get('validation_images', '?')} images, best checkpoint)", "",
                  "| metric | box | mask |", "|---|---|---|"]
        for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
            lines.append(f"| {k} | {val['bbox'][k]:.4f} | {val['segm'][k]:.4f} |")
        lines += ["", "| class | box AP | mask AP |", "|---|---|---|"]
        for name in val["segm"].get("per_class", {}):
            lines.append(f"| {name} | {val['bbox']['per_class'].get(name, -1):.4f} | "
                         f"{val['segm']['per_class'][name]:.4f} |")
    probs = report.get("data_problems") or {}
    if probs:
        lines += ["", "## Dataset problems (entries skipped or fixed)", ""]
        for split, rep in probs.items():
            lines.append(f"- {split}: {rep.get('summary', rep)}")
    return "\n".join(lines) + "\n"


def plot_curves(out: Path) -> Path | None:
    """``loss_curve.png`` from ``metrics.csv`` (loss terms) and ``val.csv`` (AP)."""
    rows = read_csv(out / "metrics.csv")
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = read_csv(out / "val.csv")
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(11 if val else 6, 4), squeeze=False)
    its = [r["iteration"] for r in rows]
    for k in rows[0]:
        if k.startswith("loss_"):
            axes[0, 0].plot(its, [r[k] for r in rows], label=k[5:])
    axes[0, 0].set_xlabel("iteration")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].set_yscale("log")
    axes[0, 0].legend()
    axes[0, 0].set_title("training loss")
    if val:
        vi = [r["iteration"] for r in val]
        axes[0, 1].plot(vi, [r["bbox_AP"] for r in val], "o-", label="box AP")
        axes[0, 1].plot(vi, [r["segm_AP"] for r in val], "o-", label="mask AP")
        axes[0, 1].set_xlabel("iteration")
        axes[0, 1].set_title("validation")
        axes[0, 1].legend()
    fig.tight_layout()
    path = out / "loss_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def tensorboard_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: CSV only
        log.warning("tensorboard is not installed; writing CSV logs only")
        return None
    return SummaryWriter(str(path))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()}
                for r in csv.DictReader(f)]


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))


def plain(x: Any) -> Any:
    """Metrics -> JSON/torch.save(weights_only)-safe plain Python."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x
