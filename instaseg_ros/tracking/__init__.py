"""Multi-object tracking of instance segmentation results (numpy, scipy, OpenCV; no torch, no rclpy)."""

from instaseg_ros.tracking.baseline import IoUMatcher
from instaseg_ros.tracking.ids import MAX_ID, IdAllocator
from instaseg_ros.tracking.tracker import Tracker, TrackerConfig, TrackerStats

__all__ = ["MAX_ID", "IdAllocator", "IoUMatcher", "Tracker", "TrackerConfig", "TrackerStats"]
