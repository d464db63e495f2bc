"""Multi-object tracking of ``Instances``: stable ids across frames (numpy, scipy, OpenCV; no torch).

Per frame (``Tracker.update``):

1. predict every track with a constant-velocity Kalman filter on its box;
2. first association (as ByteTrack): high-score detections against all tracks (tracked, new
   and lost) on a similarity mixing box IoU and low-resolution mask IoU, same class only;
3. second association: the remaining low-score detections against the tracks seen in the
   previous frame, on box IoU (low-score masks are often cut by occlusion);
4. re-identification: detections still unmatched against confirmed tracks still unmatched, on
   a colour histogram of the mask pixels, within a distance gate around the predicted box;
5. every detection left over starts a new track with a fresh id at once, so every detection
   has an id on every frame. A track is *confirmed* after ``min_hits`` matched frames; only
   confirmed tracks are kept (up to ``max_age`` frames) when their detection disappears.

Ids are 1..65535 (they are the ``mono16`` instance-mask values), wrap past 65535 and never
collide with a live track. A stamp earlier than the previous one (a looping bag) or a new
image size resets the tracks; the id counter keeps running so old and new ids do not clash.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from instaseg_ros.core.instances import Instances
from instaseg_ros.tracking import kalman
from instaseg_ros.tracking.ids import IdAllocator
from instaseg_ros.tracking.similarity import (
    HIST_BINS,
    bhattacharyya,
    box_iou,
    colour_histograms,
    downsample_masks,
    mask_iou,
    shift_masks,
)

_INFEASIBLE = 1e6
_HIST_REFRESH = 8  # frames between updates of a matched track's colour histogram


@dataclass
class TrackerConfig:
    """Tracker settings (the node's ``tracking.*`` parameters).

    Attributes:
        enabled: track; when False ``update`` returns per-frame ids 1..N in input order.
        high_threshold: detections scoring at least this take part in the first association.
        low_threshold: detections scoring in [low, high) only extend tracks seen in the previous
            frame (second association); below ``low_threshold`` a detection always gets a new id.
        match_threshold: least combined similarity (box and mask IoU) for a first-stage match.
        low_match_threshold: least box IoU for a second-stage match.
        min_hits: matched frames before a track is confirmed (kept while lost, re-identifiable).
        max_age: frames a confirmed track is kept without a detection.
        box_weight, mask_weight: weights of box IoU and mask IoU in the similarity.
        appearance_threshold: least Bhattacharyya coefficient of the colour histograms for a
            re-identification (1 = identical colours).
        reid_distance: re-identification gate: centre distance at most this many diagonals of
            the track's predicted box.
        appearance_momentum: weight of a track's stored histogram when a new one is merged in.
        mask_stride: masks are compared on every ``mask_stride``-th pixel in each direction.
    """

    enabled: bool = True
    high_threshold: float = 0.5
    low_threshold: float = 0.1
    match_threshold: float = 0.3
    low_match_threshold: float = 0.5
    min_hits: int = 2
    max_age: int = 30
    box_weight: float = 0.5
    mask_weight: float = 0.5
    appearance_threshold: float = 0.7
    reid_distance: float = 1.0
    appearance_momentum: float = 0.8
    mask_stride: int = 8

    def __post_init__(self) -> None:
        unit = ("high_threshold", "low_threshold", "match_threshold", "low_match_threshold",
                "appearance_threshold", "appearance_momentum")
        for name in unit:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"TrackerConfig.{name} must be in [0, 1], got {v}")
        if self.low_threshold > self.high_threshold:
            raise ValueError(
                f"TrackerConfig: low_threshold ({self.low_threshold}) must not exceed "
                f"high_threshold ({self.high_threshold})"
            )
        lower = {"min_hits": 1, "max_age": 0, "box_weight": 0, "mask_weight": 0, "reid_distance": 0,
                 "mask_stride": 1}
        for name, lo in lower.items():
            if getattr(self, name) < lo:
                raise ValueError(f"TrackerConfig.{name} must be >= {lo}, got {getattr(self, name)}")
        if self.box_weight + self.mask_weight <= 0:
            raise ValueError("TrackerConfig: box_weight + mask_weight must be positive")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrackerConfig:
        """Build from a mapping (YAML, node parameters); unknown keys raise a ValueError naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrackerConfig: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrackerStats:
    """Diagnostics counters. ``live``, ``lost`` and ``confirmed`` describe the last frame; the
    others count since construction (a reset does not clear them)."""

    frames: int = 0
    live: int = 0  # tracks matched to a detection in the last frame (= its detections)
    lost: int = 0  # confirmed tracks kept without a detection, waiting for re-identification
    confirmed: int = 0  # confirmed tracks among live + lost
    births: int = 0  # new tracks (fresh ids)
    deaths: int = 0  # tracks ended (unconfirmed and missed, lost past max_age, or reset)
    reidentifications: int = 0  # lost tracks matched again
    appearance_reids: int = 0  # ... of which by the colour-histogram stage
    resets: int = 0  # explicit, time jump backwards or image size change
    time_jumps: int = 0  # stamps that went backwards

    def snapshot(self) -> dict[str, int]:
        return asdict(self)


def _assign(sim: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-cardinality, then least-cost matching of rows to columns with ``sim >= threshold``.

    Args:
        sim: [R, C] similarities (higher is better).

    Returns:
        (rows [K], cols [K]) of the accepted pairs.
    """
    if sim.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    cost = np.where(sim >= threshold, 1.0 - sim, _INFEASIBLE)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < _INFEASIBLE
    return r[ok], c[ok]


class _LazyHistograms:
    """Colour histograms of a frame's detections, computed only for the rows asked for."""

    def __init__(self, image_bgr: np.ndarray, masks: np.ndarray, boxes: np.ndarray) -> None:
        self._image, self._masks, self._boxes = image_bgr, masks, boxes
        self._hist = np.zeros((len(masks), HIST_BINS), np.float32)
        self._done = np.zeros(len(masks), bool)

    def get(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), HIST_BINS] histograms of detections ``rows``."""
        todo = rows[~self._done[rows]]
        if len(todo):
            self._hist[todo] = colour_histograms(self._image, self._masks, self._boxes, todo)
            self._done[todo] = True
        return self._hist[rows]

    def known(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(histograms [len(rows), HIST_BINS], computed [len(rows)] bool); zeros where not computed."""
        return self._hist[rows], self._done[rows]


def _reid_gate(det: np.ndarray, pred: np.ndarray, max_diagonals: float) -> np.ndarray:
    """Which (detection, predicted track box) pairs may be re-identified.

    Args:
        det: [R, 4] xyxy; pred: [C, 4] xyxy.

    Returns:
        [R, C] bool: centre distance within ``max_diagonals`` diagonals of the predicted box and
        heights within a factor of 2.
    """
    diag = np.hypot(pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1])
    dc = ((det[:, None, :2] + det[:, None, 2:]) - (pred[None, :, :2] + pred[None, :, 2:])) / 2
    near = np.hypot(dc[..., 0], dc[..., 1]) <= max_diagonals * diag[None, :]
    ratio = (det[:, 3] - det[:, 1])[:, None] / np.maximum(pred[:, 3] - pred[:, 1], 1e-3)[None, :]
    return near & (ratio >= 0.5) & (ratio <= 2.0)


@dataclass
class _Tracks:
    """Track table, one row per track (struct of arrays for vectorised updates)."""

    cells: int  # low-resolution mask cells per track
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cls: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((0, 8, 8)))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lost: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames since last match
    confirmed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    centre: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # box centre of the last match
    mask: np.ndarray = field(init=False)  # [T, cells] bool low-res mask of the last match
    hist: np.ndarray = field(default_factory=lambda: np.zeros((0, HIST_BINS), np.float32))
    has_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    _ROWS = ("ids", "cls", "mean", "cov", "hits", "lost", "confirmed", "centre", "mask", "hist", "has_hist")

    def __post_init__(self) -> None:
        self.mask = np.zeros((0, self.cells), bool)

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, rows: np.ndarray) -> None:
        for name in self._ROWS:
            setattr(self, name, getattr(self, name)[rows])

    def extend(self, other: dict[str, np.ndarray]) -> None:
        for name in self._ROWS:
            setattr(self, name, np.concatenate([getattr(self, name), other[name]]))


class Tracker:
    """Assigns stable track ids to the instances of consecutive frames of one camera.

    ``update(instances, image_bgr, stamp_ns) -> [N] uint16`` ids aligned with ``instances``.
    """

    def __init__(self, config: TrackerConfig | None = None, first_id: int = 1) -> None:
        """``first_id``: the first id handed out (1..65535)."""
        self.config = config or TrackerConfig()
        self.stats = TrackerStats()
        self._ids = IdAllocator(first_id)
        self._image_size: tuple[int, int] | None = None
        self._grid: tuple[int, int] = (0, 0)
        self._tracks = _Tracks(0)
        self._last_stamp: int | None = None
        self._periods: deque[int] = deque(maxlen=15)

    # ------------------------------------------------------------------ public
    def reset(self) -> None:
        """Forget every track (a reconfigure, a new bag loop); the id counter keeps running."""
        self.stats.deaths += len(self._tracks)
        self.stats.resets += 1
        self.stats.live = self.stats.lost = self.stats.confirmed = 0
        self._tracks = _Tracks(self._grid[0] * self._grid[1])
        self._last_stamp = None
        self._periods.clear()

    def configure(self, config: TrackerConfig) -> None:
        """Change the settings at run time (node parameters). Tracks are kept unless the mask grid
        changes (``mask_stride``) or tracking is switched off; counters and the id counter are kept."""
        old, self.config = self.config, config
        if config.mask_stride != old.mask_stride:
            self.reset()
            self._image_size = None  # rebuild the mask grid on the next frame
        elif not config.enabled and len(self._tracks):
            self.reset()

    @property
    def track_count(self) -> int:
        """Tracks alive (matched in the last frame or kept for re-identification)."""
        return len(self._tracks)

    def alive_ids(self) -> np.ndarray:
        """[T] uint16 ids of the tracks alive: none of them is handed out to a new track."""
        return self._tracks.ids.astype(np.uint16)

    def update(
        self, instances: Instances, image_bgr: np.ndarray | None = None, stamp_ns: int | None = None
    ) -> np.ndarray:
        """Track one frame.

        Args:
            instances: the frame's detections (boxes [N, 4] xyxy, scores, class_ids, masks [N, H, W]).
            image_bgr: [H, W, 3] uint8 frame for the appearance cue; None disables re-identification
                by appearance (motion matching still works).
            stamp_ns: the frame's stamp; an earlier stamp than the previous frame's resets the
                tracker, and gaps (dropped frames) lengthen the prediction step. None: one step.

        Returns:
            [N] uint16 track ids in ``instances`` order, unique within the frame, in 1..65535.
        """
        inst = instances
        n = len(inst)
        cfg = self.config
        self.stats.frames += 1
        if not cfg.enabled:
            if len(self._tracks):
                self.reset()
            self.stats.live = n
            return np.arange(1, n + 1, dtype=np.uint16)
        if image_bgr is not None:
            if image_bgr.dtype != np.uint8 or image_bgr.shape != (*inst.image_size, 3):
                raise ValueError(
                    f"Tracker.update: image_bgr must be uint8 {[*inst.image_size, 3]} like the "
                    f"instances, got {image_bgr.dtype} {list(image_bgr.shape)}"
                )
        if n and not np.isfinite(inst.boxes).all():
            raise ValueError("Tracker.update: instances have non-finite boxes")
        dt = self._step(stamp_ns)
        if inst.image_size != self._image_size:
            if self._image_size is not None:
                self.reset()
            self._image_size = inst.image_size
            s = cfg.mask_stride
            self._grid = (-(-inst.image_size[0] // s), -(-inst.image_size[1] // s))
            self._tracks = _Tracks(self._grid[0] * self._grid[1])

        tr = self._tracks
        t = len(tr)
        if t:
            was_lost = tr.lost > 0
            tr.mean[was_lost, 7] = 0.0  # lost tracks keep their height (as ByteTrack)
            tr.mean, tr.cov = kalman.predict(tr.mean, tr.cov, dt)
        det_track = np.full(n, -1, np.int64)
        if n == 0:
            return self._finish(det_track, np.zeros((0, 4)), np.zeros((0, tr.cells), bool), None, inst)

        boxes = inst.boxes.astype(np.float64)
        det_masks = downsample_masks(inst.masks, cfg.mask_stride, boxes)
        scores = inst.scores
        high = scores >= cfg.high_threshold
        low = (scores >= cfg.low_threshold) & ~high
        hists = _LazyHistograms(image_bgr, inst.masks, boxes) if image_bgr is not None else None
        if t:
            pred = kalman.cxcyah_to_xyxy(tr.mean)
            same = inst.class_ids[:, None] == tr.cls[None, :]
            iou_b = box_iou(boxes, pred)
            shifts = np.rint((tr.mean[:, :2] - tr.centre) / cfg.mask_stride).astype(np.int64)
            # mask IoU only where the boxes overlap (elsewhere it is 0: masks lie inside their boxes)
            iou_m = mask_iou(det_masks, shift_masks(tr.mask, self._grid, shifts), (iou_b > 0) & same)
            sim = (cfg.box_weight * iou_b + cfg.mask_weight * iou_m) / (cfg.box_weight + cfg.mask_weight)
            sim[~same] = 0.0
            iou_b[~same] = 0.0
            free_t = np.ones(t, bool)

            def match(rows: np.ndarray, cols: np.ndarray, block: np.ndarray, thr: float) -> np.ndarray:
                """Assign on ``block`` [len(rows), len(cols)]; returns the matched track rows."""
                r, c = _assign(block, thr)
                det_track[rows[r]] = cols[c]
                free_t[cols[c]] = False
                return cols[c]

            # 1: high-score detections against every track
            rows = np.flatnonzero(high)
            match(rows, np.arange(t), sim[rows], cfg.match_threshold)
            # 2: low-score detections against tracks seen in the previous frame, box IoU
            rows = np.flatnonzero(low & (det_track < 0))
            cols = np.flatnonzero(free_t & ~was_lost)
            if len(rows) and len(cols):
                match(rows, cols, iou_b[np.ix_(rows, cols)], cfg.low_match_threshold)
            # 3: re-identification of confirmed tracks by colour, within a distance gate
            rows = np.flatnonzero((scores >= cfg.low_threshold) & (det_track < 0))
            cols = np.flatnonzero(free_t & tr.confirmed & tr.has_hist)
            if hists is not None and len(rows) and len(cols):
                app = bhattacharyya(hists.get(rows), tr.hist[cols])
                app[~same[np.ix_(rows, cols)]] = 0.0
                app[~_reid_gate(boxes[rows], pred[cols], cfg.reid_distance)] = 0.0
                back = match(rows, cols, app, cfg.appearance_threshold)
                self.stats.appearance_reids += int(np.count_nonzero(was_lost[back]))
            matched = det_track >= 0
            self.stats.reidentifications += int(np.count_nonzero(was_lost[det_track[matched]]))
        return self._finish(det_track, boxes, det_masks, hists, inst)

    # ------------------------------------------------------------------ internals
    def _step(self, stamp_ns: int | None) -> float:
        """Prediction step in nominal frame periods (median of recent stamp gaps); resets on a
        backwards jump."""
        if stamp_ns is None:
            return 1.0
        stamp_ns = int(stamp_ns)
        last = self._last_stamp
        if last is not None and stamp_ns < last:
            self.stats.time_jumps += 1
            self.reset()
            last = None
        self._last_stamp = stamp_ns
        if last is None:
            return 1.0
        gap = stamp_ns - last
        if gap <= 0:
            return 0.0
        period = float(sorted(self._periods)[len(self._periods) // 2]) if self._periods else float(gap)
        self._periods.append(gap)
        return float(min(gap / period, 30.0))

    def _finish(
        self,
        det_track: np.ndarray,
        boxes: np.ndarray,
        det_masks: np.ndarray,
        hists: _LazyHistograms | None,
        inst: Instances,
    ) -> np.ndarray:
        """Update matched tracks, age and drop unmatched ones, start tracks for the rest.

        Returns:
            [N] uint16 ids of the detections.
        """
        cfg, tr, st = self.config, self._tracks, self.stats
        matched = np.flatnonzero(det_track >= 0)
        rows = det_track[matched]
        unmatched = np.ones(len(tr), bool)
        unmatched[rows] = False
        if len(rows):
            z = kalman.xyxy_to_cxcyah(boxes[matched])
            tr.mean[rows], tr.cov[rows] = kalman.update(tr.mean[rows], tr.cov[rows], z)
            tr.hits[rows] += 1
            tr.lost[rows] = 0
            tr.confirmed[rows] |= tr.hits[rows] >= cfg.min_hits
            tr.centre[rows] = z[:, :2]
            tr.mask[rows] = det_masks[matched]
            if hists is not None:
                # a track's colours: now if it has none, else every _HIST_REFRESH frames (by id)
                has_old = tr.has_hist[rows]
                due = ~has_old | ((self.stats.frames + tr.ids[rows]) % _HIST_REFRESH == 0)
                if due.any():
                    r, h = rows[due], hists.get(matched[due])
                    m = cfg.appearance_momentum
                    tr.hist[r] = np.where(has_old[due, None], m * tr.hist[r] + (1 - m) * h, h)
                    tr.has_hist[r] = True
        tr.lost[unmatched] += 1
        drop = unmatched & (~tr.confirmed | (tr.lost > cfg.max_age))
        st.deaths += int(np.count_nonzero(drop))
        # rows after removal: the kept old rows in order, then the new tracks
        new_index = np.cumsum(~drop) - 1
        if drop.any():
            tr.keep(~drop)
        out_rows = np.full(len(det_track), -1, np.int64)
        out_rows[matched] = new_index[rows]
        fresh = np.flatnonzero(det_track < 0)
        if len(fresh):
            if hists is None:
                new_hist, has_hist = np.zeros((len(fresh), HIST_BINS), np.float32), np.zeros(len(fresh), bool)
            else:
                new_hist, has_hist = hists.known(fresh)
            ids = self._ids.allocate(len(fresh), tr.ids.tolist())
            z = kalman.xyxy_to_cxcyah(boxes[fresh])
            mean, cov = kalman.initiate(z)
            tr.extend({
                "ids": np.asarray(ids, np.int64),
                "cls": inst.class_ids[fresh].astype(np.int64),
                "mean": mean,
                "cov": cov,
                "hits": np.ones(len(fresh), np.int64),
                "lost": np.zeros(len(fresh), np.int64),
                "confirmed": np.full(len(fresh), cfg.min_hits <= 1),
                "centre": z[:, :2],
                "mask": det_masks[fresh],
                "hist": new_hist,
                "has_hist": has_hist,
            })
            out_rows[fresh] = len(tr) - len(fresh) + np.arange(len(fresh))
            st.births += len(fresh)
        st.live = len(det_track)
        st.lost = int(np.count_nonzero(tr.lost > 0))
        st.confirmed = int(np.count_nonzero(tr.confirmed))
        return tr.ids[out_rows].astype(np.uint16)

