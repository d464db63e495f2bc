"""COCO writers: annotations of rendered scenes, a COCO dict, a COCO folder (JSON + images)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2

from instaseg_ros.data.synthetic.config import CLASS_NAMES, GENERATOR_VERSION
from instaseg_ros.data.synthetic.scene import SyntheticScene


def _provenance() -> dict[str, Any]:
    return {"generator": "instaseg_ros.data.synthetic", "generator_version": GENERATOR_VERSION}


def coco_categories() -> list[dict[str, Any]]:
    """COCO categories of the synthetic set: ids 1..5 in ``CLASS_NAMES`` order."""
    return [{"id": i + 1, "name": n, "supercategory": "indoor"} for i, n in enumerate(CLASS_NAMES)]


def scene_annotations(
    scene: SyntheticScene, image_id: int, first_ann_id: int, track_offset: int = 0
) -> list[dict[str, Any]]:
    """COCO annotation dicts (compressed RLE segmentation) of one scene's instances.

    Frames of a camera-motion sequence (``scene.track_ids`` set) also get ``track_id`` =
    ``track_offset + scene.track_ids[i]``.
    """
    from instaseg_ros.core.masks import encode_rle

    anns = []
    masks = scene.masks
    boxes = scene.boxes
    for i in range(len(scene.labels)):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        anns.append(
            {
                "id": first_ann_id + i,
                "image_id": int(image_id),
                "category_id": int(scene.labels[i]) + 1,
                "segmentation": encode_rle(masks[i]),
                "area": float(masks[i].sum()),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
            }
        )
        if scene.track_ids is not None:
            anns[-1]["track_id"] = int(track_offset + scene.track_ids[i])
    return anns


def scenes_to_coco(
    scenes: Iterable[SyntheticScene],
    start_id: int = 1,
    file_names: Iterable[str] | None = None,
    extra: Iterable[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build a COCO dict for ``scenes`` (image ids from ``start_id``; optional per-image extras)."""
    images, anns = [], []
    names = iter(file_names) if file_names is not None else None
    extras = iter(extra) if extra is not None else None
    for k, sc in enumerate(scenes):
        iid = start_id + k
        h, w = sc.id_map.shape
        rec: dict[str, Any] = {
            "id": iid,
            "file_name": next(names) if names else f"{iid:06d}.png",
            "height": h,
            "width": w,
        }
        if extras is not None:
            rec.update(next(extras))
        images.append(rec)
        anns.extend(scene_annotations(sc, iid, len(anns) + 1))
    return {
        "info": {"description": "instaseg_ros synthetic indoor scenes", **_provenance()},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": coco_categories(),
    }


def write_coco(
    out_dir: str | Path,
    scenes: Iterable[SyntheticScene],
    image_ext: str = ".png",
    json_name: str = "annotations.json",
    start_id: int = 1,
    extra: Iterable[dict[str, Any]] | None = None,
    jpeg_quality: int = 95,
) -> Path:
    """Write ``out_dir/images/NNNNNN<ext>`` + ``out_dir/<json_name>``; returns the JSON path.

    ``file_name`` entries are relative to ``out_dir`` (``images/000001.png``), like a
    Label Studio export.
    """
    if image_ext.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"write_coco: image_ext must be .png, .jpg or .jpeg, got {image_ext!r}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    if image_ext.lower() == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    ex = iter(extra) if extra is not None else None
    images, anns = [], []
    for k, sc in enumerate(scenes):  # one scene in memory at a time
        iid = start_id + k
        name = f"images/{iid:06d}{image_ext}"
        if not cv2.imwrite(str(out / name), sc.image, params):
            raise OSError(f"write_coco: could not write {out / name}")
        h, w = sc.id_map.shape
        rec: dict[str, Any] = {"id": iid, "file_name": name, "height": h, "width": w}
        if ex is not None:
            rec.update(next(ex))
        images.append(rec)
        anns.extend(scene_annotations(sc, iid, len(anns) + 1))
    coco = {
        "info": {"description": "instaseg_ros synthetic indoor scenes", **_provenance()},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": coco_categories(),
    }
    path = out / json_name
    path.write_text(json.dumps(coco))
    return path
