"""YOLO+FCN configuration (YAML <-> dataclass): detector, class subset, FCN head, inference defaults."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from instaseg_ros.core.labels import (
    COCO_CLASSES,
    INDOOR_CLASSES,  # noqa: F401 - re-exported
)
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models.config import check_bounds, config_from_mapping
from instaseg_ros.models.yolo_fcn.detector import DETECTORS
from instaseg_ros.models.yolo_fcn.fcn import FcnConfig
from instaseg_ros.weights.torch_io import FCN_FORMAT, YOLO_FCN_FORMAT

CHECKPOINT_FORMAT = YOLO_FCN_FORMAT


#: config keys that define the networks: taken from a checkpoint, never from the user's config
ARCHITECTURE_KEYS = frozenset(
    {"detector", "cfg", "darknet_width", "darknet_depth", "anchors", "detector_classes", "fcn"}
)


FCN_CHECKPOINT_FORMAT = FCN_FORMAT


#: the seed's five indoor classes (and the synthetic data set's, in this order)


YOLO_FCN_BOUNDS = {
    "input_size": (32, 2048), "detector_classes": (1, 1000), "darknet_width": (0.01, 4.0),
    "darknet_depth": (0, 64), "pre_nms_top_n": (1, 100000),
}  # fmt: skip


@dataclass
class YoloFcnConfig:
    """YOLO+FCN configuration (YAML maps onto it; unknown keys are errors).

    Attributes:
        input_size: square network input S (a multiple of 32).
        detector_classes: names of the detector's output classes, in order (COCO 80).
        classes: the classes to keep (names from ``detector_classes``, any order),
            e.g. the seed's indoor five; ``None`` keeps all. Output class ids index this list.
        detector: built-in network when ``cfg`` is unset: ``"yolov3"`` (= yolov3.cfg, for
            ``yolov3.weights``) or ``"yolov3-tiny"`` (= yolov3-tiny.cfg, for ``yolov3-tiny.weights``).
        cfg: a Darknet ``.cfg`` file to parse instead of a built-in definition.
        darknet_width / darknet_depth: channel multiplier and residual blocks per stage
            of the built-in definition (1.0 / [1, 2, 8, 8, 4] = YOLOv3; depth unused by tiny).
        anchors: (w, h) anchors in network-input pixels (9 for yolov3, 6 for tiny);
            ``None`` = the variant's COCO anchors.
        fcn: the mask head (:class:`FcnConfig`).
        fcn_weights: FCN checkpoint (``save_fcn_checkpoint`` file, a yolo_fcn checkpoint
            or a bare state dict); not needed when ``weights`` is a yolo_fcn checkpoint.
        allow_random_fcn / allow_random_detector: permit randomly initialised parts
            (tests, benchmarks); otherwise missing weights are an error.
        seed: seed for random initialisation.
        pad_value: letterbox padding value in [0, 1] (Darknet: 0.5).
        pre_nms_top_n: most candidates per image entering NMS.
        exclusive_masks: remove contested pixels from lower-scoring instances' masks
            (the YOLOv3 + FCN8s work); the instance-id image is the same either way.
        inference: default ``InferenceParams`` fields.
    """

    input_size: int = 416
    detector_classes: list[str] = field(default_factory=lambda: list(COCO_CLASSES))
    classes: list[str] | None = None
    detector: str = "yolov3"
    cfg: str | None = None
    darknet_width: float = 1.0
    darknet_depth: list[int] = field(default_factory=lambda: [1, 2, 8, 8, 4])
    anchors: list[list[float]] | None = None
    fcn: FcnConfig = field(default_factory=FcnConfig)
    fcn_weights: str | None = None
    allow_random_fcn: bool = False
    allow_random_detector: bool = False
    seed: int = 0
    pad_value: float = 0.5
    pre_nms_top_n: int = 1000
    exclusive_masks: bool = True
    inference: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_bounds(self, YOLO_FCN_BOUNDS, "YoloFcnConfig")
        if isinstance(self.fcn, dict):
            self.fcn = _fcn_config(self.fcn)
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {self.input_size}")
        if len(set(self.detector_classes)) != len(self.detector_classes):
            raise ValueError("detector_classes contains duplicate names")
        if self.classes is not None:
            unknown = [c for c in self.classes if c not in self.detector_classes]
            if unknown:
                raise ValueError(
                    f"classes {unknown} are not detector classes; known: {self.detector_classes}"
                )
            if not self.classes:
                raise ValueError("classes is empty; use null to keep all detector classes")
        if not 0.0 <= self.pad_value <= 1.0:
            raise ValueError(f"pad_value must be in [0, 1], got {self.pad_value}")
        if self.pre_nms_top_n < 1:
            raise ValueError(f"pre_nms_top_n must be >= 1, got {self.pre_nms_top_n}")
        self.inference_params()  # validates

    @property
    def class_names(self) -> list[str]:
        """Output class names (the kept subset)."""
        return list(self.classes) if self.classes is not None else list(self.detector_classes)

    def inference_params(self) -> InferenceParams:
        known = {f.name for f in fields(InferenceParams)}
        unknown = set(self.inference) - known
        if unknown:
            raise ValueError(f"unknown inference keys {sorted(unknown)}; known: {sorted(known)}")
        return InferenceParams(**self.inference)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fcn"] = self.fcn.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> YoloFcnConfig:
        """Build from a mapping (deep-copied; ``family`` ignored); unknown keys raise naming ``source``."""
        d = copy.deepcopy(dict(d))
        d.pop("family", None)
        return config_from_mapping(cls, d, source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> YoloFcnConfig:
        return cls.from_dict(_read_yaml(path), str(path))


def _fcn_config(d: dict[str, Any]) -> FcnConfig:
    return config_from_mapping(FcnConfig, d, "fcn config")


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"yolo_fcn config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    data.pop("family", None)
    # relative file paths in a YAML are relative to the YAML's folder (unless they exist from the cwd)
    for key in ("cfg", "fcn_weights"):
        v = data.get(key)
        if isinstance(v, str) and not Path(v).is_absolute() and not Path(v).exists():
            data[key] = str(path.parent / v)
    return data
