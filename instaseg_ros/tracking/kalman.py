"""Constant-velocity Kalman filter on boxes, batched over tracks (numpy only).

State per track: ``[cx, cy, a, h, vcx, vcy, va, vh]`` (box centre, aspect w/h, height and
their velocities per nominal frame); measurement ``[cx, cy, a, h]``. Noise scales with the box
height as in SORT/ByteTrack, so the filter behaves the same for near and far objects.
"""

from __future__ import annotations

import numpy as np

# standard deviations relative to the box height (ByteTrack's values)
_STD_POS = 1.0 / 20.0
_STD_VEL = 1.0 / 160.0


def xyxy_to_cxcyah(boxes: np.ndarray) -> np.ndarray:
    """[N, 4] xyxy -> [N, 4] (cx, cy, w/h, h); heights are clamped to >= 1e-3."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.empty((len(b), 4))
    out[:, :2] = (b[:, :2] + b[:, 2:]) * 0.5
    out[:, 3] = np.maximum(b[:, 3] - b[:, 1], 1e-3)
    out[:, 2] = (b[:, 2] - b[:, 0]) / out[:, 3]
    return out


def cxcyah_to_xyxy(z: np.ndarray) -> np.ndarray:
    """[N, >=4] (cx, cy, a, h, ...) -> [N, 4] xyxy."""
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    half = np.empty((len(z), 2))
    half[:, 1] = np.maximum(z[:, 3], 1e-3) * 0.5
    half[:, 0] = np.maximum(z[:, 2], 1e-3) * half[:, 1]
    out = np.empty((len(z), 4))
    out[:, :2] = z[:, :2] - half
    out[:, 2:] = z[:, :2] + half
    return out


def _noise_std(h: np.ndarray, pos: float, aspect: float, vel: float, aspect_vel: float) -> np.ndarray:
    """[T] heights -> [T, 8] standard deviations (position part, then velocity part)."""
    t = len(h)
    std = np.empty((t, 8))
    std[:, [0, 1, 3]] = (pos * h)[:, None]
    std[:, 2] = aspect
    std[:, [4, 5, 7]] = (vel * h)[:, None]
    std[:, 6] = aspect_vel
    return std


def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from measurements ``z`` [N, 4] -> (mean [N, 8], covariance [N, 8, 8])."""
    z = np.asarray(z, np.float64).reshape(-1, 4)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = _noise_std(z[:, 3], 2 * _STD_POS, 1e-2, 10 * _STD_VEL, 1e-5)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Advance every track by ``dt`` nominal frames.

    Args:
        mean: [T, 8]; cov: [T, 8, 8].
        dt: elapsed time in nominal frame periods (> 0; 2 after one dropped frame).

    Returns:
        (mean [T, 8], cov [T, 8, 8]), new arrays.
    """
    mean = mean.copy()
    mean[:, :4] += dt * mean[:, 4:]
    # P' = F P F^T + Q with F = [[I, dt I], [0, I]], written blockwise (no 8x8 matmuls)
    a, b = cov[:, :4, :4], cov[:, :4, 4:]
    c, d = cov[:, 4:, :4], cov[:, 4:, 4:]
    out = np.empty_like(cov)
    out[:, :4, :4] = a + dt * (b + c) + dt * dt * d
    out[:, :4, 4:] = b + dt * d
    out[:, 4:, :4] = c + dt * d
    out[:, 4:, 4:] = d
    std = _noise_std(mean[:, 3], _STD_POS, 1e-2, _STD_VEL, 1e-5)
    idx = np.arange(8)
    out[:, idx, idx] += dt * std**2
    return mean, out


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks with their measurements.

    Args:
        mean: [T, 8]; cov: [T, 8, 8]; z: [T, 4] measurements (cx, cy, a, h).

    Returns:
        (mean [T, 8], cov [T, 8, 8]), new arrays.
    """
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    r_std = np.empty((len(mean), 4))
    r_std[:, [0, 1, 3]] = (_STD_POS * mean[:, 3])[:, None]
    r_std[:, 2] = 1e-1
    s = cov[:, :4, :4].copy()
    idx = np.arange(4)
    s[:, idx, idx] += r_std**2
    ph = cov[:, :, :4]  # P H^T: [T, 8, 4]
    # K = P H^T S^-1 (S symmetric): solve S K^T = H P
    gain = np.linalg.solve(s, np.swapaxes(ph, 1, 2)).transpose(0, 2, 1)  # [T, 8, 4]
    innovation = np.asarray(z, np.float64) - mean[:, :4]
    new_mean = mean + np.einsum("tij,tj->ti", gain, innovation)
    new_cov = cov - gain @ s @ np.swapaxes(gain, 1, 2)
    return new_mean, new_cov
