"""Accuracy and latency of a segmenter on a recorded rosbag2, against stamp-keyed ground truth.

Two modes share everything but the run itself:

* **offline** (:mod:`instaseg_ros.evaluation.offline`): every frame of the image topic goes through
  the model in this process, one at a time, as fast as possible; deterministic. Latency = the
  ``segment()`` call.
* **live** (:mod:`instaseg_ros.evaluation.live`): the bag is replayed at its recorded rate (or a
  multiple) to the real node over DDS; latency = publish of the frame -> arrival of both outputs,
  frames without a result are dropped, and accuracy is scored on the node's published outputs.

Ground-truth images are keyed to bag messages by header stamp (``images[*].stamp_ns``, see
:mod:`instaseg_ros.evaluation.gt_tools`): each is matched to the message with the nearest stamp within
``stamp_tolerance_ns``. COCO box and mask AP come from ``coco_eval.evaluate_coco`` over the matched frames
that were processed; in live mode a second score counts dropped frames as frames without detections.
Model classes are matched to ground-truth categories by name.

Where the ground truth allows it, two more scores (summary keys ``tracking`` and ``depth_3d``):
MOT metrics of the tracker vs a plain IoU matcher (:mod:`.tracking_eval`) and 3D centre/size errors
vs distance (:mod:`.depth_eval`).

Modules: :mod:`.records` (the dataclasses), :mod:`.matching` (bag frames, stamps, classes, COCO
results), :mod:`.offline`, :mod:`.live`, :mod:`.summary` (metrics, examples), :mod:`.report`.
This module is the entry point, :func:`run_bag_eval`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from instaseg_ros.core.segmenter import Segmenter
from instaseg_ros.evaluation.gt_tools import GroundTruthError, StampedGroundTruth, load_ground_truth
from instaseg_ros.evaluation.live import run_live
from instaseg_ros.evaluation.matching import class_to_category, match_frames, scan_bag
from instaseg_ros.evaluation.offline import load_eval_model, run_offline
from instaseg_ros.evaluation.records import (
    BagEvalConfig,
    BagFrame,
    EvalError,
    EvalOutcome,
    FrameMatch,
    RunData,
)
from instaseg_ros.evaluation.summary import pick_examples, summarize

#: largest |depth stamp - colour stamp| for offline 3D scoring (the node's depth.sync_tolerance default)
DEPTH_SYNC_NS = 20_000_000


class Scoring:
    """The optional scores of one run: tracking (MOT) and 3D, fed frame by frame.

    ``start(class_names, own_tracker)`` once the model's classes are known; offline mode then calls
    :meth:`observe` per processed frame, live mode :meth:`observe_live`.
    """

    def __init__(self, cfg: BagEvalConfig, gt: StampedGroundTruth) -> None:
        from instaseg_ros.evaluation.depth_eval import has_3d
        from instaseg_ros.evaluation.tracking_eval import has_track_ids

        self.cfg, self.gt = cfg, gt
        self.want_tracking = cfg.tracking and has_track_ids(gt)
        self.want_3d = cfg.depth_3d and has_3d(gt)
        self.tracking: Any = None
        self.depth: Any = None
        self.depth_frames: dict[int, Any] = {}
        self._depth_stamps = np.zeros(0, np.int64)
        self.unpaired_3d = 0
        self.depth_ms: list[float] = []

    def load_depth(self) -> None:
        """Read the bag's depth frames (3D scoring only)."""
        if not self.want_3d or self.depth_frames:
            return
        from instaseg_ros.evaluation.depth_eval import read_depth_frames

        info = self.gt.coco["info"]
        topic, info_topic = info["depth_topic"], info.get("depth_info_topic", "")
        self.depth_frames = read_depth_frames(self.cfg.bag, topic, info_topic)
        self._depth_stamps = np.array(sorted(self.depth_frames), np.int64)

    def start(self, class_names: list[str], own_tracker: bool) -> None:
        from instaseg_ros.evaluation.depth_eval import DepthScorer
        from instaseg_ros.evaluation.tracking_eval import TrackingScorer

        cat_map = class_to_category(class_names, self.gt)
        if self.want_tracking:
            self.tracking = TrackingScorer(self.gt, cat_map, own_tracker=own_tracker)
        if self.want_3d:
            self.load_depth()
            self.depth = DepthScorer(self.gt, cat_map)

    def depth_frame(self, stamp_ns: int) -> Any:
        """The depth frame nearest ``stamp_ns`` within :data:`DEPTH_SYNC_NS`, or None."""
        st = self._depth_stamps
        if not len(st):
            return None
        i = int(np.searchsorted(st, stamp_ns))
        j = min((k for k in (i - 1, i) if 0 <= k < len(st)), key=lambda k: abs(int(st[k]) - stamp_ns))
        return self.depth_frames[int(st[j])] if abs(int(st[j]) - stamp_ns) <= DEPTH_SYNC_NS else None

    def observe(self, stamp_ns: int, image_id: int | None, image: np.ndarray, inst: Any) -> None:
        """Offline: one processed frame (the tracker runs here; 3D by the node's 3D step)."""
        import time

        from instaseg_ros.evaluation.depth_eval import instances_3d_offline
        from instaseg_ros.geometry import Depth3DParams

        if self.tracking is not None:
            self.tracking.add(inst, image_id, stamp_ns, image)
        if self.depth is not None and image_id is not None:
            frame = self.depth_frame(stamp_ns)
            if frame is None:
                self.unpaired_3d += 1
                return
            t0 = time.perf_counter()
            centers, sizes = instances_3d_offline(inst, frame, Depth3DParams())
            self.depth_ms.append((time.perf_counter() - t0) * 1e3)
            self.depth.add(image_id, inst, centers, sizes)

    def observe_live(
        self, stamp_ns: int, image_id: int | None, inst: Any, ids: np.ndarray, det3d: Any = None
    ) -> None:
        """Live: the node's instances and ids for one frame, with its Detection3DArray (or None)."""
        if self.tracking is not None:
            self.tracking.add(inst, image_id, stamp_ns, None, track_ids=ids)
        if self.depth is not None and image_id is not None:
            if det3d is None:
                self.unpaired_3d += 1
                return
            centers, sizes = np.full((len(inst), 3), np.nan), np.full((len(inst), 3), np.nan)
            row = {int(k): i for i, k in enumerate(ids)}
            for d in det3d.detections:
                i = row.get(int(d.id))
                if i is not None:
                    p, z = d.bbox.center.position, d.bbox.size
                    centers[i], sizes[i] = (p.x, p.y, p.z), (z.x, z.y, z.z)
            self.depth.add(image_id, inst, centers, sizes)

    def missing(self, image_id: int) -> None:
        """Live: a ground-truth frame the node dropped."""
        if self.tracking is not None:
            self.tracking.add_missing(image_id)

    def summaries(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tracking is not None:
            out["tracking"] = self.tracking.summary()
        if self.depth is not None:
            d = self.depth.summary()
            if d is not None:
                d["frames_without_depth"] = self.unpaired_3d
                if self.depth_ms:
                    a = np.asarray(self.depth_ms)
                    d["depth_ms"] = {"p50": float(np.median(a)), "p95": float(np.percentile(a, 95))}
            out["depth_3d"] = d
        return out


def run_bag_eval(
    cfg: BagEvalConfig,
    segmenter: Segmenter | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> EvalOutcome:
    """Check inputs, run the chosen mode, compute every metric.

    ``segmenter`` (offline only) replaces loading the model of ``cfg.model``.
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
    scoring = Scoring(cfg, gt)
    if cfg.mode == "offline":
        run = _offline(cfg, frames, match, gt, segmenter, progress, scoring)
    else:
        if segmenter is not None:
            raise EvalError("live mode runs the node's own model; pass a ModelSpec, not a segmenter")
        run = run_live(cfg, frames, match, gt, progress=progress, log=say, scoring=scoring)
    summary = summarize(run, gt, match, cfg, len(frames))
    summary.update(scoring.summaries())
    examples = pick_examples(run, gt, cfg.bag, cfg.topic, cfg.num_examples)
    return EvalOutcome(summary, run, examples, gt)


def _offline(
    cfg: BagEvalConfig,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    segmenter: Segmenter | None,
    progress: bool,
    scoring: Scoring | None = None,
) -> RunData:
    """Offline mode: load the model (unless given), open the output bag, run every frame."""
    seg = segmenter or load_eval_model(cfg.model)
    class_to_category(seg.class_names, gt)  # fail before the run when no class name matches
    if scoring is not None:
        scoring.start(list(seg.class_names), own_tracker=True)
    writer = None
    if cfg.output_bag:
        from instaseg_ros.evaluation.output_bag import OutputBagWriter

        try:
            writer = OutputBagWriter(cfg.output_bag, cfg.topic, seg.class_names)
        except (ImportError, OSError) as e:
            raise EvalError(f"cannot write the output bag {cfg.output_bag}: {e}") from e
    try:
        return run_offline(
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
            observers=[scoring.observe] if scoring is not None else None,
            temporal=cfg.temporal,
        )
    finally:
        if writer is not None:
            writer.close()
