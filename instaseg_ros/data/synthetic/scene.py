"""One rendered scene: objects placed far to near on the room's floor, with instance ids.

Objects are placed far to near with a size that follows the floor perspective (their
bottom edge on the floor sets their scale), so near objects occlude far ones; occlusion is
capped so every kept instance keeps at least ``min_visible_fraction`` of its area.
Non-annotated distractors (plants, boxes, lamps) add clutter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from instaseg_ros.data.synthetic.config import _HEIGHT_M, _MAX_ASPECT, CLASS_NAMES, MAX_ATTEMPTS, SynthConfig
from instaseg_ros.data.synthetic.depth import object_depths, room_camera, room_depth, visible_geometry
from instaseg_ros.data.synthetic.objects import _CLASS_TEXTURE, _DRAWERS, _draw_distractor, _finish_patch
from instaseg_ros.data.synthetic.room import _render_room
from instaseg_ros.data.synthetic.textures import _NOISE_SIZE, _textures
from instaseg_ros.geometry.depth import Intrinsics


@dataclass
class SyntheticScene:
    """One rendered image with its visible instances.

    Attributes:
        image: [H, W, 3] uint8 BGR.
        id_map: [H, W] uint16; 0 background, ``i + 1`` = instance ``i`` (visible pixels only).
        labels: [N] int64 0-based class indices into ``CLASS_NAMES``.
        full_areas: [N] int64 area of each instance before occlusion and frame clipping
            (None for camera-motion frames).
        track_ids: [N] int64 identity of each instance, stable across the frames of one
            camera-motion sequence (the object's index in the sequence's base scene + 1);
            None for single scenes.
        depth: [H, W] float32 ideal metric depth (z, metres) registered to ``image``, or None
            (``SynthConfig.depth`` off). See :mod:`instaseg_ros.data.synthetic.depth`.
        camera: the true pinhole intrinsics of ``image`` and ``depth``.
        centers_3d, sizes_3d: [N, 3] float32 per-instance centre (per-axis median) and
            min-max extent of the visible surface in the REP-103 optical frame (metres).
        boxes_3d: [N, 6] float32 whole-object boxes ``(x0, y0, z0, x1, y1, z1)`` (metres),
            occluded and out-of-frame parts included.
    """

    image: np.ndarray
    id_map: np.ndarray
    labels: np.ndarray
    full_areas: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    depth: np.ndarray | None = None
    camera: Intrinsics | None = None
    centers_3d: np.ndarray | None = None
    sizes_3d: np.ndarray | None = None
    boxes_3d: np.ndarray | None = None

    def set_depth(self, depth: np.ndarray, camera: Intrinsics, boxes_3d: np.ndarray) -> None:
        """Attach depth [H, W] f32, its camera and the whole-object boxes [N, 6]; derives
        ``centers_3d`` / ``sizes_3d`` from the visible pixels."""
        self.depth, self.camera, self.boxes_3d = depth, camera, boxes_3d.astype(np.float32)
        self.centers_3d, self.sizes_3d = visible_geometry(self.id_map, depth, camera, len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def masks(self) -> np.ndarray:
        """[N, H, W] bool visible masks."""
        n = len(self.labels)
        return self.id_map[None] == np.arange(1, n + 1, dtype=np.uint16)[:, None, None]

    @property
    def boxes(self) -> np.ndarray:
        """[N, 4] float32 xyxy boxes (exclusive max) of the visible masks."""
        from instaseg_ros.core.masks import masks_to_boxes

        return masks_to_boxes(self.masks)

    def target(self, image_id: int = 0) -> dict[str, Any]:
        """The dataset-contract target: boxes [N,4] f32, labels [N] i64, masks [N,H,W] u8, ..."""
        masks = self.masks
        from instaseg_ros.core.masks import masks_to_boxes

        return {
            "boxes": masks_to_boxes(masks),
            "labels": self.labels.astype(np.int64),
            "masks": masks.astype(np.uint8),
            "image_id": int(image_id),
            "iscrowd": np.zeros(len(self.labels), np.uint8),
        }


@dataclass
class _Placed:
    label: int  # -1 = distractor
    x0: int
    y0: int
    patch: np.ndarray  # [h, w, 3] float32
    mask: np.ndarray  # [h, w] bool
    area: int = 0


def _overlap(shape: tuple[int, int], p: _Placed) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Frame window (ys, ye, xs, xe) covered by ``p`` and its mask cropped to it; None if outside."""
    h, w = p.mask.shape
    H, W = shape
    ys, xs = max(0, p.y0), max(0, p.x0)
    ye, xe = min(H, p.y0 + h), min(W, p.x0 + w)
    if ye <= ys or xe <= xs:
        return None
    return (ys, ye, xs, xe), p.mask[ys - p.y0 : ye - p.y0, xs - p.x0 : xe - p.x0]


def _paste_img(img: np.ndarray, p: _Placed) -> None:
    h, w = p.mask.shape
    H, W = img.shape[:2]
    ys, xs = max(0, p.y0), max(0, p.x0)
    ye, xe = min(H, p.y0 + h), min(W, p.x0 + w)
    if ye <= ys or xe <= xs:
        return
    m = p.mask[ys - p.y0 : ye - p.y0, xs - p.x0 : xe - p.x0]
    img[ys:ye, xs:xe][m] = p.patch[ys - p.y0 : ye - p.y0, xs - p.x0 : xe - p.x0][m]


def _shadow(img: np.ndarray, cx: float, cy: float, ax: float, ay: float, strength: float) -> None:
    """Darken an elliptical floor region around an object's base (soft two-step)."""
    H, W = img.shape[:2]
    x0, x1 = int(max(0, cx - ax * 1.3)), int(min(W, cx + ax * 1.3 + 1))
    y0, y1 = int(max(0, cy - ay * 1.3)), int(min(H, cy + ay * 1.3 + 1))
    if x1 <= x0 or y1 <= y0:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(
        m,
        (int((cx - x0) * 16), int((cy - y0) * 16)),
        (max(1, int(ax * 1.3 * 16)), max(1, int(ay * 1.3 * 16))),
        0,
        0,
        360,
        0.5,
        -1,
        cv2.LINE_8,
        4,
    )
    cv2.ellipse(
        m,
        (int((cx - x0) * 16), int((cy - y0) * 16)),
        (max(1, int(ax * 16)), max(1, int(ay * 16))),
        0,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_8,
        4,
    )
    img[y0:y1, x0:x1] *= (1.0 - strength * m)[..., None]


def _scene_rng(seed: int | np.random.SeedSequence | Iterable[int]) -> np.random.Generator:
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (int, np.integer)):
        return np.random.default_rng(np.random.SeedSequence(int(seed)))
    return np.random.default_rng(np.random.SeedSequence(list(seed)))


def generate_scene(seed: int | Iterable[int] = 0, config: SynthConfig | None = None) -> SyntheticScene:
    """Render one scene deterministically from ``seed`` (an int or a sequence of ints).

    A rendering that misses ``config.min_visible_objects`` or ``config.required_classes`` is
    replaced by the next one from the same random stream.
    """
    cfg = config or SynthConfig()
    rng = _scene_rng(seed)
    for _ in range(MAX_ATTEMPTS):
        scene = _render(rng, cfg, cfg.width, cfg.height)
        if cfg.accepts(scene.labels):
            return scene
    raise unreachable(cfg, "scene")


def unreachable(cfg: SynthConfig, what: str) -> ValueError:
    """The error for requirements that ``MAX_ATTEMPTS`` renderings did not meet."""
    return ValueError(
        f"synthetic {what}: {MAX_ATTEMPTS} renderings never kept min_visible_objects="
        f"{cfg.min_visible_objects} with required_classes={list(cfg.required_classes)} visible "
        f"(max_objects={cfg.max_objects}); lower the requirements or raise min_objects"
    )


def _render(
    rng: np.random.Generator, cfg: SynthConfig, W: int, H: int, size_scale: float = 1.0
) -> SyntheticScene:
    img, room = _render_room(rng, W, H, cfg.decorations)
    light_dx = float(rng.uniform(-1, 1))
    weights = np.asarray(cfg.class_weights, np.float64)
    weights = weights / weights.sum()
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    n_dis = int(rng.integers(0, cfg.max_distractors + 1)) if cfg.max_distractors > 0 else 0
    labels = list(rng.choice(len(CLASS_NAMES), size=n_obj, p=weights))
    req = cfg.required_labels
    if req:  # the required classes first, then the sampled ones that still fit
        n_keep = max(n_obj, len(req)) - len(req)
        labels = req + [lab for lab in labels if lab not in req][:n_keep]
    labels += [-1] * n_dis
    ref_h = H / size_scale  # sizes are relative to the output frame, not the (larger) canvas
    lo, hi = cfg.size_range
    lo = min(max(lo, cfg.min_object_px / ref_h), hi * 0.9)
    cands: list[tuple[float, int, float]] = []
    for lab in labels:
        if lab < 0:
            ph = ref_h * math.exp(rng.uniform(math.log(max(lo, 0.08)), math.log(0.45)))
            real = rng.uniform(0.5, 1.6)
        else:
            ph = ref_h * math.exp(rng.uniform(math.log(lo), math.log(hi)))
            ph = min(ph, cfg.max_width_fraction * W / size_scale / _MAX_ASPECT[int(lab)])  # wide classes fit
            real = rng.uniform(*_HEIGHT_M[int(lab)])
        yb = room.vy + ph * room.cam_h / real  # perspective: base row fixes the size
        y_max = H * 1.08
        if yb < room.floor_y + 1:
            yb = room.floor_y + 1 + rng.uniform(0, 3)
        elif yb > y_max:
            yb = y_max - rng.uniform(0, 0.05 * H)
        ph = (yb - room.vy) * real / room.cam_h
        cands.append((yb, int(lab), ph))
    cands.sort(key=lambda t: t[0])  # far to near
    id_map = np.zeros((H, W), np.uint16)
    placed: list[_Placed] = []
    vis: list[int] = []  # visible pixels of each placed object
    min_area = cfg.min_area
    for yb, lab, ph in cands:
        ph_i = int(round(ph))
        if ph_i < 6:
            continue
        canvas = _DRAWERS[lab](rng, ph_i) if lab >= 0 else _draw_distractor(rng, ph_i)
        if canvas.w > cfg.max_width_fraction * W / size_scale and lab >= 0:
            continue
        texture = _CLASS_TEXTURE[lab] if lab >= 0 else "blotch"
        area = int(canvas.mask.sum())
        for _attempt in range(4):
            x0 = int(rng.uniform(-0.15 * canvas.w, W - 0.85 * canvas.w))
            p = _Placed(lab, x0, int(round(yb - canvas.h)), np.empty(0), canvas.mask.astype(bool), area)
            sl = _overlap(id_map.shape, p)
            if sl is None:
                continue
            (ys, ye, xs, xe), m = sl
            in_frame = int(m.sum())
            if lab >= 0 and in_frame < max(min_area, cfg.min_visible_fraction * area):
                continue  # mostly outside the frame
            # pixels each placed instance would lose under the new (nearer) object
            lost = np.bincount(id_map[ys:ye, xs:xe][m], minlength=len(placed) + 1)
            ok = all(
                q.label < 0 or vis[j] - lost[j + 1] >= max(min_area, cfg.min_visible_fraction * q.area)
                for j, q in enumerate(placed)
            )
            if ok:
                for j in range(len(placed)):
                    vis[j] -= int(lost[j + 1])
                id_map[ys:ye, xs:xe][m] = len(placed) + 1
                p.patch = _finish_patch(rng, canvas, texture, light_dx)
                placed.append(p)
                vis.append(in_frame)
                break
    for p in placed:  # shadows first, then objects far to near
        h, w = p.mask.shape
        _shadow(img, p.x0 + w / 2, p.y0 + h, w * 0.55, max(1.0, h * 0.04 + (p.y0 + h - room.vy) * 0.03), 0.35)
    for p in placed:
        _paste_img(img, p)
    # lighting: low-frequency gain from a light source position + global exposure
    lx, ly = rng.uniform(0, W), rng.uniform(-0.3 * H, 0.5 * H)
    gy, gx = np.mgrid[0:12, 0:16].astype(np.float32)
    d = np.hypot((gx + 0.5) / 16 * W - lx, (gy + 0.5) / 12 * H - ly) / math.hypot(W, H)
    gain = rng.uniform(0.65, 1.25) * (1.0 + rng.uniform(0.1, 0.5) * (0.5 - d))
    gain = cv2.resize(gain.astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
    img = cv2.multiply(img, cv2.merge([gain, gain, gain]))
    if cfg.noise > 0:
        sn = _textures()["sensor"]
        n = _NOISE_SIZE
        if H <= n and W <= n:
            oy, ox = int(rng.integers(0, n - H + 1)), int(rng.integers(0, n - W + 1))
            noise = sn[oy : oy + H, ox : ox + W]
        else:
            noise = np.tile(sn, (-(-H // n), -(-W // n), 1))[:H, :W]
        img = cv2.scaleAdd(np.ascontiguousarray(noise), float(cfg.noise), img)
    image = np.clip(img, 0, 255, out=img).astype(np.uint8)
    if cfg.depth:  # geometry only: no random draws, so the colour image is the same either way
        camera = room_camera(room, W, H, cfg.hfov_deg)
        depth = room_depth(room, camera)
        all_boxes = object_depths(depth, id_map, placed, room, camera)
    # compact the ids of the kept instances (distractors -> background)
    lut = np.zeros(len(placed) + 1, np.uint16)
    keep_labels, keep_areas, keep_j = [], [], []
    k = 0
    for j, p in enumerate(placed):
        if p.label >= 0 and vis[j] >= min_area:
            k += 1
            lut[j + 1] = k
            keep_labels.append(p.label)
            keep_areas.append(p.area)
            keep_j.append(j)
    id_map = lut[id_map]
    scene = SyntheticScene(
        image=image,
        id_map=id_map,
        labels=np.asarray(keep_labels, np.int64),
        full_areas=np.asarray(keep_areas, np.int64),
    )
    if cfg.depth:
        scene.set_depth(depth, camera, all_boxes[keep_j].reshape(-1, 6))
    return scene
