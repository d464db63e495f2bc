"""3D scoring of an ``eval-bag`` run: per matched instance, the centre and size error against the
ground truth's ``center_3d`` / ``size_3d`` (metres, REP-103 optical frame), as a function of distance.

Ground truth: the synthetic depth bags (``BagSpec(depth=...)``) annotate each object with the median
(``center_3d``) and min-max extent (``size_3d``) of its *visible* surface from the ideal depth; the
bag carries the noisy depth on ``info.depth_topic`` and its CameraInfo on ``info.depth_info_topic``.

Predictions: offline, the evaluator runs the node's 3D step (:func:`instaseg_ros.geometry.instances_3d`
on the overlap-resolved instance image, with the depth of the nearest stamp) on the model's
instances; live, the node's own ``~/detections_3d`` (its ids are the 2D ids). A prediction is matched
to a ground-truth object of the same category by mask IoU >= 0.5 (Hungarian); a matched instance
without a 3D entry is counted, not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth, annotation_mask
from instaseg_ros.evaluation.records import EvalError
from instaseg_ros.geometry import Depth3DParams, Intrinsics

#: distance bins (m) of the report
DISTANCE_EDGES = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 100.0)


def has_3d(gt: StampedGroundTruth) -> bool:
    """True when the ground truth names a depth topic and its annotations carry ``center_3d``."""
    anns = gt.coco.get("annotations", [])
    return bool(gt.coco.get("info", {}).get("depth_topic")) and any("center_3d" in a for a in anns)


@dataclass
class DepthFrame:
    """One depth image of the bag: raw pixels, encoding, intrinsics, stamp and optical frame."""

    raw: np.ndarray
    encoding: str
    intrinsics: Intrinsics
    stamp_ns: int
    frame_id: str
    message: Any = None  # the deserialised Image (live mode republishes it)
    info: Any = None  # its CameraInfo


def read_depth_frames(bag: str | Path, depth_topic: str, info_topic: str) -> dict[int, DepthFrame]:
    """Every depth image on ``depth_topic`` with the CameraInfo of the same stamp (or the newest
    before it), keyed by header stamp.

    Raises:
        EvalError: the topics are missing or a message cannot be used (encoding, intrinsics).
    """
    from rosbags.rosbag2 import Reader

    from instaseg_ros.core.stamps import stamp_ns
    from instaseg_ros.data.bag_io import _typestore
    from instaseg_ros.ros.conversions_3d import depth_image_to_numpy, intrinsics_from_camera_info

    ts = _typestore()
    depth, infos = {}, {}
    try:
        with Reader(Path(bag)) as reader:
            conns = [c for c in reader.connections if c.topic in (depth_topic, info_topic)]
            if {c.topic for c in conns} != {depth_topic, info_topic}:
                raise EvalError(
                    f"3D scoring needs {depth_topic} and {info_topic} in {bag}; topics: "
                    f"{sorted(c.topic for c in reader.connections)}"
                )
            for conn, _t, raw in reader.messages(connections=conns):
                msg = ts.deserialize_cdr(raw, conn.msgtype)
                (depth if conn.topic == depth_topic else infos)[stamp_ns(msg.header)] = msg
    except EvalError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader problem becomes one message
        raise EvalError(f"cannot read the depth topics of {bag}: {type(e).__name__}: {e}") from e
    out = {}
    info_stamps = sorted(infos)
    for st, msg in depth.items():
        earlier = [s for s in info_stamps if s <= st]
        if not earlier:
            continue
        info = infos[st] if st in infos else infos[earlier[-1]]
        try:
            arr = depth_image_to_numpy(msg)
            intr = intrinsics_from_camera_info(info, arr.shape)
        except ValueError as e:
            raise EvalError(f"depth message at stamp {st} on {depth_topic}: {e}") from e
        out[st] = DepthFrame(arr, str(msg.encoding), intr, st, str(info.header.frame_id), msg, info)
    return out


def instances_3d_offline(
    inst: Instances, frame: DepthFrame, params: Depth3DParams
) -> tuple[np.ndarray, np.ndarray]:
    """The node's 3D step on ``inst``: ([N, 3] centres, [N, 3] sizes), NaN rows without a 3D entry."""
    from instaseg_ros.core.masks import resolve_overlaps
    from instaseg_ros.geometry import instances_3d

    n = len(inst)
    centers, sizes = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    if n == 0:
        return centers, sizes
    ids = resolve_overlaps(inst.masks, inst.scores, inst.image_size, np.uint16)
    objs = instances_3d(ids, frame.raw, frame.encoding, frame.intrinsics, params, boxes=inst.boxes)
    rows = objs.ids.astype(np.int64) - 1
    centers[rows], sizes[rows] = objs.centers, objs.sizes
    return centers, sizes


class DepthScorer:
    """Collects centre and size errors of matched instances over a run.

    Args:
        gt: ground truth with ``center_3d`` / ``size_3d`` annotations.
        cat_map: ground-truth category id of each model class (None: not in the ground truth).
        iou_threshold: least mask IoU for a match.
    """

    def __init__(self, gt: StampedGroundTruth, cat_map: list[int | None], iou_threshold: float = 0.5) -> None:
        self.gt = gt
        self.cat = np.array([-1 if c is None else int(c) for c in cat_map], np.int64)
        self.iou_threshold = iou_threshold
        self.rows: list[dict[str, Any]] = []
        self.matched_without_3d = 0
        self.gt_objects = 0
        self._by_image: dict[int, list[dict]] = {}
        for a in gt.coco.get("annotations", []):
            if "center_3d" in a:
                self._by_image.setdefault(int(a["image_id"]), []).append(a)

    def add(self, image_id: int, inst: Instances, centers: np.ndarray, sizes: np.ndarray) -> None:
        """One scored frame: ``inst`` with its 3D estimates ([N, 3] each, NaN rows = none)."""
        from scipy.optimize import linear_sum_assignment

        from instaseg_ros.tracking.similarity import mask_iou

        anns = self._by_image.get(image_id, [])
        self.gt_objects += len(anns)
        if not anns or len(inst) == 0:
            return
        im = self.gt.images[image_id]
        h, w = int(im["height"]), int(im["width"])
        gmask = np.stack([annotation_mask(a, h, w) for a in anns]).reshape(len(anns), -1)
        iou = mask_iou(gmask, inst.masks.reshape(len(inst), -1))
        same = np.array([a["category_id"] for a in anns])[:, None] == self.cat[inst.class_ids][None, :]
        iou = np.where(same, iou, 0.0)
        r, c = linear_sum_assignment(-iou)
        names = dict(zip(self.gt.category_ids, self.gt.category_names))
        for g, p in zip(r, c):
            if iou[g, p] < self.iou_threshold:
                continue
            if not np.isfinite(centers[p]).all():
                self.matched_without_3d += 1
                continue
            gc, gs = np.asarray(anns[g]["center_3d"]), np.asarray(anns[g]["size_3d"])
            d = centers[p] - gc
            self.rows.append({
                "image_id": int(image_id),
                "class": names.get(anns[g]["category_id"], str(anns[g]["category_id"])),
                "distance_m": float(gc[2]),
                "centre_error_m": float(np.linalg.norm(d)),
                "centre_error_xyz_m": [float(v) for v in d],
                "size_error_m": float(np.mean(np.abs(sizes[p] - gs))),
                "size_m": [float(v) for v in sizes[p]],
                "gt_size_m": [float(v) for v in gs],
                "mask_iou": float(iou[g, p]),
            })  # fmt: skip

    def summary(self) -> dict[str, Any] | None:
        """Errors overall, per distance bin and for 1-4 m (median, p90), plus every row; None if
        nothing was scored."""
        if not self.rows and not self.matched_without_3d:
            return None
        z = np.array([r["distance_m"] for r in self.rows])
        ce = np.array([r["centre_error_m"] for r in self.rows])
        se = np.array([r["size_error_m"] for r in self.rows])

        def stats(sel: np.ndarray) -> dict[str, Any]:
            if not sel.any():
                return {"count": 0, "centre_median_m": None, "centre_p90_m": None, "size_median_m": None}
            return {
                "count": int(sel.sum()),
                "centre_median_m": float(np.median(ce[sel])),
                "centre_p90_m": float(np.percentile(ce[sel], 90)),
                "size_median_m": float(np.median(se[sel])),
            }

        bins = []
        for lo, hi in zip(DISTANCE_EDGES[:-1], DISTANCE_EDGES[1:]):
            bins.append({"from_m": lo, "to_m": hi, **stats((z >= lo) & (z < hi))})
        return {
            "overall": stats(np.ones(len(z), bool)),
            "range_1_4m": stats((z >= 1.0) & (z <= 4.0)),
            "by_distance": bins,
            "gt_objects": self.gt_objects,
            "matched_with_3d": len(self.rows),
            "matched_without_3d": self.matched_without_3d,
            "iou_threshold": self.iou_threshold,
            "size_error": "mean over x, y, z of |estimated extent - ground-truth visible min-max extent|",
            "instances": self.rows,
        }
