"""``instaseg_node``: the ROS 2 lifecycle node that segments every object instance in a camera stream.

Interface (see CONVENTIONS.md section 2): subscribes ``image`` (sensor_msgs/Image) or
``image/compressed`` (sensor_msgs/CompressedImage, jpeg/png); publishes ``~/detections``
(vision_msgs/Detection2DArray), ``~/instance_mask`` (mono16), ``~/semantic_mask`` (mono8),
latched ``~/label_info`` (vision_msgs/LabelInfo), ``~/debug_image`` (bgr8, rendered only while
subscribed) and ``/diagnostics``. Every output carries the input image's header unchanged.

Lifecycle: configure validates parameters and loads the model (a bad weights file leaves the node
unconfigured, with a log line naming the problem); activate subscribes and starts the worker;
deactivate/cleanup release them (cleanup also frees the model and GPU memory). ``autostart``
(default true) configures and activates at start-up so ``ros2 run instaseg_ros instaseg_node`` works.

Torch and the models are imported in ``on_configure`` only.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.ros import conversions as conv
from instaseg_ros.ros.diagnostics import node_status
from instaseg_ros.ros.scheduler import FrameStats, LatestFrameWorker

NODE_NAME = "instaseg_node"
# = instaseg_ros.runtime.BACKEND_NAMES (not imported here: importing the runtime loads torch)
BACKENDS = ("torch", "onnxruntime", "tensorrt")

# When a parameter may change: at any time, while not active (applied on activate),
# while unconfigured (applied on configure), or never after start-up.
RUNTIME, INACTIVE, UNCONFIGURED, READ_ONLY = "runtime", "inactive", "unconfigured", "read-only"


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: default, when it may change, description and allowed values."""

    name: str
    default: Any
    phase: str
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model.family", "yolact", UNCONFIGURED, "model family (yolact, yolo_fcn, ...)"),
    ParamSpec("model.weights", "", UNCONFIGURED, "checkpoint file; empty = random weights (testing only)"),
    ParamSpec("model.config", "", UNCONFIGURED, "model config YAML; empty = the checkpoint's own"),
    ParamSpec(
        "model.input_size", 0, UNCONFIGURED, "network input side in pixels; 0 = model default", (0, 4096)
    ),
    ParamSpec("backend", "torch", UNCONFIGURED, "inference backend", choices=BACKENDS),
    ParamSpec("device", "auto", UNCONFIGURED, "auto (CUDA when available), cpu, cuda or cuda:N"),
    ParamSpec("precision", "fp32", UNCONFIGURED, "fp32 or fp16 (CUDA only)", choices=("fp32", "fp16")),
    ParamSpec(
        "num_threads", 0, UNCONFIGURED, "CPU inference threads; 0 = PyTorch's default", (0, 256)
    ),
    ParamSpec("score_threshold", 0.3, RUNTIME, "drop instances scoring below this", (0.0, 1.0)),
    ParamSpec(
        "nms_threshold", 0.5, RUNTIME, "box IoU above which the lower score is suppressed", (0.01, 1.0)
    ),
    ParamSpec(
        "mask_threshold", 0.5, RUNTIME, "mask probability above which a pixel is foreground", (0.01, 0.99)
    ),
    ParamSpec("top_k", 100, RUNTIME, "keep at most this many instances per image", (1, 1000)),
    ParamSpec("class_filter", None, RUNTIME, "class names to keep (string array); empty = all"),
    ParamSpec("cross_class_nms", False, RUNTIME, "suppress overlapping boxes across classes"),
    ParamSpec(
        "class_id_format",
        "name",
        RUNTIME,
        "Detection2D class_id: class name or label_info index",
        choices=("name", "index"),
    ),
    ParamSpec("debug_image", True, RUNTIME, "render ~/debug_image while someone subscribes"),
    ParamSpec(
        "max_rate", 0.0, RUNTIME, "process at most this many frames per second; 0 = unlimited", (0.0, 1000.0)
    ),
    ParamSpec(
        "input_transport",
        "raw",
        INACTIVE,
        "raw (image) or compressed (image/compressed)",
        choices=("raw", "compressed"),
    ),
    ParamSpec(
        "qos_reliability",
        "best_effort",
        INACTIVE,
        "input QoS reliability (keep last 1)",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec("autostart", True, READ_ONLY, "configure and activate at start-up"),
    ParamSpec("diagnostics_period", 1.0, READ_ONLY, "seconds between /diagnostics messages", (0.1, 60.0)),
)
SPECS = {p.name: p for p in PARAMS}
_INFER_KEYS = (
    "score_threshold",
    "nms_threshold",
    "mask_threshold",
    "top_k",
    "class_filter",
    "cross_class_nms",
)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_segmenter(
    backend: str,
    family: str,
    weights: str | None,
    config: str | dict | None,
    device: str,
    precision: str,
    params: InferenceParams,
) -> Segmenter:
    """The single place where the inference backend is chosen (ROS-free).

    Raises:
        FileNotFoundError: ``weights`` or ``config`` does not exist.
        ValueError: unknown backend/family, or a file the family cannot load.
    """
    for what, path in (("weights", weights), ("config", config)):
        if isinstance(path, str) and path:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"model.{what} file {path!r} does not exist")
    if backend == "torch":
        from instaseg_ros.models import build_segmenter

        return build_segmenter(
            family, weights=weights, config=config, device=device, precision=precision, params=params
        )
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    from instaseg_ros.runtime import load_segmenter as load_with_backend

    return load_with_backend(
        family,
        weights=weights,
        config=config,
        device=device,
        precision=precision,
        backend=backend,
        params=params,
    )


def resolve_path(path: str) -> str:
    """``package://<pkg>/rel`` -> a file in the package's share directory (for instaseg_ros in a
    source checkout: the checkout root); ``~`` is expanded; other paths pass through."""
    if not path.startswith("package://"):
        return os.path.expanduser(path)
    pkg, _, rel = path[len("package://") :].partition("/")
    try:
        from ament_index_python.packages import get_package_share_directory

        return os.path.join(get_package_share_directory(pkg), rel)
    except (ImportError, LookupError, ValueError) as e:
        source_root = Path(__file__).resolve().parents[2]
        if pkg == "instaseg_ros" and (source_root / rel).exists():
            return str(source_root / rel)
        raise FileNotFoundError(f"cannot resolve {path!r}: package {pkg!r} not found ({e})") from e


def _config_with_input_size(config: str, input_size: int) -> str | dict | None:
    """The ``model.config`` value for the builder, with ``input_size`` overriding the file's."""
    if input_size <= 0:
        return config or None
    data: dict = {}
    if config:
        import yaml

        with open(config) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"model.config {config!r}: expected a YAML mapping, got {type(data).__name__}")
    target = data["model"] if isinstance(data.get("model"), dict) else data
    target["input_size"] = int(input_size)
    return data


def _class_filter(value: Any) -> list[str]:
    """A class_filter parameter value -> list of names (empty strings ignored)."""
    if value is None:
        return []
    return [str(v) for v in value if str(v)]


def _decode_raw(msg: Image, pixels: np.ndarray) -> np.ndarray:
    return conv.to_bgr8(pixels, msg.encoding)


def _decode_compressed(msg: CompressedImage, _kind: str) -> np.ndarray:
    return conv.compressed_to_bgr8(msg)


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class InstasegNode(LifecycleNode):
    """Lifecycle node running a :class:`Segmenter` on the newest camera frame."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._state = "unconfigured"
        self._seg: Segmenter | None = None
        self._infer: InferenceParams = InferenceParams()
        self._worker: LatestFrameWorker | None = None
        self._sub = None
        self._pubs: dict[str, Any] = {}
        self._stats = FrameStats()
        self._problems: list[str] = []  # reported (and cleared) by the next diagnostics message
        self._configure_error = ""
        self._input_topic = ""
        self._draw = None
        self._last_logged: dict[str, float] = {}
        for spec in PARAMS:
            self._declare(spec)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            self.get_parameter("diagnostics_period").value, self._publish_diagnostics
        )

    @property
    def stats(self) -> FrameStats:
        """Frame counters, latency/inference windows and per-frame history (see ``FrameStats``)."""
        return self._stats

    # ------------------------------------------------------------------ parameters
    def _declare(self, spec: ParamSpec) -> None:
        d = ParameterDescriptor(
            description=f"{spec.description} [changes: {spec.phase}]", read_only=spec.phase == READ_ONLY
        )
        if spec.choices:
            d.additional_constraints = "one of: " + ", ".join(spec.choices)
        if spec.range is not None:
            lo, hi = spec.range
            if isinstance(spec.default, int) and not isinstance(spec.default, bool):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
            else:
                d.floating_point_range = [
                    FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
                ]
        if spec.name == "class_filter":
            # an empty list has no ROS type, so the filter is dynamically typed and checked in the callback
            d.dynamic_typing = True
            d.additional_constraints = "string array of class names known to the model; [] = all"
        self.declare_parameter(spec.name, spec.default, d)

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _check_value(self, name: str, value: Any, ptype: Parameter.Type) -> str:
        """'' when ``value`` is valid for ``name`` (beyond what the descriptor checks), else the reason."""
        spec = SPECS[name]
        if spec.choices and value not in spec.choices:
            return f"{name}={value!r} is not one of {list(spec.choices)}"
        if name == "class_filter":
            if ptype == Parameter.Type.NOT_SET:
                return "class_filter cannot be unset; set [] to keep all classes"
            if ptype != Parameter.Type.STRING_ARRAY and value:
                return f"class_filter must be a string array of class names, got {ptype.name}"
            names = _class_filter(value)
            known = self._seg.class_names if self._seg is not None else None
            unknown = [c for c in names if known is not None and c not in known]
            if unknown:
                return f"class_filter names unknown classes {unknown}; the model knows {known}"
        if name == "device" and not (value in ("auto", "cpu", "cuda") or str(value).startswith("cuda:")):
            return f"device={value!r}: use auto, cpu, cuda or cuda:N"
        return ""

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        infer_changes = {}
        for p in params:
            spec = SPECS.get(p.name)
            if spec is None:
                continue
            if spec.phase == UNCONFIGURED and self._state != "unconfigured":
                return SetParametersResult(
                    successful=False,
                    reason=f"{p.name} is a model parameter and needs reconfigure: (deactivate,) cleanup, "
                    f"set it, configure (node is {self._state})",
                )
            if spec.phase == INACTIVE and self._state == "active":
                return SetParametersResult(
                    successful=False,
                    reason=f"{p.name} cannot change while active: deactivate, set it, activate",
                )
            reason = self._check_value(p.name, p.value, p.type_)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if p.name in _INFER_KEYS:
                infer_changes[p.name] = _class_filter(p.value) if p.name == "class_filter" else p.value
        if infer_changes:
            try:
                self._infer.updated(**infer_changes)
            except ValueError as e:
                return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        changes = {p.name: p.value for p in params if p.name in _INFER_KEYS}
        if changes:
            if "class_filter" in changes:
                changes["class_filter"] = _class_filter(changes["class_filter"])
            self._infer = self._infer.updated(**changes)
        if self._worker is not None and any(p.name == "max_rate" for p in params):
            self._worker.max_rate = float(self._value("max_rate"))
        if "score_threshold" in changes and self._state == "active":
            self._publish_label_info()  # its threshold field follows the parameter

    def _publish_label_info(self) -> None:
        self._pubs["label_info"].publish(
            conv.label_info(self._seg.class_names, threshold=self._infer.score_threshold)
        )

    def _read_infer_params(self) -> InferenceParams:
        return InferenceParams(
            score_threshold=float(self._value("score_threshold")),
            nms_threshold=float(self._value("nms_threshold")),
            mask_threshold=float(self._value("mask_threshold")),
            top_k=int(self._value("top_k")),
            class_filter=_class_filter(self._value("class_filter")),
            cross_class_nms=bool(self._value("cross_class_nms")),
        )

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        family, weights = self._value("model.family"), self._value("model.weights")
        try:
            for name in (
                "backend",
                "precision",
                "device",
                "input_transport",
                "qos_reliability",
                "class_id_format",
            ):
                reason = self._check_value(name, self._value(name), Parameter.Type.STRING)
                if reason:
                    raise ValueError(reason)
            infer = self._read_infer_params()
            device = resolve_device(self._value("device"))
            weights = resolve_path(weights) if weights else ""
            config_path = resolve_path(self._value("model.config")) if self._value("model.config") else ""
            config = _config_with_input_size(config_path, int(self._value("model.input_size")))
            if not weights:
                self.get_logger().warning(
                    "model.weights is empty: using a RANDOMLY INITIALISED model (tests only)"
                )
            if int(self._value("num_threads")) > 0:
                import torch

                torch.set_num_threads(int(self._value("num_threads")))
            t0 = time.monotonic()
            seg = load_segmenter(
                self._value("backend"),
                family,
                weights or None,
                config,
                device,
                self._value("precision"),
                infer,
            )
            unknown = [c for c in infer.class_filter if c not in seg.class_names]
            if unknown:
                raise ValueError(
                    f"class_filter names unknown classes {unknown}; the model knows {seg.class_names}"
                )
            seg.segment([np.zeros((64, 64, 3), np.uint8)], infer)  # warm-up: first real frame is not slow
        except Exception as e:  # noqa: BLE001 - any load failure leaves the node unconfigured, alive
            self._configure_error = (
                f"configure failed: cannot load {family!r} model from weights={weights!r}: {e}"
            )
            self._problems.append(self._configure_error)
            self.get_logger().error(self._configure_error)
            return TransitionCallbackReturn.FAILURE
        self._seg, self._infer, self._configure_error = seg, infer, ""
        out_qos = QoSProfile(
            depth=2, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
        )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        from vision_msgs.msg import Detection2DArray, LabelInfo

        self._pubs = {
            "detections": self.create_lifecycle_publisher(Detection2DArray, "~/detections", 10),
            "instance_mask": self.create_lifecycle_publisher(Image, "~/instance_mask", out_qos),
            "semantic_mask": self.create_lifecycle_publisher(Image, "~/semantic_mask", out_qos),
            "debug_image": self.create_lifecycle_publisher(Image, "~/debug_image", out_qos),
            "label_info": self.create_lifecycle_publisher(LabelInfo, "~/label_info", latched),
        }
        self.get_logger().info(
            f"configured: {family} ({len(seg.class_names)} classes) on {seg.device} {seg.precision} "
            f"[{self._value('backend')}] in {time.monotonic() - t0:.1f} s"
        )
        self._state = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _input_topic_name(self, compressed: bool) -> str:
        """``image`` as remapped; compressed input follows image_transport: ``<image>/compressed``,
        unless ``image/compressed`` itself is remapped."""
        if not compressed:
            return self.resolve_topic_name("image")
        explicit = self.resolve_topic_name("image/compressed")
        if explicit != self.resolve_topic_name("image/compressed", only_expand=True):
            return explicit
        return self.resolve_topic_name("image") + "/compressed"

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        compressed = self._value("input_transport") == "compressed"
        reliability = (
            ReliabilityPolicy.RELIABLE
            if self._value("qos_reliability") == "reliable"
            else ReliabilityPolicy.BEST_EFFORT
        )
        qos = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=reliability,
            durability=DurabilityPolicy.VOLATILE,
        )
        ret = super().on_activate(state)  # activates the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self._publish_label_info()
        self._worker = LatestFrameWorker(
            self._process,
            self._stats,
            max_rate=float(self._value("max_rate")),
            on_error=self._on_worker_error,
        ).start()
        self._input_topic = self._input_topic_name(compressed)
        msg_type, callback = (CompressedImage, self._on_compressed) if compressed else (Image, self._on_image)
        self._sub = self.create_subscription(msg_type, self._input_topic, callback, qos)
        self._state = "active"
        self.get_logger().info(
            f"active: {'CompressedImage' if compressed else 'Image'} on {self._input_topic} "
            f"({self._value('qos_reliability')}, keep last 1)"
        )
        return TransitionCallbackReturn.SUCCESS

    def _stop_input(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if self._worker is not None:
            if not self._worker.stop(timeout=30.0):
                self.get_logger().error("worker thread did not stop within 30 s")
            self._worker = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._state = "inactive"
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._stop_input()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        device = self._seg.device if self._seg is not None else "cpu"
        self._seg = None
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        self._state = "unconfigured"

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while leaving state {state.label}: releasing the model")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ frames
    def _log_throttled(self, text: str, kind: str, period: float = 2.0) -> None:
        """Error log at most once per ``period`` seconds for each ``kind`` of problem."""
        now = time.monotonic()
        if now - self._last_logged.get(kind, -float("inf")) >= period:
            self._last_logged[kind] = now
            self.get_logger().error(text)

    def _reject(self, reason: str) -> None:
        self._stats.count("rejected")
        if len(self._problems) < 100:
            self._problems.append(f"rejected frame: {reason}")
        kind = re.sub(r"[\d'\"].*", "", reason)  # the reason's wording up to its first number or quote
        self._log_throttled(
            f"rejected frame on {self._input_topic}: {reason} ({self._stats.rejected} rejected so far)", kind
        )

    def _on_worker_error(self, exc: BaseException) -> None:
        if len(self._problems) < 100:
            self._problems.append(f"inference error: {type(exc).__name__}: {exc}")
        self._log_throttled(f"inference failed: {type(exc).__name__}: {exc}", type(exc).__name__)

    def _on_image(self, msg: Image) -> None:
        self._admit(msg, conv.image_to_numpy, _decode_raw)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._admit(msg, conv.check_compressed, _decode_compressed)

    def _admit(self, msg, check, decode) -> None:
        """Subscription callback: count, run the cheap ``check`` (a ValueError rejects the frame) and
        hand the frame to the worker, which runs ``decode(msg, checked)``."""
        received = time.monotonic()
        self._stats.count("received")
        try:
            checked = check(msg)
        except ValueError as e:
            self._reject(str(e))
            return
        worker = self._worker
        if worker is not None:
            worker.submit((msg, decode, checked, received), key=_stamp_ns(msg.header))

    def _process(self, frame: tuple) -> None:
        """Worker thread: decode, segment, publish every output with the input header."""
        msg, decode, checked, received = frame
        seg, infer, pubs = self._seg, self._infer, self._pubs
        if seg is None or not pubs:
            return
        try:
            image = decode(msg, checked)
        except ValueError as e:
            self._reject(str(e))
            return
        t0 = time.perf_counter()
        inst = seg.segment([image], infer)[0]
        inference_s = time.perf_counter() - t0
        out = conv.render_outputs(inst)
        header = msg.header
        pubs["instance_mask"].publish(conv.numpy_to_image(out.instance_ids, "mono16", header))
        pubs["semantic_mask"].publish(conv.numpy_to_image(out.semantic, "mono8", header))
        pubs["detections"].publish(
            conv.instances_to_detections(out.source, header, self._value("class_id_format"), keep=out.keep)
        )
        self._stats.record_processed(time.monotonic() - received, inference_s, key=_stamp_ns(header))
        debug = pubs["debug_image"]
        if self._value("debug_image") and debug.get_subscription_count() > 0:
            self._publish_debug(debug, image, out.instances, header)

    def _publish_debug(self, pub, image, inst, header) -> None:
        if self._draw is None:
            from instaseg_ros.core.draw import draw_instances

            self._draw = draw_instances
        pub.publish(conv.numpy_to_image(self._draw(image, inst), "bgr8", header))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        seg = self._seg
        info = {
            "state": self._state,
            "backend": self._value("backend"),
            "device": seg.device if seg is not None else self._value("device"),
            "precision": seg.precision if seg is not None else self._value("precision"),
            "model_family": self._value("model.family"),
            "model_weights": self._value("model.weights"),
            "input_topic": self._input_topic,
            "input_transport": self._value("input_transport"),
        }
        problems, self._problems = self._problems, []
        if self._configure_error and self._state == "unconfigured":
            problems = [self._configure_error]
        # identical reasons once each, newest last, so a barrage stays readable
        problems = list(dict.fromkeys(problems))[-3:]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [
            node_status(
                f"{self.get_fully_qualified_name()}: instance segmentation",
                self._stats.snapshot(),
                info,
                problems,
                hardware_id=str(info["device"]),
            )
        ]
        self._diag_pub.publish(arr)

    def destroy_node(self) -> None:
        self._stop_input()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``instaseg_node`` (``ros2 run instaseg_ros instaseg_node``)."""
    rclpy.init(args=args if args is not None else sys.argv)
    node = InstasegNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error("autostart: configure failed; the node stays unconfigured")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
