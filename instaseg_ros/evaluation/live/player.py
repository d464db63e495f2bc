"""The evaluator's side of a live run over DDS: its own rclpy context and node (the DDS profile
applies to its participant only), subscriptions collecting the node's outputs by stamp, the image
publisher, a spin thread, the optional output bag, and waiting until the node is ready."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instaseg_ros.core.stamps import stamp_ns
from instaseg_ros.evaluation.live.process import NODE_NAME, log_tail
from instaseg_ros.evaluation.records import BagEvalConfig, EvalError


@dataclass
class Collected:
    """Outputs received per stamp (filled by subscription callbacks).

    Attributes:
        det / mask: stamp -> (arrival time, message; None for frames that are not scored).
        done: stamp -> time both outputs had arrived.
        diagnostics: the node's latest diagnostics values (its status in our namespace).
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    det: dict[int, tuple[float, Any]] = field(default_factory=dict)
    mask: dict[int, tuple[float, Any]] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)
    label_info: Any = None
    diagnostics: dict[str, str] = field(default_factory=dict)
    det3d: dict[int, Any] = field(default_factory=dict)  # stamp -> Detection3DArray (scored frames)


class Player:
    """Publishes the frames to the node under test and collects what it publishes.

    Args:
        env: the environment of both processes (its ``FASTRTPS_DEFAULT_PROFILES_FILE`` is used for
            our participant only).
        namespace: the run's namespace (the node is ``<namespace>/instaseg_node``).
        keep_stamps: stamps of the scored frames (their output messages are kept).
    """

    def __init__(self, env: dict[str, str], namespace: str, keep_stamps: set[int]) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.namespace = namespace
        self.node_base = f"{namespace}/{NODE_NAME}"
        self.keep_stamps = keep_stamps
        self.col = Collected()
        self.writer: Any = None
        self.wlock = threading.Lock()
        self.pub: Any = None
        self.depth_pub: Any = None
        self.info_pub: Any = None
        self.compressed = False
        self.ctx, self.node = _player_node(env)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._spin_stop = threading.Event()
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)

    def open(self, cfg: BagEvalConfig, depth: bool = False) -> None:
        """Output bag, subscriptions to the node's outputs, the image publisher (``depth``: also the
        depth image and CameraInfo publishers and a ``~/detections_3d`` subscription); starts spinning."""
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray, LabelInfo

        if cfg.output_bag:
            from instaseg_ros.evaluation.output_bag import OutputBagWriter

            try:
                self.writer = OutputBagWriter(
                    cfg.output_bag, cfg.topic, [], debug_image=False, depth_3d=depth
                )
            except (ImportError, OSError) as e:
                raise EvalError(f"cannot write the output bag {cfg.output_bag}: {e}") from e
        rel = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        sub = self.node.create_subscription
        sub(Detection2DArray, f"{self.node_base}/detections", self._on_output("detections"), rel)
        sub(Image, f"{self.node_base}/instance_mask", self._on_output("instance_mask"), rel)
        sub(LabelInfo, f"{self.node_base}/label_info", self._on_label, latched)
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.compressed = cfg.live_transport == "compressed"
        in_topic = f"{self.namespace}/image" + ("/compressed" if self.compressed else "")
        pub_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        self.pub = self.node.create_publisher(
            CompressedImage if self.compressed else Image, in_topic, pub_qos
        )
        if depth:
            from sensor_msgs.msg import CameraInfo
            from vision_msgs.msg import Detection3DArray

            ns = self.namespace
            self.depth_pub = self.node.create_publisher(Image, f"{ns}/depth/image_raw", pub_qos)
            self.info_pub = self.node.create_publisher(CameraInfo, f"{ns}/depth/camera_info", pub_qos)
            from visualization_msgs.msg import MarkerArray

            sub(Detection3DArray, f"{self.node_base}/detections_3d", self._on_det3d, rel)
            if self.writer is not None:  # ~/markers is published only while subscribed
                sub(MarkerArray, f"{self.node_base}/markers", self._on_markers, rel)
        self._spin.start()

    def _on_markers(self, msg: Any) -> None:
        if self.writer is not None and msg.markers:
            with self.wlock:
                self.writer.write_raw("markers", stamp_ns(msg.markers[0].header), msg)

    def _on_det3d(self, msg: Any) -> None:
        st = stamp_ns(msg.header)
        if st in self.keep_stamps:
            with self.col.lock:
                self.col.det3d[st] = msg
        if self.writer is not None:
            with self.wlock:
                self.writer.write_raw("detections_3d", st, msg)

    def _on_output(self, kind: str) -> Callable[[Any], None]:
        """Callback storing one output kind by stamp; a frame is done when both kinds arrived."""
        col = self.col
        mine, other = (col.det, col.mask) if kind == "detections" else (col.mask, col.det)

        def callback(msg: Any) -> None:
            t = time.monotonic()
            st = stamp_ns(msg.header)
            with col.lock:
                mine[st] = (t, msg if st in self.keep_stamps else None)  # pixels kept for scored frames only
                if st in other:
                    col.done.setdefault(st, max(t, other[st][0]))
            if self.writer is not None:
                with self.wlock:
                    self.writer.write_raw(kind, st, msg)

        return callback

    def _on_label(self, msg: Any) -> None:
        self.col.label_info = msg

    def _on_diagnostics(self, msg: Any) -> None:
        for s in msg.status:  # ours: the status whose input topic is in our namespace
            values = {kv.key: kv.value for kv in s.values}
            if values.get("input_topic", "").startswith(self.namespace + "/"):
                self.col.diagnostics = values

    def wait_ready(self, proc: Any, timeout: float, log_file: Path) -> None:
        """Until the node subscribes to our images and publishes both outputs and its label_info."""
        deadline = time.monotonic() + timeout
        next_log_check = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_log_check:  # a failed configure leaves the node alive but useless
                next_log_check = time.monotonic() + 0.5
                if "configure failed" in log_tail(log_file, 20000):
                    raise EvalError(f"the node could not load its model; log tail:\n{log_tail(log_file)}")
            if proc.poll() is not None:
                raise EvalError(
                    f"the node exited (code {proc.returncode}) during start-up; "
                    f"log tail:\n{log_tail(log_file)}"
                )
            ready = (
                self.pub.get_subscription_count() > 0
                and self.node.count_publishers(f"{self.node_base}/detections") > 0
                and self.node.count_publishers(f"{self.node_base}/instance_mask") > 0
                and self.col.label_info is not None
                and (self.depth_pub is None or self.depth_pub.get_subscription_count() > 0)
            )
            if ready:
                time.sleep(0.5)  # let discovery settle in both directions
                return
            time.sleep(0.1)
        raise EvalError(
            f"the node did not become ready within {timeout:g} s (model loading? wrong parameters?); "
            f"log tail:\n{log_tail(log_file)}"
        )

    def _spin_loop(self) -> None:
        try:
            while self.ctx.ok() and not self._spin_stop.is_set():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # noqa: BLE001 - shutdown races end the spin thread quietly
            pass

    def close(self) -> None:
        """Stop spinning, destroy our node and context, close the output bag."""
        import rclpy

        self._spin_stop.set()
        if self._spin.is_alive():
            self._spin.join(timeout=5)
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        if self.ctx.ok():
            rclpy.shutdown(context=self.ctx)
        if self.writer is not None:
            self.writer.close()


def _player_node(env: dict[str, str]) -> tuple[Any, Any]:
    """Our own rclpy context + node; the DDS profile in ``env`` applies to its participant only."""
    import rclpy

    key = "FASTRTPS_DEFAULT_PROFILES_FILE"
    before = os.environ.get(key)
    if env.get(key):
        os.environ[key] = env[key]  # read when the participant is created, restored right after
    try:
        ctx = rclpy.context.Context()
        try:  # keep Ctrl-C a KeyboardInterrupt in this process (the CLI turns it into a clean exit)
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
        except (ImportError, TypeError):
            rclpy.init(context=ctx)
        node = rclpy.create_node(f"instaseg_eval_player_{os.getpid()}", context=ctx)
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
    return ctx, node
