"""Baseline for evaluation: plain frame-to-frame box-IoU matching (no motion model, no memory)."""

from __future__ import annotations

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.tracking.ids import IdAllocator
from instaseg_ros.tracking.similarity import box_iou
from instaseg_ros.tracking.tracker import TrackerStats, _assign


class IoUMatcher:
    """Each detection takes the id of the previous frame's detection it overlaps most (Hungarian
    assignment on box IoU >= ``iou_threshold``, same class); any other detection gets a new id.

    Same API as :class:`~instaseg_ros.tracking.tracker.Tracker`.
    """

    def __init__(self, iou_threshold: float = 0.3, class_consistent: bool = True, first_id: int = 1) -> None:
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"IoUMatcher: iou_threshold must be in [0, 1], got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self.class_consistent = class_consistent
        self.stats = TrackerStats()
        self._ids = IdAllocator(first_id)
        self.reset()
        self.stats.resets = 0

    def reset(self) -> None:
        """Forget the previous frame (the id counter keeps running)."""
        self.stats.resets += 1
        self._boxes = np.zeros((0, 4))
        self._cls = np.zeros(0, np.int64)
        self._prev_ids = np.zeros(0, np.int64)
        self._last_stamp: int | None = None

    def update(
        self, instances: Instances, image_bgr: np.ndarray | None = None, stamp_ns: int | None = None
    ) -> np.ndarray:
        """[N] uint16 ids for ``instances`` (``image_bgr`` is unused; a backwards stamp resets)."""
        self.stats.frames += 1
        if stamp_ns is not None:
            if self._last_stamp is not None and int(stamp_ns) < self._last_stamp:
                self.stats.time_jumps += 1
                self.reset()
            self._last_stamp = int(stamp_ns)
        n = len(instances)
        ids = np.zeros(n, np.int64)
        matched = np.zeros(n, bool)
        if n and len(self._boxes):
            sim = box_iou(instances.boxes, self._boxes)
            if self.class_consistent:
                sim[instances.class_ids[:, None] != self._cls[None, :]] = 0.0
            r, c = _assign(sim, self.iou_threshold)
            ids[r] = self._prev_ids[c]
            matched[r] = True
        fresh = np.flatnonzero(~matched)
        if len(fresh):
            ids[fresh] = self._ids.allocate(len(fresh), ids[matched].tolist())
        self.stats.births += len(fresh)
        self.stats.deaths += len(self._prev_ids) - int(matched.sum())
        self.stats.live = n
        self._boxes = instances.boxes.astype(np.float64)
        self._cls = instances.class_ids.copy()
        self._prev_ids = ids
        return ids.astype(np.uint16)
