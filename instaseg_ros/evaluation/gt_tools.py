"""Stamp-keyed ground truth for rosbag evaluation: loading, checking, building from annotation exports.

Format (a COCO instances JSON with one extra key per image)::

    {"images": [{"id": 1, "file_name": "frame_000000.png", "width": 640, "height": 480,
                 "stamp_ns": 1700000000000000000}, ...],        # header stamp of the bag message, int ns
     "annotations": [{"image_id": 1, "category_id": 1, "bbox": [x, y, w, h],
                      "segmentation": RLE or polygons, "iscrowd": 0}, ...],
     "categories": [{"id": 1, "name": "person"}, ...]}

Model classes are matched to categories **by name**. ``stamp_ns`` keys each annotated image to the
bag message whose ``header.stamp`` is nearest (within a tolerance, see ``bag_eval``).

Making it from your own bag: ``instaseg bag-extract BAG --topic T --out frames/`` writes the frames and
``frames/frames.json`` (file name <-> stamp); annotate the frames in Label Studio or CVAT, export COCO,
then ``python -m instaseg_ros.evaluation.gt_tools --export export.json --frames frames/frames.json
--out gt.json`` adds the stamps (:func:`stamp_coco_export`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances

FRAMES_FORMAT = "instaseg_ros.frames/1"


class GroundTruthError(ValueError):
    """A ground-truth or mapping file is missing, malformed, or does not fit the bag."""


@dataclass
class StampedGroundTruth:
    """A loaded, checked stamp-keyed COCO ground truth.

    Attributes:
        coco: the COCO dict (as given; annotations get ``iscrowd``/``area`` defaults in evaluation).
        path: where it was loaded from ('' for in-memory).
        stamps: image id -> header stamp (ns).
        category_ids: category ids in file order.
        category_names: names in the same order (index = class id of :meth:`instances`).
    """

    coco: dict[str, Any]
    path: str
    stamps: dict[int, int]
    category_ids: list[int]
    category_names: list[str]

    @property
    def images(self) -> dict[int, dict[str, Any]]:
        """Image id -> image record."""
        return {int(im["id"]): im for im in self.coco["images"]}

    def instances(self, image_id: int) -> Instances:
        """The ground truth of ``image_id`` as ``Instances`` (score 1, crowd regions left out)."""
        im = self.images[int(image_id)]
        h, w = int(im["height"]), int(im["width"])
        anns = [
            a
            for a in self.coco.get("annotations", [])
            if int(a["image_id"]) == int(image_id) and not a.get("iscrowd", 0)
        ]
        index = {cid: k for k, cid in enumerate(self.category_ids)}
        masks = np.zeros((len(anns), h, w), bool)
        boxes = np.zeros((len(anns), 4), np.float32)
        for i, a in enumerate(anns):
            masks[i] = annotation_mask(a, h, w)
            x, y, bw, bh = (float(v) for v in a["bbox"])
            boxes[i] = (x, y, x + bw, y + bh)
        return Instances(
            boxes=boxes,
            scores=np.ones(len(anns), np.float32),
            class_ids=np.array([index[int(a["category_id"])] for a in anns], np.int64),
            masks=masks,
            image_size=(h, w),
            class_names=list(self.category_names),
        )


def annotation_mask(ann: dict[str, Any], height: int, width: int) -> np.ndarray:
    """A COCO annotation's segmentation (polygons, RLE or uncompressed RLE) -> [H, W] bool."""
    from pycocotools import mask as mask_util

    seg = ann.get("segmentation")
    if not seg:  # box-only annotation: the box is the mask
        m = np.zeros((height, width), bool)
        x, y, w, h = (float(v) for v in ann["bbox"])
        m[int(round(y)) : int(round(y + h)), int(round(x)) : int(round(x + w))] = True
        return m
    if isinstance(seg, list):
        rles = mask_util.frPyObjects([p for p in seg if len(p) >= 6], height, width)
        return mask_util.decode(mask_util.merge(rles)).astype(bool)
    if isinstance(seg["counts"], list):
        seg = mask_util.frPyObjects(seg, height, width)
    elif isinstance(seg["counts"], str):
        seg = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    m = mask_util.decode(seg).astype(bool)
    if m.shape != (height, width):
        raise GroundTruthError(
            f"annotation {ann.get('id')} of image {ann.get('image_id')}: mask size {m.shape} differs from "
            f"the image size {(height, width)}"
        )
    return m


def _read_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise GroundTruthError(f"{what} file not found: {p}")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GroundTruthError(f"{what} file {p} is not valid JSON: {e}") from e


def load_ground_truth(gt: str | Path | dict[str, Any]) -> StampedGroundTruth:
    """Load and check a stamp-keyed COCO ground truth (path or dict).

    Raises:
        GroundTruthError: not JSON, missing ``images``/``categories``, an image without an integer
            ``stamp_ns``/``width``/``height``, duplicate ids or stamps, or annotations naming unknown
            images or categories. The message names the file, the image and the key.
    """
    path = "" if isinstance(gt, dict) else str(gt)
    coco = gt if isinstance(gt, dict) else _read_json(gt, "ground-truth")
    where = path or "ground truth"
    if not isinstance(coco, dict):
        raise GroundTruthError(f"{where}: expected a COCO JSON object, got {type(coco).__name__}")
    for key in ("images", "categories"):
        if not isinstance(coco.get(key), list):
            raise GroundTruthError(f"{where}: missing COCO key {key!r} (a list)")
    coco.setdefault("annotations", [])
    if not coco["images"]:
        raise GroundTruthError(f"{where}: 'images' is empty")
    if not coco["categories"]:
        raise GroundTruthError(f"{where}: 'categories' is empty")
    stamps: dict[int, int] = {}
    seen_stamps: dict[int, int] = {}
    for k, im in enumerate(coco["images"]):
        for key in ("id", "width", "height", "stamp_ns"):
            v = im.get(key) if isinstance(im, dict) else None
            if isinstance(v, bool) or not isinstance(v, int):
                name = im.get("file_name", f"#{k}") if isinstance(im, dict) else f"#{k}"
                hint = (
                    " (integer header stamp in ns; build it with "
                    "`python -m instaseg_ros.evaluation.gt_tools`)"
                    if key == "stamp_ns"
                    else ""
                )
                raise GroundTruthError(f"{where}: images[{k}] ({name}) has no integer {key!r}{hint}")
        iid, st = int(im["id"]), int(im["stamp_ns"])
        if iid in stamps:
            raise GroundTruthError(f"{where}: image id {iid} appears twice")
        if st in seen_stamps:
            raise GroundTruthError(f"{where}: images {seen_stamps[st]} and {iid} have the same stamp_ns {st}")
        stamps[iid] = st
        seen_stamps[st] = iid
    cat_ids, cat_names = [], []
    for k, c in enumerate(coco["categories"]):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise GroundTruthError(f"{where}: categories[{k}] needs an integer 'id' and a string 'name'")
        cat_ids.append(int(c["id"]))
        cat_names.append(str(c["name"]))
    for k, a in enumerate(coco["annotations"]):
        if not isinstance(a, dict) or "bbox" not in a:
            raise GroundTruthError(f"{where}: annotations[{k}] has no 'bbox'")
        if a.get("image_id") not in stamps:
            raise GroundTruthError(f"{where}: annotations[{k}] names unknown image_id {a.get('image_id')!r}")
        if a.get("category_id") not in cat_ids:
            raise GroundTruthError(
                f"{where}: annotations[{k}] names unknown category_id {a.get('category_id')!r}"
            )
    return StampedGroundTruth(coco, path, stamps, cat_ids, cat_names)


# --------------------------------------------------------------------------- frames.json + exports
def write_frames_json(path: str | Path, bag: str, topic: str, frames: list[dict[str, Any]]) -> Path:
    """Write the ``bag-extract`` mapping: ``{"format", "bag", "topic", "frames": [{file_name, stamp_ns,
    frame_id, index, width, height}]}``."""
    p = Path(path)
    p.write_text(
        json.dumps({"format": FRAMES_FORMAT, "bag": str(bag), "topic": topic, "frames": frames}, indent=1)
    )
    return p


def load_frames_json(path: str | Path) -> dict[str, Any]:
    """Read and check a ``frames.json`` written by ``instaseg bag-extract``."""
    data = _read_json(path, "frames mapping")
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise GroundTruthError(f"{path}: not a bag-extract frames mapping (no 'frames' list)")
    for k, f in enumerate(data["frames"]):
        if (
            not isinstance(f, dict)
            or not isinstance(f.get("file_name"), str)
            or not isinstance(f.get("stamp_ns"), int)
        ):
            raise GroundTruthError(f"{path}: frames[{k}] needs 'file_name' (string) and 'stamp_ns' (int)")
    return data


_LS_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded files with 8 hex chars and '-'


def _basename_key(name: str) -> str:
    from urllib.parse import unquote

    base = unquote(name.replace("\\", "/").rsplit("/", 1)[-1])
    return _LS_PREFIX.sub("", base)


def stamp_coco_export(
    export: str | Path | dict[str, Any], frames: str | Path | dict[str, Any]
) -> dict[str, Any]:
    """Add ``stamp_ns`` (and ``frame_id``) to a Label Studio / CVAT COCO export of extracted frames.

    Images are matched to ``frames.json`` entries by file base name; Label Studio's 8-hex-digit upload
    prefix (``1a2b3c4d-frame_000010.png``) and any folder part are ignored. Image sizes must agree.

    Raises:
        GroundTruthError: an exported image matches no extracted frame, or sizes disagree.
    """
    coco = export if isinstance(export, dict) else _read_json(export, "COCO export")
    fmap = frames if isinstance(frames, dict) else load_frames_json(frames)
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise GroundTruthError(
            f"COCO export {export if not isinstance(export, dict) else ''}: no 'images' list"
        )
    by_name = {_basename_key(f["file_name"]): f for f in fmap["frames"]}
    out = json.loads(json.dumps(coco))
    missing = []
    for im in out["images"]:
        f = by_name.get(_basename_key(str(im.get("file_name", ""))))
        if f is None:
            missing.append(im.get("file_name"))
            continue
        for key in ("width", "height"):
            if key in f and key in im and int(im[key]) != int(f[key]):
                raise GroundTruthError(
                    f"exported image {im.get('file_name')!r} has {key} {im[key]}, the extracted frame "
                    f"{f['file_name']!r} has {f[key]} (annotate the frames at their original size)"
                )
            im.setdefault(key, f.get(key))
        im["stamp_ns"] = int(f["stamp_ns"])
        if f.get("frame_id"):
            im["frame_id"] = f["frame_id"]
    if missing:
        raise GroundTruthError(
            f"{len(missing)} exported image(s) match no extracted frame by file name, e.g. {missing[:3]}; "
            f"extracted frames are named like {list(by_name)[:3]}"
        )
    out.setdefault("info", {})
    if isinstance(out["info"], dict):
        out["info"].update({"image_topic": fmap.get("topic", ""), "bag": fmap.get("bag", "")})
    load_ground_truth(out)  # validate the result
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m instaseg_ros.evaluation.gt_tools --export E.json --frames frames.json --out GT.json``."""
    p = argparse.ArgumentParser(
        prog="python -m instaseg_ros.evaluation.gt_tools",
        description="Add bag header stamps to a Label Studio/CVAT COCO export of frames written by "
        "`instaseg bag-extract`, giving the ground truth `instaseg eval-bag --gt` reads.",
    )
    p.add_argument("--export", required=True, help="COCO JSON exported from Label Studio or CVAT")
    p.add_argument("--frames", required=True, help="frames.json written by instaseg bag-extract")
    p.add_argument("--out", required=True, help="stamp-keyed ground-truth JSON to write")
    args = p.parse_args(argv)
    try:
        gt = stamp_coco_export(args.export, args.frames)
    except GroundTruthError as e:
        print(f"gt_tools: error: {e}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(gt))
    n_ann = len(gt.get("annotations", []))
    print(f"wrote {args.out}: {len(gt['images'])} images, {n_ann} annotations, stamps from {args.frames}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
