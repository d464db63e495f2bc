"""The node's declared parameters (one :class:`ParamSpec` table) and their validation.

Every value a parameter can take passes :func:`check` before the node uses it, at start-up (``-p``,
``--params-file``) and at run time (``ros2 param set``): the node applies start-up overrides through the
same ``set_parameters`` path as the SetParameters service, so a bad ``-p`` is refused with the same
message and the default is kept. rclpy's descriptor checks (type, range, read-only) run first; this
module adds what a descriptor cannot say (choices, a finite float, ``max_rate`` of 0 or at least
:data:`MIN_RATE_HZ`, the class filter's type and names, the device syntax).

Imports no torch and no model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

# = instaseg_ros.runtime.base.BACKEND_NAMES (not imported here: the ROS layer loads model code in configure)
BACKENDS = ("torch", "onnxruntime", "tensorrt")

# When a parameter may change: at any time, while not active (applied on activate),
# while unconfigured (applied on configure), or never after start-up.
RUNTIME, INACTIVE, UNCONFIGURED, READ_ONLY = "runtime", "inactive", "unconfigured", "read-only"

MIN_RATE_HZ = 0.01
"""The smallest non-zero ``max_rate``: one frame per 100 s (the worker waits at most that long)."""
DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
OPENCV_MAX_PIXELS = 1 << 30  # OpenCV's own decoder limit (OPENCV_IO_MAX_IMAGE_PIXELS)


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: default, when it may change, description and allowed values."""

    name: str
    default: Any
    phase: str
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    @property
    def is_float(self) -> bool:
        return isinstance(self.default, float)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model.family", "yolact", UNCONFIGURED, "model family (yolact, yolo_fcn, ...)"),
    ParamSpec("model.weights", "", UNCONFIGURED, "checkpoint file; empty = random weights (testing only)"),
    ParamSpec("model.config", "", UNCONFIGURED, "model config YAML; empty = the checkpoint's own"),
    ParamSpec(
        "model.input_size", 0, UNCONFIGURED, "network input side in pixels; 0 = model default", (0, 4096)
    ),
    ParamSpec("backend", "torch", UNCONFIGURED, "inference backend", choices=BACKENDS),
    ParamSpec("device", "auto", UNCONFIGURED, "auto (CUDA when available), cpu, cuda or cuda:N"),
    ParamSpec("precision", "fp32", UNCONFIGURED, "fp32, fp16 (CUDA only) or int8 (onnxruntime on the CPU, "
              "tensorrt; needs calib)", choices=("fp32", "fp16", "int8")),
    ParamSpec("calib", "", UNCONFIGURED, "int8 calibration images: a folder or a COCO JSON (package:// "
              "allowed); the quantised model is cached, keyed by the calibration set"),
    # 0: measured best through the node on 2 busy cores (1 thread 52.6 ms, 2 = default 39.2 ms model p50;
    # benchmarks/results/num_threads.json, README "Parameters")
    ParamSpec(
        "num_threads",
        0,
        UNCONFIGURED,
        "CPU inference threads; 0 = PyTorch's default (one per physical core)",
        (0, 256),
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
        "max_rate",
        0.0,
        RUNTIME,
        f"process at most this many frames per second; 0 = unlimited, else >= {MIN_RATE_HZ}",
        (0.0, 1000.0),
    ),
    ParamSpec(
        "max_input_pixels",
        DEFAULT_MAX_INPUT_PIXELS,
        RUNTIME,
        "refuse images with more pixels (width*height; compressed: read from the header before decoding)",
        (64 * 64, OPENCV_MAX_PIXELS),
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
    # multi-object tracking: Detection2D.id and the instance-mask value are the track id
    ParamSpec("tracking.enabled", True, RUNTIME, "stable track ids across frames; false = per-frame 1..N"),
    ParamSpec("tracking.max_age", 30, RUNTIME, "frames a lost confirmed track is kept", (0, 10000)),
    ParamSpec("tracking.min_hits", 2, RUNTIME, "matched frames before a track is confirmed", (1, 1000)),
    ParamSpec("tracking.high_threshold", 0.5, RUNTIME, "score of first-stage detections", (0.0, 1.0)),
    ParamSpec("tracking.low_threshold", 0.1, RUNTIME, "least score that may extend a track", (0.0, 1.0)),
    ParamSpec("tracking.match_threshold", 0.3, RUNTIME, "least box+mask IoU similarity", (0.0, 1.0)),
    ParamSpec("tracking.low_match_threshold", 0.5, RUNTIME, "least box IoU, low scores", (0.0, 1.0)),
    ParamSpec(
        "tracking.appearance_threshold", 0.7, RUNTIME, "least colour similarity to re-identify", (0.0, 1.0)
    ),
    ParamSpec("tracking.reid_distance", 1.0, RUNTIME, "re-id gate in box diagonals", (0.0, 100.0)),
    ParamSpec("tracking.box_weight", 0.5, RUNTIME, "weight of box IoU in the similarity", (0.0, 1.0)),
    ParamSpec("tracking.mask_weight", 0.5, RUNTIME, "weight of mask IoU in the similarity", (0.0, 1.0)),
    ParamSpec("tracking.mask_stride", 8, RUNTIME, "masks compared on every n-th pixel", (1, 64)),
    # 3D from a registered depth image (depth/image_raw + depth/camera_info)
    ParamSpec("depth.enabled", False, INACTIVE, "subscribe depth/image_raw + depth/camera_info; 3D outputs"),
    ParamSpec("depth.min", 0.2, RUNTIME, "nearest valid depth (m)", (0.0, 100.0)),
    ParamSpec("depth.max", 10.0, RUNTIME, "farthest valid depth (m)", (0.01, 100.0)),
    ParamSpec("depth.sync_tolerance", 0.02, INACTIVE, "max |depth stamp - colour stamp| (s)", (0.0, 1.0)),
    ParamSpec("depth.erode_px", 2, RUNTIME, "mask erosion against edge bleeding (colour px)", (0, 20)),
    ParamSpec("depth.min_points", 20, RUNTIME, "fewest valid depth points for a 3D entry", (1, 100000)),
    ParamSpec("depth.points_decimation", 4, RUNTIME, "~/points keeps every n-th pixel in x and y", (1, 64)),
    # YOLACT temporal reuse on video (YolactEdge): key frames + warped features (models/yolact/temporal.py)
    ParamSpec("temporal.enabled", False, UNCONFIGURED, "key / non-key frames (YOLACT, torch backend)"),
    ParamSpec("temporal.flow_weights", "package://instaseg_ros/models/flownet_yolact_se_r18_indoor.pth",
              UNCONFIGURED, "FeatFlowNet checkpoint trained for model.weights"),
    ParamSpec("temporal.policy", "interval", RUNTIME, "key frames: interval or adaptive (scene change)",
              choices=("interval", "adaptive")),
    ParamSpec("temporal.keyframe_interval", 5, RUNTIME, "interval policy: frames per key frame", (1, 1000)),
    ParamSpec("temporal.max_interval", 10, RUNTIME, "adaptive: at most this many frames per key", (1, 1000)),
    ParamSpec("temporal.change_threshold", 0.5, RUNTIME, "adaptive: relative C3 change for a key frame",
              (0.001, 100.0)),
    ParamSpec("temporal.flow_threshold", 8.0, RUNTIME, "adaptive: mean flow (input px) for a key frame",
              (0.001, 10000.0)),
    ParamSpec("temporal.max_time_gap", 0.5, RUNTIME, "key frame after a longer stamp gap (s); 0 = none",
              (0.0, 3600.0)),
    ParamSpec("temporal.reuse_prototypes", False, RUNTIME, "non-key frames warp the prototypes too (faster, "
              "less accurate masks)"),
    ParamSpec("autostart", True, READ_ONLY, "configure and activate at start-up"),
    ParamSpec("diagnostics_period", 1.0, READ_ONLY, "seconds between /diagnostics messages", (0.1, 60.0)),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
TRACKING_PREFIX, DEPTH_PREFIX = "tracking.", "depth."
INFER_KEYS = (
    "score_threshold",
    "nms_threshold",
    "mask_threshold",
    "top_k",
    "class_filter",
    "cross_class_nms",
)


def descriptor(spec: ParamSpec, read_only: bool | None = None) -> ParameterDescriptor:
    """The ROS descriptor of ``spec`` (``read_only`` overrides the phase's, for start-up overrides)."""
    d = ParameterDescriptor(
        description=f"{spec.description} [changes: {spec.phase}]",
        read_only=spec.phase == READ_ONLY if read_only is None else read_only,
    )
    if spec.default is not None:
        d.type = Parameter.Type.from_parameter_value(spec.default).value
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range is not None:
        lo, hi = spec.range
        if spec.is_float:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    if spec.name == "class_filter":
        # an empty list has no ROS type, so the filter is dynamically typed and checked in check()
        d.dynamic_typing = True
        d.additional_constraints = (
            "string array of class names known to the model ('person' alone = ['person']); [] = all"
        )
    return d


def class_filter_names(value: Any) -> list[str]:
    """A ``class_filter`` value -> class names: a string is one name ("" = none), a string array its
    non-empty items; None or any empty array = [] (keep all). Other types raise ``TypeError``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, (bytes, bytearray, bool, int, float)):
        raise TypeError(f"class_filter must be a string array of class names, got {type(value).__name__}")
    if isinstance(value, Sequence) or hasattr(value, "__len__"):
        items = list(value)
        if not items:
            return []
        if not all(isinstance(v, str) for v in items):
            raise TypeError(
                "class_filter must be a string array of class names, got an array of "
                f"{type(items[0]).__name__}"
            )
        return [v.strip() for v in items if v.strip()]
    raise TypeError(f"class_filter must be a string array of class names, got {type(value).__name__}")


def check(name: str, value: Any, ptype: Parameter.Type, class_names: Sequence[str] | None = None) -> str:
    """'' when ``value`` (of ROS type ``ptype``) is valid for parameter ``name``, else the reason.

    ``class_names``: the loaded model's classes, against which ``class_filter`` is checked (None while
    no model is loaded: the names are checked at configure).
    """
    spec = SPECS[name]
    if name == "class_filter":
        if ptype == Parameter.Type.NOT_SET:
            return "class_filter cannot be unset; set [] to keep all classes"
        if ptype not in (Parameter.Type.STRING_ARRAY, Parameter.Type.STRING) and value is not None:
            try:
                empty = len(value) == 0
            except TypeError:
                empty = False
            if not empty:
                return f"class_filter must be a string array of class names, got {ptype.name}"
        try:
            names = class_filter_names(value)
        except TypeError as e:
            return str(e)
        unknown = [c for c in names if class_names is not None and c not in class_names]
        if unknown:
            return f"class_filter names unknown classes {unknown}; the model knows {list(class_names)}"
        return ""
    if spec.choices and value not in spec.choices:
        return f"{name}={value!r} is not one of {list(spec.choices)}"
    if spec.is_float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return f"{name} must be a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return f"{name}={value} is not a finite number"
        if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
            return f"{name}={value} is outside [{spec.range[0]}, {spec.range[1]}]"
    if name == "max_rate" and 0 < value < MIN_RATE_HZ:
        return f"max_rate={value} is too small: use 0 (unlimited) or at least {MIN_RATE_HZ} frames/s"
    if name == "device":
        dev = str(value).strip().lower()
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            return f"device={value!r}: use auto, cpu, cuda or cuda:N"
    return ""


def precision_problem(backend: str, precision: str, calib: str) -> str:
    """'' when ``precision`` fits ``backend`` (and int8 has its calibration set), else the reason."""
    if precision == "int8":
        if backend == "torch":
            return (
                "precision int8 needs backend onnxruntime (CPU) or tensorrt (GPU); backend is torch: "
                "set backend:=onnxruntime"
            )
        if not str(calib).strip():
            return "precision int8 needs calib: a folder of images or a COCO JSON to calibrate on"
    return ""


def coerce(name: str, param: Parameter) -> Parameter:
    """What the node stores for ``param``: an integer for a float parameter becomes a float
    (``-p score_threshold:=1``) and a single string for ``class_filter`` a one-name array
    (``-p class_filter:=person``). Anything else is returned unchanged for :func:`check` to judge."""
    spec = SPECS.get(name)
    if spec is None:
        return param
    if spec.is_float and param.type_ == Parameter.Type.INTEGER:
        return Parameter(name, Parameter.Type.DOUBLE, float(param.value))
    if name == "class_filter" and param.type_ == Parameter.Type.STRING:
        return Parameter(name, Parameter.Type.STRING_ARRAY, class_filter_names(param.value))
    return param


_DEPTH_FIELDS = {
    "depth.min": "min_m",
    "depth.max": "max_m",
    "depth.erode_px": "erode_px",
    "depth.min_points": "min_points",
    "depth.points_decimation": "points_decimation",
}


def tracking_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``tracking.*`` parameter values -> ``TrackerConfig`` keyword arguments (prefix stripped)."""
    return {k[len(TRACKING_PREFIX) :]: v for k, v in values.items() if k.startswith(TRACKING_PREFIX)}


def depth_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``depth.*`` parameter values -> ``Depth3DParams`` keyword arguments (``enabled`` and
    ``sync_tolerance`` are the node's own)."""
    return {_DEPTH_FIELDS[k]: v for k, v in values.items() if k in _DEPTH_FIELDS}
