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

Modules: :mod:`.records` (the dataclasses), :mod:`.matching` (bag frames, stamps, classes, COCO
results), :mod:`.offline`, :mod:`.live`, :mod:`.summary` (metrics, examples), :mod:`.report`.
This module is the entry point, :func:`run_bag_eval`.
"""

from __future__ import annotations

from collections.abc import Callable

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
    if cfg.mode == "offline":
        run = _offline(cfg, frames, match, gt, segmenter, progress)
    else:
        if segmenter is not None:
            raise EvalError("live mode runs the node's own model; pass a ModelSpec, not a segmenter")
        run = run_live(cfg, frames, match, gt, progress=progress, log=say)
    summary = summarize(run, gt, match, cfg, len(frames))
    examples = pick_examples(run, gt, cfg.bag, cfg.topic, cfg.num_examples)
    return EvalOutcome(summary, run, examples, gt)


def _offline(
    cfg: BagEvalConfig,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    segmenter: Segmenter | None,
    progress: bool,
) -> RunData:
    """Offline mode: load the model (unless given), open the output bag, run every frame."""
    seg = segmenter or load_eval_model(cfg.model)
    class_to_category(seg.class_names, gt)  # fail before the run when no class name matches
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
        )
    finally:
        if writer is not None:
            writer.close()
