"""The records of a bag evaluation: bag frames, stamp matches, per-frame outcomes, the run, the
model and evaluation settings, report examples and the outcome. Plain dataclasses, no logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth


class EvalError(RuntimeError):
    """The evaluation cannot run as asked (bad bag, topic, ground truth or model); the message says why."""


@dataclass
class BagFrame:
    """One image message of the evaluated topic (position ``index`` in log order)."""

    index: int
    stamp_ns: int
    frame_id: str
    height: int
    width: int


@dataclass
class FrameMatch:
    """Ground-truth images matched to bag frames by stamp.

    Attributes:
        frame_to_image: bag frame index -> ground-truth image id.
        unmatched_images: ground-truth image ids with no frame within the tolerance.
        max_offset_ns: largest |frame stamp - ground-truth stamp| among the matches.
    """

    frame_to_image: dict[int, int]
    unmatched_images: list[int]
    max_offset_ns: int


@dataclass
class FrameRecord:
    """What happened to one bag frame.

    Attributes:
        t_s: seconds since the run started when the result arrived (or, if dropped, when it was sent).
        latency_ms: per-frame latency (offline: the model call; live: publish -> both outputs received).
    """

    index: int
    stamp_ns: int
    image_id: int | None
    processed: bool
    latency_ms: float | None = None
    t_s: float | None = None
    num_detections: int | None = None
    sent: bool = True  # False: skipped on purpose (offline --only-gt-frames), not a drop


@dataclass
class RunData:
    """The raw outcome of one offline or live run (before metrics)."""

    mode: str
    frames: list[FrameRecord]
    results: list[dict[str, Any]]  # COCO results (ground-truth category ids) of processed GT frames
    wall_s: float
    class_names: list[str]
    peak_rss_mb: float | None
    peak_rss_of: str
    cuda_max_allocated_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """How to load the model (offline: :func:`instaseg_ros.models.loading.load_model`) or configure
    the node (live).

    Attributes:
        backend: "torch", "onnxruntime" or "tensorrt" (the node's ``backend`` parameter in live mode).
        precision: "fp32", "fp16" (CUDA) or "int8" (TensorRT, offline only: needs ``calib`` in
            ``backend_options``).
        plugins: modules imported first (they may register families).
        backend_options: offline: extra backend options (cache dir, calibration images, ...).
    """

    family: str = "yolact"
    weights: str | None = None
    config: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    params: InferenceParams = field(default_factory=InferenceParams)
    plugins: list[str] = field(default_factory=list)
    backend: str = "torch"
    backend_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BagEvalConfig:
    """Everything ``instaseg eval-bag`` needs.

    Attributes:
        stamp_tolerance_ns: max |bag header stamp - ground-truth stamp_ns| for a match.
        only_gt_frames: offline: run the model on matched frames only (faster; latency from those).
        rate_multiplier: live: replay speed (1 = recorded rate, 2 = twice as fast).
        node_params: live: extra node parameters (name -> value).
        live_transport: live: ``raw`` (bgr8 Image) or ``compressed`` (JPEG CompressedImage).
        startup_timeout_s: live: time allowed for the node to load the model and subscribe.
        drain_timeout_s: live: wait this long after the last frame for outstanding results.
        num_examples: frames shown in the report's example strip.
        output_bag: write the outputs (and input frames) to this rosbag2 (mcap) folder.
        dds_profile: live: Fast DDS XML profile for both processes (FASTRTPS_DEFAULT_PROFILES_FILE), e.g.
            the package's ``config/fastdds_large_images.xml``; None keeps the environment's.
        launcher: live: how the node starts: ``python`` (its module, in a child process) or
            ``ros2 launch`` (``launch/instaseg.launch.py`` of the installed package).
        tracking: score MOT metrics (tracker vs IoU baseline) when the ground truth has ``track_id``.
        depth_3d: score 3D centres/sizes when the ground truth has ``center_3d`` and a depth topic
            (live: the node runs with ``depth.enabled`` and gets the bag's depth topics too).
        temporal: YOLACT temporal reuse (``models.yolact.temporal.TemporalSettings``, the node's
            ``temporal.*`` parameters) or None; offline: frames in bag order through ``TemporalYolact``.
    """

    bag: str
    gt: str | dict[str, Any]
    topic: str = "/camera/color/image_raw"
    mode: str = "offline"
    model: ModelSpec = field(default_factory=ModelSpec)
    stamp_tolerance_ns: int = 1_000_000
    only_gt_frames: bool = False
    rate_multiplier: float = 1.0
    node_params: dict[str, Any] = field(default_factory=dict)
    live_transport: str = "raw"
    startup_timeout_s: float = 120.0
    drain_timeout_s: float = 10.0
    num_examples: int = 4
    output_bag: str | None = None
    dds_profile: str | None = None
    launcher: str = "python"
    tracking: bool = True
    depth_3d: bool = True
    temporal: Any = None


@dataclass
class Example:
    """One frame of the report's example strip."""

    stamp_ns: int
    image_id: int
    image: np.ndarray  # [H, W, 3] uint8 BGR
    prediction: Instances
    ground_truth: Instances


@dataclass
class EvalOutcome:
    """Metrics (``summary``: every number, JSON-ready), the run and the example frames."""

    summary: dict[str, Any]
    run: RunData
    examples: list[Example]
    gt: StampedGroundTruth
