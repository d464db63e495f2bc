"""ROS-free core types and pure functions shared by every model family."""

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter

__all__ = ["Instances", "InferenceParams", "Segmenter"]
