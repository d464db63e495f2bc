"""Camera-motion sequences: a smooth pan/zoom over one static scene."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from instaseg_ros.data.synthetic.config import MAX_ATTEMPTS, SynthConfig
from instaseg_ros.data.synthetic.scene import SyntheticScene, _render, _scene_rng, unreachable
from instaseg_ros.geometry.depth import Intrinsics


def _smooth(t: float) -> float:
    return t * t * (3 - 2 * t)


def generate_sequence(
    seed: int | Iterable[int], length: int, config: SynthConfig | None = None, margin: float = 1.35
) -> list[SyntheticScene]:
    """``length`` frames of a smooth camera pan/zoom over one static scene.

    The scene is rendered once on a canvas ``margin`` times the output size; each frame is
    an affine crop of it (image bilinear, id map nearest). Instances that leave the frame
    (fewer than ``min_visible_area`` pixels) are dropped from that frame. Every frame carries
    ``track_ids`` ([N] int64): instance ``j`` of the base scene is track ``j + 1`` in every
    frame where it is visible. ``config.min_visible_objects`` and ``config.required_classes``
    hold in every frame (sequences that miss them are drawn again).
    """
    cfg = config or SynthConfig()
    if length < 1:
        raise ValueError(f"generate_sequence: length must be >= 1, got {length}")
    rng = _scene_rng(seed)
    for _ in range(MAX_ATTEMPTS):  # a sequence missing a requirement in any frame is drawn again
        frames = _camera_motion(rng, cfg, length, margin)
        if all(cfg.accepts(f.labels) for f in frames):
            return frames
    raise unreachable(cfg, "sequence")


def _camera_motion(
    rng: np.random.Generator, cfg: SynthConfig, length: int, margin: float
) -> list[SyntheticScene]:
    """One base scene on a ``margin`` x larger canvas and ``length`` affine crops of it."""
    W, H = cfg.width, cfg.height
    CW, CH = int(round(W * margin)), int(round(H * margin))
    base = _render(rng, cfg, CW, CH, size_scale=margin)
    z0, z1 = rng.uniform(1.0, margin), rng.uniform(1.0, margin)  # zoom 1 = whole canvas

    def center(z: float) -> tuple[float, float]:
        ww, wh = CW / z, CH / z
        return rng.uniform(ww / 2, CW - ww / 2), rng.uniform(wh / 2, CH - wh / 2)

    c0, c1 = center(z0), center(z1)
    frames = []
    for i in range(length):
        t = _smooth(i / max(1, length - 1))
        z = z0 + (z1 - z0) * t
        ww = CW / z
        s = W / ww
        lo_x, hi_x = ww / 2, CW - ww / 2
        lo_y, hi_y = (CH / z) / 2, CH - (CH / z) / 2
        cx = float(np.clip(c0[0] + (c1[0] - c0[0]) * t, lo_x, hi_x))
        cy = float(np.clip(c0[1] + (c1[1] - c0[1]) * t, lo_y, hi_y))
        A = np.float32([[s, 0, W / 2 - s * cx], [0, s, H / 2 - s * cy]])
        img = cv2.warpAffine(base.image, A, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ids = cv2.warpAffine(
            base.id_map, A, (W, H), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        counts = np.bincount(ids.ravel(), minlength=len(base.labels) + 1)
        lut = np.zeros(65536, np.uint16)
        labels, tracks = [], []
        for j in range(len(base.labels)):
            if counts[j + 1] >= cfg.min_area:
                labels.append(base.labels[j])
                tracks.append(j + 1)
                lut[j + 1] = len(labels)
        frame = SyntheticScene(
            img, lut[ids], np.asarray(labels, np.int64), track_ids=np.asarray(tracks, np.int64)
        )
        if base.depth is not None and base.camera is not None and base.boxes_3d is not None:
            # a crop + zoom of the canvas is the same camera with another focal length and
            # principal point: u' = s * u + A[0, 2]
            depth = cv2.warpAffine(
                base.depth, A, (W, H), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
            )
            bc = base.camera
            cam = Intrinsics(
                s * bc.fx, s * bc.fy, s * bc.cx + float(A[0, 2]), s * bc.cy + float(A[1, 2]), W, H
            )
            frame.set_depth(depth, cam, base.boxes_3d[frame.track_ids - 1])
        frames.append(frame)
    return frames


def iter_sequences(
    seed: int, num_frames: int, sequence_length: int, config: SynthConfig | None = None
) -> Iterator[list[SyntheticScene]]:
    """Consecutive camera-motion sequences, ``num_frames`` frames in all (sequence ``k`` seeded
    by ``(seed, k)``, ``sequence_length`` frames each, the last one possibly shorter)."""
    k = 0
    left = num_frames
    while left > 0:
        n = min(sequence_length, left)
        yield generate_sequence((seed, k), n, config)
        left -= n
        k += 1


def iter_sequence_frames(
    seed: int, num_frames: int, sequence_length: int, config: SynthConfig | None = None
) -> Iterator[SyntheticScene]:
    """The frames of :func:`iter_sequences`, one after the other."""
    for frames in iter_sequences(seed, num_frames, sequence_length, config):
        yield from frames
