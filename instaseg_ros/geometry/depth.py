"""Depth images and pinhole intrinsics (ROS-free).

Conventions: depth is metric distance along the optical axis (z), the camera
frame is the REP-103 optical frame (x right, y down, z forward), and pixel
``(u, v)`` = (column, row) is back-projected with the CameraInfo ``K``::

    x = (u - cx) * z / fx,  y = (v - cy) * z / fy

Encodings: ``16UC1`` (unsigned millimetres, 0 = no return) and ``32FC1``
(float metres; 0, NaN and +-inf = no return). Every problem raises
``ValueError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEPTH_ENCODINGS: tuple[str, ...] = ("16UC1", "32FC1")
_MM = np.float32(0.001)


def check_depth_encoding(encoding: str) -> None:
    """Raise ``ValueError`` unless ``encoding`` is a supported depth encoding."""
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(
            f"unsupported depth encoding {encoding!r}; supported: 16UC1 (millimetres), 32FC1 (metres)"
        )


def decode_depth(raw: np.ndarray, encoding: str, min_m: float, max_m: float) -> np.ndarray:
    """Raw depth pixels -> float32 metres with NaN wherever the depth is invalid.

    Args:
        raw: [...] uint16 millimetres (``16UC1``) or float32 metres (``32FC1``), any shape.
        min_m, max_m: the valid range in metres (inclusive); 0, NaN, inf and values
            outside the range become NaN.

    Returns:
        [...] float32 metres (a new array).
    """
    z, ok = metres_and_valid(raw, encoding, min_m, max_m)
    z = np.array(z, dtype=np.float32, copy=True)
    z[~ok] = np.nan
    return z


def metres_and_valid(
    raw: np.ndarray, encoding: str, min_m: float, max_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raw depth pixels -> (float32 metres, bool validity) of the same shape, without writing NaN.

    Valid: finite, non-zero and inside ``[min_m, max_m]`` (the rules of :func:`decode_depth`).
    ``z`` may be ``raw`` itself for 32FC1 (read-only use).
    """
    check_depth_encoding(encoding)
    if encoding == "16UC1":
        if raw.dtype.kind != "u" or raw.dtype.itemsize != 2:
            raise ValueError(f"16UC1 depth must be uint16, got {raw.dtype}")
        z = raw * _MM  # uint16 * float32 scalar -> float32
    else:
        if raw.dtype.kind != "f" or raw.dtype.itemsize != 4:
            raise ValueError(f"32FC1 depth must be float32, got {raw.dtype}")
        z = raw
    lo = np.float32(max(min_m, np.finfo(np.float32).tiny))  # 0 is "no return" even when min_m is 0
    ok = z >= lo  # NaN compares False (no warning for comparisons)
    ok &= z <= np.float32(max_m)
    return z, ok


def check_depth_range(min_m: float, max_m: float) -> None:
    """Raise ``ValueError`` unless ``0 <= min_m < max_m`` and both are finite."""
    if not (np.isfinite(min_m) and np.isfinite(max_m) and 0.0 <= min_m < max_m):
        raise ValueError(f"depth range must satisfy 0 <= min < max (metres), got min={min_m} max={max_m}")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one image grid.

    Attributes:
        fx, fy: focal lengths in pixels (> 0).
        cx, cy: principal point in pixels.
        width, height: the image size they describe.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k, width: int, height: int) -> Intrinsics:
        """CameraInfo ``k`` (row-major 3x3, 9 values) and its image size -> ``Intrinsics``.

        Raises:
            ValueError: ``k`` missing or not 9 values, fx/fy zero, negative or not finite,
                cx/cy not finite, or a zero image size.
        """
        vals = np.asarray(k, dtype=np.float64).reshape(-1)
        if vals.size != 9:
            raise ValueError(f"camera intrinsics K must have 9 values, got {vals.size}")
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"camera intrinsics K has non-finite values: {vals.tolist()}")
        fx, fy, cx, cy = float(vals[0]), float(vals[4]), float(vals[2]), float(vals[5])
        if fx <= 0.0 or fy <= 0.0:
            raise ValueError(
                f"camera intrinsics missing or zero: fx={fx} fy={fy} (CameraInfo.k is all zeros for an "
                "uncalibrated camera)"
            )
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"camera intrinsics need an image size, got width={width} height={height}")
        return cls(fx, fy, cx, cy, int(width), int(height))

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera on a grid ``s`` times coarser or finer (``s`` a whole number, same in x and y).

        Pixel centres follow ``u' = u / s`` (coarser) or ``u' = u * s`` (finer), as image_proc's resize.

        Raises:
            ValueError: the sizes are not related by one whole-number ratio.
        """
        if (width, height) == (self.width, self.height):
            return self
        s = integer_ratio((self.height, self.width), (height, width), "camera info", "depth image")
        f = 1.0 / s if width < self.width else float(s)
        return Intrinsics(self.fx * f, self.fy * f, self.cx * f, self.cy * f, int(width), int(height))


def integer_ratio(a_hw: tuple[int, int], b_hw: tuple[int, int], a_name: str, b_name: str) -> int:
    """The whole-number ratio ``s >= 1`` with ``a = s * b`` or ``b = s * a`` in both axes.

    Raises:
        ValueError: naming both sizes (``W x H``) when no such ratio exists.
    """
    (ah, aw), (bh, bw) = (int(v) for v in a_hw), (int(v) for v in b_hw)
    big, small = ((ah, aw), (bh, bw)) if ah * aw >= bh * bw else ((bh, bw), (ah, aw))
    if small[0] > 0 and small[1] > 0 and big[0] % small[0] == 0 and big[1] % small[1] == 0:
        s = big[0] // small[0]
        if s == big[1] // small[1]:
            return s
    raise ValueError(
        f"{a_name} size {aw}x{ah} and {b_name} size {bw}x{bh} differ by no whole-number ratio "
        "(equal sizes or one an exact 2x, 3x, ... multiple of the other in both axes are supported)"
    )


def back_project(u: np.ndarray, v: np.ndarray, z: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Pixels and depths -> points in the optical frame.

    Args:
        u, v: [N] pixel columns and rows (any numeric dtype).
        z: [N] float32 depth in metres.

    Returns:
        [N, 3] float32 x, y, z in metres.
    """
    pts = np.empty((len(z), 3), np.float32)
    pts[:, 0] = (u.astype(np.float32) - np.float32(intr.cx)) * z * np.float32(1.0 / intr.fx)
    pts[:, 1] = (v.astype(np.float32) - np.float32(intr.cy)) * z * np.float32(1.0 / intr.fy)
    pts[:, 2] = z
    return pts
