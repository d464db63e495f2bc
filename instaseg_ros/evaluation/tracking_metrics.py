"""Multi-object tracking metrics (MOTA, IDF1, ID switches, fragmentations) with ``motmetrics``.

The per-frame matching of ground truth to predictions uses mask IoU when both sides carry
masks (box IoU otherwise); a pair further apart than ``iou_threshold`` cannot match, nor can
two objects of different classes when both sides carry class ids.

numpy 2: motmetrics 1.4.0 (the newest release) still calls ``np.asfarray`` in
``motmetrics.distances.iou_matrix``, which numpy 2 removed, so the distances are computed
here (``frame_distances``); its accumulator and metric computation work with numpy 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from instaseg_ros.tracking.similarity import box_iou, mask_iou

_RATIOS = ("mota", "motp", "idf1", "idp", "idr", "recall", "precision")
# motmetrics name -> our key
_METRICS = {
    "mota": "mota",
    "motp": "motp",
    "idf1": "idf1",
    "idp": "idp",
    "idr": "idr",
    "num_switches": "id_switches",
    "num_fragmentations": "fragmentations",
    "recall": "recall",
    "precision": "precision",
    "num_frames": "num_frames",
    "num_objects": "num_gt",
    "num_predictions": "num_predictions",
    "num_false_positives": "false_positives",
    "num_misses": "misses",
    "num_unique_objects": "num_gt_tracks",
    "mostly_tracked": "mostly_tracked",
    "partially_tracked": "partially_tracked",
    "mostly_lost": "mostly_lost",
}


@dataclass
class TrackFrame:
    """The objects of one frame with their track ids.

    Attributes:
        ids: [N] int track (or ground-truth identity) ids, unique within the frame.
        boxes: [N, 4] xyxy pixels, or None.
        masks: [N, H, W] bool, or None.
        class_ids: [N] int, or None (no class check).
    """

    ids: np.ndarray
    boxes: np.ndarray | None = None
    masks: np.ndarray | None = None
    class_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        n = len(self.ids)
        if len(np.unique(self.ids)) != n:
            raise ValueError(f"TrackFrame: ids must be unique within a frame, got {self.ids.tolist()}")
        if self.boxes is None and self.masks is None:
            raise ValueError("TrackFrame: needs boxes or masks")
        if self.boxes is not None:
            self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        if self.masks is not None:
            self.masks = np.asarray(self.masks, bool)
            if self.masks.ndim != 3:
                raise ValueError(f"TrackFrame: masks must be [N, H, W], got shape {self.masks.shape}")
        if self.class_ids is not None:
            self.class_ids = np.asarray(self.class_ids, np.int64).reshape(-1)
        for name in ("boxes", "masks", "class_ids"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"TrackFrame: {len(v)} {name} for {n} ids")


def frames_from_id_images(
    id_images: Sequence[np.ndarray], classes: Sequence[Mapping[int, int]] | None = None
) -> list[TrackFrame]:
    """Frames from instance-id images such as the node's ``~/instance_mask`` (value = track id).

    Args:
        id_images: per frame [H, W] integer image, 0 background, k = object k.
        classes: per frame {id: class id} (e.g. from the matching Detection2D array), or None.

    Returns:
        one ``TrackFrame`` (ids ascending, masks) per image.
    """
    out = []
    for k, img in enumerate(id_images):
        img = np.asarray(img)
        if img.ndim != 2:
            raise ValueError(f"frames_from_id_images: frame {k} is not a 2-D id image (shape {img.shape})")
        ids = np.unique(img)
        ids = ids[ids != 0]
        masks = img[None] == ids[:, None, None]
        cls = None
        if classes is not None:
            missing = [int(i) for i in ids if int(i) not in classes[k]]
            if missing:
                raise ValueError(f"frames_from_id_images: frame {k} has no class for ids {missing}")
            cls = [classes[k][int(i)] for i in ids]
        out.append(TrackFrame(ids, masks=masks, class_ids=cls))
    return out


def frames_from_coco(gt: Mapping[str, Any], image_ids: Sequence[int]) -> list[TrackFrame]:
    """Ground-truth frames from a COCO dict whose annotations carry ``track_id``.

    Args:
        gt: COCO dict (images, annotations with ``track_id``, RLE or polygon ``segmentation``).
        image_ids: the frames of one sequence, in time order.

    Returns:
        one ``TrackFrame`` per image id: ids = track_id, masks decoded, class_ids = category_id.
    """
    from pycocotools import mask as mask_util

    from instaseg_ros.core.masks import decode_rle

    images = {im["id"]: im for im in gt["images"]}
    by_image: dict[int, list[dict]] = {i: [] for i in image_ids}
    for ann in gt["annotations"]:
        if ann["image_id"] in by_image:
            if "track_id" not in ann:
                raise ValueError(f"frames_from_coco: annotation {ann.get('id')} has no track_id")
            by_image[ann["image_id"]].append(ann)
    out = []
    for iid in image_ids:
        if iid not in images:
            raise ValueError(f"frames_from_coco: no image with id {iid}")
        h, w = images[iid]["height"], images[iid]["width"]
        anns = by_image[iid]
        masks = np.zeros((len(anns), h, w), bool)
        for j, ann in enumerate(anns):
            seg = ann["segmentation"]
            if isinstance(seg, list):  # polygons
                masks[j] = mask_util.decode(mask_util.merge(mask_util.frPyObjects(seg, h, w))).astype(bool)
            else:
                masks[j] = decode_rle(seg)
        out.append(TrackFrame(
            [a["track_id"] for a in anns], masks=masks, class_ids=[a["category_id"] for a in anns]
        ))
    return out


def frame_distances(gt: TrackFrame, pred: TrackFrame, iou_threshold: float = 0.5) -> np.ndarray:
    """[G, P] distance ``1 - IoU`` for motmetrics, NaN where a pair may not match.

    Mask IoU when both frames have masks, else box IoU.
    """
    g, p = len(gt.ids), len(pred.ids)
    if g == 0 or p == 0:
        return np.zeros((g, p))
    if gt.masks is not None and pred.masks is not None:
        if gt.masks.shape[1:] != pred.masks.shape[1:]:
            raise ValueError(
                f"frame_distances: mask sizes differ: gt {gt.masks.shape[1:]}, pred {pred.masks.shape[1:]}"
            )
        iou = mask_iou(gt.masks.reshape(g, -1), pred.masks.reshape(p, -1))
    elif gt.boxes is not None and pred.boxes is not None:
        iou = box_iou(gt.boxes, pred.boxes)
    else:
        raise ValueError("frame_distances: ground truth and predictions share neither masks nor boxes")
    dist = 1.0 - iou
    bad = iou < iou_threshold
    if gt.class_ids is not None and pred.class_ids is not None:
        bad |= gt.class_ids[:, None] != pred.class_ids[None, :]
    dist[bad] = np.nan
    return dist


def accumulate(
    gt_frames: Sequence[TrackFrame], pred_frames: Sequence[TrackFrame], iou_threshold: float = 0.5
):
    """A ``motmetrics.MOTAccumulator`` over one sequence (frames paired by position)."""
    import motmetrics as mm

    if len(gt_frames) != len(pred_frames):
        raise ValueError(
            f"accumulate: {len(gt_frames)} ground-truth frames but {len(pred_frames)} prediction frames"
        )
    acc = mm.MOTAccumulator(auto_id=True)
    for gt, pred in zip(gt_frames, pred_frames):
        acc.update(gt.ids.tolist(), pred.ids.tolist(), frame_distances(gt, pred, iou_threshold))
    return acc


def _row(values: Mapping[str, Any]) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}
    for mm_name, key in _METRICS.items():
        v = values[mm_name]
        if key in _RATIOS:  # undefined ratios (no objects, no matches) are None, JSON null
            out[key] = float(v) if np.isfinite(v) else None
        else:
            out[key] = int(v)
    motp = out.pop("motp")
    out["mean_iou"] = None if motp is None else 1.0 - motp
    frames = out["num_frames"]
    out["id_switches_per_100_frames"] = 100.0 * out["id_switches"] / frames if frames else 0.0
    return out


def tracking_metrics(
    sequences: Mapping[str, tuple[Sequence[TrackFrame], Sequence[TrackFrame]]], iou_threshold: float = 0.5
) -> dict[str, Any]:
    """MOT metrics per sequence and over all sequences.

    Args:
        sequences: name -> (ground-truth frames, predicted frames), paired frame by frame.
        iou_threshold: least IoU for a prediction to count as the ground-truth object.

    Returns:
        ``{"sequences": {name: metrics}, "overall": metrics, "iou_threshold": t}`` where metrics
        holds mota, idf1, idp, idr, id_switches, fragmentations, recall, precision, mean_iou
        (of matched pairs), num_frames, num_gt, num_predictions, false_positives, misses,
        num_gt_tracks, mostly_tracked, partially_tracked, mostly_lost, id_switches_per_100_frames.
    """
    if not sequences:
        raise ValueError("tracking_metrics: no sequences")
    accs = {name: accumulate(*frames, iou_threshold=iou_threshold) for name, frames in sequences.items()}
    return metrics_from_accumulators(accs, iou_threshold)


def metrics_from_accumulators(accs: Mapping[str, Any], iou_threshold: float = 0.5) -> dict[str, Any]:
    """The metrics of :func:`tracking_metrics` from filled ``motmetrics.MOTAccumulator`` s (name -> acc)."""
    import motmetrics as mm

    if not accs:
        raise ValueError("metrics_from_accumulators: no sequences")
    names = list(accs)
    table = mm.metrics.create().compute_many(
        [accs[n] for n in names], metrics=list(_METRICS), names=names, generate_overall=True
    )
    return {
        "sequences": {name: _row(table.loc[name]) for name in names},
        "overall": _row(table.loc["OVERALL"]),
        "iou_threshold": iou_threshold,
    }
