"""Compare model families on the same held-out synthetic images: mask AP, box AP, CPU latency.

Every family runs through ``build_segmenter`` and ``Segmenter.segment`` (pre-processing to
``Instances``), is scored with the project's ``evaluate_coco`` on the same images, and is timed on the
same images in the same process, one family after the other.

    python benchmarks/compare_families.py \\
        --family yolact models/yolact_se_r18_indoor.pth \\
        --family solo runs/solo_r18_indoor/best.pth \\
        --family maskrcnn runs/maskrcnn_r18_indoor/best.pth \\
        --family yolo_fcn DETECTOR_WEIGHTS config/models/yolo_fcn_indoor.yaml \\
        --budget solo="150 it x 4 img, 15 min, 2 threads" --threads 1 \\
        --out benchmarks/results/compare_families.json

``--family NAME WEIGHTS [CONFIG]``: WEIGHTS may be ``-`` for random weights (pipeline timing only), or
a trainer state (``last_state.pth`` of a run still going): its weights are written as the family's
inference checkpoint by the family's training task first, and the iteration is recorded.
AP uses score threshold ``--eval-score-threshold`` (COCO practice: low, 0.05) and ``--eval-top-k``; latency
uses the deployment defaults of ``InferenceParams`` (score 0.3) unless ``--latency-score-threshold``.
Writes JSON (machine, load average, sizes, warm-up, runs, per-family AP / median / p95 / mean latency,
training budget) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def machine_info_with_load() -> dict[str, Any]:
    """The package's machine description plus the load average at the start of the run."""
    from instaseg_ros.evaluation.benchmark import machine_info

    return machine_info() | {"loadavg_start": list(os.getloadavg())}


def _millions(n: int | None) -> str:
    return f"{n / 1e6:.1f} M" if n else "-"


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def count_params(seg) -> int | None:
    """Parameters of ``seg.model``, else of all its ``nn.Module`` attributes (None if it holds none)."""
    from torch import nn

    model = getattr(seg, "model", None)
    mods = [v for v in vars(seg).values() if isinstance(v, nn.Module)]
    if isinstance(model, nn.Module):
        mods = [model]
    params = {id(p): p for m in mods for p in m.parameters()}
    return int(sum(p.numel() for p in params.values())) or None  # shared modules counted once


def time_family(seg, images: list[np.ndarray], params, warmup: int, runs: int) -> dict[str, float]:
    """Batch-1 ``segment`` latency (ms) over ``runs`` images (cycled) after ``warmup`` calls."""
    for i in range(warmup):
        seg.segment([images[i % len(images)]], params)
    times = []
    for i in range(runs):
        img = images[i % len(images)]
        t0 = time.perf_counter()
        seg.segment([img], params)
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"median_ms": statistics.median(times), "p95_ms": percentile(times, 95),
            "mean_ms": statistics.fmean(times), "min_ms": min(times)}  # fmt: skip


def inference_weights(path: str, tmp_dir: Path) -> tuple[str, int | None]:
    """``path`` itself, or for a trainer state (``last_state.pth``) an inference checkpoint written by
    the family's task from it, with the state's iteration."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)  # training states: tensors + plain values
    if not (isinstance(obj, dict) and {"model", "iteration", "config"} <= set(obj)):
        return path, None
    from instaseg_ros.cli.train import build_task
    from instaseg_ros.training.config import config_from_dict

    cfg = config_from_dict(obj["config"])
    cfg.init.weights = None
    task = build_task(cfg)
    task.module.load_state_dict(obj["model"])
    out = tmp_dir / f"{cfg.task}_it{int(obj['iteration'])}.pth"
    task.save_inference(out, iteration=int(obj["iteration"]))
    return str(out), int(obj["iteration"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", nargs="+", action="append", required=True, metavar="NAME WEIGHTS [CONFIG]",
                    help="family name, weights file ('-' = random), optional config YAML")  # fmt: skip
    ap.add_argument("--budget", action="append", default=[], metavar="NAME=TEXT",
                    help="training budget of a family, stated in the table")  # fmt: skip
    ap.add_argument("--num-images", type=int, default=100, help="held-out synthetic images")
    ap.add_argument("--seed", type=int, default=1000, help="synthetic scene seed (held out from training)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20, help="timed batch-1 calls per family")
    ap.add_argument("--eval-score-threshold", type=float, default=0.05)
    ap.add_argument("--eval-top-k", type=int, default=100, help="detections per image for AP")
    ap.add_argument("--latency-score-threshold", type=float, default=0.3)
    ap.add_argument("--out", default="benchmarks/results/compare_families.json")
    args = ap.parse_args(argv)

    import torch

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset
    from instaseg_ros.models import build_segmenter
    from instaseg_ros.training.tasks.base import segmenter_metrics

    torch.set_num_threads(args.threads)
    budgets = dict(b.split("=", 1) for b in args.budget)
    synth = SynthConfig(width=args.width, height=args.height)
    ds = SyntheticDataset(args.num_images, seed=args.seed, config=synth, cache=True)
    ds.category_ids = [i + 1 for i in range(len(ds.class_names))]
    images = [ds[i][0] for i in range(len(ds))]
    eval_params = InferenceParams(score_threshold=args.eval_score_threshold, top_k=args.eval_top_k)
    lat_params = InferenceParams(score_threshold=args.latency_score_threshold, top_k=100)
    result: dict[str, Any] = {
        "machine": machine_info_with_load(),
        "data": {"kind": "synthetic", "num_images": len(ds), "seed": args.seed,
                 "size": [args.height, args.width],
                 "instances": int(sum(len(ds.scene(i)) for i in range(len(ds))))},  # fmt: skip
        "eval_params": vars(eval_params), "latency_params": vars(lat_params),
        "warmup": args.warmup, "runs": args.runs, "families": [],
    }  # fmt: skip
    for spec in args.family:
        if len(spec) not in (2, 3):
            ap.error(f"--family needs NAME WEIGHTS [CONFIG], got {spec}")
        name, weights = spec[0], (None if spec[1] == "-" else spec[1])
        config = spec[2] if len(spec) == 3 else None
        source, iteration = weights, None
        if weights is not None:
            weights, iteration = inference_weights(weights, Path(tempfile.mkdtemp(prefix="compare_")))
        print(f"[{name}] building from {weights or 'random weights'}", file=sys.stderr)
        seg = build_segmenter(name, weights=weights, config=config, device="cpu")
        if list(seg.class_names) != list(ds.class_names):
            print(f"[{name}] WARNING: classes {seg.class_names} differ from the data's {ds.class_names}",
                  file=sys.stderr)  # fmt: skip
        t0 = time.perf_counter()
        metrics = segmenter_metrics(seg, ds, 0, eval_params)
        eval_s = time.perf_counter() - t0
        lat = time_family(seg, images, lat_params, args.warmup, args.runs)
        row = {
            "family": name, "weights": source, "training_state_iteration": iteration, "config": config,
            "params": count_params(seg),
            "mask_AP": metrics["segm"]["AP"], "mask_AP50": metrics["segm"]["AP50"],
            "box_AP": metrics["bbox"]["AP"], "box_AP50": metrics["bbox"]["AP50"],
            "per_class_mask_AP": metrics["segm"].get("per_class", {}),
            "num_detections": metrics.get("num_detections"), "eval_seconds": eval_s,
            "latency": lat, "budget": budgets.get(name, ""),
        }  # fmt: skip
        print(f"[{name}] mask AP {row['mask_AP']:.4f} box AP {row['box_AP']:.4f} "
              f"median {lat['median_ms']:.1f} ms", file=sys.stderr)  # fmt: skip
        result["families"].append(row)
        del seg
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    m = result["machine"]
    print(f"\n{len(ds)} held-out synthetic images ({args.width}x{args.height}, seed {args.seed}), "
          f"{m['cpu']}, {args.threads} thread(s), load avg {m['loadavg_start'][0]:.1f}; batch 1, "
          f"{args.warmup} warm-up + {args.runs} timed runs\n")  # fmt: skip
    print("| family | mask AP | mask AP50 | box AP | box AP50 | CPU latency median / p95 (ms) | params | "
          "training budget |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in result["families"]:
        print(f"| {r['family']} | {r['mask_AP']:.3f} | {r['mask_AP50']:.3f} | {r['box_AP']:.3f} | "
              f"{r['box_AP50']:.3f} | {r['latency']['median_ms']:.0f} / {r['latency']['p95_ms']:.0f} | "
              f"{_millions(r['params'])} | {r['budget']} |")  # fmt: skip
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
