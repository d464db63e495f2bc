"""Depth back-projection and per-instance 3D boxes (ROS-free: numpy, scipy.ndimage, cv2.erode)."""

from instaseg_ros.geometry.depth import (
    DEPTH_ENCODINGS,
    Intrinsics,
    back_project,
    check_depth_encoding,
    check_depth_range,
    decode_depth,
    integer_ratio,
    metres_and_valid,
)
from instaseg_ros.geometry.objects import Depth3DParams, Objects3D, instances_3d
from instaseg_ros.geometry.sync import DepthSync, SyncMatch

__all__ = [
    "DEPTH_ENCODINGS",
    "Depth3DParams",
    "DepthSync",
    "Intrinsics",
    "Objects3D",
    "SyncMatch",
    "back_project",
    "check_depth_encoding",
    "check_depth_range",
    "decode_depth",
    "instances_3d",
    "integer_ratio",
    "metres_and_valid",
]
