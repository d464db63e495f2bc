"""``instaseg train``: train a model of any family (task: yolact, fcn, yolo_detector, solo, maskrcnn)
from a YAML config.

    instaseg train --config config/train/yolact_se_synthetic_r18.yaml [--out DIR] [--resume STATE]
                   [--max-iters N] [--device cpu|cuda|cuda:1] [--seed S] [--weights CKPT]

Multi-GPU / multi-node: ``torchrun --nproc_per_node=N -m instaseg_ros.cli train --config ...
--device cuda`` (every rank runs the same config, rank 0 validates and writes).

Errors (a bad config, weights, resume state or data file) are one line on stderr naming the file and
the problem, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from instaseg_ros.training.tasks import build_task


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train a model from a YAML config (config/train/*.yaml)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="training YAML (see config/train/)")
    p.add_argument("--out", default=None, help="output folder (default: out_dir of the config)")
    p.add_argument("--resume", default=None, help="last_state.pth of an interrupted run")
    p.add_argument("--max-iters", type=int, default=None, help="override optim.max_iters")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--seed", type=int, default=None, help="override the config seed")
    p.add_argument("--weights", default=None, help="override init.weights (fine-tune from this checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (log lines only)")
    p.set_defaults(func=run)
    return p


def _fail(message: object) -> int:
    """Print one line ``instaseg train: <message>`` to stderr; exit status 2."""
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"instaseg train: {text}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import torch

    from instaseg_ros.training.config import ConfigError, load_config
    from instaseg_ros.training.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
    except (ConfigError, FileNotFoundError) as e:
        return _fail(e)
    if args.max_iters is not None:
        if args.max_iters < 1:
            return _fail("--max-iters must be >= 1")
        cfg.optim.max_iters = args.max_iters
        cfg.optim.warmup_iters = min(cfg.optim.warmup_iters, args.max_iters)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.weights is not None:
        cfg.init.weights = args.weights
    if args.out is not None:
        cfg.out_dir = args.out
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        return _fail(f"--device {device} but CUDA is not available")
    try:
        task = build_task(cfg)
        task.augment_config()  # checked before the trainer creates the output folder
        result = Trainer(cfg, task, cfg.out_dir, device=device, resume=args.resume,
                         progress=not args.no_progress).run()
    except ConfigError as e:  # a field of the config that only the family's task can check
        return _fail(f"{args.config}: {e}")
    except (FileNotFoundError, ValueError) as e:  # weights, resume state or data files: they name themselves
        return _fail(e)
    val = result.report.get("validation") if result.report else None
    if val:
        print(f"best checkpoint {result.out_dir / 'best.pth'} (iteration {result.best_iteration}): "
              f"box AP {val['bbox']['AP']:.4f}, mask AP {val['segm']['AP']:.4f}")
    print(f"outputs in {result.out_dir}")
    return 0
