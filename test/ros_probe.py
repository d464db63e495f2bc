"""Test helpers for the instaseg_node integration tests: a node process and a test-side probe node.

The probe has its own rclpy context and executor thread, publishes images and collects every output
of the node under test; the node runs in its own process, talking over real DDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["person", "chair", "couch", "dining table", "toilet"]


def ensure_ros_env() -> None:
    """A ROS_DOMAIN_ID for this run (the conftest sets one; else pid-derived) and loopback discovery."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 200 + 1))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def make_tiny_yolact(path: Path, input_size: int = 128) -> Path:
    """A randomly initialised ResNet-18 YOLACT checkpoint (seeded) with the five indoor classes."""
    import torch

    from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

    torch.manual_seed(0)
    cfg = YolactConfig(
        backbone="resnet18", num_classes=len(CLASSES), class_names=list(CLASSES), input_size=input_size,
        fpn_channels=64, num_prototypes=8, semantic_head=False,
    )  # fmt: skip
    save_checkpoint(path, YolactSE(cfg), cfg)
    return path


def wait_for(cond: Callable[[], object], timeout: float, step: float = 0.02):
    """Poll ``cond`` until truthy (returned) or ``timeout`` seconds pass (returns the last value)."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class NodeProcess:
    """``python -m instaseg_ros.ros.node --ros-args ...`` with stdout+stderr in a log file."""

    def __init__(self, ros_args: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "instaseg_ros.ros.node", "--ros-args", *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 60.0) -> bool:
        return bool(wait_for(lambda: text in self.log() or self.proc.poll() is not None, timeout, 0.1)) and (
            text in self.log()
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@contextmanager
def active_node(ros_args: list[str], log_path: Path, timeout: float = 90.0) -> Iterator[NodeProcess]:
    """A node process that became active; on exit it is stopped with SIGINT and must exit 0."""
    proc = NodeProcess(ros_args, log_path)
    try:
        assert proc.wait_log("active:", timeout), f"node did not become active:\n{proc.log()}"
        yield proc
    finally:
        rc = proc.stop()
        print(proc.log()[-3000:])
        assert rc == 0, f"node exited with {rc}"


@contextmanager
def connected_probe(node_fqn: str, image_topic: str) -> Iterator[Probe]:
    """A :class:`Probe` that has discovered the node's input and outputs."""
    p = Probe(node_fqn, image_topic)
    try:
        assert p.wait_connected(), "probe and node did not discover each other"
        yield p
    finally:
        p.close()


class Probe:
    """Test-side node: publishes input images, records every output, calls parameter/lifecycle services.

    Args:
        node_fqn: fully qualified name of the node under test, e.g. "/t5/instaseg_node".
        image_topic: its (remapped) input topic.
    """

    _count = 0

    def __init__(self, node_fqn: str, image_topic: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        self.fqn = node_fqn
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        Probe._count += 1
        self.node = rclpy.create_node(f"instaseg_probe_{os.getpid()}_{Probe._count}", context=self.context)
        self.lock = threading.Lock()
        self.received: dict[str, list] = {k: [] for k in ("detections", "instance_mask", "semantic_mask",
                                                           "debug_image", "diagnostics")}  # fmt: skip
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.subs = [
            self.node.create_subscription(t, f"{node_fqn}/{k}", self._rec(k), reliable)
            for t, k in ((Detection2DArray, "detections"), (Image, "instance_mask"), (Image, "semantic_mask"))
        ]
        self.subs.append(
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._rec("diagnostics"), 50)
        )
        self.image_pub = self.node.create_publisher(Image, image_topic, reliable)
        self.compressed_pub = self.node.create_publisher(
            CompressedImage, image_topic + "/compressed", reliable
        )
        self.latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
        self.set_params_client = self.node.create_client(SetParameters, f"{node_fqn}/set_parameters")
        self.get_state_client = self.node.create_client(GetState, f"{node_fqn}/get_state")
        self.change_state_client = self.node.create_client(ChangeState, f"{node_fqn}/change_state")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._stamp = 1000

    def _rec(self, key: str):
        def cb(msg):
            with self.lock:
                self.received[key].append(msg)

        return cb

    def outputs(self, key: str) -> list:
        with self.lock:
            return list(self.received[key])

    def clear(self) -> None:
        with self.lock:
            for v in self.received.values():
                v.clear()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    # -- publishing
    def next_header(self, frame_id: str = "camera_optical_frame"):
        from std_msgs.msg import Header

        self._stamp += 1
        h = Header(frame_id=frame_id)
        h.stamp.sec, h.stamp.nanosec = self._stamp, 123_456_789
        return h

    def wait_connected(self, compressed: bool = False, timeout: float = 30.0) -> bool:
        pub = self.compressed_pub if compressed else self.image_pub
        return bool(wait_for(lambda: pub.get_subscription_count() > 0 and all(
            s.get_publisher_count() > 0 for s in self.subs[:3]), timeout))  # fmt: skip

    def publish(self, msg, compressed: bool = False) -> None:
        (self.compressed_pub if compressed else self.image_pub).publish(msg)

    def result_for(self, header, timeout: float = 20.0) -> dict | None:
        """The detections, instance mask and semantic mask stamped like ``header`` (None on timeout)."""

        def find():
            out = {}
            for key in ("detections", "instance_mask", "semantic_mask"):
                hits = [m for m in self.outputs(key) if m.header == header]
                if not hits:
                    return None
                out[key] = hits
            return out

        return wait_for(find, timeout)

    # -- services
    def _call(self, client, request, timeout: float = 30.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available")
        future = client.call_async(request)
        if not wait_for(future.done, timeout):
            raise TimeoutError(f"service {client.srv_name} did not answer in {timeout} s")
        return future.result()

    def set_params(self, **values) -> list:
        """Set parameters on the node; returns the SetParametersResult list (successful, reason)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request()
        req.parameters = [
            Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()
        ]
        return self._call(self.set_params_client, req).results

    def set_param_msgs(self, params: list, timeout: float = 30.0) -> list:
        """Send rcl_interfaces/Parameter messages as they are (any type, any value): SetParametersResults."""
        from rcl_interfaces.srv import SetParameters

        req = SetParameters.Request()
        req.parameters = params
        return self._call(self.set_params_client, req, timeout).results

    def get_params(self, *names: str) -> dict:
        """Current values of ``names`` on the node (Python values; None for unset)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        if not hasattr(self, "get_params_client"):
            self.get_params_client = self.node.create_client(GetParameters, f"{self.fqn}/get_parameters")
        values = self._call(self.get_params_client, GetParameters.Request(names=list(names))).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    def transition_id(self, transition_id: int, timeout: float = 60.0) -> bool:
        """ChangeState by transition id (no label); True when the node reports success."""
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.id = int(transition_id)
        return bool(self._call(self.change_state_client, req, timeout=timeout).success)

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self.get_state_client, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.label = label
        return bool(self._call(self.change_state_client, req, timeout=60.0).success)

    def latest_diagnostics(self, after: float | None = None, timeout: float = 5.0) -> dict[str, str]:
        """Key/values of the node's newest diagnostics status (waits for one received after ``after``)."""
        n0 = len(self.outputs("diagnostics")) if after is None else 0
        name = f"{self.fqn}: instance segmentation"

        def newest():
            msgs = self.outputs("diagnostics")[n0:]
            for arr in reversed(msgs):
                for st in arr.status:
                    if st.name == name:
                        return {
                            "level": st.level,
                            "message": st.message,
                            **{kv.key: kv.value for kv in st.values},
                        }
            return None

        return wait_for(newest, timeout)


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (from /proc; NaN when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random BGR image (blurred noise), so that JPEG round trips stay close."""
    import cv2

    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)
