"""``vision_msgs/Detection2DArray`` pre-serialised: the CDR bytes built directly, for ``publish(bytes)``.

About 10x cheaper than constructing the Python message (every field setter checks its value) and
converting it inside ``publish`` (20 detections: 0.09 against 0.63 ms). The layout is vision_msgs 4.x
(Detection2D: header, results[ObjectHypothesisWithPose], bbox (Pose2D centre, size), id); the node uses
these bytes only after :func:`detections_cdr_matches` confirmed them against rclpy's own serialiser and
the installed vision_msgs, and otherwise builds the message with
:func:`instaseg_ros.ros.conversions.instances_to_detections`.
"""

from __future__ import annotations

import struct

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.ros.conversions import instances_to_detections

_CDR_LE = b"\x00\x01\x00\x00"  # encapsulation: plain CDR, little endian
# ObjectHypothesisWithPose.pose: position 0, orientation (0, 0, 0, 1), covariance 0
_POSE_IDENTITY = struct.pack("<43d", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, *([0.0] * 36))


def _cdr_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\x00"
    return struct.pack("<I", len(raw)) + raw


def detections_cdr(inst: Instances, header, class_id_format: str = "name", keep=None, ids=None) -> bytes:
    """The serialised ``vision_msgs/Detection2DArray`` that :func:`instances_to_detections` would give
    for the same arguments (CDR, little endian), for ``Publisher.publish(bytes)``."""
    if class_id_format not in ("name", "index"):
        raise ValueError(f"class_id_format must be 'name' or 'index', got {class_id_format!r}")
    order = range(len(inst)) if keep is None else [int(i) for i in keep]
    stamp = struct.pack("<iI", int(header.stamp.sec), int(header.stamp.nanosec))
    head = stamp + _cdr_string(header.frame_id)
    boxes = inst.boxes.astype(np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    size = boxes[:, 2:] - boxes[:, :2]
    scores = inst.scores.astype(np.float64)
    out = bytearray(_CDR_LE)
    out += head
    _pad(out, 4)
    out += struct.pack("<I", len(order))
    for k, i in enumerate(order):
        _pad(out, 4)
        out += head
        _pad(out, 4)
        class_id = inst.class_name(i) if class_id_format == "name" else str(int(inst.class_ids[i]) + 1)
        out += b"\x01\x00\x00\x00" + _cdr_string(class_id)  # one hypothesis
        _pad(out, 8)
        out += struct.pack("<d", scores[i]) + _POSE_IDENTITY
        out += struct.pack("<5d", centre[i, 0], centre[i, 1], 0.0, size[i, 0], size[i, 1])
        out += _cdr_string(str(k + 1 if ids is None else int(ids[k])))
    return bytes(out)


def _pad(buf: bytearray, n: int) -> None:
    """Align ``buf`` to ``n`` bytes counted from the end of the 4-byte encapsulation header."""
    buf += b"\x00" * ((-(len(buf) - 4)) % n)


def detections_cdr_matches() -> bool:
    """True when :func:`detections_cdr` gives what rclpy serialises for the installed
    ``vision_msgs/Detection2DArray``: the same length, and read back by rclpy the same message (padding
    bytes aside, which Fast DDS leaves uninitialised). Checked on a few instances, both id formats."""
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    def same(ours: bytes, msg) -> bool:
        return len(ours) == len(serialize_message(msg)) and deserialize_message(ours, Detection2DArray) == msg

    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    inst = Instances(
        boxes=np.array([[1.5, 2.0, 30.25, 40.0], [0.0, 0.0, 7.0, 5.5], [3.0, 1.0, 9.0, 8.0]], np.float32),
        scores=np.array([0.9, 0.55, 0.31], np.float32),
        class_ids=np.array([0, 2, 1]),
        masks=np.zeros((3, 48, 64), bool),
        class_names=["person", "dining table", "tv"],
        image_size=(48, 64),
    )
    keep, ids = np.array([0, 2]), np.array([7, 1234], np.uint16)
    for fmt in ("name", "index"):
        for k, i in ((None, None), (keep, ids)):
            msg = instances_to_detections(inst, header, fmt, keep=k, ids=i)
            if not same(detections_cdr(inst, header, fmt, keep=k, ids=i), msg):
                return False
    empty = Instances.empty((48, 64), ["person"])
    return same(detections_cdr(empty, header), instances_to_detections(empty, header))
