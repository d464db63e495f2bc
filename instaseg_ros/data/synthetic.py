"""Synthetic indoor scenes with instance masks, deterministic from a seed.

Five classes, in this order (0-based): person, chair, couch, dining table, toilet.
Each class has a consistent procedural shape (person = head + torso + arms + legs,
chair = seat + back + 4 legs, couch = long low body + arms + cushions, dining table =
slab + legs, toilet = tank + bowl + pedestal) drawn with per-class palettes,
texture and shading, standing on the floor of a room rendered in perspective
(back wall, side walls, floor pattern, wall decorations, rug, lighting gradient).

Objects are placed far to near with a size that follows the floor perspective
(their bottom edge on the floor sets their scale), so near objects occlude far ones;
occlusion is capped so every kept instance keeps at least ``min_visible_fraction``
of its area. Non-annotated distractors (plants, boxes, lamps) add clutter.

``generate_scene(seed)`` gives one :class:`SyntheticScene`; ``generate_sequence``
renders a smooth camera pan/zoom over one static scene. :class:`SyntheticDataset`
is a map-style dataset following the project's sample contract, and
``write_coco`` / ``write_synthetic_bag`` write COCO JSON + images or a rosbag2 (mcap).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CLASS_NAMES: list[str] = ["person", "chair", "couch", "dining table", "toilet"]

# Bumped whenever the same seed renders different pixels or masks; written into every COCO
# ``info`` so caches rendered by an older generator can be detected (CocoDataset warns).
GENERATOR_VERSION = 2

# real-world height range (m) per class
_HEIGHT_M = {0: (1.5, 1.9), 1: (0.8, 1.0), 2: (0.75, 0.95), 3: (0.72, 0.8), 4: (0.7, 0.8)}
_MAX_ASPECT = {0: 0.46, 1: 0.62, 2: 2.8, 3: 2.5, 4: 0.62}  # largest width/height each drawer makes


@dataclass
class SynthConfig:
    """Scene generator settings.

    Attributes:
        width, height: output image size in pixels.
        min_objects, max_objects: number of annotated objects attempted per scene.
        class_weights: sampling weight per class (same order as ``CLASS_NAMES``).
        size_range: (min, max) object pixel height as a fraction of the image height,
            sampled log-uniformly (0.042 * 480 = 20 px; large objects may be cut by the frame).
        min_object_px: lower bound on the object pixel height whatever the image size, so
            small images (320x240) do not get unlearnably tiny objects.
        max_width_fraction: cap on an object's width as a fraction of the image width.
        min_visible_fraction: an instance is kept only if at least this fraction of its
            full (unoccluded, unclipped) area stays visible.
        min_visible_area: instances with fewer visible pixels are dropped
            (0 = automatic: image area / 3000, i.e. ~100 px at 640x480).
        max_distractors: up to this many non-annotated clutter objects.
        decorations: draw windows, doors, pictures and rugs.
        noise: std of the sensor noise added to the image (0 disables).
    """

    width: int = 640
    height: int = 480
    min_objects: int = 1
    max_objects: int = 6
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    size_range: tuple[float, float] = (0.042, 0.8)
    min_object_px: int = 20
    max_width_fraction: float = 0.75
    min_visible_fraction: float = 0.4
    min_visible_area: int = 0
    max_distractors: int = 3
    decorations: bool = True
    noise: float = 3.0

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"SynthConfig: image size {self.width}x{self.height} is below 32x32")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"SynthConfig: need 0 <= min_objects <= max_objects, got "
                f"{self.min_objects}, {self.max_objects}"
            )
        if len(self.class_weights) != len(CLASS_NAMES) or sum(self.class_weights) <= 0:
            raise ValueError(
                f"SynthConfig: class_weights needs {len(CLASS_NAMES)} non-negative "
                f"weights with a positive sum, got {self.class_weights}"
            )
        lo, hi = self.size_range
        if not 0 < lo < hi <= 2.0:
            raise ValueError(
                f"SynthConfig: size_range must satisfy 0 < min < max <= 2, got {self.size_range}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SynthConfig:
        """Build from a YAML mapping; unknown keys raise a ValueError naming them."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"SynthConfig: unknown keys {unknown} (known: {sorted(cls.__dataclass_fields__)})"
            )
        for k in ("class_weights", "size_range"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    @property
    def min_area(self) -> int:
        """Minimum visible area in pixels."""
        return self.min_visible_area or max(8, (self.width * self.height) // 3000)


@dataclass
class SyntheticScene:
    """One rendered image with its visible instances.

    Attributes:
        image: [H, W, 3] uint8 BGR.
        id_map: [H, W] uint16; 0 background, ``i + 1`` = instance ``i`` (visible pixels only).
        labels: [N] int64 0-based class indices into ``CLASS_NAMES``.
        full_areas: [N] int64 area of each instance before occlusion and frame clipping
            (None for camera-motion frames).
    """

    image: np.ndarray
    id_map: np.ndarray
    labels: np.ndarray
    full_areas: np.ndarray | None = None

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


# --------------------------------------------------------------------------- textures

_TEX: dict[str, np.ndarray] = {}
_TEX_SIZE = 256
_NOISE_SIZE = 1024


def _norm_noise(a: np.ndarray, amp: float) -> np.ndarray:
    a = (a - a.mean()) / (a.std() + 1e-6)
    return np.clip(1.0 + amp * a, 0.55, 1.45).astype(np.float32)


def _textures() -> dict[str, np.ndarray]:
    """A small bank of multiplicative textures ([256,256] float32 around 1), built once."""
    if _TEX:
        return _TEX
    r = np.random.default_rng(20240611)
    s = _TEX_SIZE
    up = lambda a, interp=cv2.INTER_CUBIC: cv2.resize(a.astype(np.float32), (s, s), interpolation=interp)  # noqa: E731
    _TEX["smooth"] = _norm_noise(up(r.normal(size=(8, 8))) + 0.3 * up(r.normal(size=(32, 32))), 0.05)
    _TEX["fabric"] = _norm_noise(r.normal(size=(s, s)) + 0.8 * up(r.normal(size=(24, 24))), 0.07)
    grain = up(r.normal(size=(96, 6))) + 0.4 * up(r.normal(size=(s, 24)))
    _TEX["wood"] = _norm_noise(grain, 0.10)
    _TEX["blotch"] = _norm_noise(up(r.normal(size=(12, 12))) + 0.5 * up(r.normal(size=(48, 48))), 0.09)
    _TEX["room"] = _norm_noise(up(r.normal(size=(6, 6))) + 0.3 * up(r.normal(size=(64, 64))), 0.035)
    yy, xx = np.mgrid[0:s, 0:s]
    weave = np.sin(xx * 1.6) * np.sin(yy * 1.6)
    _TEX["knit"] = _norm_noise(weave + 0.6 * r.normal(size=(s, s)), 0.05)
    _TEX["sensor"] = r.standard_normal(size=(_NOISE_SIZE, _NOISE_SIZE, 3), dtype=np.float32)
    return _TEX


def _texture_patch(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    """[h, w] float32 crop (resized when larger than the bank) of texture ``name``."""
    tex = _textures()[name]
    s = _TEX_SIZE
    ch, cw = min(h, s), min(w, s)
    y0 = int(rng.integers(0, s - ch + 1))
    x0 = int(rng.integers(0, s - cw + 1))
    crop = tex[y0 : y0 + ch, x0 : x0 + cw]
    if (ch, cw) != (h, w):
        crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    return crop


# --------------------------------------------------------------------------- palettes (BGR)

_SKIN = [(189, 207, 241), (140, 180, 224), (110, 150, 198), (80, 110, 160), (60, 80, 115), (170, 195, 230)]
_HAIR = [(20, 20, 25), (30, 45, 70), (40, 80, 140), (120, 170, 210), (170, 170, 170), (25, 35, 50)]
_PANTS = [
    (130, 80, 40),
    (90, 60, 30),
    (40, 40, 40),
    (120, 150, 170),
    (90, 90, 90),
    (60, 40, 30),
    (150, 110, 70),
]
_WOOD = [(40, 75, 125), (60, 100, 150), (30, 50, 90), (90, 140, 190), (25, 35, 55), (110, 160, 200)]
_FABRIC = [
    (120, 120, 120),
    (150, 170, 190),
    (100, 60, 30),
    (60, 100, 50),
    (40, 40, 140),
    (50, 80, 120),
    (90, 90, 70),
    (180, 180, 175),
    (70, 50, 110),
    (40, 40, 45),
]
_PORCELAIN = [(245, 245, 245), (235, 238, 240), (225, 228, 230), (215, 222, 228), (238, 242, 236)]
_WALL = [
    (220, 228, 232),
    (200, 215, 225),
    (180, 200, 210),
    (205, 215, 200),
    (170, 185, 200),
    (215, 205, 195),
    (160, 170, 175),
    (190, 205, 220),
]
_FLOOR_WOOD = [(60, 105, 150), (80, 130, 175), (45, 75, 110), (100, 150, 190), (70, 95, 120)]
_FLOOR_TILE = [(200, 200, 200), (170, 175, 180), (140, 150, 160), (215, 210, 205), (110, 115, 120)]


def _pick(rng: np.random.Generator, palette: list[tuple[int, int, int]], jitter: float = 12.0) -> tuple:
    c = np.asarray(palette[int(rng.integers(len(palette)))], np.float64)
    c = c + rng.normal(0.0, jitter, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def _vivid(rng: np.random.Generator) -> tuple:
    """A random clothing colour (HSV with moderate saturation/value)."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 230), rng.integers(70, 240)]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _shade(color: tuple, f: float) -> tuple:
    return tuple(int(np.clip(c * f, 0, 255)) for c in color)


# --------------------------------------------------------------------------- object drawing


class _Canvas:
    """A local drawing surface: colour image + binary mask, pixel coordinates."""

    def __init__(self, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)

    def _pts(self, pts: Iterable[tuple[float, float]]) -> np.ndarray:
        return np.round(np.asarray(list(pts), np.float32) * 16).astype(np.int32)

    def poly(self, pts: Iterable[tuple[float, float]], color: tuple, outline: tuple | None = None) -> None:
        p = self._pts(pts)
        cv2.fillPoly(self.img, [p], color, cv2.LINE_8, 4)
        cv2.fillPoly(self.mask, [p], 1, cv2.LINE_8, 4)
        if outline is not None and min(self.h, self.w) > 40:
            cv2.polylines(self.img, [p], True, outline, 1, cv2.LINE_8, 4)

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, color: tuple, outline: tuple | None = None
    ) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, outline)

    def ellipse(
        self,
        cx: float,
        cy: float,
        ax: float,
        ay: float,
        color: tuple,
        start: float = 0,
        end: float = 360,
        outline: tuple | None = None,
    ) -> None:
        c = (int(round(cx * 16)), int(round(cy * 16)))
        a = (max(1, int(round(ax * 16))), max(1, int(round(ay * 16))))
        cv2.ellipse(self.img, c, a, 0, start, end, color, -1, cv2.LINE_8, 4)
        cv2.ellipse(self.mask, c, a, 0, start, end, 1, -1, cv2.LINE_8, 4)
        if outline is not None and min(self.h, self.w) > 40:
            cv2.ellipse(self.img, c, a, 0, start, end, outline, 1, cv2.LINE_8, 4)

    def limb(self, x0: float, y0: float, x1: float, y1: float, thick: float, color: tuple) -> None:
        """A thick segment as a quad with rounded (circle) ends."""
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) + 1e-6
        ox, oy = -dy / n * thick / 2, dx / n * thick / 2
        self.poly([(x0 + ox, y0 + oy), (x1 + ox, y1 + oy), (x1 - ox, y1 - oy), (x0 - ox, y0 - oy)], color)
        for x, y in ((x0, y0), (x1, y1)):
            self.ellipse(x, y, thick / 2, thick / 2, color)


def _draw_person(rng: np.random.Generator, ph: int) -> _Canvas:
    pw = max(4, int(round(ph * rng.uniform(0.38, 0.46))))
    c = _Canvas(ph, pw)
    W, H = pw, ph
    skin, hair = _pick(rng, _SKIN, 8), _pick(rng, _HAIR, 8)
    shirt, pants, shoes = (
        _vivid(rng),
        _pick(rng, _PANTS),
        _pick(rng, [(20, 20, 20), (50, 50, 60), (200, 200, 200)]),
    )
    thick_leg = H * rng.uniform(0.09, 0.11)
    spread = rng.uniform(0.0, 0.08) * W
    hip_y, foot_y = H * 0.5, H - thick_leg * 0.5 - H * 0.02
    for side in (-1, 1):
        hx, fx = W / 2 + side * W * 0.1, W / 2 + side * (W * 0.11 + spread)
        c.limb(hx, hip_y, fx, foot_y - H * 0.02, thick_leg, pants)
        c.ellipse(fx + side * W * 0.03, H - H * 0.025, thick_leg * 0.7, H * 0.025, shoes)
    # torso (dress/skirt variant sometimes)
    if rng.random() < 0.2:
        c.poly(
            [(W * 0.25, H * 0.17), (W * 0.75, H * 0.17), (W * 0.82, H * 0.68), (W * 0.18, H * 0.68)],
            shirt,
            _shade(shirt, 0.7),
        )
    else:
        c.poly(
            [(W * 0.24, H * 0.17), (W * 0.76, H * 0.17), (W * 0.71, H * 0.53), (W * 0.29, H * 0.53)],
            shirt,
            _shade(shirt, 0.7),
        )
        c.rect(W * 0.29, H * 0.49, W * 0.71, H * 0.53, _shade(pants, 0.8))
    # arms: upper arm + forearm, swing outward
    long_sleeve = rng.random() < 0.5
    arm_t = H * 0.07
    for side in (-1, 1):
        sx, sy = W / 2 + side * W * 0.25, H * 0.2
        a1 = rng.uniform(0.05, 0.35)
        a2 = a1 + rng.uniform(-0.2, 0.7)
        ex, ey = sx + side * math.sin(a1) * H * 0.16, sy + math.cos(a1) * H * 0.16
        hx, hy = ex + side * math.sin(a2) * H * 0.15, ey + math.cos(a2) * H * 0.15
        m = arm_t / 2 + 1
        ex, hx = float(np.clip(ex, m, W - m)), float(np.clip(hx, m, W - m))
        hy = float(np.clip(hy, m, H - m))
        c.limb(sx, sy, ex, ey, arm_t, shirt)
        c.limb(ex, ey, hx, hy, arm_t * 0.9, shirt if long_sleeve else skin)
        c.ellipse(hx, hy, arm_t * 0.6, arm_t * 0.6, skin)
    # neck + head + hair
    r = H * 0.062
    c.rect(W / 2 - r * 0.45, H * 0.1, W / 2 + r * 0.45, H * 0.18, _shade(skin, 0.9))
    c.ellipse(W / 2, H * 0.075, r * 0.92, r, skin)
    c.ellipse(W / 2, H * 0.075 - r * 0.15, r * 0.98, r * 0.9, hair, 180, 360)
    return c


def _draw_chair(rng: np.random.Generator, ph: int) -> _Canvas:
    pw = max(4, int(round(ph * rng.uniform(0.5, 0.62))))
    c = _Canvas(ph, pw)
    W, H = pw, ph
    frame = _pick(rng, _WOOD + [(30, 30, 30), (220, 220, 220), (40, 40, 160), (150, 90, 40)], 10)
    seatc = frame if rng.random() < 0.5 else _pick(rng, _FABRIC)
    dark = _shade(frame, 0.7)
    lt = max(1.0, W * rng.uniform(0.1, 0.13))
    seat_y = H * rng.uniform(0.47, 0.53)
    depth = H * 0.07
    # rear legs (farther: end higher), then back, seat, front legs
    for x in (W * 0.3, W - lt / 2 - 1):
        c.rect(x - lt / 2, seat_y - depth, x + lt / 2, H * 0.93, dark)
    bx0, bx1 = W * 0.26, W - 1
    if rng.random() < 0.6:  # solid back panel
        c.poly(
            [(bx0, seat_y - depth), (bx0, H * 0.02), (bx1, 0), (bx1, seat_y - depth)],
            seatc,
            _shade(seatc, 0.7),
        )
    else:  # posts + rails + slats
        for x in (bx0, bx1 - lt):
            c.rect(x, 0, x + lt, seat_y - depth, frame, dark)
        c.rect(bx0, 0, bx1, H * 0.09, frame, dark)
        c.rect(bx0, H * 0.2, bx1, H * 0.26, frame, dark)
        for f in (0.4, 0.6):
            x = bx0 + (bx1 - bx0) * f
            c.rect(x - lt / 2, H * 0.09, x + lt / 2, seat_y - depth, frame)
    # seat top (parallelogram) and front edge
    c.poly(
        [(0, seat_y), (W * 0.76, seat_y), (W, seat_y - depth), (W * 0.24, seat_y - depth)],
        _shade(seatc, 1.1),
        _shade(seatc, 0.7),
    )
    c.rect(0, seat_y, W * 0.76, seat_y + H * 0.05, _shade(seatc, 0.8))
    c.poly(
        [
            (W * 0.76, seat_y),
            (W, seat_y - depth),
            (W, seat_y - depth + H * 0.05),
            (W * 0.76, seat_y + H * 0.05),
        ],
        _shade(seatc, 0.65),
    )
    for x in (lt / 2 + 1, W * 0.72):
        c.rect(x - lt / 2, seat_y, x + lt / 2, H, frame, dark)
    if rng.random() < 0.5:
        _mirror(c)
    return c


def _draw_couch(rng: np.random.Generator, ph: int) -> _Canvas:
    pw = max(6, int(round(ph * rng.uniform(2.0, 2.8))))
    c = _Canvas(ph, pw)
    W, H = pw, ph
    col = _pick(rng, _FABRIC, 15)
    dark, darker, light = _shade(col, 0.8), _shade(col, 0.6), _shade(col, 1.15)
    arm_w = W * rng.uniform(0.08, 0.11)
    back_top = H * rng.uniform(0.0, 0.05)
    seat_y = H * rng.uniform(0.45, 0.52)
    feet = H * 0.9
    # back
    c.rect(arm_w * 0.5, back_top + H * 0.04, W - arm_w * 0.5, seat_y, col, darker)
    c.ellipse(arm_w * 0.5 + H * 0.04, back_top + H * 0.04, H * 0.04, H * 0.04, col)
    c.ellipse(W - arm_w * 0.5 - H * 0.04, back_top + H * 0.04, H * 0.04, H * 0.04, col)
    c.rect(arm_w * 0.5 + H * 0.04, back_top, W - arm_w * 0.5 - H * 0.04, back_top + H * 0.05, col)
    n_cush = int(rng.integers(2, 4))
    span = (W - 2 * arm_w) / n_cush
    for i in range(n_cush):  # back cushions
        x0 = arm_w + i * span
        c.rect(x0 + 1, back_top + H * 0.1, x0 + span - 1, seat_y, light if i % 2 else col, darker)
    # seat cushions and base
    for i in range(n_cush):
        x0 = arm_w + i * span
        c.rect(x0, seat_y, x0 + span, seat_y + H * 0.16, light, darker)
    c.rect(arm_w, seat_y + H * 0.16, W - arm_w, feet, dark, darker)
    # arms
    arm_top = H * rng.uniform(0.28, 0.38)
    for x0 in (0, W - arm_w):
        c.rect(x0, arm_top + arm_w * 0.3, x0 + arm_w, feet, col, darker)
        c.ellipse(x0 + arm_w / 2, arm_top + arm_w * 0.3, arm_w / 2, arm_w * 0.3, light)
    # feet
    fw = max(1.0, W * 0.03)
    for x in (arm_w * 0.5, W - arm_w * 0.5):
        c.rect(x - fw / 2, feet, x + fw / 2, H, (25, 25, 30))
    return c


def _draw_table(rng: np.random.Generator, ph: int) -> _Canvas:
    pw = max(6, int(round(ph * rng.uniform(1.5, 2.5))))
    c = _Canvas(ph, pw)
    W, H = pw, ph
    col = _pick(rng, _WOOD + [(235, 235, 235), (30, 30, 30), (150, 150, 150)], 10)
    top_d = H * rng.uniform(0.12, 0.2)
    apron = H * rng.uniform(0.08, 0.14)
    lt = max(1.0, min(W * rng.uniform(0.045, 0.06), H * 0.12))
    inset = W * rng.uniform(0.07, 0.12)
    # rear legs (visible between the front ones, end higher)
    for x in (inset + lt, W - inset - lt):
        c.rect(x - lt / 2, top_d, x + lt / 2, H * 0.86, _shade(col, 0.55))
    # table top (perspective) and front edge
    c.poly([(inset, 0), (W - inset, 0), (W, top_d), (0, top_d)], _shade(col, 1.12), _shade(col, 0.7))
    c.rect(0, top_d, W, top_d + apron, _shade(col, 0.75), _shade(col, 0.6))
    for x in (lt / 2 + W * 0.02, W - lt / 2 - W * 0.02):
        c.rect(x - lt / 2, top_d + apron, x + lt / 2, H, _shade(col, 0.8), _shade(col, 0.6))
    # tableware on top, part of the table's silhouette only where inside it
    if rng.random() < 0.5 and H > 30:
        for _ in range(int(rng.integers(1, 4))):
            x = rng.uniform(0.25, 0.75) * W
            c.ellipse(x, top_d * 0.5, W * 0.05, top_d * 0.25, _pick(rng, _PORCELAIN, 5))
    return c


def _draw_toilet(rng: np.random.Generator, ph: int) -> _Canvas:
    pw = max(4, int(round(ph * rng.uniform(0.52, 0.62))))
    c = _Canvas(ph, pw)
    W, H = pw, ph
    col = _pick(rng, _PORCELAIN, 4)
    seat = col if rng.random() < 0.75 else _pick(rng, [(30, 30, 30), (60, 110, 160), (200, 200, 200)])
    tank_h = H * rng.uniform(0.3, 0.38)
    rim_y = tank_h + H * 0.12
    # pedestal, bowl (lower half ellipse), tank, lid, rim/seat, opening
    c.poly(
        [(W * 0.3, rim_y), (W * 0.7, rim_y), (W * 0.76, H), (W * 0.24, H)], _shade(col, 0.8), _shade(col, 0.6)
    )
    c.ellipse(W / 2, rim_y, W * 0.42, H * 0.3, _shade(col, 0.92), 0, 180, _shade(col, 0.65))
    c.rect(W * 0.3, tank_h - 1, W * 0.7, rim_y, _shade(col, 0.85))  # back of the bowl joins the tank
    c.rect(W * 0.08, H * 0.03, W * 0.92, tank_h, col, _shade(col, 0.7))
    c.rect(W * 0.05, 0, W * 0.95, H * 0.05, _shade(col, 1.05), _shade(col, 0.7))
    c.rect(W * 0.75, H * 0.08, W * 0.85, H * 0.11, (160, 160, 165))  # flush handle
    c.ellipse(W / 2, rim_y, W * 0.44, H * 0.08, _shade(seat, 1.0), outline=_shade(seat, 0.6))
    c.ellipse(W / 2, rim_y, W * 0.3, H * 0.05, _shade(col, 0.55))
    return c


def _mirror(c: _Canvas) -> None:
    c.img = np.ascontiguousarray(c.img[:, ::-1])
    c.mask = np.ascontiguousarray(c.mask[:, ::-1])


_DRAWERS: list[Callable[[np.random.Generator, int], _Canvas]] = [
    _draw_person,
    _draw_chair,
    _draw_couch,
    _draw_table,
    _draw_toilet,
]
_CLASS_TEXTURE = ["fabric", "wood", "knit", "wood", "smooth"]


def _draw_distractor(rng: np.random.Generator, ph: int) -> _Canvas:
    """Clutter that is not annotated: potted plant, box/cabinet, floor lamp, bin."""
    kind = int(rng.integers(4))
    if kind == 0:  # plant
        pw = max(4, int(ph * rng.uniform(0.5, 0.8)))
        c = _Canvas(ph, pw)
        pot = _pick(rng, [(50, 80, 170), (200, 200, 200), (40, 40, 40)])
        c.poly([(pw * 0.25, ph * 0.7), (pw * 0.75, ph * 0.7), (pw * 0.65, ph), (pw * 0.35, ph)], pot)
        for _ in range(8):
            x, y = rng.uniform(0.15, 0.85) * pw, rng.uniform(0.1, 0.6) * ph
            c.ellipse(x, y, pw * 0.18, ph * 0.1, _pick(rng, [(40, 120, 40), (30, 90, 50), (60, 150, 80)], 15))
    elif kind == 1:  # cabinet / box
        pw = max(4, int(ph * rng.uniform(0.6, 1.5)))
        c = _Canvas(ph, pw)
        col = _pick(rng, _WOOD + [(200, 200, 200), (60, 130, 170)])
        c.rect(0, 0, pw - 1, ph - 1, col, _shade(col, 0.6))
        c.rect(pw * 0.1, ph * 0.1, pw * 0.9, ph * 0.45, _shade(col, 0.9), _shade(col, 0.6))
    elif kind == 2:  # floor lamp
        pw = max(4, int(ph * 0.3))
        c = _Canvas(ph, pw)
        c.rect(pw * 0.46, ph * 0.2, pw * 0.54, ph, (40, 40, 40))
        c.ellipse(pw * 0.5, ph - 2, pw * 0.3, ph * 0.02 + 1, (40, 40, 40))
        c.poly([(pw * 0.2, 0), (pw * 0.8, 0), (pw, ph * 0.22), (0, ph * 0.22)], _pick(rng, [(200, 235, 245)]))
    else:  # bin / stool
        pw = max(4, int(ph * rng.uniform(0.5, 0.7)))
        c = _Canvas(ph, pw)
        col = _vivid(rng)
        c.poly([(0, 0), (pw - 1, 0), (pw * 0.85, ph), (pw * 0.15, ph)], col, _shade(col, 0.6))
    return c


def _finish_patch(rng: np.random.Generator, c: _Canvas, texture: str, light_dx: float) -> np.ndarray:
    """Texture + shading of a drawn object -> [h, w, 3] float32 patch."""
    h, w = c.h, c.w
    tex = _texture_patch(rng, texture, h, w)
    gy = np.linspace(1.08, 0.8, h, dtype=np.float32)[:, None]
    gx = np.linspace(1.0 - 0.12 * light_dx, 1.0 + 0.12 * light_dx, w, dtype=np.float32)[None, :]
    shade = tex * gy * gx
    out = c.img.astype(np.float32) * shade[..., None]
    if texture == "smooth" and h > 20:  # porcelain highlight
        x = int(w * rng.uniform(0.25, 0.4))
        band = max(1, w // 14)
        out[:, x : x + band] *= 1.12
    return out


# --------------------------------------------------------------------------- room


@dataclass
class _Room:
    vx: float
    vy: float  # horizon (eye level) y
    floor_y: float  # y of the back wall's bottom edge
    cam_h: float  # camera height (m)


def _lin_y(vx: float, vy: float, px: float, py: float, x: float) -> float:
    """y on the line through the vanishing point and (px, py) at abscissa x."""
    if abs(px - vx) < 1e-6:
        return 1e9
    return vy + (py - vy) * (x - vx) / (px - vx)


def _render_room(
    rng: np.random.Generator, w: int, h: int, decorations: bool = True
) -> tuple[np.ndarray, _Room]:
    """Room background [h, w, 3] float32 with perspective walls/floor + its geometry."""
    vx = w * rng.uniform(0.25, 0.75)
    vy = h * rng.uniform(0.3, 0.48)
    floor_y = vy + h * rng.uniform(0.06, 0.2)
    k = (floor_y - vy) / (h - vy)  # scale of the back wall relative to the image frame
    bx0, bx1 = vx - k * vx * rng.uniform(1.0, 2.2), vx + k * (w - vx) * rng.uniform(1.0, 2.2)
    by0 = vy - (floor_y - vy) * rng.uniform(1.6, 2.6)
    img = np.empty((h, w, 3), np.uint8)
    wall = _pick(rng, _WALL, 10)
    side = _shade(wall, rng.uniform(0.75, 0.9))
    img[:] = _shade(wall, 0.95)  # ceiling colour everywhere first
    # side walls and back wall
    yl0, yl1 = _lin_y(vx, vy, bx0, by0, 0), _lin_y(vx, vy, bx0, floor_y, 0)
    yr0, yr1 = _lin_y(vx, vy, bx1, by0, w), _lin_y(vx, vy, bx1, floor_y, w)
    pts = lambda a: np.round(np.asarray(a, np.float32) * 16).astype(np.int32)  # noqa: E731
    cv2.fillPoly(img, [pts([(0, yl0), (bx0, by0), (bx0, floor_y), (0, yl1)])], side, cv2.LINE_8, 4)
    cv2.fillPoly(
        img, [pts([(w, yr0), (bx1, by0), (bx1, floor_y), (w, yr1)])], _shade(side, 1.05), cv2.LINE_8, 4
    )
    cv2.fillPoly(img, [pts([(bx0, by0), (bx1, by0), (bx1, floor_y), (bx0, floor_y)])], wall, cv2.LINE_8, 4)
    if rng.random() < 0.3:  # wallpaper stripes on the back wall
        step = max(4, int(w * rng.uniform(0.02, 0.05)))
        sc = _shade(wall, 0.9)
        for x in range(int(bx0), int(bx1), 2 * step):
            cv2.rectangle(img, (x, int(max(by0, 0))), (x + step - 1, int(floor_y)), sc, -1)
    # floor
    floor_poly = pts([(bx0, floor_y), (bx1, floor_y), (w, yr1), (w, h), (0, h), (0, yl1)])
    fmask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(fmask, [floor_poly], 1, cv2.LINE_8, 4)
    kind = int(rng.integers(3))
    fl = np.zeros_like(img)
    if kind == 0:  # wooden planks converging to the vanishing point
        fc = _pick(rng, _FLOOR_WOOD, 10)
        fl[:] = fc
        n = int(rng.integers(10, 22))
        for i in range(n + 1):
            x = bx0 + (bx1 - bx0) * i / n
            xb = vx + (x - vx) * (h - vy) / (floor_y - vy)
            cv2.line(fl, (int(x), int(floor_y)), (int(xb), h), _shade(fc, 0.7), 1 + (h > 300))
    else:  # tiles or carpet
        fc = _pick(rng, _FLOOR_TILE if kind == 1 else _FABRIC, 10)
        fl[:] = fc
        if kind == 1:
            n = int(rng.integers(6, 14))
            for i in range(-n, 2 * n + 1):
                x = bx0 + (bx1 - bx0) * i / n
                xb = vx + (x - vx) * (h - vy) / (floor_y - vy)
                cv2.line(fl, (int(x), int(floor_y)), (int(xb), h), _shade(fc, 0.75), 1)
            d0 = 1.0
            while True:  # rows at equal depth steps
                y = vy + (floor_y - vy) / d0
                if y >= h:
                    break
                if y > floor_y:
                    cv2.line(fl, (0, int(y)), (w, int(y)), _shade(fc, 0.75), 1)
                d0 -= (1.0 / n) * 0.9
                if d0 <= 0.02:
                    break
    cv2.copyTo(fl, fmask, img)
    # skirting board
    cv2.line(img, (int(bx0), int(floor_y)), (int(bx1), int(floor_y)), _shade(wall, 0.6), max(1, h // 160))
    # decorations: window / door / pictures on the back wall, rug on the floor
    if decorations:
        for _ in range(int(rng.integers(0, 3))):
            ww = (bx1 - bx0) * rng.uniform(0.1, 0.25)
            wh = (floor_y - by0) * rng.uniform(0.2, 0.5)
            x0 = rng.uniform(bx0, max(bx0 + 1, bx1 - ww))
            y0 = rng.uniform(by0 + (floor_y - by0) * 0.1, floor_y - wh - (floor_y - by0) * 0.15)
            kind = rng.random()
            p0, p1 = (int(x0), int(y0)), (int(x0 + ww), int(y0 + wh))
            if kind < 0.4:  # window: bright with frame
                cv2.rectangle(img, p0, p1, _pick(rng, [(250, 235, 210), (240, 240, 240)], 5), -1)
                cv2.rectangle(img, p0, p1, (230, 230, 230), max(1, int(ww * 0.05)))
                cv2.line(
                    img,
                    (int(x0 + ww / 2), p0[1]),
                    (int(x0 + ww / 2), p1[1]),
                    (230, 230, 230),
                    max(1, int(ww * 0.03)),
                )
            else:  # picture
                cv2.rectangle(img, p0, p1, _vivid(rng), -1)
                cv2.rectangle(img, p0, p1, (30, 40, 60), max(1, int(ww * 0.04)))
        if rng.random() < 0.5:  # door
            dw = (bx1 - bx0) * rng.uniform(0.12, 0.2)
            x0 = rng.uniform(bx0, max(bx0 + 1, bx1 - dw))
            dh = (floor_y - vy) * 2.1 / 1.3 * 1.2
            col = _pick(rng, _WOOD + [(240, 240, 240)])
            cv2.rectangle(img, (int(x0), int(floor_y - dh)), (int(x0 + dw), int(floor_y)), col, -1)
            cv2.circle(
                img, (int(x0 + dw * 0.85), int(floor_y - dh * 0.45)), max(1, int(dw * 0.05)), (60, 60, 60), -1
            )
        if rng.random() < 0.4:  # rug
            ry0 = rng.uniform(floor_y + (h - floor_y) * 0.2, floor_y + (h - floor_y) * 0.6)
            ry1 = min(h * 1.0, ry0 + (h - floor_y) * rng.uniform(0.2, 0.4))
            rx = rng.uniform(0.15, 0.4)
            f0, f1 = (ry0 - vy) / (h - vy), (ry1 - vy) / (h - vy)
            quad = [
                (vx - rx * w * f0 * 1.5, ry0),
                (vx + rx * w * f0 * 1.5, ry0),
                (vx + rx * w * f1 * 1.5, ry1),
                (vx - rx * w * f1 * 1.5, ry1),
            ]
            rc = _vivid(rng)
            cv2.fillPoly(img, [pts(quad)], rc, cv2.LINE_8, 4)
            cv2.polylines(img, [pts(quad)], True, _shade(rc, 0.6), max(1, h // 120), cv2.LINE_8, 4)
    out = img.astype(np.float32) * _texture_patch(rng, "room", h, w)[..., None]
    return out, _Room(vx=vx, vy=vy, floor_y=floor_y, cam_h=float(rng.uniform(1.0, 1.5)))


# --------------------------------------------------------------------------- scene


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
    """Render one scene deterministically from ``seed`` (an int or a sequence of ints)."""
    cfg = config or SynthConfig()
    return _render(_scene_rng(seed), cfg, cfg.width, cfg.height)


def _render(
    rng: np.random.Generator, cfg: SynthConfig, W: int, H: int, size_scale: float = 1.0
) -> SyntheticScene:
    img, room = _render_room(rng, W, H, cfg.decorations)
    light_dx = float(rng.uniform(-1, 1))
    weights = np.asarray(cfg.class_weights, np.float64)
    weights = weights / weights.sum()
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    n_dis = int(rng.integers(0, cfg.max_distractors + 1)) if cfg.max_distractors > 0 else 0
    labels = list(rng.choice(len(CLASS_NAMES), size=n_obj, p=weights)) + [-1] * n_dis
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
    # compact the ids of the kept instances (distractors -> background)
    lut = np.zeros(len(placed) + 1, np.uint16)
    keep_labels, keep_areas = [], []
    k = 0
    for j, p in enumerate(placed):
        if p.label >= 0 and vis[j] >= min_area:
            k += 1
            lut[j + 1] = k
            keep_labels.append(p.label)
            keep_areas.append(p.area)
    id_map = lut[id_map]
    return SyntheticScene(
        image=image,
        id_map=id_map,
        labels=np.asarray(keep_labels, np.int64),
        full_areas=np.asarray(keep_areas, np.int64),
    )


# --------------------------------------------------------------------------- camera motion


def _smooth(t: float) -> float:
    return t * t * (3 - 2 * t)


def generate_sequence(
    seed: int | Iterable[int], length: int, config: SynthConfig | None = None, margin: float = 1.35
) -> list[SyntheticScene]:
    """``length`` frames of a smooth camera pan/zoom over one static scene.

    The scene is rendered once on a canvas ``margin`` times the output size; each frame is
    an affine crop of it (image bilinear, id map nearest). Instances that leave the frame
    (fewer than ``min_visible_area`` pixels) are dropped from that frame.
    """
    cfg = config or SynthConfig()
    if length < 1:
        raise ValueError(f"generate_sequence: length must be >= 1, got {length}")
    rng = _scene_rng(seed)
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
        labels = []
        for j in range(len(base.labels)):
            if counts[j + 1] >= cfg.min_area:
                labels.append(base.labels[j])
                lut[j + 1] = len(labels)
        frames.append(SyntheticScene(img, lut[ids], np.asarray(labels, np.int64)))
    return frames


# --------------------------------------------------------------------------- dataset


class SyntheticDataset:
    """Map-style dataset of generated scenes; sample ``i`` is ``generate_scene((seed, i))``.

    ``dataset[i] -> (image [H,W,3] uint8 BGR, target)`` with the project's target contract;
    ``image_id`` is ``i + 1``. ``transform(image, target) -> (image, target)`` is applied
    when given (for example :func:`instaseg_ros.data.augment.build_transform`).
    ``cache=True`` keeps rendered scenes in memory (~1.5 MB per 640x480 image).
    """

    def __init__(
        self,
        num_images: int,
        seed: int = 0,
        config: SynthConfig | None = None,
        transform: Callable | None = None,
        cache: bool = False,
    ) -> None:
        if num_images < 0:
            raise ValueError(f"SyntheticDataset: num_images must be >= 0, got {num_images}")
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.config = config or SynthConfig()
        self.transform = transform
        self.class_names = list(CLASS_NAMES)
        self.category_ids = [i + 1 for i in range(len(CLASS_NAMES))]  # COCO ids used by coco_gt()
        self._cache: dict[int, SyntheticScene] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> SyntheticScene:
        """The rendered scene of sample ``index``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"SyntheticDataset index {index} out of range [0, {self.num_images})")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sc = generate_scene((self.seed, index), self.config)
        if self._cache is not None:
            self._cache[index] = sc
        return sc

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        sc = self.scene(index)
        image, target = sc.image.copy(), sc.target(image_id=index + 1)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def coco_gt(self) -> dict[str, Any]:
        """Ground truth of all samples as a COCO dict (category ids 1..5), for ``evaluate_coco``."""
        return scenes_to_coco((self.scene(i) for i in range(self.num_images)), start_id=1)


# --------------------------------------------------------------------------- writers


def _provenance() -> dict[str, Any]:
    return {"generator": "instaseg_ros.data.synthetic", "generator_version": GENERATOR_VERSION}


def coco_categories() -> list[dict[str, Any]]:
    """COCO categories of the synthetic set: ids 1..5 in ``CLASS_NAMES`` order."""
    return [{"id": i + 1, "name": n, "supercategory": "indoor"} for i, n in enumerate(CLASS_NAMES)]


def scene_annotations(scene: SyntheticScene, image_id: int, first_ann_id: int) -> list[dict[str, Any]]:
    """COCO annotation dicts (compressed RLE segmentation) of one scene's instances."""
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


def iter_sequence_frames(
    seed: int, num_frames: int, sequence_length: int, config: SynthConfig | None = None
) -> Iterator[SyntheticScene]:
    """Frames of consecutive camera-motion sequences (sequence ``k`` seeded by ``(seed, k)``)."""
    k = 0
    left = num_frames
    while left > 0:
        n = min(sequence_length, left)
        yield from generate_sequence((seed, k), n, config)
        left -= n
        k += 1


def write_synthetic_bag(
    out_dir: str | Path, seed: int = 0, config: SynthConfig | None = None, spec: BagSpec | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/bag`` (rosbag2, mcap) and ``out_dir/ground_truth.json``.

    The bag has ``sensor_msgs/Image`` bgr8 frames (or CompressedImage, see ``BagSpec``) and
    ``sensor_msgs/CameraInfo`` with equal header stamps; the COCO ground truth's images carry
    ``stamp_ns`` (= header stamp).
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
    with BagImageWriter(bag_path, topic, spec.info_topic, compressed=spec.compressed) as writer:
        for k, sc in enumerate(iter_sequence_frames(seed, spec.num_frames, spec.sequence_length, cfg)):
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
                }
            )
            anns.extend(scene_annotations(sc, k + 1, len(anns) + 1))
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
