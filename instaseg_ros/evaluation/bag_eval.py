"""Accuracy and latency of a segmenter on a recorded rosbag2, against stamp-keyed ground truth.

Two modes share everything but the run itself:

* **offline** (:func:`run_offline`): every frame of the image topic goes through the model in this
  process, one at a time, as fast as possible; deterministic. Latency = the ``segment()`` call.
* **live** (:mod:`instaseg_ros.evaluation.live`): the bag is replayed at its recorded rate (or a
  multiple) to the real node over DDS; latency = publish of the frame -> arrival of both outputs,
  frames without a result are dropped, and accuracy is scored on the node's published outputs.

Ground-truth images are keyed to bag messages by header stamp (``images[*].stamp_ns``, see
:mod:`instaseg_ros.evaluation.gt_tools`): each is matched to the message with the nearest stamp within
``stamp_tolerance_ns``. COCO box and mask AP come from :func:`evaluate_coco` over the matched frames
that were processed; in live mode a second score counts dropped frames as frames without detections.
Model classes are matched to ground-truth categories by name.
"""

from __future__ import annotations

import datetime as _dt
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import decode_rle
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco
from instaseg_ros.evaluation.gt_tools import GroundTruthError, StampedGroundTruth, load_ground_truth

LATENCY_PERCENTILES = (50, 90, 95, 99)


class EvalError(RuntimeError):
    """The evaluation cannot run as asked (bad bag, topic, ground truth or model); the message says why."""


@dataclass
class BagFrame:
    """One image message of the evaluated topic (position ``index`` in log order)."""

    index: int
    stamp_ns: int
    frame_id: str
    height: int
    width: int


@dataclass
class FrameMatch:
    """Ground-truth images matched to bag frames by stamp.

    Attributes:
        frame_to_image: bag frame index -> ground-truth image id.
        unmatched_images: ground-truth image ids with no frame within the tolerance.
        max_offset_ns: largest |frame stamp - ground-truth stamp| among the matches.
    """

    frame_to_image: dict[int, int]
    unmatched_images: list[int]
    max_offset_ns: int


@dataclass
class FrameRecord:
    """What happened to one bag frame.

    Attributes:
        t_s: seconds since the run started when the result arrived (or, if dropped, when it was sent).
        latency_ms: per-frame latency (offline: the model call; live: publish -> both outputs received).
    """

    index: int
    stamp_ns: int
    image_id: int | None
    processed: bool
    latency_ms: float | None = None
    t_s: float | None = None
    num_detections: int | None = None
    sent: bool = True  # False: skipped on purpose (offline --only-gt-frames), not a drop


@dataclass
class RunData:
    """The raw outcome of one offline or live run (before metrics)."""

    mode: str
    frames: list[FrameRecord]
    results: list[dict[str, Any]]  # COCO results (ground-truth category ids) of processed GT frames
    wall_s: float
    class_names: list[str]
    peak_rss_mb: float | None
    peak_rss_of: str
    cuda_max_allocated_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """How to build the model (offline) or configure the node (live)."""

    family: str = "yolact"
    weights: str | None = None
    config: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    params: InferenceParams = field(default_factory=InferenceParams)
    plugins: list[str] = field(default_factory=list)  # modules imported first (they may register families)


@dataclass
class BagEvalConfig:
    """Everything ``instaseg eval-bag`` needs.

    Attributes:
        stamp_tolerance_ns: max |bag header stamp - ground-truth stamp_ns| for a match.
        only_gt_frames: offline: run the model on matched frames only (faster; latency from those).
        rate_multiplier: live: replay speed (1 = recorded rate, 2 = twice as fast).
        node_params: live: extra node parameters (name -> value).
        live_transport: live: ``raw`` (bgr8 Image) or ``compressed`` (JPEG CompressedImage).
        startup_timeout_s: live: time allowed for the node to load the model and subscribe.
        drain_timeout_s: live: wait this long after the last frame for outstanding results.
        num_examples: frames shown in the report's example strip.
        output_bag: write the outputs (and input frames) to this rosbag2 (mcap) folder.
        dds_profile: live: Fast DDS XML profile for both processes (FASTRTPS_DEFAULT_PROFILES_FILE), e.g.
            the package's ``config/fastdds_large_images.xml``; None keeps the environment's.
        launcher: live: how the node starts: ``python`` (its module, in a child process) or
            ``ros2 launch`` (``launch/instaseg.launch.py`` of the installed package).
    """

    bag: str
    gt: str | dict[str, Any]
    topic: str = "/camera/color/image_raw"
    mode: str = "offline"
    model: ModelSpec = field(default_factory=ModelSpec)
    stamp_tolerance_ns: int = 1_000_000
    only_gt_frames: bool = False
    rate_multiplier: float = 1.0
    node_params: dict[str, Any] = field(default_factory=dict)
    live_transport: str = "raw"
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 10.0
    num_examples: int = 4
    output_bag: str | None = None
    dds_profile: str | None = None
    launcher: str = "python"


@dataclass
class Example:
    """One frame of the report's example strip."""

    stamp_ns: int
    image_id: int
    image: np.ndarray  # [H, W, 3] uint8 BGR
    prediction: Instances
    ground_truth: Instances


@dataclass
class EvalOutcome:
    """Metrics (``summary``: every number, JSON-ready), the run and the example frames."""

    summary: dict[str, Any]
    run: RunData
    examples: list[Example]
    gt: StampedGroundTruth


# --------------------------------------------------------------------------- bag + matching
def scan_bag(bag: str | Path, topic: str) -> list[BagFrame]:
    """Read every image on ``topic`` once (checks the whole bag before any model runs).

    Raises:
        EvalError: bag missing/corrupt/truncated, topic absent or not an image topic, or no messages.
    """
    from instaseg_ros.data.bag_io import BagError, iter_bag_images

    frames = []
    try:
        for k, (stamp, frame_id, img) in enumerate(iter_bag_images(bag, topic)):
            frames.append(BagFrame(k, stamp, frame_id, img.shape[0], img.shape[1]))
    except BagError as e:
        raise EvalError(str(e)) from e
    if not frames:
        raise EvalError(f"topic {topic!r} in rosbag2 {bag} has no messages")
    return frames


def match_frames(frames: list[BagFrame], gt: StampedGroundTruth, tolerance_ns: int) -> FrameMatch:
    """Match each ground-truth image to the bag frame with the nearest header stamp.

    A frame takes at most one ground-truth image (the nearest). Raises ``EvalError`` when nothing
    matches, or when a matched frame's size differs from its ground-truth image's.
    """
    if tolerance_ns < 0:
        raise EvalError(f"stamp tolerance must be >= 0, got {tolerance_ns} ns")
    stamps = np.array([f.stamp_ns for f in frames], np.int64)
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    best: dict[int, tuple[int, int]] = {}  # frame index -> (offset, image id)
    for iid, st in sorted(gt.stamps.items()):
        pos = int(np.searchsorted(sorted_stamps, st))
        cands = [p for p in (pos - 1, pos) if 0 <= p < len(sorted_stamps)]
        p = min(cands, key=lambda q: (abs(int(sorted_stamps[q]) - st), q))
        off = abs(int(sorted_stamps[p]) - st)
        if off > tolerance_ns:
            continue
        fi = int(order[p])
        if fi not in best or off < best[fi][0]:
            best[fi] = (off, iid)
    frame_to_image = {fi: iid for fi, (_off, iid) in sorted(best.items())}
    if not frame_to_image:
        gs = sorted(gt.stamps.values())
        raise EvalError(
            f"ground truth {gt.path or ''} matches no frame of the bag: its {len(gs)} stamp_ns span "
            f"[{gs[0]}, {gs[-1]}], the bag's {len(frames)} header stamps span [{int(sorted_stamps[0])}, "
            f"{int(sorted_stamps[-1])}] (tolerance {tolerance_ns / 1e6:g} ms). Was it made from this bag "
            f"and topic?"
        )
    images = gt.images
    for fi, iid in frame_to_image.items():
        f, im = frames[fi], images[iid]
        if (f.height, f.width) != (int(im["height"]), int(im["width"])):
            raise EvalError(
                f"ground-truth image {iid} ({im.get('file_name', '')}) is {im['width']}x{im['height']} but "
                f"the bag frame with stamp {f.stamp_ns} is {f.width}x{f.height}"
            )
    matched = set(frame_to_image.values())
    return FrameMatch(
        frame_to_image,
        sorted(i for i in gt.stamps if i not in matched),
        max((off for off, _ in best.values()), default=0),
    )


# --------------------------------------------------------------------------- classes + results
def class_to_category(class_names: list[str], gt: StampedGroundTruth) -> list[int | None]:
    """Ground-truth category id of each model class (by name; None when the ground truth lacks it)."""
    by_name = dict(zip(gt.category_names, gt.category_ids))
    mapping = [by_name.get(n) for n in class_names]
    if not any(m is not None for m in mapping):
        raise EvalError(
            f"no model class name matches a ground-truth category: model classes {class_names[:10]}"
            f"{'...' if len(class_names) > 10 else ''}, ground-truth categories {gt.category_names}"
        )
    return mapping


def to_results(inst: Instances, image_id: int, cat_map: list[int | None]) -> list[dict[str, Any]]:
    """COCO results of the instances whose class exists in the ground truth."""
    known = np.array(
        [cat_map[c] is not None if 0 <= c < len(cat_map) else False for c in inst.class_ids], bool
    )
    kept = inst.select(np.flatnonzero(known)) if len(inst) else inst
    return instances_to_coco(kept, image_id, category_ids=[c if c is not None else -1 for c in cat_map])


def results_to_instances(results: list[dict[str, Any]], image_id: int, gt: StampedGroundTruth) -> Instances:
    """The COCO results of one image back as ``Instances`` (class ids index ``gt.category_names``)."""
    im = gt.images[image_id]
    h, w = int(im["height"]), int(im["width"])
    rs = [r for r in results if r["image_id"] == image_id]
    if not rs:
        return Instances.empty((h, w), gt.category_names)
    index = {cid: k for k, cid in enumerate(gt.category_ids)}
    boxes = np.array(
        [[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in rs],
        np.float32,
    )
    return Instances(
        boxes=boxes,
        scores=np.array([r["score"] for r in rs], np.float32),
        class_ids=np.array([index[r["category_id"]] for r in rs], np.int64),
        masks=np.stack([decode_rle(r["segmentation"]) for r in rs]),
        image_size=(h, w),
        class_names=list(gt.category_names),
    )


# --------------------------------------------------------------------------- offline
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def build_model(spec: ModelSpec) -> Segmenter:
    """Build the offline segmenter from ``spec`` (errors become ``EvalError`` naming the file)."""
    import importlib

    from instaseg_ros.models import build_segmenter

    for mod in spec.plugins:
        importlib.import_module(mod)
    for what, path in (("weights", spec.weights), ("config", spec.config)):
        if path and not Path(path).is_file():
            raise EvalError(f"model {what} file not found: {path}")
    try:
        return build_segmenter(
            spec.family,
            weights=spec.weights,
            config=spec.config,
            device=resolve_device(spec.device),
            precision=spec.precision,
            params=spec.params,
        )
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, OSError) as e:
        raise EvalError(f"cannot build the {spec.family!r} model from weights={spec.weights!r}: {e}") from e


def run_offline(
    bag: str | Path,
    topic: str,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    segmenter: Segmenter,
    params: InferenceParams | None = None,
    only_gt_frames: bool = False,
    progress: bool = True,
    on_output: Callable[[int, str, np.ndarray, Instances], None] | None = None,
    warmup: int = 1,
) -> RunData:
    """Every frame (or only matched ones) through ``segmenter`` in log order, one at a time.

    ``warmup`` untimed calls on the first frame precede the timed run (the node warms up in configure
    too). ``on_output(stamp_ns, frame_id, image, instances)`` is called per processed frame (output bag).
    """
    from tqdm import tqdm

    from instaseg_ros.data.bag_io import BagError, iter_bag_images

    cat_map = class_to_category(segmenter.class_names, gt)
    cuda = str(segmenter.device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    records: list[FrameRecord] = []
    results: list[dict[str, Any]] = []
    todo = len(match.frame_to_image) if only_gt_frames else len(frames)
    warm_left = warmup
    t_start = time.perf_counter()
    bar = tqdm(total=todo, unit="frame", desc="eval-bag offline", disable=not progress, file=sys.stderr)
    try:
        for k, (stamp, frame_id, img) in enumerate(iter_bag_images(bag, topic)):
            iid = match.frame_to_image.get(k)
            if only_gt_frames and iid is None:
                records.append(FrameRecord(k, stamp, None, False, sent=False))
                continue
            if warm_left > 0:  # untimed warm-up on the first frame (lazy init, cuDNN autotune, caches)
                for _ in range(warm_left):
                    segmenter.segment([img], params)
                warm_left = 0
                t_start = time.perf_counter()
            t0 = time.perf_counter()
            inst = segmenter.segment([img], params)[0]
            t1 = time.perf_counter()
            records.append(FrameRecord(k, stamp, iid, True, (t1 - t0) * 1e3, t1 - t_start, len(inst)))
            if iid is not None:
                results.extend(to_results(inst, iid, cat_map))
            if on_output is not None:
                on_output(stamp, frame_id, img, inst)
            bar.update(1)
    except BagError as e:
        raise EvalError(str(e)) from e
    finally:
        bar.close()
    wall = time.perf_counter() - t_start
    cuda_mb = None
    if cuda:
        import torch

        cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return RunData(
        "offline",
        records,
        results,
        wall,
        list(segmenter.class_names),
        peak_rss_mb(),
        "evaluator process: model + bag reading",
        cuda_mb,
        {
            "model": {
                "family": segmenter.family or type(segmenter).__name__,
                "device": str(segmenter.device),
                "precision": segmenter.precision,
            },
            "warmup_calls": warmup,
        },
    )


# --------------------------------------------------------------------------- metrics
def latency_stats(values: list[float]) -> dict[str, float | int | None]:
    """count, mean, min, p50/p90/p95/p99, max of per-frame latencies (ms)."""
    if not values:
        return {
            "count": 0,
            "mean": None,
            "min": None,
            **{f"p{p}": None for p in LATENCY_PERCENTILES},
            "max": None,
        }
    a = np.asarray(values, np.float64)
    out: dict[str, float | int | None] = {"count": len(a), "mean": float(a.mean()), "min": float(a.min())}
    for p in LATENCY_PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out["max"] = float(a.max())
    return out


def summarize(
    run: RunData, gt: StampedGroundTruth, match: FrameMatch, cfg: BagEvalConfig, num_frames: int
) -> dict[str, Any]:
    """Every number of the evaluation as a JSON-ready dict."""
    processed = [r for r in run.frames if r.processed]
    sent = [r for r in run.frames if r.sent]
    gt_processed = sorted(r.image_id for r in processed if r.image_id is not None)
    gt_matched = sorted(match.frame_to_image.values())
    acc = evaluate_coco(gt.coco, run.results, image_ids=gt_processed) if gt_processed else None
    acc_drops = None
    if run.mode == "live" and len(gt_processed) < len(gt_matched):
        acc_drops = evaluate_coco(gt.coco, run.results, image_ids=gt_matched)
    lat = latency_stats([r.latency_ms for r in processed if r.latency_ms is not None])
    dropped = len(sent) - len(processed)
    cat_map = class_to_category(run.class_names, gt)
    m = cfg.model
    summary: dict[str, Any] = {
        "tool": "instaseg eval-bag",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": run.mode,
        "bag": str(cfg.bag),
        "topic": cfg.topic,
        "ground_truth": gt.path,
        "model": {
            "family": m.family,
            "weights": m.weights,
            "config": m.config,
            "device": m.device,
            "precision": m.precision,
            "params": asdict(m.params),
            **run.extra.get("model", {}),
        },
        "frames": {
            "in_bag": num_frames,
            "sent": len(sent),
            "processed": len(processed),
            "dropped": dropped,
            "gt_images": len(gt.stamps),
            "gt_matched": len(gt_matched),
            "gt_unmatched": len(match.unmatched_images),
            "gt_processed": len(gt_processed),
            "stamp_tolerance_ms": cfg.stamp_tolerance_ns / 1e6,
            "max_stamp_offset_ms": match.max_offset_ns / 1e6,
        },
        "accuracy": acc,
        "accuracy_counting_drops": acc_drops,
        "latency_ms": lat,
        "throughput_fps": len(processed) / run.wall_s if run.wall_s > 0 else None,
        "drop_rate": dropped / len(sent) if sent else 0.0,
        "wall_s": run.wall_s,
        "memory": {
            "peak_rss_mb": run.peak_rss_mb,
            "peak_rss_of": run.peak_rss_of,
            "cuda_max_allocated_mb": run.cuda_max_allocated_mb,
        },
        "classes": {
            "model": run.class_names,
            "ground_truth": gt.category_names,
            "model_classes_not_in_gt": [n for n, c in zip(run.class_names, cat_map) if c is None],
            "gt_categories_not_in_model": [n for n in gt.category_names if n not in run.class_names],
        },
        "unmatched_gt_image_ids": match.unmatched_images,
        "per_frame": [asdict(r) for r in run.frames],
    }
    if run.mode == "offline":
        summary["offline"] = {k: v for k, v in run.extra.items() if k != "model"}
    if run.mode == "live":
        summary["live"] = {k: v for k, v in run.extra.items() if k != "model"}
        summary["live"]["rate_multiplier"] = cfg.rate_multiplier
    return summary


# --------------------------------------------------------------------------- examples
def pick_examples(run: RunData, gt: StampedGroundTruth, bag: str | Path, topic: str, n: int) -> list[Example]:
    """Up to ``n`` processed ground-truth frames, evenly spaced, with images read back from the bag."""
    from instaseg_ros.data.bag_io import iter_bag_images

    cands = [r for r in run.frames if r.processed and r.image_id is not None]
    if n <= 0 or not cands:
        return []
    with_gt = {int(a["image_id"]) for a in gt.coco.get("annotations", [])}
    pool = [r for r in cands if r.image_id in with_gt] or cands
    idx = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))
    chosen = {pool[i].index: pool[i] for i in idx}
    images: dict[int, np.ndarray] = {}
    gen = iter_bag_images(bag, topic)
    try:
        for k, (_stamp, _fid, img) in enumerate(gen):
            if k in chosen:
                images[k] = img
                if len(images) == len(chosen):
                    break
    finally:
        gen.close()
    out = []
    for k, r in sorted(chosen.items()):
        if k in images:
            out.append(
                Example(
                    r.stamp_ns,
                    r.image_id,
                    images[k],
                    results_to_instances(run.results, r.image_id, gt),
                    gt.instances(r.image_id),
                )
            )
    return out


# --------------------------------------------------------------------------- entry point
def run_bag_eval(
    cfg: BagEvalConfig,
    segmenter: Segmenter | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> EvalOutcome:
    """Check inputs, run the chosen mode, compute every metric.

    ``segmenter`` (offline only) overrides building the model from ``cfg.model``.
    Raises ``EvalError`` with a user-facing message for every input problem.
    """
    say = log or (lambda _m: None)
    if cfg.mode not in ("offline", "live"):
        raise EvalError(f"mode must be 'offline' or 'live', got {cfg.mode!r}")
    try:
        gt = load_ground_truth(cfg.gt)
    except GroundTruthError as e:
        raise EvalError(str(e)) from e
    say(
        f"ground truth: {len(gt.stamps)} images, {len(gt.coco['annotations'])} annotations, "
        f"categories {gt.category_names}"
    )
    frames = scan_bag(cfg.bag, cfg.topic)
    match = match_frames(frames, gt, cfg.stamp_tolerance_ns)
    say(
        f"bag: {len(frames)} frames on {cfg.topic}; {len(match.frame_to_image)} of {len(gt.stamps)} "
        f"ground-truth images matched (max offset {match.max_offset_ns / 1e6:.3f} ms)"
    )
    writer = None
    try:
        if cfg.mode == "offline":
            seg = segmenter or build_model(cfg.model)
            class_to_category(seg.class_names, gt)  # fail before the run when no class name matches
            if cfg.output_bag:
                from instaseg_ros.evaluation.output_bag import OutputBagWriter

                try:
                    writer = OutputBagWriter(cfg.output_bag, cfg.topic, seg.class_names)
                except (ImportError, OSError) as e:
                    raise EvalError(f"cannot write the output bag {cfg.output_bag}: {e}") from e
            run = run_offline(
                cfg.bag,
                cfg.topic,
                frames,
                match,
                gt,
                seg,
                cfg.model.params,
                cfg.only_gt_frames,
                progress,
                writer.write if writer else None,
            )
        else:
            if segmenter is not None:
                raise EvalError("live mode runs the node's own model; pass a ModelSpec, not a segmenter")
            from instaseg_ros.evaluation.live import run_live

            run = run_live(cfg, frames, match, gt, progress=progress, log=say)
    finally:
        if writer is not None:
            writer.close()
    summary = summarize(run, gt, match, cfg, len(frames))
    examples = pick_examples(run, gt, cfg.bag, cfg.topic, cfg.num_examples)
    return EvalOutcome(summary, run, examples, gt)
