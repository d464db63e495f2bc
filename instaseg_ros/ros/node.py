"""``instaseg_node``: the ROS 2 lifecycle node that segments every object instance in a camera stream.

Interface (see CONVENTIONS.md section 2): subscribes ``image`` (sensor_msgs/Image) or
``image/compressed`` (sensor_msgs/CompressedImage, jpeg/png); publishes ``~/detections``
(vision_msgs/Detection2DArray), ``~/instance_mask`` (mono16), ``~/semantic_mask`` (mono8, while
subscribed), latched ``~/label_info`` (vision_msgs/LabelInfo), ``~/debug_image`` (bgr8, rendered only while
subscribed) and ``/diagnostics``. Every output carries the input image's header unchanged.
Detection2D ids and mask values are track ids (``tracking.*``, :mod:`instaseg_ros.tracking`). With
``depth.enabled``: ``depth/image_raw`` + ``depth/camera_info`` in, ``~/detections_3d`` out (and
``~/points``, ``~/markers`` while subscribed; colour stamp, depth optical frame, the 2D ids);
``~/semantic_confidence`` (mono8) whenever subscribed.

Lifecycle: configure loads the model through :func:`instaseg_ros.models.loading.load_model` (any
failure leaves the node unconfigured, with one log line and an ERROR diagnostics status); activate
subscribes and starts the worker; deactivate/cleanup release them (cleanup also frees the model and GPU
memory). ``autostart`` (default true) configures and activates at start-up so ``ros2 run instaseg_ros
instaseg_node`` works. The parameters and their validation live in :mod:`instaseg_ros.ros.params`.

Robustness: bad input is refused before it is decoded (size from the header, a minimum side) and
counted as ``rejected``; no exception from any callback ends the process (it is logged with its
traceback, counted as ``errors`` and turns diagnostics ERROR); a worker thread that dies is reported
and replaced; SIGINT/SIGTERM end the process with status 0 in any state.

Torch and the models are imported in ``on_configure`` only. Beside this module: the parameter table
(``params``), the per-frame 2D outputs (``outputs``), conversions, the scheduler, diagnostics, the
health checks and the process runner. The module is over 500 lines because it holds every ROS callback
of one node (lifecycle, parameters, frames, watchdog, diagnostics); the per-frame path ``_process`` is
decode -> ``_segment`` -> publish, one call per step, where tracking and 3D add one call each.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import re
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.core.stamps import stamp_ns
from instaseg_ros.geometry import Depth3DParams, DepthSync, instances_3d
from instaseg_ros.ros import conversions as conv
from instaseg_ros.ros import conversions_3d as c3
from instaseg_ros.ros.detections_cdr import detections_cdr_matches
from instaseg_ros.ros.diagnostics import node_status
from instaseg_ros.ros.health import InputSilence, duplicate_name_warning
from instaseg_ros.ros.outputs import Outputs2D
from instaseg_ros.ros.params import (
    INACTIVE,
    INFER_KEYS,
    PARAMS,
    READ_ONLY,
    SPECS,
    UNCONFIGURED,
    check,
    class_filter_names,
    coerce,
    depth_settings,
    descriptor,
    precision_problem,
    tracking_settings,
)
from instaseg_ros.ros.runner import run, spin_guarded
from instaseg_ros.ros.scheduler import FrameStats, LatestFrameWorker
from instaseg_ros.tracking import Tracker, TrackerConfig

__all__ = ["NODE_NAME", "InstasegNode", "main", "spin_guarded"]

NODE_NAME = "instaseg_node"


def _config_with_input_size(config: str, input_size: int) -> str | dict | None:
    """The ``model.config`` value for the loader, with ``input_size`` overriding the file's."""
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
        self._errors: list[str] = []  # exceptions since the last diagnostics message (level ERROR)
        self._configure_error = ""
        self._input_topic = ""
        self._outputs: Outputs2D | None = None  # the 2D outputs' renderer/publisher (while configured)
        self._last_logged: dict[str, float] = {}
        self._last_received = 0.0
        self._silence: InputSilence | None = None
        # one tracker for the node's life (reset on configure/deactivate: ids never restart at 1);
        # parameter changes are handed to the worker, which applies them before its next frame
        self._tracker = Tracker()
        self._pending_tracking: TrackerConfig | None = None
        self._tracking_ms: deque[float] = deque(maxlen=300)
        self._temporal: Any = None  # models.yolact.temporal.TemporalYolact when temporal.enabled
        # 3D: depth/image_raw + depth/camera_info paired with colour frames by stamp (while active)
        self._depth_params = Depth3DParams()
        self._depth_sync: DepthSync | None = None
        self._depth_lock = threading.Lock()  # DepthSync is fed by callbacks and read by the worker
        self._depth_subs: list = []
        self._depth_counts = {"depth_rejected": 0, "instances_without_3d": 0}
        self._depth_ms: deque[float] = deque(maxlen=300)
        self._last_paired = 0.0
        self._last_processed = 0.0
        self._declare_all()
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            self.get_parameter("diagnostics_period").value, self._guarded(self._publish_diagnostics)
        )
        self._watch_timer = self.create_timer(1.0, self._guarded(self._watch))

    @property
    def stats(self) -> FrameStats:
        """Frame counters, latency/inference windows and per-frame history (see ``FrameStats``)."""
        return self._stats

    # ------------------------------------------------------------------ errors
    def _log_throttled(self, text: str, kind: str, period: float = 2.0, level: str = "error") -> None:
        """Log at most once per ``period`` seconds for each ``kind`` of problem."""
        now = time.monotonic()
        if now - self._last_logged.get(kind, -float("inf")) >= period:
            self._last_logged[kind] = now
            # one call site per severity: rclpy refuses a call site whose severity changes
            if level == "warning":
                self.get_logger().warning(text)
            elif level == "info":
                self.get_logger().info(text)
            else:
                self.get_logger().error(text)

    def report_exception(self, where: str, exc: BaseException) -> None:
        """An exception caught in ``where`` (a callback, the worker, the executor): logged with its
        traceback (throttled per kind), counted as ``errors`` and reported as diagnostics ERROR."""
        self._stats.count("errors")
        summary = f"{where}: {type(exc).__name__}: {exc}"
        if len(self._errors) < 100:
            self._errors.append(summary)
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        self._log_throttled(f"{summary} (the node keeps running)\n{tb}", f"exc:{where}:{type(exc).__name__}")

    def _guarded(self, fn, default: Any = None):
        """``fn`` wrapped so that an exception is reported instead of escaping into the executor."""

        @functools.wraps(fn)  # keeps fn's signature: rclpy inspects it (message info or not)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a callback must never end the process
                self.report_exception(fn.__name__.lstrip("_"), exc)
                return default() if callable(default) else default

        return call

    def _safe_change_state(self, req, resp):
        """rclpy's ChangeState service handler (installed over it below), which raises RCLError and
        so ends the process for a transition *id* that is invalid in the current state; here such a
        request is answered ``success=False``."""
        try:
            return _RCLPY_CHANGE_STATE(self, req, resp)
        except Exception as exc:  # noqa: BLE001
            label = req.transition.label or f"id {req.transition.id}"
            self._log_throttled(
                f"change_state refused: transition {label} is not valid in state {self._state} ({exc})",
                "change_state",
                level="warning",
            )
            resp.success = False
            return resp

    # ------------------------------------------------------------------ parameters
    def _declare_all(self) -> None:
        """Declare every parameter with its default, then apply the start-up overrides (``-p``,
        ``--params-file``) through ``set_parameters``: the same checks and messages as at run time; a
        refused override is logged and the default kept. Read-only parameters become read-only after."""
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec, read_only=False), True)
        if hasattr(self, "add_pre_set_parameters_callback"):  # rclpy >= Iron
            self.add_pre_set_parameters_callback(self._coerce_parameters)
        self.add_on_set_parameters_callback(
            self._guarded(
                self._validate_parameters,
                lambda: SetParametersResult(successful=False, reason="internal error while validating"),
            )
        )
        self.add_post_set_parameters_callback(self._guarded(self._apply_parameters))
        overrides = getattr(self, "_parameter_overrides", {})
        for spec in PARAMS:
            if spec.name not in overrides:
                continue
            param = overrides[spec.name]
            if not hasattr(self, "add_pre_set_parameters_callback"):
                param = coerce(spec.name, param)
            result = self.set_parameters([param])
            result = result[0] if isinstance(result, list) else result
            if not result.successful:
                text = (
                    f"start-up parameter {spec.name}:={param.value!r} refused: {result.reason}; "
                    f"keeping the default {spec.default!r}"
                )
                self.get_logger().error(text)
                self._problems.append(text)
        for spec in PARAMS:
            if spec.phase == READ_ONLY:
                self.set_descriptor(spec.name, descriptor(spec))

    def _value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _coerce_parameters(self, params: list[Parameter]) -> list[Parameter]:
        """Pre-set callback: :func:`~instaseg_ros.ros.params.coerce` each parameter (never raises)."""
        out = []
        for p in params:
            try:
                out.append(coerce(p.name, p))
            except Exception as exc:  # noqa: BLE001 - check() then refuses the value with a reason
                self.report_exception("coerce_parameters", exc)
                out.append(p)
        return out

    def _group_values(self, prefix: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Every parameter under ``prefix``: its current value, or the one in ``changes``."""
        out = {s.name: self._value(s.name) for s in PARAMS if s.name.startswith(prefix)}
        out.update({k: v for k, v in changes.items() if k.startswith(prefix)})
        return out

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        infer_changes = {}
        group_changes = {p.name: p.value for p in params if p.name.startswith(("tracking.", "depth."))}
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
            known = self._seg.class_names if self._seg is not None else None
            reason = check(p.name, p.value, p.type_, known)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if p.name in INFER_KEYS:
                infer_changes[p.name] = class_filter_names(p.value) if p.name == "class_filter" else p.value
        reuse = next((p.value for p in params if p.name == "temporal.reuse_prototypes"), None)
        if reuse and self._value("backend") == "onnxruntime":
            return SetParametersResult(
                successful=False,
                reason="temporal.reuse_prototypes is not available on the onnxruntime backend (torch only)",
            )
        if infer_changes:
            try:
                self._infer.updated(**infer_changes)
            except (ValueError, TypeError) as e:
                return SetParametersResult(successful=False, reason=str(e))
        if any(k.startswith("tracking.") for k in group_changes):
            try:  # cross-field rules (low_threshold <= high_threshold, weights not both 0)
                TrackerConfig.from_dict(tracking_settings(self._group_values("tracking.", group_changes)))
            except (ValueError, TypeError) as e:
                return SetParametersResult(successful=False, reason=str(e))
        if any(k.startswith("depth.") for k in group_changes):
            try:  # depth.min < depth.max
                Depth3DParams(**depth_settings(self._group_values("depth.", group_changes))).check()
            except (ValueError, TypeError) as e:
                return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        temporal = self._temporal
        if temporal is not None and any(p.name.startswith("temporal.") for p in params):
            # applied by the worker before its next frame, which is then a key frame
            settings = self._temporal_settings()
            temporal.configure(settings.policy_config(), settings.reuse_prototypes)
        if any(p.name.startswith("tracking.") for p in params):
            self._pending_tracking = TrackerConfig.from_dict(
                tracking_settings(self._group_values("tracking.", {}))
            )
        if any(p.name.startswith("depth.") for p in params):
            self._depth_params = Depth3DParams(**depth_settings(self._group_values("depth.", {})))
        changes = {p.name: p.value for p in params if p.name in INFER_KEYS}
        if changes:
            if "class_filter" in changes:
                changes["class_filter"] = class_filter_names(changes["class_filter"])
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
            class_filter=class_filter_names(self._value("class_filter")),
            cross_class_nms=bool(self._value("cross_class_nms")),
        )

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> Segmenter:
        """Validate the model parameters and load the model (raises on any problem)."""
        from instaseg_ros.core.resources import resolve_path
        from instaseg_ros.models.loading import load_model, resolve_device

        for spec in PARAMS:
            param = self.get_parameter(spec.name)
            if param.type_ == Parameter.Type.NOT_SET:  # class_filter's default: keep all classes
                continue
            reason = check(spec.name, param.value, param.type_)
            if reason:
                raise ValueError(reason)
        infer = self._read_infer_params()
        weights = self._value("model.weights")
        config_path = resolve_path(self._value("model.config")) if self._value("model.config") else ""
        config = _config_with_input_size(config_path, int(self._value("model.input_size")))
        if not weights:
            self.get_logger().warning(
                "model.weights is empty: using a RANDOMLY INITIALISED model (tests only)"
            )
        backend, precision, calib = self._value("backend"), self._value("precision"), self._value("calib")
        reason = precision_problem(backend, precision, calib)
        if reason:
            raise ValueError(reason)
        options = {}
        if precision == "int8":  # quantised (and cached) at configure, keyed by the calibration set
            options["calib"] = str(resolve_path(calib))
        elif str(calib).strip():
            self.get_logger().warning(f"calib is ignored: precision is {precision}, not int8")
        if int(self._value("num_threads")) > 0:
            import torch

            torch.set_num_threads(int(self._value("num_threads")))
        seg = load_model(
            self._value("model.family"),
            weights or None,
            config,
            backend=backend,
            device=resolve_device(self._value("device")),
            precision=precision,
            params=infer,
            backend_options=options or None,
        )
        unknown = [c for c in infer.class_filter if c not in seg.class_names]
        if unknown:
            raise ValueError(
                f"class_filter names unknown classes {unknown}; the model knows {seg.class_names}"
            )
        seg.segment([np.zeros((64, 64, 3), np.uint8)], infer)  # warm-up: the first real frame is not slow
        self._infer = infer
        self._temporal = self._build_temporal(seg)
        return seg

    def _build_temporal(self, seg: Segmenter) -> Any:
        """The temporal-reuse runner when ``temporal.enabled``, else None: a YOLACT on the torch backend,
        or on the onnxruntime backend (the exported key / non-key graphs, fp32 CPU)."""
        if not self._value("temporal.enabled"):
            return None
        from instaseg_ros.models.yolact.temporal_onnx import build_runner

        if seg.family != "yolact" or self._value("backend") not in ("torch", "onnxruntime"):
            raise ValueError(
                "temporal.enabled needs model.family yolact on the torch or onnxruntime backend, got "
                f"{seg.family} on {self._value('backend')}"
            )
        return build_runner(self._temporal_settings(), seg)

    def _temporal_settings(self) -> Any:
        """The node's ``temporal.*`` parameters as one ``TemporalSettings`` record."""
        from instaseg_ros.models.yolact.temporal import TemporalSettings

        return TemporalSettings(
            **{f.name: self._value(f"temporal.{f.name}") for f in dataclasses.fields(TemporalSettings)}
        )

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        family, weights = self._value("model.family"), self._value("model.weights")
        t0 = time.monotonic()
        try:
            seg = self._load()
        except Exception as e:  # noqa: BLE001 - any load failure leaves the node unconfigured, alive
            self._configure_error = (
                f"configure failed: cannot load {family!r} model from weights={weights!r}: {e}"
            )
            self._problems.append(self._configure_error)
            self.get_logger().error(self._configure_error)
            self.get_logger().debug("".join(traceback.format_exception(type(e), e, e.__traceback__)))
            return TransitionCallbackReturn.FAILURE
        self._seg, self._configure_error = seg, ""
        self._tracker.reset()
        conv.quiet_decoders()
        out_qos = QoSProfile(
            depth=2, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE
        )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        from sensor_msgs.msg import PointCloud2
        from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
        from visualization_msgs.msg import MarkerArray

        self._pubs = {
            "detections": self.create_lifecycle_publisher(Detection2DArray, "~/detections", 10),
            "instance_mask": self.create_lifecycle_publisher(Image, "~/instance_mask", out_qos),
            "semantic_mask": self.create_lifecycle_publisher(Image, "~/semantic_mask", out_qos),
            "debug_image": self.create_lifecycle_publisher(Image, "~/debug_image", out_qos),
            "label_info": self.create_lifecycle_publisher(LabelInfo, "~/label_info", latched),
            "semantic_confidence": self.create_lifecycle_publisher(Image, "~/semantic_confidence", out_qos),
            "detections_3d": self.create_lifecycle_publisher(Detection3DArray, "~/detections_3d", 10),
            "points": self.create_lifecycle_publisher(PointCloud2, "~/points", out_qos),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", out_qos),
        }
        serialised = detections_cdr_matches()  # else the installed vision_msgs differs: message path
        if not serialised:
            self.get_logger().warning(
                "vision_msgs/Detection2DArray differs from the 4.x layout: ~/detections built as messages"
            )
        self._outputs = Outputs2D(self._pubs, serialised_detections=serialised)
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

    def _start_worker(self) -> None:
        self._worker = LatestFrameWorker(
            self._process,
            self._stats,
            max_rate=float(self._value("max_rate")),
            on_error=lambda exc: self.report_exception("inference", exc),
        ).start()

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
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
            self._start_worker()
            self._input_topic = self._input_topic_name(compressed)
            msg_type, callback = (
                (CompressedImage, self._on_compressed) if compressed else (Image, self._on_image)
            )
            self._sub = self.create_subscription(msg_type, self._input_topic, self._guarded(callback), qos)
            if self._value("depth.enabled"):
                self._start_depth(reliability)
        except Exception as exc:  # noqa: BLE001
            self.report_exception("activate", exc)
            self._stop_input()
            return TransitionCallbackReturn.FAILURE
        self._state = "active"
        self._silence = InputSilence(self._input_topic, time.monotonic())
        if compressed and not conv.strict_jpeg_available():
            self.get_logger().warning(
                "simplejpeg is not installed: a truncated JPEG closed with an end marker decodes to grey "
                "instead of being rejected (pip install simplejpeg)"
            )
        self.get_logger().info(
            f"active: {'CompressedImage' if compressed else 'Image'} on {self._input_topic} "
            f"({self._value('qos_reliability')}, keep last 1)"
        )
        return TransitionCallbackReturn.SUCCESS

    def _start_depth(self, reliability: ReliabilityPolicy) -> None:
        """Subscribe ``depth/image_raw`` and ``depth/camera_info`` (node-relative, remappable; the
        input's reliability, keep last 5) into a fresh stamp synchroniser."""
        tolerance_ns = int(round(float(self._value("depth.sync_tolerance")) * 1e9))
        with self._depth_lock:
            self._depth_sync = DepthSync(tolerance_ns, buffer_size=10)
        self._last_paired = time.monotonic()
        qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)  # fmt: skip
        on_depth, on_info = self._guarded(self._on_depth), self._guarded(self._on_depth_info)
        self._depth_subs = [
            self.create_subscription(Image, "depth/image_raw", on_depth, qos),
            self.create_subscription(CameraInfo, "depth/camera_info", on_info, qos),
        ]
        topics = [self.resolve_topic_name(t) for t in ("depth/image_raw", "depth/camera_info")]
        self.get_logger().info(f"depth: {' + '.join(topics)} (sync tolerance {tolerance_ns / 1e6:.0f} ms)")

    def _on_depth(self, msg: Image) -> None:
        with self._depth_lock:
            if self._depth_sync is not None:
                self._depth_sync.add_depth(stamp_ns(msg.header), msg)

    def _on_depth_info(self, msg: CameraInfo) -> None:
        with self._depth_lock:
            if self._depth_sync is not None:
                self._depth_sync.add_info(stamp_ns(msg.header), msg)

    def _stop_input(self) -> None:
        if self._sub is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        for sub in self._depth_subs:
            self.destroy_subscription(sub)
        self._depth_subs = []
        if self._worker is not None:
            if not self._worker.stop(timeout=30.0):
                self.get_logger().warning("worker thread did not stop within 30 s")
            self._worker = None
        with self._depth_lock:
            self._depth_sync = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_input()
        self._tracker.reset()  # the worker has stopped: no frame is being tracked
        if self._temporal is not None:
            self._temporal.reset("reactivate")  # the stream restarts with a key frame
        self._state = "inactive"
        return super().on_deactivate(state)

    def _release(self) -> None:
        self._stop_input()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        self._outputs = None
        device = self._seg.device if self._seg is not None else "cpu"
        self._seg = None
        self._temporal = None
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
    def _reject(self, reason: str) -> None:
        self._stats.count("rejected")
        if len(self._problems) < 100:
            self._problems.append(f"rejected frame: {reason}")
        kind = re.sub(r"[\d'\"].*", "", reason)  # the reason's wording up to its first number or quote
        self._log_throttled(
            f"rejected frame on {self._input_topic}: {reason} ({self._stats.rejected} rejected so far)",
            kind,
            level="warning",
        )

    def _check_raw(self, msg: Image) -> np.ndarray:
        pixels = conv.image_to_numpy(msg)
        conv.check_size(int(msg.width), int(msg.height), int(self._value("max_input_pixels")))
        return pixels

    def _check_compressed(self, msg: CompressedImage) -> conv.CompressedInfo:
        info = conv.check_compressed(msg, int(self._value("max_input_pixels")))
        conv.check_size(info.width, info.height, what=f"{info.kind.upper()} image")
        return info

    @staticmethod
    def _decode_raw(msg: Image, pixels: np.ndarray) -> np.ndarray:
        return conv.to_bgr8(pixels, msg.encoding)

    @staticmethod
    def _decode_compressed(msg: CompressedImage, info: conv.CompressedInfo) -> np.ndarray:
        return conv.compressed_to_bgr8(msg, info)

    def _on_image(self, msg: Image) -> None:
        self._admit(msg, self._check_raw, self._decode_raw)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._admit(msg, self._check_compressed, self._decode_compressed)

    def _admit(self, msg, check_msg, decode) -> None:
        """Subscription callback: count, run the cheap ``check_msg`` (a ValueError rejects the frame:
        nothing is decoded or allocated) and hand the frame to the worker, which runs ``decode``."""
        received = time.monotonic()
        self._last_received = received
        self._stats.count("received")
        try:
            checked = check_msg(msg)
        except ValueError as e:
            self._reject(str(e))
            return
        worker = self._worker
        if worker is not None:
            worker.submit((msg, decode, checked, received), key=stamp_ns(msg.header))

    def _process(self, frame: tuple) -> None:
        """Worker thread: decode, segment, publish every output with the input header.

        One step per line: a tracker or a 3D step is one more call between ``_segment`` and the
        publishing (each takes and returns the frame's ``Instances``)."""
        msg, decode, checked, received = frame
        seg, infer, pubs, outputs = self._seg, self._infer, self._pubs, self._outputs
        if seg is None or not pubs or outputs is None:
            return
        try:
            image = decode(msg, checked)
        except ValueError as e:
            self._reject(str(e))
            return
        header = msg.header
        temporal = self._temporal
        if temporal is not None:  # key / non-key frame by the policy, on the frame's stamp
            inst, inference_s = self._segment_temporal(temporal, image, infer, header)
        else:
            inst, inference_s = self._segment(seg, image, infer)
        track_ids = self._track(inst, image, header)
        out = outputs.publish(inst, header, track_ids, self._value("class_id_format"))
        if self._depth_sync is not None:
            self._publish_3d(pubs, out, header)
        self._last_processed = time.monotonic()
        self._stats.record_processed(time.monotonic() - received, inference_s, key=stamp_ns(header))
        if self._value("debug_image") and outputs.wants_debug():
            outputs.publish_debug(image, out.instances, header)

    @staticmethod
    def _segment(seg: Segmenter, image: np.ndarray, infer: InferenceParams):
        """image: [H, W, 3] uint8 BGR -> (Instances at input resolution, inference seconds)."""
        t0 = time.perf_counter()
        inst = seg.segment([image], infer)[0]
        return inst, time.perf_counter() - t0

    @staticmethod
    def _segment_temporal(temporal: Any, image: np.ndarray, infer: InferenceParams, header):
        """Like ``_segment`` through the temporal-reuse runner (the stamp drives its resets)."""
        t0 = time.perf_counter()
        r = temporal.segment_frame(image, header.stamp.sec + header.stamp.nanosec * 1e-9, infer)
        return r.instances, time.perf_counter() - t0

    def _track(self, inst, image: np.ndarray, header) -> np.ndarray | None:
        """[N] uint16 track ids of ``inst`` (None when tracking is off or failed on this frame: the
        frame is then published with per-frame ids 1..M). Applies a pending parameter change first."""
        tracker = self._tracker
        pending, self._pending_tracking = self._pending_tracking, None
        if pending is not None:
            tracker.configure(pending)
        if not tracker.config.enabled:
            return None
        t0 = time.perf_counter()
        try:
            ids = tracker.update(inst, image, stamp_ns(header))
        except (ValueError, RuntimeError) as e:
            self._stats.count("errors")
            self._log_throttled(f"tracking skipped for this frame, tracks reset: {e}", "tracking")
            tracker.reset()
            return None
        self._tracking_ms.append((time.perf_counter() - t0) * 1e3)
        return ids

    def _publish_3d(self, pubs: dict, out: conv.Rendered, header) -> None:
        """~/detections_3d (every paired frame, even with no objects) and, while subscribed, ~/points and
        ~/markers: the colour stamp, the depth CameraInfo's optical frame, the 2D ids. A colour frame
        without depth within ``depth.sync_tolerance`` gets its 2D outputs only (counted); bad depth
        input is logged (throttled), counted as ``depth_rejected`` and skipped."""
        t0 = time.perf_counter()
        with self._depth_lock:
            sync = self._depth_sync
            match = sync.match(stamp_ns(header)) if sync is not None else None
        if match is None:
            return
        self._last_paired = time.monotonic()
        try:
            if match.info is None:
                raise ValueError("depth image without CameraInfo: nothing received on depth/camera_info")
            depth = c3.depth_image_to_numpy(match.depth)
            intr = c3.intrinsics_from_camera_info(match.info, depth.shape)
            h3 = c3.header_3d(header, match.info.header.frame_id)
            want_points = pubs["points"].get_subscription_count() > 0
            objs = instances_3d(
                out.index_image, depth, match.depth.encoding, intr, self._depth_params,
                boxes=out.instances.boxes, with_points=want_points,
            )  # fmt: skip
        except ValueError as e:
            self._depth_counts["depth_rejected"] += 1
            text = f"3D skipped for this frame (2D published): {e}"
            if len(self._problems) < 100:
                self._problems.append(text)
            self._log_throttled(text, "depth:" + re.sub(r"[\d'\"].*", "", str(e)))
            return
        self._depth_counts["instances_without_3d"] += objs.n_too_few
        fmt = self._value("class_id_format")
        table = c3.IdTable.from_instances(out.instances, class_id_format=fmt)
        pubs["detections_3d"].publish(c3.detections_3d(objs, table, h3, ids=out.ids))
        if want_points:
            pubs["points"].publish(c3.point_cloud(objs, table, h3, ids=out.ids))
        if pubs["markers"].get_subscription_count() > 0:
            pubs["markers"].publish(c3.markers(objs, table, h3, ids=out.ids))
        self._depth_ms.append((time.perf_counter() - t0) * 1e3)

    # ------------------------------------------------------------------ watchdog
    def _watch(self) -> None:
        """Once a second: replace a dead worker, warn about silent input and about a duplicate name."""
        now = time.monotonic()
        worker = self._worker
        if worker is not None and worker.dead() and self._state == "active":
            exc = worker.failure or RuntimeError("worker thread ended")
            self.report_exception("worker thread", exc)
            self.get_logger().error("the worker thread died; starting a new one")
            self._start_worker()
        sub, silence = self._sub, self._silence
        if self._state == "active" and sub is not None and silence is not None:
            # matched (QoS-compatible) publishers where rclpy can tell (Iron and later), else all of them
            if hasattr(sub, "get_publisher_count"):
                publishers = sub.get_publisher_count()
            else:
                publishers = self.count_publishers(self._input_topic)
            text = silence.check(now, publishers, self._last_received)
            if text:
                self._problems.append(text)
                self._log_throttled(text, "no-data", period=30.0, level="warning")
        if (
            self._state == "active"
            and self._depth_sync is not None
            and now - self._last_processed < 2.0
            and now - self._last_paired > 5.0
        ):
            text = (
                f"no depth within {self._depth_sync.tolerance_ns / 1e6:.0f} ms of the colour stamps for "
                f"{now - self._last_paired:.0f} s: check the depth/image_raw remapping and "
                "depth.sync_tolerance"
            )
            self._problems.append(text)
            self._log_throttled(text, "no-depth", period=30.0, level="warning")
        text = duplicate_name_warning(
            self.get_node_names_and_namespaces(),
            self.get_name(),
            self.get_namespace(),
            self.get_fully_qualified_name(),
        )
        if text:
            self._problems.append(text)
            self._log_throttled(text, "duplicate-name", period=30.0, level="warning")

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
            **self._tracking_info(),
            **self._depth_info(),
            **self._temporal_info(),
        }
        problems, self._problems = self._problems, []
        errors, self._errors = self._errors, []
        if self._configure_error and self._state == "unconfigured":
            problems = [self._configure_error]
        # identical reasons once each, newest last, so a barrage stays readable
        problems = list(dict.fromkeys(problems))[-3:]
        errors = list(dict.fromkeys(errors))[-3:]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [
            node_status(
                f"{self.get_fully_qualified_name()}: instance segmentation",
                self._stats.snapshot(),
                info,
                problems,
                hardware_id=str(info["device"]),
                errors=errors,
            )
        ]
        self._diag_pub.publish(arr)

    def _temporal_info(self) -> dict[str, object]:
        """Diagnostics of temporal reuse: key / non-key frame counts, key-frame ratio and per-kind
        latency (median, p95 ms; last 500 frames of each kind); only ``temporal_enabled`` when off."""
        temporal = self._temporal
        if temporal is None:
            return {"temporal_enabled": False}
        return {
            "temporal_enabled": True,
            "temporal_runner": type(temporal).__name__,
            **{f"temporal_{k}": v for k, v in temporal.stats.summary().items()},
        }

    def _tracking_info(self) -> dict[str, object]:
        """Diagnostics of the tracker: live/lost/confirmed tracks of the last frame, births, deaths,
        re-identifications, resets and the tracking time (ms, last 300 frames)."""
        st = self._tracker.stats
        times = np.asarray(tuple(self._tracking_ms), np.float64)  # a copy: the worker appends
        p50, p95 = (np.percentile(times, [50, 95]) if len(times) else (float("nan"), float("nan")))
        return {
            "tracking_enabled": self._tracker.config.enabled,
            "tracks_live": st.live,
            "tracks_lost": st.lost,
            "tracks_confirmed": st.confirmed,
            "track_births": st.births,
            "track_deaths": st.deaths,
            "track_reidentifications": st.reidentifications,
            "track_appearance_reids": st.appearance_reids,
            "track_resets": st.resets,
            "track_time_jumps": st.time_jumps,
            "tracking_ms_p50": float(p50),
            "tracking_ms_p95": float(p95),
        }

    def _depth_info(self) -> dict[str, object]:
        """Diagnostics of the 3D step: pairing counters, rejected depth, instances without a 3D entry,
        3D time (ms, last 300 paired frames)."""
        with self._depth_lock:
            counts = self._depth_sync.counters() if self._depth_sync is not None else {}
        times = np.asarray(tuple(self._depth_ms), np.float64)
        p50, p95 = (np.percentile(times, [50, 95]) if len(times) else (float("nan"), float("nan")))
        return {
            "depth_enabled": bool(self._value("depth.enabled")),
            "depth_paired": counts.get("paired", 0),
            "depth_unpaired": counts.get("unpaired", 0),
            "depth_no_info": counts.get("no_info", 0),
            **self._depth_counts,
            "depth_ms_p50": float(p50),
            "depth_ms_p95": float(p95),
        }

    def destroy_node(self) -> None:
        self._stop_input()
        super().destroy_node()


def _install_change_state_guard() -> Any:
    """Route rclpy's private ChangeState handler (``__on_change_state`` of the lifecycle mixin, name-
    mangled per class) through :meth:`InstasegNode._safe_change_state`; returns the original."""
    for base in LifecycleNode.__mro__:
        attr = f"_{base.__name__.lstrip('_')}__on_change_state"
        if attr in vars(base):
            setattr(InstasegNode, attr, InstasegNode._safe_change_state)
            return vars(base)[attr]
    raise ImportError("rclpy's lifecycle node has no __on_change_state handler to guard")


_RCLPY_CHANGE_STATE = _install_change_state_guard()


def main(args: list[str] | None = None) -> int:
    """Entry point of ``instaseg_node`` (``ros2 run instaseg_ros instaseg_node``): see
    :func:`instaseg_ros.ros.runner.run` (guarded spinning, autostart, exit 0 on SIGINT/SIGTERM)."""
    return run(InstasegNode, args, NODE_NAME)


if __name__ == "__main__":
    sys.exit(main())
