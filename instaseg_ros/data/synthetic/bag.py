"""A rosbag2 (mcap) of synthetic camera-motion sequences with stamp-keyed ground truth.

Colour frames (``sensor_msgs/Image`` bgr8 or CompressedImage) and their CameraInfo; with
``BagSpec.depth`` also registered depth (``16UC1`` millimetres or ``32FC1`` metres, the
structured-light noise of :class:`~instaseg_ros.data.synthetic.depth.DepthNoise` applied)
and its CameraInfo, all with the colour frame's header (stamp and optical frame id).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from instaseg_ros.data.synthetic.config import SynthConfig
from instaseg_ros.data.synthetic.depth import DEPTH_ENCODINGS, DepthNoise, encode_depth
from instaseg_ros.data.synthetic.export import _provenance, coco_categories, scene_annotations
from instaseg_ros.data.synthetic.scene import SyntheticScene
from instaseg_ros.data.synthetic.sequence import iter_sequences

#: Offset mixed into the bag seed for the depth noise, so the scenes' own random streams
#: (and with them the colour images) do not depend on whether depth is written.
_DEPTH_NOISE_STREAM = 0xDE97


@dataclass
class BagSpec:
    """What :func:`write_synthetic_bag` writes.

    Attributes:
        num_frames: total frames (split into sequences of ``sequence_length``).
        rate: frames per second (header stamps step by 1/rate).
        sequence_length: frames per camera-motion sequence over one static scene.
        start_ns: stamp of the first frame (ns since epoch).
        frame_id: header frame id (the colour optical frame; depth is registered to it).
        image_topic, info_topic: topic names.
        write_images: also write each frame as PNG under ``images/`` (file_name in the GT),
            and with depth its 16-bit millimetre PNG under ``depth/`` (``depth_file_name``).
        compressed: None for raw bgr8 Images, or "jpeg"/"png" to write
            ``sensor_msgs/CompressedImage`` on ``<image_topic>/compressed`` instead.
        depth: None (colour only), ``"16UC1"`` (uint16 millimetres, 0 = no return) or
            ``"32FC1"`` (float32 metres, NaN = no return) depth on ``depth_topic`` with its
            CameraInfo on ``depth_info_topic``. Both CameraInfo topics then carry the true
            intrinsics of each frame (colour only: the nominal 69.4-degree pinhole as before).
        depth_noise: the camera's errors, or None for ideal depth.
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
    depth: str | None = None
    depth_topic: str = "/camera/depth/image_raw"
    depth_info_topic: str = "/camera/depth/camera_info"
    depth_noise: DepthNoise | None = field(default_factory=DepthNoise)
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.rate <= 0:
            raise ValueError(f"write_synthetic_bag: rate must be > 0, got {self.rate}")
        if self.num_frames < 1 or self.sequence_length < 1:
            raise ValueError("write_synthetic_bag: num_frames and sequence_length must be >= 1")
        if self.compressed not in (None, "jpeg", "png"):
            raise ValueError(
                f"write_synthetic_bag: compressed must be None, 'jpeg' or 'png', got {self.compressed!r}"
            )
        if self.depth is not None and self.depth not in DEPTH_ENCODINGS:
            raise ValueError(
                f"write_synthetic_bag: depth must be None, '16UC1' or '32FC1', got {self.depth!r}"
            )


def _frames(seed: int, spec: BagSpec, cfg: SynthConfig) -> Iterator[tuple[int, int, SyntheticScene]]:
    """``(sequence index, track-id offset, frame)``; track ids of a sequence follow the previous one's."""
    offset = 0
    for n, seq in enumerate(iter_sequences(seed, spec.num_frames, spec.sequence_length, cfg)):
        for sc in seq:
            yield n, offset, sc
        offset += max(
            (int(sc.track_ids.max()) for sc in seq if sc.track_ids is not None and len(sc)), default=0
        )


def _round(a: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in a]


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

    With ``spec.depth`` the bag also has the depth topics, each image record gets ``camera``
    (``fx, fy, cx, cy``, the true intrinsics of that frame) and each annotation
    ``center_3d`` / ``size_3d`` (visible surface: per-axis median and min-max extent) and
    ``box_3d`` (whole object, ``x0, y0, z0, x1, y1, z1``), metres in the REP-103 optical frame
    ``frame_id`` (x right, y down, z forward), from the ideal depth.
    Returns (bag directory, ground-truth JSON path).
    """
    from instaseg_ros.data.bag_io import BagImageWriter, CameraInfoSpec, pinhole_camera_info

    cfg = config or SynthConfig()
    spec = spec or BagSpec()
    spec.check()
    if spec.depth:
        cfg = dataclasses.replace(cfg, depth=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / "bag"
    if spec.write_images:
        (out / "images").mkdir(exist_ok=True)
        if spec.depth:
            (out / "depth").mkdir(exist_ok=True)
    noise_rng = np.random.default_rng(np.random.SeedSequence([int(seed), _DEPTH_NOISE_STREAM]))
    info = pinhole_camera_info(cfg.width, cfg.height)
    images, anns = [], []
    period = 1e9 / spec.rate
    topic = f"{spec.image_topic}/compressed" if spec.compressed else spec.image_topic
    with BagImageWriter(bag_path, topic, spec.info_topic, compressed=spec.compressed) as writer:
        for k, (n, track_offset, sc) in enumerate(_frames(seed, spec, cfg)):
            stamp = spec.start_ns + int(round(k * period))
            rec: dict[str, Any] = {
                "id": k + 1,
                "file_name": f"images/{k + 1:06d}.png",
                "height": cfg.height,
                "width": cfg.width,
                "stamp_ns": stamp,
                "frame_id": spec.frame_id,
                "sequence": n,
            }
            if spec.depth and sc.depth is not None and sc.camera is not None:
                cam = sc.camera
                info = CameraInfoSpec(cfg.width, cfg.height, cam.fx, cam.fy, cam.cx, cam.cy)
                z = (
                    sc.depth
                    if spec.depth_noise is None
                    else spec.depth_noise.apply(sc.depth, sc.image, noise_rng)
                )
                raw = encode_depth(z, spec.depth)
                writer.write_raw(
                    spec.depth_topic, raw, spec.depth, stamp, spec.frame_id, spec.depth_info_topic, info
                )
                rec["camera"] = {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy}
                if spec.write_images:
                    rec["depth_file_name"] = f"depth/{k + 1:06d}.png"
                    cv2.imwrite(str(out / rec["depth_file_name"]), encode_depth(z, "16UC1"))
            writer.write(sc.image, stamp, spec.frame_id, info)
            if spec.write_images:
                cv2.imwrite(str(out / rec["file_name"]), sc.image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
            images.append(rec)
            frame_anns = scene_annotations(sc, k + 1, len(anns) + 1, track_offset)
            if sc.centers_3d is not None and sc.sizes_3d is not None and sc.boxes_3d is not None:
                for i, a in enumerate(frame_anns):
                    a["center_3d"] = _round(sc.centers_3d[i])
                    a["size_3d"] = _round(sc.sizes_3d[i])
                    a["box_3d"] = _round(sc.boxes_3d[i])
            anns.extend(frame_anns)
    gt_info: dict[str, Any] = {
        "description": "instaseg_ros synthetic rosbag ground truth",
        **_provenance(),
        "image_topic": topic,
        "rate_hz": spec.rate,
        "seed": seed,
    }
    if spec.depth:
        gt_info.update(
            depth_topic=spec.depth_topic,
            depth_info_topic=spec.depth_info_topic,
            depth_encoding=spec.depth,
            depth_noise=dataclasses.asdict(spec.depth_noise) if spec.depth_noise else None,
            frame_convention="REP-103 optical frame (x right, y down, z forward), metres",
        )
    gt = {
        "info": {**gt_info, **spec.extra},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": coco_categories(),
    }
    gt_path = out / "ground_truth.json"
    gt_path.write_text(json.dumps(gt))
    return bag_path, gt_path
