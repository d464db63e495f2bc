"""Latency of YOLO+FCN by stage: detector, mask head, pasting, for 1/5/20 detections.

Stages (each timed separately, per iteration):

* ``detector``: letterbox pre-processing + YOLOv3 forward (``forward_raw``) + score
  threshold and class-aware NMS (``detect``) on one image (default 640x480 -> 416x416).
* ``mask_head``: cropping the N boxes from the original image (``crop_and_resize``) and the
  FCN on the N crops as one batch (``box_mask_probs``).
* ``paste``: pasting the N masks into the image, confidence-ordered overlap resolution and
  building ``Instances`` (``assemble``).

How the detection count is forced: the networks are randomly initialised (no weights can be
downloaded here), so the detector's own count is arbitrary. The detector stage is timed on its
real output; the mask-head and paste stages run on **given boxes**: N boxes drawn with a fixed
seed inside the image (sides 40-300 px, so they overlap), with descending scores. This is
exactly what ``postprocess`` runs after NMS (``segment_boxes``), so
``total = detector + mask_head + paste`` is the end-to-end latency for N detections.

    python benchmarks/bench_yolo_fcn.py                       # CPU, fp32, resnet18 FCN (width 0.5, 112)
    python benchmarks/bench_yolo_fcn.py --fcn-arch fcn8s_vgg16 --fcn-width 1.0 --crop-size 224
    python benchmarks/bench_yolo_fcn.py --device cuda --precision fp16

Prints a table and writes JSON (machine, sizes, warm-up, runs, median and p95 per stage).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from instaseg_ros.models.yolo_fcn import INDOOR_CLASSES, build_yolo_fcn


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()),
    }


def _boxes(n: int, w: int, h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sides = rng.uniform(40, 300, (n, 2))
    x1 = rng.uniform(0, w - sides[:, 0])
    y1 = rng.uniform(0, np.maximum(h - sides[:, 1], 1))
    boxes = np.stack([x1, y1, x1 + sides[:, 0], np.minimum(y1 + sides[:, 1], h)], 1).astype(np.float32)
    scores = np.linspace(0.95, 0.5, n).astype(np.float32)
    classes = rng.integers(0, len(INDOOR_CLASSES), n)
    return boxes, scores, classes


def _image(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return np.ascontiguousarray(img)


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.image.lower().split("x"))
    config = {
        "input_size": args.input_size,
        "detector": args.detector,
        "classes": INDOOR_CLASSES,
        "fcn": {"arch": args.fcn_arch, "width": args.fcn_width, "crop_size": args.crop_size},
        "allow_random_detector": True,
        "allow_random_fcn": True,
    }
    seg = build_yolo_fcn(config=config, device=args.device, precision=args.precision)
    img = _image(w, h)
    params = seg.params.updated(score_threshold=args.score_threshold, top_k=100)
    n_fcn = sum(p.numel() for p in seg.fcn.parameters())
    n_det = sum(p.numel() for p in seg.darknet.parameters())
    results = {}
    for n in args.counts:
        boxes, scores, classes = _boxes(n, w, h)
        times: dict[str, list[float]] = {"detector": [], "mask_head": [], "paste": [], "total": []}
        for it in range(args.warmup + args.runs):
            _sync(args.device)
            t0 = time.perf_counter()
            x, metas = seg.preprocess([img])
            dets = seg.detect(seg.forward_raw(x), metas, params)
            _ = [d[0].cpu() for d in dets]
            _sync(args.device)
            t1 = time.perf_counter()
            probs = seg.box_mask_probs(img, boxes)
            _sync(args.device)
            t2 = time.perf_counter()
            inst = seg.assemble(probs, boxes, scores, classes, img.shape[:2], params)
            t3 = time.perf_counter()
            assert len(inst) == n
            if it >= args.warmup:
                for k, v in (
                    ("detector", t1 - t0),
                    ("mask_head", t2 - t1),
                    ("paste", t3 - t2),
                    ("total", t3 - t0),
                ):
                    times[k].append(v * 1000)
        results[str(n)] = {k: _stats(v) for k, v in times.items()}
        row = results[str(n)]
        print(
            f"N={n:3d}  "
            + "  ".join(f"{k} {row[k]['median_ms']:8.1f} / {row[k]['p95_ms']:8.1f}" for k in times),
            flush=True,
        )
    return {
        "benchmark": "yolo_fcn stages",
        "machine": machine_info(args.device),
        "backend": "torch",
        "precision": args.precision,
        "image_size_wh": [w, h],
        "input_size": args.input_size,
        "detector": f"{args.detector} (built-in Darknet definition), random init",
        "detector_params": n_det,
        "fcn": {"arch": args.fcn_arch, "width": args.fcn_width, "crop_size": args.crop_size, "params": n_fcn},
        "detection_count": "forced: mask head + paste run on N seeded boxes (sides 40-300 px)",
        "warmup": args.warmup,
        "runs": args.runs,
        "units": "ms, median / p95 over runs",
        "results": results,
        "median_of_stage_sum_ms": {
            n: statistics.fsum(r[k]["median_ms"] for k in ("detector", "mask_head", "paste"))
            for n, r in results.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    ap.add_argument("--detector", default="yolov3", choices=("yolov3", "yolov3-tiny"))
    ap.add_argument("--input-size", type=int, default=416)
    ap.add_argument("--image", default="640x480", help="WxH of the test image")
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--fcn-arch", default="resnet18", choices=("resnet18", "fcn8s_vgg16"))
    ap.add_argument("--fcn-width", type=float, default=0.5)
    ap.add_argument("--crop-size", type=int, default=112)
    ap.add_argument("--score-threshold", type=float, default=0.5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default; 1 on a busy box)")
    ap.add_argument(
        "--json",
        default="",
        help="output JSON (default benchmarks/results/yolo_fcn_<detector>_<fcn>_<dev>_<prec>.json)",
    )
    args = ap.parse_args(argv)
    print(
        f"YOLO+FCN ({args.detector}) {args.input_size} on {args.image}, "
        f"FCN {args.fcn_arch} w{args.fcn_width} "
        f"crop {args.crop_size}, {args.device} {args.precision}; ms median / p95 over {args.runs} runs"
    )
    report = run(args)
    dev = "cuda" if args.device.startswith("cuda") else "cpu"
    threads = f"_t{args.threads}" if args.threads else ""
    name = f"yolo_fcn_{args.detector.replace('-', '')}_{args.fcn_arch}_{dev}_{args.precision}{threads}.json"
    out = Path(args.json or Path(__file__).parent / "results" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
