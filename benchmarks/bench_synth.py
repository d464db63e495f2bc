"""Speed of the synthetic indoor scene generator (one scene, camera-motion frames, + augmentation).

    python benchmarks/bench_synth.py                      # 640x480 and 320x240, 60 runs each
    python benchmarks/bench_synth.py --sizes 640x480 --runs 200 --out benchmarks/results/synth.json

Rows: ``scene`` = ``generate_scene`` (render room + objects + masks), ``sequence`` = per-frame
cost of ``generate_sequence`` (one larger canvas per sequence + an affine crop per frame),
``scene_cpu`` = the process CPU time of ``scene`` (robust to other load on the machine),
``target`` = building the dataset target (masks [N,H,W] + boxes), ``augment`` = the default
training augmentation on that sample. Prints a table and writes JSON (machine, sizes, warm-up,
runs, median and p95).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from instaseg_ros.data.augment import AugmentConfig, build_transform
from instaseg_ros.data.synthetic import SynthConfig, generate_scene, generate_sequence


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
    }


def bench(width: int, height: int, runs: int, warmup: int, seq_len: int) -> dict[str, dict[str, float]]:
    cfg = SynthConfig(width=width, height=height)
    for i in range(warmup):
        generate_scene(10_000 + i, cfg)
    res: dict[str, list[float]] = {"scene": [], "scene_cpu": [], "target": [], "augment": [], "sequence": []}
    aug = build_transform(AugmentConfig(seed=0))
    objects = []
    for i in range(runs):
        c0 = time.process_time()
        t0 = time.perf_counter()
        sc = generate_scene(i, cfg)
        t1 = time.perf_counter()
        res["scene_cpu"].append((time.process_time() - c0) * 1e3)
        t = sc.target(i + 1)
        t2 = time.perf_counter()
        aug(sc.image, t)
        t3 = time.perf_counter()
        res["scene"].append((t1 - t0) * 1e3)
        res["target"].append((t2 - t1) * 1e3)
        res["augment"].append((t3 - t2) * 1e3)
        objects.append(len(sc))
    for k in range(max(1, runs // seq_len)):
        t0 = time.perf_counter()
        generate_sequence(k, seq_len, cfg)
        res["sequence"].append((time.perf_counter() - t0) * 1e3 / seq_len)
    out = {k: _stats(v) for k, v in res.items()}
    out["objects_per_image"] = {"mean": float(np.mean(objects))}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="640x480,320x240", help="comma-separated WxH list")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--sequence-length", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/synth.json")
    args = ap.parse_args()
    results = {}
    print(f"{'size':>9} {'stage':>9} {'median ms':>10} {'p95 ms':>8}")
    for s in args.sizes.split(","):
        w, h = (int(v) for v in s.lower().split("x"))
        r = bench(w, h, args.runs, args.warmup, args.sequence_length)
        results[s] = r
        for stage in ("scene", "scene_cpu", "sequence", "target", "augment"):
            print(f"{s:>9} {stage:>9} {r[stage]['median_ms']:>10.1f} {r[stage]['p95_ms']:>8.1f}")
    doc = {
        "benchmark": "synthetic scene generator",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "warmup": args.warmup,
        "runs": args.runs,
        "sequence_length": args.sequence_length,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
