"""Metric depth of the synthetic scenes, their true camera, per-instance 3D ground truth, depth noise.

Camera. The room is drawn in one-point perspective, which is exactly what a pinhole camera
sees from inside a box when its optical axis is horizontal and parallel to the side walls:
the room's vanishing point ``(vx, vy)`` is the principal point ``(cx, cy)`` and row ``vy``
is eye level. The drawing fixes sizes only through ``pixel height / (floor row - vy)``, so
the focal length is free; it is set by the horizontal field of view,
``f = (W / 2) / tan(hfov / 2)`` (``fx = fy = f``, square pixels, no distortion).

Depth, in the REP-103 optical frame (x right, y down, z forward, metres), with the camera
``cam_h`` above the floor:

- floor: the plane ``y = cam_h``; a floor pixel in row ``v`` has ``z = f * cam_h / (v - cy)``;
- back wall: ``z = Z_back = f * cam_h / (floor_y - cy)``;
- side walls: ``x = (bx0 - cx) * Z_back / f`` and ``x = (bx1 - cx) * Z_back / f``;
- ceiling: ``y = (by0 - cy) * Z_back / f``.

Every pixel sees the nearest of these planes along its ray (the room is a closed box);
windows, pictures, doors and rugs lie on them.

Objects stand on the floor: the bottom edge ``yb`` of an object's canvas is where its front
touches the floor, so its front is at ``z_front = f * cam_h / (yb - cy)``, the same relation
that sized it. Objects are *billboards with a shallow relief*: across the object's width the
surface recedes like a half cylinder, ``z = z_front + relief * (1 - sqrt(1 - r^2))`` with
``r`` from -1 (left edge) through 0 (centre column) to 1, and ``relief`` 0.15-0.25 m per
class. Depth inside an object does not follow its drawn parts (a chair's seat and back share
one profile), and where two objects stand closer in depth than a relief, the occluder's
receding edge can lie behind the occluded object's front.

Ground truth per instance (optical frame, metres):

- ``centers_3d`` / ``sizes_3d``: per-axis median and per-axis min-max extent of the
  instance's visible pixels back-projected with the ideal depth: the visible surface, which
  is what a depth camera observes (and what :mod:`instaseg_ros.geometry.objects` estimates);
- ``boxes_3d``: the whole object's axis-aligned box ``(x0, y0, z0, x1, y1, z1)``, occluded
  and out-of-frame parts included: the canvas rectangle at its front depth, ``relief`` deep.

:class:`DepthNoise` turns ideal depth into what a structured-light camera returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from instaseg_ros.geometry.depth import Intrinsics, back_project

# receding depth of an object's edges behind its centre column (m), per class; -1 = distractor
_RELIEF_M = {-1: 0.15, 0: 0.15, 1: 0.2, 2: 0.25, 3: 0.25, 4: 0.2}
DEPTH_ENCODINGS = ("16UC1", "32FC1")


def focal_length(width: int, hfov_deg: float) -> float:
    """Focal length in pixels of a ``width``-pixel image with horizontal field of view ``hfov_deg``."""
    return (width / 2) / math.tan(math.radians(hfov_deg) / 2)


def room_camera(room: Any, width: int, height: int, hfov_deg: float) -> Intrinsics:
    """The true pinhole camera of a room drawing (principal point = its vanishing point)."""
    f = focal_length(width, hfov_deg)
    return Intrinsics(f, f, float(room.vx), float(room.vy), int(width), int(height))


def room_depth(room: Any, intr: Intrinsics) -> np.ndarray:
    """[H, W] float32 depth (m) of the room box (floor, walls, ceiling) seen by ``intr``.

    ``room``: the renderer's room geometry (``vx, vy, floor_y, cam_h, bx0, bx1, by0``).
    """
    f = intr.fx
    z_back = f * room.cam_h / (room.floor_y - room.vy)
    x_left = (room.bx0 - room.vx) * z_back / f
    x_right = (room.bx1 - room.vx) * z_back / f
    y_top = (room.by0 - room.vy) * z_back / f
    dx = ((np.arange(intr.width, dtype=np.float64) - intr.cx) / f)[None, :]
    dy = ((np.arange(intr.height, dtype=np.float64) - intr.cy) / f)[:, None]
    z = np.full((intr.height, intr.width), z_back)
    with np.errstate(divide="ignore"):
        z = np.minimum(z, np.where(dy > 0, room.cam_h / dy, np.inf))  # floor (y = cam_h, down)
        z = np.minimum(z, np.where(dy < 0, y_top / dy, np.inf))  # ceiling (y_top < 0)
        z = np.minimum(z, np.where(dx < 0, x_left / dx, np.inf))
        z = np.minimum(z, np.where(dx > 0, x_right / dx, np.inf))
    return z.astype(np.float32)


def object_depths(
    depth: np.ndarray, id_map: np.ndarray, placed: Sequence[Any], room: Any, intr: Intrinsics
) -> np.ndarray:
    """Paint every placed object's visible pixels into ``depth`` (in place); return their boxes.

    Args:
        depth: [H, W] float32 room depth, overwritten where an object is visible.
        id_map: [H, W] uint16, ``j + 1`` where placed object ``j`` is visible.
        placed: objects with ``label`` (-1 = distractor), ``x0``, ``y0`` (canvas top-left, px)
            and ``mask`` ([h, w] canvas mask).
        room, intr: the room geometry and its camera.

    Returns:
        [len(placed), 6] float32 whole-object boxes ``(x0, y0, z0, x1, y1, z1)``, metres.
    """
    H, W = id_map.shape
    boxes = np.zeros((len(placed), 6), np.float32)
    for j, p in enumerate(placed):
        h, w = p.mask.shape
        z_front = intr.fy * room.cam_h / max(p.y0 + h - room.vy, 1e-6)
        relief = _RELIEF_M[int(p.label) if p.label >= 0 else -1]
        r = (np.arange(w, dtype=np.float64) + 0.5 - w / 2) / (w / 2)
        profile = z_front + relief * (1.0 - np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)))
        ys, ye, xs, xe = max(0, p.y0), min(H, p.y0 + h), max(0, p.x0), min(W, p.x0 + w)
        if ye > ys and xe > xs:
            win = id_map[ys:ye, xs:xe] == j + 1
            cols = np.broadcast_to(profile[xs - p.x0 : xe - p.x0][None, :], win.shape)
            depth[ys:ye, xs:xe][win] = cols[win]
        x0 = (p.x0 - intr.cx) * z_front / intr.fx
        x1 = (p.x0 + w - intr.cx) * z_front / intr.fx
        y0 = (p.y0 - intr.cy) * z_front / intr.fy
        boxes[j] = (x0, y0, z_front, x1, room.cam_h, z_front + relief)
    return boxes


def visible_geometry(
    id_map: np.ndarray, depth: np.ndarray, intr: Intrinsics, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance centre (per-axis median) and min-max extent of the visible surface.

    Args:
        id_map: [H, W] uint16 instance ids ``1..n`` (0 = background).
        depth: [H, W] float32 ideal depth (m).
        intr: the camera of ``id_map``/``depth``.
        n: number of instances.

    Returns:
        centers [n, 3] and sizes [n, 3] float32 in the optical frame (NaN for an instance
        without pixels).
    """
    from scipy import ndimage

    centers = np.full((n, 3), np.nan, np.float32)
    sizes = np.full((n, 3), np.nan, np.float32)
    for k, sl in enumerate(ndimage.find_objects(id_map.astype(np.int32), max_label=n)):
        if sl is None:
            continue
        v, u = np.nonzero(id_map[sl] == k + 1)
        v, u = v + sl[0].start, u + sl[1].start
        pts = back_project(u, v, depth[v, u], intr)
        centers[k] = np.median(pts, axis=0)
        sizes[k] = pts.max(axis=0) - pts.min(axis=0)
    return centers, sizes


@dataclass
class DepthNoise:
    """Errors of a structured-light depth camera (Kinect v1, RealSense D4xx, OAK-D stereo alike).

    Attributes:
        sigma_1m: standard deviation (m) of the axial noise at 1 m; it grows with the square
            of the distance (disparity noise): ``sigma(z) = sigma_1m * z^2``. The default
            1.5 mm gives 2.4 cm at 4 m (a Kinect measures about 1.5 mm at 1 m and 4 cm at 5 m).
        min_m, max_m: working range; nearer or farther pixels have no return.
        edge_jump: a step between neighbouring pixels larger than this fraction of the nearer
            depth is an object edge (a floor or wall seen at a grazing angle is not).
        edge_px: pixels within this distance of an edge lose their return with probability
            ``edge_hole_prob`` (projector shadow and mixed pixels at silhouettes).
        dark_level: pixels whose grey level (0-255) in the colour image is below this are dark
            surfaces that absorb the projected pattern: no return with ``dark_hole_prob``.
        dropout: probability of an isolated missing pixel anywhere.
    """

    sigma_1m: float = 0.0015
    min_m: float = 0.3
    max_m: float = 8.0
    edge_jump: float = 0.05
    edge_px: int = 2
    edge_hole_prob: float = 0.6
    dark_level: float = 30.0
    dark_hole_prob: float = 0.9
    dropout: float = 0.002

    def __post_init__(self) -> None:
        if self.sigma_1m < 0 or not 0 <= self.min_m < self.max_m:
            raise ValueError(
                f"DepthNoise: need sigma_1m >= 0 and 0 <= min_m < max_m, got {self.sigma_1m}, "
                f"{self.min_m}, {self.max_m}"
            )
        probs = (self.edge_hole_prob, self.dark_hole_prob, self.dropout)
        if not all(0.0 <= p <= 1.0 for p in probs) or self.edge_px < 0 or self.edge_jump <= 0:
            raise ValueError(
                f"DepthNoise: probabilities must lie in [0, 1], edge_px >= 0 and edge_jump > 0, "
                f"got {probs}, {self.edge_px}, {self.edge_jump}"
            )

    def edges(self, depth: np.ndarray) -> np.ndarray:
        """[H, W] bool: pixels within ``edge_px`` of a depth discontinuity."""
        z = depth.astype(np.float32)
        e = np.zeros(z.shape, bool)
        jx = np.abs(np.diff(z, axis=1)) > self.edge_jump * np.minimum(z[:, 1:], z[:, :-1])
        jy = np.abs(np.diff(z, axis=0)) > self.edge_jump * np.minimum(z[1:], z[:-1])
        e[:, 1:] |= jx
        e[:, :-1] |= jx
        e[1:] |= jy
        e[:-1] |= jy
        if self.edge_px > 0:
            k = np.ones((2 * self.edge_px + 1, 2 * self.edge_px + 1), np.uint8)
            e = cv2.dilate(e.astype(np.uint8), k).astype(bool)
        return e

    def apply(self, depth: np.ndarray, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy depth: [H, W] float32 metres, NaN where the camera has no return.

        Args:
            depth: [H, W] float32 ideal depth (m).
            image: [H, W, 3] uint8 BGR colour image registered to ``depth`` (dark surfaces).
            rng: the noise's random generator (keep it apart from the scene's).
        """
        z = depth.astype(np.float32)
        noisy = z + rng.standard_normal(z.shape, dtype=np.float32) * np.float32(self.sigma_1m) * z * z
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        u = rng.random(z.shape, dtype=np.float32)
        hole = (z < self.min_m) | (z > self.max_m) | (u < self.dropout)
        hole |= self.edges(z) & (rng.random(z.shape, dtype=np.float32) < self.edge_hole_prob)
        hole |= (grey < self.dark_level) & (rng.random(z.shape, dtype=np.float32) < self.dark_hole_prob)
        noisy[hole] = np.nan
        return noisy


def encode_depth(depth: np.ndarray, encoding: str = "16UC1") -> np.ndarray:
    """Depth in metres (NaN = no return) -> a ``sensor_msgs/Image`` payload.

    ``16UC1``: uint16 millimetres, 0 = no return (values above 65.535 m also become 0);
    ``32FC1``: float32 metres, NaN = no return.
    """
    if encoding == "32FC1":
        return np.ascontiguousarray(depth, dtype=np.float32)
    if encoding != "16UC1":
        raise ValueError(f"encode_depth: encoding must be one of {DEPTH_ENCODINGS}, got {encoding!r}")
    mm = np.rint(np.nan_to_num(depth.astype(np.float64), nan=0.0) * 1000.0)
    mm[(mm < 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)
