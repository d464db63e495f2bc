"""Training configuration: plain YAML mapped onto dataclasses.

Layout of a ``config/train/*.yaml`` file::

    task: yolact            # yolact | fcn
    seed: 0
    out_dir: runs/name      # overridden by ``instaseg train --out``
    model: {...}            # the family's model config (YolactConfig / FCN config fields)
    init: {weights: null, reinit_heads: auto}
    data: {train: {...}, val: {...}, augment: {...}, batch_size: 8, num_workers: 0}
    loss: {...}             # YolactLossConfig fields + contextual_* (yolact) / dice_weight (fcn)
    optim: {optimizer: adamw, lr: 2e-3, schedule: cosine, warmup_iters: 100, max_iters: 2000, ...}
    train: {val_interval: 500, log_interval: 20, checkpoint_interval: 500, amp: true, ...}

Every section rejects unknown keys with an error naming the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A training config that cannot be used (the message names the key)."""


#: ``task:`` name -> "module:TrainTask subclass" (constructed as ``cls(cfg)``)
TASKS: dict[str, str] = {
    "yolact": "instaseg_ros.training.tasks.yolact:YolactTask",
    "fcn": "instaseg_ros.training.tasks.fcn:FcnTask",
    "solo": "instaseg_ros.training.tasks.solo:SoloTask",
    "maskrcnn": "instaseg_ros.training.tasks.maskrcnn:MaskRcnnTask",
    "yolo_detector": "instaseg_ros.training.tasks.yolo_detector:YoloDetectorTask",
}


@dataclass
class DatasetSpec:
    """One split.

    Attributes:
        kind: "synthetic" (generated in memory, deterministic from ``seed``) or "coco"
            (images + COCO JSON, e.g. a Label Studio / CVAT export).
        num_images: synthetic: number of scenes.
        seed: synthetic: scene seed (train and val must differ for a held-out set).
        width, height: synthetic: image size.
        synth: extra ``SynthConfig`` fields for the generator.
        annotations: coco: path of the JSON file.
        images: coco: image root (default: the JSON's folder).
        classes: keep only these class names (coco; empty = all categories).
        max_images: use at most this many images of the split (0 = all).
        cache_dir: synthetic: render once to ``cache_dir`` as COCO (images + JSON) and read
            from disk afterwards (saves CPU when the same set is reused).
    """

    kind: str = "synthetic"
    num_images: int = 100
    seed: int = 0
    width: int = 320
    height: int = 240
    synth: dict[str, Any] = field(default_factory=dict)
    annotations: str | None = None
    images: str | None = None
    classes: list[str] = field(default_factory=list)
    max_images: int = 0
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "coco"):
            raise ConfigError(f"data.kind must be 'synthetic' or 'coco', got {self.kind!r}")
        if self.kind == "coco" and not self.annotations:
            raise ConfigError("data split of kind 'coco' needs 'annotations' (path of the COCO JSON)")
        if self.kind == "synthetic" and self.num_images < 1:
            raise ConfigError(f"synthetic data split needs num_images >= 1, got {self.num_images}")


@dataclass
class DataConfig:
    """Datasets, augmentation and loading."""

    train: DatasetSpec = field(default_factory=DatasetSpec)
    val: DatasetSpec | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class InitConfig:
    """Weights to start from.

    Attributes:
        weights: a checkpoint (ours or an official YOLACT ``.pth``) to fine-tune from.
        reinit_heads: "auto" re-initialises class-dependent layers whose shapes differ
            (different class count), "always" re-initialises them regardless, "never" fails
            on a mismatch.
        proto_bias: YOLACT trained from scratch: initial bias of the last prototype conv
            (null keeps the default 0). The prototypes pass a ReLU; from random features the
            optimiser can push every prototype below zero within a few dozen iterations, after
            which the mask loss is stuck at 6.125 * ln 2 with no gradient. A positive start
            (e.g. 1.0) keeps them alive until the coefficients carry information.
    """

    weights: str | None = None
    reinit_heads: str = "auto"
    proto_bias: float | None = None

    def __post_init__(self) -> None:
        if self.reinit_heads not in ("auto", "always", "never"):
            raise ConfigError(f"init.reinit_heads must be auto|always|never, got {self.reinit_heads!r}")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (per iteration).

    ``lr(i) = lr * warmup(i) * decay(i)`` with linear warm-up from ``warmup_factor`` over
    ``warmup_iters`` and decay "cosine" (to ``min_lr_factor``), "step" (x ``gamma`` at each of
    ``steps``) or "constant". ``lr_mult`` scales the rate of parameters whose name starts with a
    prefix (e.g. ``{"proto_net.": 0.1}``; the longest matching prefix wins).
    """

    optimizer: str = "adamw"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_iters: int = 100
    warmup_factor: float = 0.01
    min_lr_factor: float = 0.01
    steps: list[int] = field(default_factory=list)
    gamma: float = 0.1
    max_iters: int = 1000
    grad_clip: float = 10.0
    lr_mult: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw", "adam"):
            raise ConfigError(f"optim.optimizer must be sgd|adam|adamw, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ConfigError(f"optim.schedule must be cosine|step|constant, got {self.schedule!r}")
        if self.lr <= 0 or self.max_iters < 1:
            raise ConfigError(f"optim.lr must be > 0 and max_iters >= 1, got {self.lr}, {self.max_iters}")


@dataclass
class TrainConfig:
    """Loop settings.

    Attributes:
        val_interval: validate (COCO mask AP) every this many iterations (0 = only at the end).
        val_max_images: validate on at most this many images (0 = all).
        checkpoint_interval: save the resumable state every this many iterations.
        log_interval: CSV/TensorBoard scalars every this many iterations.
        amp: mixed precision (CUDA only; ignored on CPU).
        select_metric: "segm.AP" | "bbox.AP" | "loss" (best-checkpoint criterion).
        score_threshold: score threshold of the segmenter during validation.
        save_fp16: store the inference checkpoint's floating tensors as fp16 (half size).
        num_threads: torch CPU threads (0 = torch default).
    """

    val_interval: int = 500
    val_max_images: int = 0
    checkpoint_interval: int = 500
    log_interval: int = 20
    amp: bool = True
    select_metric: str = "segm.AP"
    score_threshold: float = 0.05
    save_fp16: bool = False
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.select_metric not in ("segm.AP", "bbox.AP", "loss"):
            raise ConfigError(f"train.select_metric must be segm.AP|bbox.AP|loss, got {self.select_metric!r}")


@dataclass
class ExperimentConfig:
    """A whole training run (see the module docstring for the YAML layout)."""

    task: str = "yolact"
    seed: int = 0
    out_dir: str = "runs/train"
    model: dict[str, Any] = field(default_factory=dict)
    init: InitConfig = field(default_factory=InitConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {sorted(TASKS)}, got {self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (YAML/JSON safe)."""
        return dataclasses.asdict(self)


def _build(cls: type, data: Any, where: str) -> Any:
    """Map a (nested) mapping onto dataclass ``cls``, naming unknown keys and bad sections."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    nested = _NESTED.get(cls, {})
    kwargs = {}
    for k, v in data.items():
        sub = f"{where}.{k}" if where else k
        if k in nested and not (v is None and k == "val"):
            kwargs[k] = _build(nested[k], v, sub)
        else:
            kwargs[k] = v
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None
    except TypeError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


_NESTED: dict[type, dict[str, type]] = {
    ExperimentConfig: {"init": InitConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig},
    DataConfig: {"train": DatasetSpec, "val": DatasetSpec},
}


def config_from_dict(data: dict[str, Any], where: str = "") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a mapping (``where`` prefixes error messages)."""
    return _build(ExperimentConfig, data, where)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a training YAML file; errors name the file and the offending key."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training config {p} does not exist")
    with open(p) as f:
        data = yaml.safe_load(f) or {}
    try:
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
