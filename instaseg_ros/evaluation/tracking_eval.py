"""MOT scoring of an ``eval-bag`` run: the tracker's ids vs a plain IoU matcher on the same detections.

Frames are fed in stream order (:meth:`TrackingScorer.add`), every processed frame, scored or not,
so both methods see what the node sees. On ground-truth frames whose annotations carry ``track_id``
each method's frame goes into a ``motmetrics`` accumulator per ground-truth ``sequence`` (the
synthetic bags' camera-motion sequences; one sequence "all" without the key). A ground-truth frame
without output (dropped in live mode) counts as a frame without predictions. Matching: mask IoU >= 0.5
and the same category (:func:`~instaseg_ros.evaluation.tracking_metrics.frame_distances`).

Offline the tracker is the package's :class:`~instaseg_ros.tracking.Tracker` run here with the
node's defaults; live its ids are the node's (``Detection2D.id``). The baseline
(:class:`~instaseg_ros.tracking.IoUMatcher`) always runs here, on the same instances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth
from instaseg_ros.evaluation.tracking_metrics import TrackFrame, frame_distances, metrics_from_accumulators
from instaseg_ros.tracking import IoUMatcher, Tracker, TrackerConfig

METHODS = ("tracker", "iou_baseline")


def has_track_ids(gt: StampedGroundTruth) -> bool:
    """True when every annotation carries ``track_id`` (and there is at least one)."""
    anns = gt.coco.get("annotations", [])
    return bool(anns) and all("track_id" in a for a in anns)


class TrackingScorer:
    """Accumulates MOT metrics of the tracker and the IoU baseline over one run.

    Args:
        gt: the ground truth (annotations with ``track_id``).
        cat_map: ground-truth category id of each model class (None: not in the ground truth).
        own_tracker: run a :class:`Tracker` here (offline); False: ids come with each frame (live).
        tracker_config: settings of that tracker (default: the node's defaults).
        iou_threshold: least mask IoU for a prediction to be the ground-truth object.
    """

    def __init__(
        self,
        gt: StampedGroundTruth,
        cat_map: list[int | None],
        own_tracker: bool = True,
        tracker_config: TrackerConfig | None = None,
        iou_threshold: float = 0.5,
    ) -> None:
        self.gt = gt
        self.cat = np.array([-1 if c is None else int(c) for c in cat_map], np.int64)
        self.tracker = Tracker(tracker_config) if own_tracker else None
        self.baseline = IoUMatcher()
        self.iou_threshold = iou_threshold
        self._accs: dict[str, dict[str, Any]] = {m: {} for m in METHODS}
        self._by_image: dict[int, list[dict]] = {}
        for a in gt.coco.get("annotations", []):
            self._by_image.setdefault(int(a["image_id"]), []).append(a)
        self.tracking_ms: list[float] = []

    def _gt_frame(self, image_id: int) -> TrackFrame:
        from instaseg_ros.evaluation.gt_tools import annotation_mask

        im = self.gt.images[image_id]
        anns = self._by_image.get(image_id, [])
        h, w = int(im["height"]), int(im["width"])
        masks = np.zeros((len(anns), h, w), bool)
        for j, a in enumerate(anns):
            masks[j] = annotation_mask(a, h, w)
        ids, cls = [a["track_id"] for a in anns], [a["category_id"] for a in anns]
        return TrackFrame(ids, masks=masks, class_ids=cls)

    def _acc(self, method: str, image_id: int):
        import motmetrics as mm

        seq = str(self.gt.images[image_id].get("sequence", "all"))
        accs = self._accs[method]
        if seq not in accs:
            accs[seq] = mm.MOTAccumulator(auto_id=True)
        return accs[seq]

    def _pred_frame(self, inst: Instances, ids: np.ndarray) -> TrackFrame:
        return TrackFrame(ids.astype(np.int64), masks=inst.masks, class_ids=self.cat[inst.class_ids])

    def add(
        self,
        inst: Instances,
        image_id: int | None,
        stamp_ns: int,
        image_bgr: np.ndarray | None = None,
        track_ids: np.ndarray | None = None,
    ) -> None:
        """One processed frame in stream order (``image_id`` None: not a ground-truth frame).

        ``track_ids`` ([N], live): the node's ids; offline the own tracker assigns them from
        ``inst`` and ``image_bgr`` (its appearance cue).
        """
        import time

        if self.tracker is not None:
            t0 = time.perf_counter()
            track_ids = self.tracker.update(inst, image_bgr, stamp_ns)
            self.tracking_ms.append((time.perf_counter() - t0) * 1e3)
        if track_ids is None:
            raise ValueError("TrackingScorer.add: track_ids are needed when the scorer has no tracker")
        base_ids = self.baseline.update(inst, None, stamp_ns)
        if image_id is None or image_id not in self.gt.images:
            return
        gt_frame = self._gt_frame(image_id)
        for method, ids in (("tracker", np.asarray(track_ids)), ("iou_baseline", base_ids)):
            pred = self._pred_frame(inst, ids)
            dist = frame_distances(gt_frame, pred, self.iou_threshold)
            self._acc(method, image_id).update(gt_frame.ids.tolist(), pred.ids.tolist(), dist)

    def add_missing(self, image_id: int) -> None:
        """A ground-truth frame without output (dropped): every object is a miss for both methods."""
        if image_id not in self.gt.images:
            return
        gt_frame = self._gt_frame(image_id)
        for method in METHODS:
            self._acc(method, image_id).update(gt_frame.ids.tolist(), [], np.zeros((len(gt_frame.ids), 0)))

    def summary(self) -> dict[str, Any] | None:
        """``{"tracker": metrics, "iou_baseline": metrics, "idf1_gain", "mota_gain", "iou_threshold",
        "tracker_source", "tracking_ms"}`` (metrics: per sequence and overall, see
        :func:`~instaseg_ros.evaluation.tracking_metrics.tracking_metrics`); None without scored frames."""
        if not self._accs["tracker"]:
            return None
        out: dict[str, Any] = {m: metrics_from_accumulators(self._accs[m], self.iou_threshold)
                               for m in METHODS}  # fmt: skip
        t, b = out["tracker"]["overall"], out["iou_baseline"]["overall"]
        out["idf1_gain"] = None if t["idf1"] is None or b["idf1"] is None else t["idf1"] - b["idf1"]
        out["mota_gain"] = None if t["mota"] is None or b["mota"] is None else t["mota"] - b["mota"]
        out["iou_threshold"] = self.iou_threshold
        out["tracker_source"] = "instaseg_ros.tracking.Tracker in the evaluator" if self.tracker else (
            "the node's Detection2D ids"
        )
        if self.tracking_ms:
            a = np.asarray(self.tracking_ms)
            out["tracking_ms"] = {"p50": float(np.median(a)), "p95": float(np.percentile(a, 95))}
        return out
