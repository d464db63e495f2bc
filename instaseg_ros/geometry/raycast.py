"""Exact depth and instance ids of axis-aligned boxes seen by a pinhole camera (ROS-free).

Ground truth for tests and benchmarks of :mod:`instaseg_ros.geometry`: one ray per
pixel centre through the optical frame, slab intersection with every box, nearest hit wins.
"""

from __future__ import annotations

import numpy as np

from instaseg_ros.geometry.depth import Intrinsics


def render_boxes(
    intr: Intrinsics, boxes: np.ndarray, background_z: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast axis-aligned boxes.

    Args:
        intr: camera intrinsics (image size included).
        boxes: [N, 6] float, (x_min, y_min, z_min, x_max, y_max, z_max) in the optical frame, metres.
        background_z: depth of a fronto-parallel wall behind everything (id 0), or None for no return.

    Returns:
        depth: [H, W] float32 metres along z (NaN = no return).
        ids: [H, W] uint16, 0 = background / wall, k = boxes[k - 1].
    """
    h, w = intr.height, intr.width
    dx = (np.arange(w, dtype=np.float64) - intr.cx) / intr.fx  # ray (dx, dy, 1): t = z
    dy = (np.arange(h, dtype=np.float64) - intr.cy) / intr.fy
    rx, ry = np.meshgrid(dx, dy)
    best = np.full((h, w), np.inf)
    ids = np.zeros((h, w), np.uint16)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (x0, y0, z0, x1, y1, z1) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 6), 1):
            # slab intervals of t along each axis (the ray starts at the origin)
            tx0, tx1 = np.minimum(x0 / rx, x1 / rx), np.maximum(x0 / rx, x1 / rx)
            ty0, ty1 = np.minimum(y0 / ry, y1 / ry), np.maximum(y0 / ry, y1 / ry)
            # a zero direction component: inside the slab -> unbounded, else no hit
            tx0 = np.where(rx == 0, np.where((x0 <= 0) & (0 <= x1), -np.inf, np.inf), tx0)
            tx1 = np.where(rx == 0, np.where((x0 <= 0) & (0 <= x1), np.inf, -np.inf), tx1)
            ty0 = np.where(ry == 0, np.where((y0 <= 0) & (0 <= y1), -np.inf, np.inf), ty0)
            ty1 = np.where(ry == 0, np.where((y0 <= 0) & (0 <= y1), np.inf, -np.inf), ty1)
            t_in = np.maximum(np.maximum(tx0, ty0), z0)
            t_out = np.minimum(np.minimum(tx1, ty1), z1)
            hit = (t_in <= t_out) & (t_in > 0) & (t_in < best)
            best[hit] = t_in[hit]
            ids[hit] = k
    if background_z is not None:
        wall = ~np.isfinite(best) | (best > background_z)
        best[wall] = background_z
        ids[wall] = 0
    depth = np.where(np.isfinite(best), best, np.nan).astype(np.float32)
    return depth, ids
