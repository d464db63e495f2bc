"""COCO-format instance segmentation datasets (COCO, Label Studio and CVAT exports).

``CocoDataset(ann_file, image_root)`` reads images + a COCO JSON with polygon or RLE
(compressed or uncompressed) segmentations, crowd flags and arbitrary category ids
(mapped to 0-based class indices, ordered by category id or by a given list of names).
Broken entries never stop training: they are collected in ``dataset.validation_report``
(one :class:`Problem` per entry, with image/annotation ids) and skipped (or fixed, when
the fix is exact, e.g. a box recomputed from a valid mask).

Label Studio note: its "COCO" export is a folder with ``result.json`` and ``images/``;
``file_name`` is ``images/<hash>-<name>.jpg`` (sometimes with Windows backslashes or an
``/data/upload/<project>/`` prefix) and category ids start at 0. Both are handled: file
names are resolved relative to the image root with basename fallbacks, and category ids
are only ever used as keys. ``load_label_studio_export(export_dir)`` wraps it.

Sample contract: ``dataset[i] -> (image [H,W,3] uint8 BGR, target)`` with ``target =
{"boxes": float32 [N,4] xyxy px, "labels": int64 [N], "masks": uint8 [N,H,W],
"image_id": int, "iscrowd": uint8 [N]}``; boxes are always recomputed from the masks.

Modules: ``validate`` (problem kinds and the report), ``labelmap`` (class lists), ``parse``
(checking annotation entries), ``dataset`` (:class:`CocoDataset`), ``cli`` (the validator
behind ``python -m instaseg_ros.data.coco``). The public names are re-exported here.
"""

from instaseg_ros.data.coco.cli import main
from instaseg_ros.data.coco.dataset import CocoDataset, collate_skip_none, load_label_studio_export
from instaseg_ros.data.coco.labelmap import read_label_map
from instaseg_ros.data.coco.validate import (
    BAD_IMAGE_ENTRY,
    BAD_SEGMENTATION,
    BOX_OUTSIDE_IMAGE,
    DEGENERATE_BOX,
    DEGENERATE_POLYGON,
    DUPLICATE_IMAGE_ID,
    EMPTY_MASK,
    MISSING_IMAGE,
    MISSING_SEGMENTATION,
    SIZE_MISMATCH,
    UNKNOWN_CATEGORY,
    UNKNOWN_IMAGE,
    UNREADABLE_IMAGE,
    Problem,
    ValidationReport,
)

__all__ = [
    "BAD_IMAGE_ENTRY",
    "BAD_SEGMENTATION",
    "BOX_OUTSIDE_IMAGE",
    "DEGENERATE_BOX",
    "DEGENERATE_POLYGON",
    "DUPLICATE_IMAGE_ID",
    "EMPTY_MASK",
    "MISSING_IMAGE",
    "MISSING_SEGMENTATION",
    "SIZE_MISMATCH",
    "UNKNOWN_CATEGORY",
    "UNKNOWN_IMAGE",
    "UNREADABLE_IMAGE",
    "CocoDataset",
    "Problem",
    "ValidationReport",
    "collate_skip_none",
    "load_label_studio_export",
    "main",
    "read_label_map",
]
