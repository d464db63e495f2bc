"""Per-instance 3D centre and extent from an instance-id image and aligned depth (ROS-free).

For every instance ``k`` in the id image (the node's ``~/instance_mask``: overlaps
already resolved, so no pixel counts twice):

1. crop to the instance's bounding box (the 2D boxes if given, else one ``scipy.ndimage.find_objects`` pass);
2. erode the mask by ``erode_px`` against depth bleeding at object edges (kept
   un-eroded when erosion leaves fewer than ``min_points`` valid pixels: thin parts);
3. drop invalid depth (0, NaN, inf, outside ``[min_m, max_m]``);
4. reject background seen past thin objects: keep the run of sorted depths around the median
   without a gap over ``max(k * 1.4826 * MAD, min_gap_m)`` (:func:`depth_cluster`);
5. back-project (pinhole, REP-103 optical frame); centre = per-axis median,
   size = per-axis ``hi - lo`` percentile extent (default 2nd-98th), x/y widened by the
   eroded rim (``2 * erode_px`` pixels at the median depth).

The centre is that of the *visible* surface (a box seen face-on has its centre on the
front face), which is what depth can observe.

Fewer than ``min_points`` points left -> no 3D entry; ``Objects3D.n_too_few`` counts them.

Depth and colour of different sizes: the work runs on the coarser grid when the sizes
differ by a whole-number ratio ``s`` in both axes (colour = s x depth: the id image is
sampled at every s-th pixel; depth = s x colour: the depth is sampled and the
intrinsics rescaled). ``erode_px`` is in colour-image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from instaseg_ros.geometry.depth import (
    Intrinsics,
    back_project,
    check_depth_encoding,
    check_depth_range,
    integer_ratio,
    metres_and_valid,
)

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Depth3DParams:
    """Settings of :func:`instances_3d` (validated by :meth:`check`).

    Attributes:
        min_m, max_m: valid depth range in metres.
        erode_px: erosion radius in colour pixels (square kernel ``2 * erode_px + 1``); 0 = none.
        min_points: fewest valid points an instance needs for a 3D entry.
        outlier_k: MAD multiplier of the depth gap that separates an object from what lies behind it.
        min_gap_m: the smallest such gap in metres (a flat surface has MAD ~ 0).
        extent_percentiles: (lo, hi) percentiles of the extent.
        points_decimation: keep every n-th pixel in x and y for the point cloud (1 = all).
        max_stat_points: median, MAD and percentiles use an even subsample of at most about
            this many points (speed; the estimates' spread is far below depth noise).
    """

    min_m: float = 0.2
    max_m: float = 10.0
    erode_px: int = 2
    min_points: int = 20
    outlier_k: float = 3.0
    min_gap_m: float = 0.1
    extent_percentiles: tuple[float, float] = (2.0, 98.0)
    points_decimation: int = 4
    max_stat_points: int = 2048

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        check_depth_range(self.min_m, self.max_m)
        if self.erode_px < 0:
            raise ValueError(f"erode_px must be >= 0, got {self.erode_px}")
        if self.min_points < 1:
            raise ValueError(f"min_points must be >= 1, got {self.min_points}")
        if not self.outlier_k > 0 or not self.min_gap_m > 0:
            raise ValueError(f"outlier_k and min_gap_m must be > 0, got {self.outlier_k}, {self.min_gap_m}")
        lo, hi = self.extent_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"extent_percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
        if self.points_decimation < 1:
            raise ValueError(f"points_decimation must be >= 1, got {self.points_decimation}")
        if self.max_stat_points < 16:
            raise ValueError(f"max_stat_points must be >= 16, got {self.max_stat_points}")


@dataclass
class Objects3D:
    """3D results of one frame, in the depth camera's optical frame (metres).

    Attributes:
        ids: [M] uint16 instance ids (values of the id image) that got a 3D entry, ascending.
        centers: [M, 3] float32 per-axis medians.
        sizes: [M, 3] float32 robust extents.
        n_points: [M] int64 points behind each estimate (on the statistics grid, see ``max_stat_points``).
        n_too_few: instances present in the id image without a 3D entry (too few valid points).
        points: [P, 3] float32 decimated points of the kept instances (empty unless requested).
        point_ids: [P] uint16 instance id of each point.
    """

    ids: np.ndarray
    centers: np.ndarray
    sizes: np.ndarray
    n_points: np.ndarray
    n_too_few: int = 0
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    point_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint16))

    def __len__(self) -> int:
        return len(self.ids)


def _grids(
    id_image: np.ndarray, depth: np.ndarray, intr: Intrinsics, erode_px: int
) -> tuple[np.ndarray, np.ndarray, Intrinsics, int]:
    """Bring the id image and the depth onto one grid (the coarser); returns (ids, depth, intr, erode)."""
    ch, cw = id_image.shape
    dh, dw = depth.shape
    if (dh, dw) != (intr.height, intr.width):
        intr = intr.scaled_to(dw, dh)
    if (ch, cw) == (dh, dw):
        return id_image, depth, intr, erode_px
    s = integer_ratio((ch, cw), (dh, dw), "colour image", "depth image")
    o = s // 2
    if ch > dh:  # colour finer: sample the ids at the depth pixels
        return id_image[o::s, o::s], depth, intr, -(-erode_px // s)
    fine = Intrinsics(intr.fx / s, intr.fy / s, (intr.cx - o) / s, (intr.cy - o) / s, cw, ch)
    return id_image, depth[o::s, o::s], fine, erode_px


def _crops(ids: np.ndarray, boxes: np.ndarray | None, down: int) -> list[tuple[slice, slice] | None]:
    """Per id k (index k - 1): the crop holding its pixels on the working grid, None when absent.

    From ``boxes`` (colour pixels, divided by ``down`` when the id image was sampled every
    ``down``-th pixel; one pixel of margin) or else one ``scipy.ndimage.find_objects`` scan.
    """
    if boxes is None:
        from scipy import ndimage

        return ndimage.find_objects(np.ascontiguousarray(ids))
    b = np.asarray(boxes, np.float64).reshape(-1, 4) / max(down, 1)
    h, w = ids.shape
    x0 = np.clip(np.floor(b[:, 0]).astype(np.int64) - 1, 0, w)
    y0 = np.clip(np.floor(b[:, 1]).astype(np.int64) - 1, 0, h)
    x1 = np.clip(np.ceil(b[:, 2]).astype(np.int64) + 2, 0, w)
    y1 = np.clip(np.ceil(b[:, 3]).astype(np.int64) + 2, 0, h)
    return [
        (slice(int(a), int(c)), slice(int(e), int(f))) if c > a and f > e else None
        for a, e, c, f in zip(y0, x0, y1, x1)
    ]


def depth_cluster(z: np.ndarray, k: float, min_gap_m: float) -> tuple[float, float]:
    """The depth interval of the surface around the median: background seen past the object is cut off.

    Sorted depths are split wherever consecutive values are further apart than
    ``max(min_gap_m, k * 1.4826 * MAD)``; the run holding the median is kept. Unlike a band of
    ``median +- k * sigma`` this keeps an object's own continuous depth range (the sides of a
    box seen at an angle) and still drops a wall 2 m behind a chair leg.

    Args:
        z: [n] float32 depths in metres (n >= 1, no NaN).

    Returns:
        (z_lo, z_hi) inclusive.
    """
    zs, lo, hi = _cluster(np.asarray(z, np.float32), k, min_gap_m)
    return float(zs[lo]), float(zs[hi])


def _cluster(z: np.ndarray, k: float, min_gap_m: float) -> tuple[np.ndarray, int, int]:
    """:func:`depth_cluster` on ``z`` ([n] float32): (sorted z, first index, last index) of the run."""
    zs = np.sort(z)
    h = len(zs) // 2
    dev = np.abs(zs - zs[h])
    gap = max(k * _MAD_TO_SIGMA * float(np.partition(dev, h)[h]), min_gap_m)
    breaks = np.flatnonzero(np.diff(zs) > gap)  # a break at j separates zs[j] and zs[j + 1]
    j = int(np.searchsorted(breaks, h))  # breaks[j - 1] < h <= breaks[j]
    lo = int(breaks[j - 1]) + 1 if j > 0 else 0
    hi = int(breaks[j]) if j < len(breaks) else len(zs) - 1
    return zs, lo, hi


def _pick(
    mask: np.ndarray, depth_crop: np.ndarray, step: int, oy: int, ox: int, encoding: str, p: Depth3DParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid-depth pixels of ``mask[oy::step, ox::step]``: (u, v) in crop pixels, z in metres ([n] each)."""
    z, ok = metres_and_valid(depth_crop[oy::step, ox::step], encoding, p.min_m, p.max_m)
    iy, ix = np.nonzero(mask[oy::step, ox::step] & ok)
    return ix * step + ox, iy * step + oy, z[iy, ix]


def _sample(
    mask: np.ndarray, depth_crop: np.ndarray, m: int, encoding: str, p: Depth3DParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid-depth mask pixels among every ``m``-th pixel of the crop in raster order: (u, v, z), [n] each.

    A raster-order stride coprime with the crop's row length samples every row and column (a 2D
    grid stride, or one sharing a factor with the row length, would quantise the medians to whole
    steps); only the sampled depths are decoded.
    """
    flat = np.arange(0, mask.size, m) if m > 1 else np.flatnonzero(mask)
    if m > 1:
        flat = flat[mask.reshape(-1)[flat]]
    iy, ix = np.divmod(flat, mask.shape[1])
    z, ok = metres_and_valid(depth_crop[iy, ix], encoding, p.min_m, p.max_m)
    return ix[ok], iy[ok], z[ok]


def instances_3d(
    id_image: np.ndarray,
    depth_raw: np.ndarray,
    encoding: str,
    intrinsics: Intrinsics,
    params: Depth3DParams | None = None,
    *,
    boxes: np.ndarray | None = None,
    with_points: bool = False,
) -> Objects3D:
    """3D centre and extent of every instance in ``id_image``.

    Args:
        id_image: [H, W] uint8/uint16, 0 = background, k = instance k (the node's instance mask).
        depth_raw: [h, w] uint16 mm (``16UC1``) or float32 m (``32FC1``), registered to the colour
            image; equal size or a whole-number ratio.
        encoding: ``"16UC1"`` or ``"32FC1"``.
        intrinsics: of the depth image (CameraInfo K and size; rescaled if its size differs by a ratio).
        params: see :class:`Depth3DParams`.
        boxes: [K, 4] xyxy colour-image pixels, row ``k - 1`` bounding instance ``k``'s mask (the 2D
            detections): crops come from them instead of a scan of the id image (saves ~0.6 ms at
            640x480); mask pixels outside a box are ignored.
        with_points: also return the decimated points for a point cloud.

    Raises:
        ValueError: unsupported encoding or dtype, sizes without a whole-number ratio, bad params.
    """
    p = params or Depth3DParams()
    p.check()
    check_depth_encoding(encoding)
    if id_image.ndim != 2 or depth_raw.ndim != 2:
        raise ValueError(f"id image and depth must be 2D, got shapes {id_image.shape} and {depth_raw.shape}")
    if id_image.dtype.kind != "u":
        raise ValueError(f"id image must be unsigned integers, got {id_image.dtype}")
    ids_img, depth, intr, erode = _grids(id_image, depth_raw, intrinsics, p.erode_px)
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8) if erode > 0 else None
    lo_q, hi_q = p.extent_percentiles
    slices = _crops(ids_img, boxes, id_image.shape[0] // ids_img.shape[0])
    out_ids, centers, sizes, counts, pts_all, pid_all = [], [], [], [], [], []
    n_too_few = 0
    dec = p.points_decimation
    for k0, sl in enumerate(slices):
        if sl is None:
            continue
        k = k0 + 1
        ys, xs = sl
        ys = slice(max(ys.start - erode, 0), ys.stop + erode)  # room for the erosion's border
        xs = slice(max(xs.start - erode, 0), xs.stop + erode)
        mask = ids_img[ys, xs] == k
        n_mask = np.count_nonzero(mask)
        if n_mask == 0:  # an id absent from the image (possible with caller boxes)
            continue
        d_crop = depth[ys, xs]
        # statistics on mask pixels at every m-th crop pixel in raster order (~max_stat_points of them)
        m = max(n_mask // p.max_stat_points, 1)
        while math.gcd(m, mask.shape[1]) > 1:  # coprime with the row length: all columns get sampled
            m += 1
        used, pick = mask, None
        if kernel is not None:
            import cv2

            eroded = cv2.erode(mask.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            pick = _sample(eroded.view(bool), d_crop, m, encoding, p)
            if len(pick[2]) >= p.min_points:
                used = eroded.view(bool)
            else:  # thin parts vanish under erosion: keep the whole mask
                pick = None
        erode_used = pick is not None
        u, v, zk = pick if erode_used else _sample(mask, d_crop, m, encoding, p)
        if len(zk) < p.min_points:
            n_too_few += 1
            continue
        zs, lo, hi = _cluster(zk, p.outlier_k, p.min_gap_m)
        z_lo, z_hi = zs[lo], zs[hi]
        n_inl = hi - lo + 1
        if n_inl < p.min_points:
            n_too_few += 1
            continue
        # nearest-rank percentiles: z from the sorted run, x and y by one partial sort of [2, n]
        kth = [round(lo_q / 100.0 * (n_inl - 1)), (n_inl - 1) // 2, round(hi_q / 100.0 * (n_inl - 1))]
        inl = (zk >= z_lo) & (zk <= z_hi)
        zi = zk[inl]
        xy = np.empty((2, n_inl), np.float32)
        np.multiply(u[inl] + (xs.start - np.float32(intr.cx)), zi, out=xy[0])
        np.multiply(v[inl] + (ys.start - np.float32(intr.cy)), zi, out=xy[1])
        qxy = np.partition(xy, kth, axis=1)[:, kth].astype(np.float64)
        q = np.empty((3, 3))  # rows lo, median, hi; columns x, y, z
        q[:, 0] = qxy[0] / intr.fx
        q[:, 1] = qxy[1] / intr.fy
        q[:, 2] = zs[lo + np.asarray(kth)]
        size = q[2] - q[0]
        if erode_used:  # give back the eroded rim (erode pixels on each side) at the median depth
            size[0] += 2.0 * erode * q[1, 2] / intr.fx
            size[1] += 2.0 * erode * q[1, 2] / intr.fy
        out_ids.append(k)
        centers.append(q[1])
        sizes.append(size)
        counts.append(n_inl)
        if with_points:  # pixels on the global every-dec-th grid, same band
            pu, pv, pz = _pick(used, d_crop, dec, -ys.start % dec, -xs.start % dec, encoding, p)
            keep = (pz >= z_lo) & (pz <= z_hi)
            pts_all.append(back_project(pu[keep] + xs.start, pv[keep] + ys.start, pz[keep], intr))
            pid_all.append(np.full(len(pts_all[-1]), k, np.uint16))
    m = len(out_ids)
    res = Objects3D(
        ids=np.asarray(out_ids, np.uint16),
        centers=np.asarray(centers, np.float32).reshape(m, 3),
        sizes=np.asarray(sizes, np.float32).reshape(m, 3),
        n_points=np.asarray(counts, np.int64),
        n_too_few=n_too_few,
    )
    if pts_all:
        res.points = np.concatenate(pts_all)
        res.point_ids = np.concatenate(pid_all)
    return res
