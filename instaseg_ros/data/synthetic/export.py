"""Writers: COCO JSON (+ images) and a rosbag2 (mcap) with stamp-keyed ground truth."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from instaseg_ros.data.synthetic.config import CLASS_NAMES, GENERATOR_VERSION, SynthConfig
from instaseg_ros.data.synthetic.scene import SyntheticScene
from instaseg_ros.data.synthetic.sequence import iter_sequences


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


@dataclass
class BagSpec:
    """What :func:`write_synthetic_bag` writes.

    Attributes:
        num_frames: total frames (split into sequences of ``sequence_length``).
        rate: frames per second (header stamps step by 1/rate).
        sequence_length: frames per camera-motion sequence over one static scene.
        start_ns: stamp of the first frame (ns since epoch).
        frame_id: header frame id.
        image_topic, info_topic: topic names.
        write_images: also write each frame as PNG under ``images/`` (file_name in the GT).
        compressed: None for raw bgr8 Images, or "jpeg"/"png" to write
            ``sensor_msgs/CompressedImage`` on ``<image_topic>/compressed`` instead.
        extra: more keys for the ground truth's ``info``.
    """

    num_frames: int = 60
    rate: float = 10.0
    sequence_length: int = 30
    start_ns: int = 1_700_000_000_000_000_000
    frame_id: str = "camera_color_optical_frame"
    image_topic: str = "/camera/color/image_raw"
    info_topic: str = "/camera/color/camera_info"
    write_images: bool = False
    compressed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def write_synthetic_bag(
    out_dir: str | Path, seed: int = 0, config: SynthConfig | None = None, spec: BagSpec | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/bag`` (rosbag2, mcap) and ``out_dir/ground_truth.json``.

    The bag has ``sensor_msgs/Image`` bgr8 frames (or CompressedImage, see ``BagSpec``) and
    ``sensor_msgs/CameraInfo`` with equal header stamps; the COCO ground truth's images carry
    ``stamp_ns`` (= header stamp) and ``sequence`` (index of the camera-motion sequence: the
    scene changes between sequences), its annotations ``track_id``: one object's identity,
    the same in every frame of its sequence and never reused in the file (a ground truth
    without ``track_id`` stays a valid stamp-keyed ground truth; only tracking needs it).
    Returns (bag directory, ground-truth JSON path).
    """
    from instaseg_ros.data.bag_io import BagImageWriter, pinhole_camera_info

    cfg = config or SynthConfig()
    spec = spec or BagSpec()
    if spec.rate <= 0:
        raise ValueError(f"write_synthetic_bag: rate must be > 0, got {spec.rate}")
    if spec.num_frames < 1 or spec.sequence_length < 1:
        raise ValueError("write_synthetic_bag: num_frames and sequence_length must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / "bag"
    if spec.write_images:
        (out / "images").mkdir(exist_ok=True)
    info = pinhole_camera_info(cfg.width, cfg.height)
    images, anns = [], []
    period = 1e9 / spec.rate
    if spec.compressed not in (None, "jpeg", "png"):
        raise ValueError(
            f"write_synthetic_bag: compressed must be None, 'jpeg' or 'png', got {spec.compressed!r}"
        )
    topic = f"{spec.image_topic}/compressed" if spec.compressed else spec.image_topic
    frames = (
        (n, sc)
        for n, seq in enumerate(iter_sequences(seed, spec.num_frames, spec.sequence_length, cfg))
        for sc in seq
    )
    track_offset, last_seq, seq_max = 0, 0, 0
    with BagImageWriter(bag_path, topic, spec.info_topic, compressed=spec.compressed) as writer:
        for k, (n, sc) in enumerate(frames):
            if n != last_seq:  # a new scene: its track ids follow the previous sequence's
                track_offset, last_seq, seq_max = track_offset + seq_max, n, 0
            if sc.track_ids is not None and len(sc.track_ids):
                seq_max = max(seq_max, int(sc.track_ids.max()))
            stamp = spec.start_ns + int(round(k * period))
            writer.write(sc.image, stamp, spec.frame_id, info)
            name = f"images/{k + 1:06d}.png"
            if spec.write_images:
                cv2.imwrite(str(out / name), sc.image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            images.append(
                {
                    "id": k + 1,
                    "file_name": name,
                    "height": cfg.height,
                    "width": cfg.width,
                    "stamp_ns": stamp,
                    "frame_id": spec.frame_id,
                    "sequence": n,
                }
            )
            anns.extend(scene_annotations(sc, k + 1, len(anns) + 1, track_offset))
    gt = {
        "info": {
            "description": "instaseg_ros synthetic rosbag ground truth",
            **_provenance(),
            "image_topic": topic,
            "rate_hz": spec.rate,
            "seed": seed,
            **spec.extra,
        },
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": coco_categories(),
    }
    gt_path = out / "ground_truth.json"
    gt_path.write_text(json.dumps(gt))
    return bag_path, gt_path
