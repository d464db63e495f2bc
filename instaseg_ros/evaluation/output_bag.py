"""Write an evaluation run's inputs and outputs to an mcap rosbag2, for replay in RViz or Foxglove.

Topics (all messages of a frame carry the input image's header stamp; log time = that stamp):
``<image topic>`` (sensor_msgs/Image bgr8, the evaluated frame), ``/instaseg/detections``
(vision_msgs/Detection2DArray), ``/instaseg/instance_mask`` (mono16) and ``/instaseg/debug_image``
(bgr8 overlay); with ``depth_3d`` also ``/instaseg/detections_3d`` (vision_msgs/Detection3DArray) and
``/instaseg/markers`` (visualization_msgs/MarkerArray: the 3D boxes for RViz/Foxglove; these two
carry the colour stamp and the depth optical frame). Messages are built with the node's own
conversions and serialised with rclpy; the vision_msgs definitions for the bag's schema are read
from the installed package's ``.msg`` files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.stamps import split_ns

VISION_TYPES = (
    "Point2D",
    "Pose2D",
    "BoundingBox2D",
    "ObjectHypothesis",
    "ObjectHypothesisWithPose",
    "Detection2D",
    "Detection2DArray",
    "BoundingBox3D",
    "Detection3D",
    "Detection3DArray",
)


def vision_msgs_dir() -> Path:
    """``share/vision_msgs/msg`` of the installed (or stand-in) vision_msgs package."""
    try:
        from ament_index_python.packages import get_package_share_directory

        d = Path(get_package_share_directory("vision_msgs")) / "msg"
        if d.is_dir():
            return d
    except Exception:  # noqa: BLE001 - fall back to a search of the prefix path
        pass
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        d = Path(prefix) / "share" / "vision_msgs" / "msg"
        if d.is_dir():
            return d
    raise FileNotFoundError("vision_msgs message definitions not found (source the ROS/project environment)")


def typestore_with_vision_msgs() -> Any:
    """The rosbags Jazzy type store plus vision_msgs types (for the mcap schemas)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    d = vision_msgs_dir()
    add: dict[str, Any] = {}
    for name in VISION_TYPES:
        f = d / f"{name}.msg"
        if not f.is_file():
            raise FileNotFoundError(f"vision_msgs definition {f} is missing")
        add.update(get_types_from_msg(f.read_text(), f"vision_msgs/msg/{name}"))
    ts.register(add)
    return ts


class OutputBagWriter:
    """``write(stamp_ns, frame_id, image, instances)`` per frame, or ``write_raw`` for received messages."""

    def __init__(
        self,
        path: str | Path,
        image_topic: str,
        class_names: list[str],
        prefix: str = "/instaseg",
        overwrite: bool = True,
        debug_image: bool = True,
        depth_3d: bool = False,
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"output bag {self.path} exists")
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.class_names = list(class_names)
        ts = typestore_with_vision_msgs()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns = {
            "image": self._writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=ts),
            "detections": self._writer.add_connection(
                f"{prefix}/detections", "vision_msgs/msg/Detection2DArray", typestore=ts
            ),
            "instance_mask": self._writer.add_connection(
                f"{prefix}/instance_mask", "sensor_msgs/msg/Image", typestore=ts
            ),
        }
        if debug_image:
            self._conns["debug_image"] = self._writer.add_connection(
                f"{prefix}/debug_image", "sensor_msgs/msg/Image", typestore=ts
            )
        if depth_3d:
            self._conns["detections_3d"] = self._writer.add_connection(
                f"{prefix}/detections_3d", "vision_msgs/msg/Detection3DArray", typestore=ts
            )
            self._conns["markers"] = self._writer.add_connection(
                f"{prefix}/markers", "visualization_msgs/msg/MarkerArray", typestore=ts
            )
        self.count = 0

    @staticmethod
    def header(stamp_ns: int, frame_id: str) -> Any:
        from std_msgs.msg import Header

        h = Header()
        h.stamp.sec, h.stamp.nanosec = split_ns(stamp_ns)
        h.frame_id = frame_id
        return h

    def write_raw(self, key: str, stamp_ns: int, msg: Any) -> None:
        """Write an rclpy message on the ``key`` topic (image, detections, instance_mask, debug_image,
        detections_3d, markers)."""
        from rclpy.serialization import serialize_message

        self._writer.write(self._conns[key], int(stamp_ns), serialize_message(msg))

    def write(self, stamp_ns: int, frame_id: str, image: np.ndarray, inst: Instances) -> None:
        """The frame, the node-equivalent outputs of ``inst`` and the overlay, all with one header."""
        from instaseg_ros.core.draw import draw_instances
        from instaseg_ros.ros import conversions as conv

        h = self.header(stamp_ns, frame_id)
        out = conv.render_outputs(inst)
        self.write_raw("image", stamp_ns, conv.numpy_to_image(np.ascontiguousarray(image), "bgr8", h))
        self.write_raw("detections", stamp_ns, conv.instances_to_detections(out.instances, h))
        self.write_raw("instance_mask", stamp_ns, conv.numpy_to_image(out.instance_ids, "mono16", h))
        if "debug_image" in self._conns:
            overlay = draw_instances(image, out.instances)
            self.write_raw("debug_image", stamp_ns, conv.numpy_to_image(overlay, "bgr8", h))
        self.count += 1

    def close(self) -> None:
        self._writer.close()
