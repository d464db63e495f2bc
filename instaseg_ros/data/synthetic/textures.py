"""Procedural multiplicative textures, the sensor-noise bank and the BGR colour palettes."""

from __future__ import annotations

import cv2
import numpy as np

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
