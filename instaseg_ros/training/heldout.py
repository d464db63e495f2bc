"""COCO box/mask AP of a trained model on held-out synthetic indoor scenes.

    python -m instaseg_ros.training.heldout --weights models/yolact_se_r18_indoor.pth \\
        [--family yolact] [--num-images 300] [--seed 2000] [--width 320 --height 240] [--out m.json]

The scenes come from :class:`~instaseg_ros.data.synthetic.SyntheticDataset` with a seed that no
training config uses; the metric is :func:`~instaseg_ros.evaluation.coco_eval.evaluate_coco`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def evaluate_heldout(segmenter, num_images: int = 300, seed: int = 2000, width: int = 320, height: int = 240,
                     score_threshold: float = 0.05) -> dict[str, Any]:
    """Run ``segmenter`` on ``num_images`` synthetic scenes -> ``evaluate_coco`` metrics + latency."""
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    ds = SyntheticDataset(num_images, seed=seed, config=SynthConfig(width=width, height=height))
    params = InferenceParams(score_threshold=score_threshold, top_k=100)
    results, times = [], []
    for i in range(len(ds)):
        image, target = ds[i]
        t0 = time.perf_counter()
        inst = segmenter.segment([image], params)[0]
        times.append(time.perf_counter() - t0)
        results += instances_to_coco(inst, int(target["image_id"]))
    metrics = evaluate_coco(ds.coco_gt(), results)
    metrics["latency_s"] = {"median": float(np.median(times)), "p95": float(np.percentile(times, 95))}
    metrics["set"] = {"num_images": num_images, "seed": seed, "width": width, "height": height,
                      "num_instances": sum(len(ds.scene(i)) for i in range(len(ds)))}
    return metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--family", default="yolact")
    ap.add_argument("--config", default=None, help="model config (YAML) for the family, if needed")
    ap.add_argument("--num-images", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--out", default=None, help="write the metrics as JSON")
    args = ap.parse_args(argv)
    import torch

    from instaseg_ros.models.loading import ModelLoadError, load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        seg = load_model(args.family, args.weights, args.config)
    except (ModelLoadError, FileNotFoundError, ValueError) as e:
        print(f"heldout: {e}", file=sys.stderr)
        return 2
    m = evaluate_heldout(seg, args.num_images, args.seed, args.width, args.height)
    print(f"{args.weights}: {m['set']['num_images']} held-out scenes (seed {args.seed}, "
          f"{args.width}x{args.height}, {m['set']['num_instances']} instances)")
    print("| metric | box | mask |\n|---|---|---|")
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        print(f"| {k} | {m['bbox'][k]:.3f} | {m['segm'][k]:.3f} |")
    print("\n| class | box AP | mask AP |\n|---|---|---|")
    for name, ap_mask in m["segm"]["per_class"].items():
        print(f"| {name} | {m['bbox']['per_class'][name]:.3f} | {ap_mask:.3f} |")
    print(f"\nlatency per image: median {m['latency_s']['median'] * 1000:.0f} ms, "
          f"p95 {m['latency_s']['p95'] * 1000:.0f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps(m, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
