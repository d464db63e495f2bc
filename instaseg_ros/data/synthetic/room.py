"""The room background: back wall, side walls and floor drawn in one-point perspective."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from instaseg_ros.data.synthetic.textures import (
    _FABRIC,
    _FLOOR_TILE,
    _FLOOR_WOOD,
    _WALL,
    _WOOD,
    _pick,
    _shade,
    _texture_patch,
    _vivid,
)


@dataclass
class _Room:
    """The room's perspective: a box seen from inside by a camera looking along its axis.

    ``(vx, vy)`` is the vanishing point of the room's axis, i.e. the principal point of the
    camera (optical axis horizontal, parallel to the side walls). The back wall spans
    ``[bx0, bx1] x [by0, floor_y]`` in pixels; with a focal length ``f`` it stands at depth
    ``f * cam_h / (floor_y - vy)`` (see :mod:`instaseg_ros.data.synthetic.depth`).
    """

    vx: float
    vy: float  # horizon (eye level) y
    floor_y: float  # y of the back wall's bottom edge
    cam_h: float  # camera height (m)
    bx0: float = 0.0  # back wall's left edge x
    bx1: float = 0.0  # back wall's right edge x
    by0: float = 0.0  # back wall's top edge y (the ceiling line)


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
    cam_h = float(rng.uniform(1.0, 1.5))
    return out, _Room(vx=vx, vy=vy, floor_y=floor_y, cam_h=cam_h, bx0=bx0, bx1=bx1, by0=by0)
