"""Day-one check of the ROS 2 install: a sensor_msgs/Image crosses DDS between two processes intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("roundtrip_pub")
    pub = node.create_publisher(Image, "roundtrip/image", 10)
    img = np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    msg = Image(height=480, width=640, encoding="bgr8", is_bigendian=0, step=640 * 3)
    msg.data = img.tobytes()
    msg.header.frame_id = "camera_color_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.1)
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import hashlib, json, sys, time
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("roundtrip_sub")
    got = []
    node.create_subscription(Image, "roundtrip/image", got.append, 10)
    deadline = time.monotonic() + 45
    while not got and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if not got:
        print(json.dumps({"error": "no message within 45 s"}))
        sys.exit(1)
    m = got[0]
    print(json.dumps({
        "sha256": hashlib.sha256(bytes(m.data)).hexdigest(),
        "size": [m.height, m.width, m.step], "encoding": m.encoding,
        "frame_id": m.header.frame_id, "stamp": [m.header.stamp.sec, m.header.stamp.nanosec],
    }))
    """
)


def test_image_roundtrip_between_processes() -> None:
    import hashlib

    import numpy as np

    expected = hashlib.sha256(
        np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8).tobytes()
    ).hexdigest()
    env = dict(os.environ)
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env)
    try:
        out = subprocess.run(
            [sys.executable, "-c", SUBSCRIBER], env=env, capture_output=True, text=True, timeout=90
        )
    finally:
        pub.kill()
        pub.wait(timeout=10)
    assert out.returncode == 0, f"subscriber failed: {out.stdout} {out.stderr[-2000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "sha256": expected,
        "size": [480, 640, 1920],
        "encoding": "bgr8",
        "frame_id": "camera_color_optical_frame",
        "stamp": [1700000000, 123456789],
    }
