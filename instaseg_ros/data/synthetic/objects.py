"""Procedural drawers of the five annotated classes and of the non-annotated clutter.

Each drawer takes ``(rng, pixel_height)`` and returns a :class:`_Canvas`: an [h, w, 3]
uint8 colour image with its [h, w] binary mask, the object standing on the canvas' bottom
edge. :func:`_finish_patch` adds texture and shading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import cv2
import numpy as np

from instaseg_ros.data.synthetic.textures import (
    _FABRIC,
    _HAIR,
    _PANTS,
    _PORCELAIN,
    _SKIN,
    _WOOD,
    _pick,
    _shade,
    _texture_patch,
    _vivid,
)


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
