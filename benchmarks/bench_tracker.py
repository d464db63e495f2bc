"""Tracker benchmark: node-side time of ``Tracker.update`` and tracking accuracy vs an IoU baseline.

1. Time: ``Tracker.update`` (and the IoU baseline) at 20 instances on 640x480 frames (objects
   drifting with irregular masks, fresh mask arrays every frame as from a model), median and p95
   of wall and thread-CPU time after a warm-up, methods interleaved. Target: < 1 ms median.
2. Accuracy: synthetic camera-motion sequences (``instaseg_ros.data.synthetic.generate_sequence``)
   segmented once by the shipped model (CPU, 1 thread); the same detections go to the tracker
   and to a plain frame-to-frame IoU matcher, as they are and with a random fraction of them
   removed (``--dropout``: a flickering detector); the same with the ground truth as detections
   (an oracle detector: tracking quality when detection recall is not the limit). MOTA, IDF1,
   ID switches (per 100 frames), fragmentations and detection recall with motmetrics (mask IoU >= 0.5,
   same class).

    python benchmarks/bench_tracker.py                       # both parts
    python benchmarks/bench_tracker.py --sequences 4 --length 30 --dropout 0 --skip-timing

Prints tables and writes JSON to benchmarks/results/tracking_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 10.0


# ----------------------------------------------------------------------------------- timing
def _timing_frames(count: int, n: int, size: tuple[int, int], seed: int = 0):
    """``count`` frames of ``n`` drifting elliptical objects (with their BGR images)."""
    import cv2

    from instaseg_ros.core.instances import Instances

    rng = np.random.default_rng(seed)
    h, w = size
    centres = rng.uniform([60, 60], [w - 60, h - 60], (n, 2))
    vel = rng.uniform(-2, 2, (n, 2))
    axes = rng.uniform([10, 15], [45, 70], (n, 2))
    colours = rng.integers(0, 255, (n, 3))
    frames = []
    for _ in range(count):
        centres = np.clip(centres + vel + rng.normal(0, 0.5, (n, 2)), 50, [w - 50, h - 50])
        masks = np.zeros((n, h, w), np.uint8)
        image = np.full((h, w, 3), 100, np.uint8)
        for i in range(n):
            c = (int(centres[i, 0]), int(centres[i, 1]))
            ax = (int(axes[i, 0]), int(axes[i, 1]))
            cv2.ellipse(masks[i], c, ax, 0, 0, 360, 1, -1)
            cv2.ellipse(image, c, ax, 0, 0, 360, tuple(int(v) for v in colours[i]), -1)
        boxes = np.concatenate([centres - axes, centres + axes + 1], axis=1).clip(0, [w, h, w, h])
        scores = rng.uniform(0.3, 1.0, n)
        frames.append((Instances(boxes, scores, np.arange(n) % 5, masks.astype(bool), (h, w)), image))
    return frames


def time_update(runs: int, warmup: int, n: int, size: tuple[int, int]) -> list[dict]:
    """Wall and thread-CPU time (ms) of ``update`` for the tracker (with and without the image) and
    the baseline, interleaved frame by frame so that load from other processes hits all alike.
    Thread CPU time leaves out the time the thread waited for a core (a busy shared machine)."""
    from instaseg_ros.tracking import IoUMatcher, Tracker

    frames = _timing_frames(warmup + runs, n, size)
    methods = (("tracker", Tracker(), True), ("tracker (no image)", Tracker(), False),
               ("iou baseline", IoUMatcher(), False))
    wall = {name: [] for name, _, _ in methods}
    cpu = {name: [] for name, _, _ in methods}
    for k, (inst, image) in enumerate(frames):
        for name, trk, use_image in methods:
            c0, t0 = time.thread_time(), time.perf_counter()
            ids = trk.update(inst, image if use_image else None, int(k * 1e9 / RATE_HZ))
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
            assert len(ids) == n
    rows = []
    for name, trk, _ in methods:
        w = np.asarray(wall[name][warmup:]) * 1e3
        c = np.asarray(cpu[name][warmup:]) * 1e3
        rows.append({
            "method": name, "instances": n, "image_size": list(size), "warmup": warmup, "runs": runs,
            "median_ms": float(np.median(w)), "p95_ms": float(np.percentile(w, 95)),
            "mean_ms": float(w.mean()),
            "cpu_median_ms": float(np.median(c)), "cpu_p95_ms": float(np.percentile(c, 95)),
            "births": trk.stats.births,
        })
    return rows


# --------------------------------------------------------------------------------- accuracy
def _gt_ids(frames) -> list[np.ndarray]:
    """Ground-truth identities per frame: the generator's ``track_ids`` when it provides them.

    Fallback (a generator without ``track_ids``): chain each frame's ground-truth masks to the
    previous frame's by mask IoU >= 0.5 (same class). The camera moves smoothly over a static scene,
    so this is exact except for an object that leaves the view and comes back (it gets a new id).
    """
    if all(getattr(f, "track_ids", None) is not None for f in frames):
        return [np.asarray(f.track_ids, np.int64) for f in frames]
    from scipy.optimize import linear_sum_assignment

    from instaseg_ros.tracking.similarity import mask_iou

    out, prev_masks, prev_ids, prev_labels, next_id = [], None, None, None, 1
    for f in frames:
        masks = f.masks.reshape(len(f.labels), -1)
        ids = np.zeros(len(f.labels), np.int64)
        if prev_masks is not None and len(masks) and len(prev_masks):
            iou = mask_iou(masks, prev_masks)
            iou[f.labels[:, None] != prev_labels[None, :]] = 0
            r, c = linear_sum_assignment(-iou)
            ok = iou[r, c] >= 0.5
            ids[r[ok]] = prev_ids[c[ok]]
        for i in np.flatnonzero(ids == 0):
            ids[i], next_id = next_id, next_id + 1
        out.append(ids)
        prev_masks, prev_ids, prev_labels = masks, ids, f.labels
    return out


def _track(trk, dets: list, images: list[np.ndarray], frame_step: int) -> list:
    """Run ``trk`` over one sequence -> per-frame ``TrackFrame`` (ids, masks, classes)."""
    from instaseg_ros.evaluation.tracking_metrics import TrackFrame

    out = []
    for k, (inst, image) in enumerate(zip(dets, images)):
        ids = trk.update(inst, image, int(k * frame_step * 1e9 / RATE_HZ))
        out.append(TrackFrame(ids.astype(np.int64), masks=inst.masks, class_ids=inst.class_ids))
    return out


def evaluate(
    model: str, sequences: int, length: int, seed: int, score_threshold: float,
    frame_step: int = 1, dropouts: tuple[float, ...] = (0.0,),
) -> dict:
    """Segment the sequences once; track with both methods (also after dropping a random fraction
    of the detections, like a flickering detector); MOT metrics per sequence and overall."""
    import torch
    from scipy.optimize import linear_sum_assignment

    from instaseg_ros.core.instances import Instances
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.data.synthetic import CLASS_NAMES, SynthConfig, generate_sequence
    from instaseg_ros.evaluation.tracking_metrics import TrackFrame, frame_distances, tracking_metrics
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.tracking import IoUMatcher, Tracker

    torch.set_num_threads(1)
    seg = load_model("yolact", model, device="cpu")
    params = InferenceParams(score_threshold=score_threshold)
    if list(seg.class_names) != list(CLASS_NAMES):
        raise SystemExit(f"model classes {seg.class_names} differ from the generator's {CLASS_NAMES}")
    cfg = SynthConfig()
    gt_seqs, det_seqs, images, gt_frames, gt_source = {}, {}, {}, {}, "track_ids"
    t_model = []
    for s in range(sequences):
        name = f"seq{s:02d}"
        frames = generate_sequence((seed, s), (length - 1) * frame_step + 1, cfg)[::frame_step]
        if any(getattr(f, "track_ids", None) is None for f in frames):
            gt_source = "mask-IoU chaining of ground-truth masks (generator has no track_ids)"
        ids = _gt_ids(frames)
        gt_seqs[name] = [TrackFrame(i, masks=f.masks, class_ids=f.labels) for i, f in zip(ids, frames)]
        dets = []
        for f in frames:
            t0 = time.perf_counter()
            dets.append(seg.segment([f.image], params)[0])
            t_model.append(time.perf_counter() - t0)
        det_seqs[name] = dets
        gt_frames[name] = frames
        images[name] = [f.image for f in frames]
        print(f"  {name}: {length} frames, {sum(len(i) for i in ids)} objects, "
              f"{sum(len(d) for d in dets)} detections", flush=True)
    # detection recall: ground-truth objects with a detection of their class at mask IoU >= 0.5
    found = total = 0
    for name, dets in det_seqs.items():
        for gt, inst in zip(gt_seqs[name], dets):
            pred = TrackFrame(np.arange(len(inst)), masks=inst.masks, class_ids=inst.class_ids)
            d = frame_distances(gt, pred)
            total += len(gt.ids)
            if d.size:
                r, c = linear_sum_assignment(np.nan_to_num(d, nan=2.0))
                found += int(np.count_nonzero(np.isfinite(d[r, c])))
    # the same sequences with the ground truth as detections (a perfect detector, score 1):
    # what the trackers do when detection recall is not the limit
    oracle = {
        name: [Instances(f.boxes, np.ones(len(f)), f.labels, f.masks, f.masks.shape[1:]) for f in frames]
        for name, frames in gt_frames.items()
    }
    results: dict = {}
    for detector, source in (("model", det_seqs), ("oracle", oracle)):
        for p in dropouts:
            rng = np.random.default_rng(seed)
            kept = {name: [d.select(rng.random(len(d)) >= p) for d in dets] for name, dets in source.items()}
            results[f"{detector}_dropout_{p:g}"] = res = {}
            for method, make in (("tracker", Tracker), ("iou_baseline", IoUMatcher)):
                seqs = {}
                for name, dets in kept.items():
                    trk = make()
                    seqs[name] = (gt_seqs[name], _track(trk, dets, images[name], frame_step))
                res[method] = m = tracking_metrics(seqs, iou_threshold=0.5)
                r, pr = m["overall"]["recall"], m["overall"]["precision"]
                # IDF1 cannot exceed the detections' F1 (every detection is published with an id)
                m["overall"]["idf1_ceiling"] = 2 * r * pr / (r + pr) if r and pr else 0.0
                m["counters_last_sequence"] = trk.stats.snapshot()
    from instaseg_ros.tracking import TrackerConfig

    return {
        "model": model,
        "model_time_median_ms": float(np.median(t_model) * 1e3),
        "score_threshold": score_threshold,
        "sequences": sequences,
        "length": length,
        "frame_step": frame_step,
        "seed": seed,
        "rate_hz": RATE_HZ / frame_step,
        "image_size": [cfg.height, cfg.width],
        "gt_identities": gt_source,
        "detection_recall": found / max(total, 1),
        "tracker_config": TrackerConfig().to_dict(),
        "iou_baseline": {"iou_threshold": 0.3, "class_consistent": True},
        "results": results,
    }


_COLUMNS = {
    "idf1": "IDF1", "mota": "MOTA", "id_switches": "IDsw", "id_switches_per_100_frames": "IDsw/100f",
    "fragmentations": "frag", "recall": "recall", "precision": "precision", "idf1_ceiling": "IDF1 max",
}


def _print_accuracy(acc: dict) -> None:
    print(f"\ndetection recall (mask IoU >= 0.5, same class): {acc['detection_recall']:.3f}")
    print(f"{'detections':<20}{'method':<14}" + "".join(f"{v:>11}" for v in _COLUMNS.values()))
    for variant, per_method in acc["results"].items():
        for method, res in per_method.items():
            m = res["overall"]
            cells = (f"{m[k]:>11.3f}" if isinstance(m[k], float) else f"{m[k]!s:>11}" for k in _COLUMNS)
            print(f"{variant.replace('_dropout_', ' drop '):<20}{method:<14}" + "".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/yolact_se_r18_indoor.pth")
    ap.add_argument("--sequences", type=int, default=10)
    ap.add_argument("--length", type=int, default=60, help="frames per sequence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-threshold", type=float, default=0.3, help="the node's default")
    ap.add_argument("--frame-step", type=int, default=2,
                    help="use every n-th generated frame (faster apparent camera motion)")
    ap.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.1, 0.2],
                    help="fractions of detections removed at random (a flickering detector)")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from instaseg_ros.evaluation.benchmark import machine_info

    out: dict = {"machine": machine_info()}
    if not args.skip_timing:
        rows = time_update(args.runs, args.warmup, args.instances, (480, 640))
        out["timing"] = rows
        head = ("instances", "median ms", "p95 ms", "CPU median", "CPU p95")
        print(f"{'method':<20}" + "".join(f"{h:>12}" for h in head))
        for r in rows:
            print(f"{r['method']:<20}{r['instances']:>12}{r['median_ms']:>12.3f}{r['p95_ms']:>12.3f}"
                  f"{r['cpu_median_ms']:>12.3f}{r['cpu_p95_ms']:>12.3f}")
    if not args.skip_accuracy:
        model = args.model if Path(args.model).is_absolute() else str(ROOT / args.model)
        if not Path(model).is_file():
            print(f"bench_tracker: model file not found: {model}", file=sys.stderr)
            return 2
        print(f"accuracy: {args.sequences} sequences x {args.length} frames, model {args.model}", flush=True)
        out["accuracy"] = evaluate(model, args.sequences, args.length, args.seed, args.score_threshold,
                                   args.frame_step, tuple(args.dropout))
        _print_accuracy(out["accuracy"])
    out["machine"]["loadavg_end"] = list(os.getloadavg())
    path = Path(args.out) / f"tracking_{Path(args.model).stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():  # a skipped part keeps its previous result (with that run's machine info)
        old = json.loads(path.read_text())
        for part in ("timing", "accuracy"):
            if part not in out and part in old:
                out[part] = old[part]
                out[f"machine_{part}"] = old.get(f"machine_{part}", old.get("machine"))
    path.write_text(json.dumps(out, indent=1, allow_nan=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
