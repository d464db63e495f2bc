"""Training configuration: plain YAML mapped onto dataclasses.

Layout of a ``config/train/*.yaml`` file::

    task: yolact            # yolact | fcn | yolo_detector | solo | maskrcnn (see TASKS)
    seed: 0                 # seeds the model's initial weights, the augmentation and the sampler
    out_dir: runs/name      # overridden by ``instaseg train --out``
    model: {...}            # the family's model config (YolactConfig / FCN config fields)
    init: {weights: null, reinit_heads: auto}
    data: {train: {kind: synthetic | coco, ...}, val: {...}, augment: {...}, batch_size: 8, num_workers: 0}
    loss: {...}             # YolactLossConfig fields + contextual_* (yolact) / dice_weight (fcn)
    optim: {optimizer: adamw, lr: 2e-3, schedule: cosine, warmup_iters: 100, max_iters: 2000, ...}
    train: {val_interval: 500, log_interval: 20, checkpoint_interval: 500, amp: true, ...}

Every error is one line naming the file, the field and the problem: unknown keys, wrong types
(``optim.max_iters: expected an integer, got 'abc'``), out-of-range values, a YAML syntax error, an
empty file. A config must name its data (``data.train`` with its ``kind``): nothing falls back to
default synthetic data silently.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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
    "flownet": "instaseg_ros.training.tasks.flownet:FlowNetTask",
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
            raise ConfigError(f"kind: must be 'synthetic' or 'coco', got {self.kind!r}")
        if self.kind == "coco" and not self.annotations:
            raise ConfigError("annotations: missing; a split of kind 'coco' needs the path of its COCO JSON")
        if self.kind == "synthetic" and self.num_images < 1:
            raise ConfigError(f"num_images: must be >= 1 for synthetic data, got {self.num_images}")
        _at_least(self, width=1, height=1, max_images=0)


@dataclass
class DataConfig:
    """Datasets, augmentation and loading.

    ``multi_scale``: network input sizes drawn per batch (e.g. [224, 256, 288, 320]; empty = the
    model's fixed input); families that cannot change their input per batch refuse it.
    """

    train: DatasetSpec = field(default_factory=DatasetSpec)
    val: DatasetSpec | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    num_workers: int = 0
    multi_scale: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        _at_least(self, batch_size=1, num_workers=0)
        bad = [s for s in self.multi_scale if s < 32 or s % 32]
        if bad:
            raise ConfigError(f"multi_scale: sizes must be multiples of 32 and >= 32, got {bad}")


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
            raise ConfigError(f"reinit_heads: must be auto|always|never, got {self.reinit_heads!r}")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (per iteration).

    ``lr(i) = lr * warmup(i) * decay(i)`` with linear warm-up from ``warmup_factor`` over
    ``warmup_iters`` and decay "cosine" (to ``min_lr_factor``), "step" (x ``gamma`` at each of
    ``steps``) or "constant". ``lr_mult`` scales the rate of parameters whose name starts with a
    prefix (e.g. ``{"proto_net.": 0.1}``; the longest matching prefix wins).

    ``time_budget_min`` > 0 stops the run after that many wall-clock minutes (counted from the
    first iteration, periodic validation included) and drives the schedule by the progress
    ``max(i / max_iters, elapsed / budget)``: a run that reaches its budget before ``max_iters``
    still ends warmed-up and annealed (set ``max_iters`` above what fits; it stays an upper bound).

    ``ema`` keeps an exponential moving average of the weights (:mod:`instaseg_ros.training.ema`,
    decay ``ema_decay * (1 - exp(-steps / ema_tau))``) that validation, ``best.pth`` and
    ``final.pth`` use; ``final_raw.pth`` then holds the last raw weights.
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
    time_budget_min: float = 0.0
    ema: bool = False
    ema_decay: float = 0.9999
    ema_tau: float = 2000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay: must be in (0, 1), got {self.ema_decay}")
        if self.ema_tau <= 0:
            raise ConfigError(f"ema_tau: must be > 0, got {self.ema_tau}")
        if self.optimizer not in ("sgd", "adamw", "adam"):
            raise ConfigError(f"optimizer: must be sgd|adam|adamw, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ConfigError(f"schedule: must be cosine|step|constant, got {self.schedule!r}")
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        _at_least(self, max_iters=1, warmup_iters=0, warmup_factor=0.0, min_lr_factor=0.0, gamma=0.0,
                  grad_clip=0.0, momentum=0.0, weight_decay=0.0, time_budget_min=0.0)


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
            raise ConfigError(f"select_metric: must be segm.AP|bbox.AP|loss, got {self.select_metric!r}")
        _at_least(self, val_interval=0, val_max_images=0, checkpoint_interval=1, log_interval=1,
                  num_threads=0)
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold: must be in [0, 1], got {self.score_threshold}")


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
            raise ConfigError(f"task: must be one of {sorted(TASKS)}, got {self.task!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (YAML/JSON safe)."""
        return dataclasses.asdict(self)


def _at_least(obj: Any, **minimum: float) -> None:
    """Raise a ConfigError naming the first field of ``obj`` below its minimum."""
    for name, low in minimum.items():
        value = getattr(obj, name)
        if value < low:
            raise ConfigError(f"{name}: must be >= {low:g}, got {value}")


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}  # fmt: skip


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    if dataclasses.is_dataclass(origin):
        return "a mapping"
    return _TYPE_WORDS.get(origin, getattr(origin, "__name__", str(origin)))


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the annotation ``hint`` (ints accepted as floats, numeric strings
    such as YAML's ``2e-3`` read as floats); raises a ConfigError naming ``where``."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _check_type(value, option, where)
            except ConfigError:
                pass
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_check_type(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            return {k: _check_type(v, args[1] if args else Any, f"{where}.{k}") for k, v in value.items()}
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, dict):
            check_fields(value, hint, where)
            return value
    else:
        return value
    raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}")


def check_fields(data: dict[str, Any], cls: type, where: str) -> None:
    """Type-check the keys of ``data`` that are fields of the dataclass ``cls`` (a family's model
    config: ``where`` is ``"model"``); other keys and value ranges are left to ``cls`` itself."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # annotations that cannot be resolved: nothing to check against
        return
    for k, v in data.items():
        if k in hints:
            _check_type(v, hints[k], f"{where}.{k}" if where else k)


def _build(cls: type, data: Any, where: str) -> Any:
    """Map a (nested) mapping onto dataclass ``cls``, naming unknown keys, wrong types and bad values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    nested = _NESTED.get(cls, {})
    kwargs = {}
    for k, v in data.items():
        sub = f"{where}.{k}" if where else k
        if k in nested and not (v is None and k == "val"):
            kwargs[k] = _build(nested[k], v, sub)
        else:
            kwargs[k] = _check_type(v, hints[k], sub)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}.{e}" if where else str(e)) from None


_NESTED: dict[type, dict[str, type]] = {
    ExperimentConfig: {"init": InitConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig},
    DataConfig: {"train": DatasetSpec, "val": DatasetSpec},
}


def _require_data(data: dict[str, Any]) -> None:
    """A config names its data: ``data.train`` (and ``data.val`` when given) with its ``kind``."""
    d = data.get("data")
    if d is None:
        raise ConfigError("data: missing; a training config must name its data "
                          "(data.train: {kind: synthetic | coco, ...})")
    if not isinstance(d, dict):
        raise ConfigError(f"data: expected a mapping, got {d!r}")
    if d.get("train") is None:
        raise ConfigError("data.train: missing; name the training data (kind: synthetic | coco, ...)")
    for split in ("train", "val"):
        spec = d.get(split)
        if isinstance(spec, dict) and "kind" not in spec:
            raise ConfigError(f"data.{split}.kind: missing; say synthetic or coco")


def config_from_dict(data: dict[str, Any], where: str = "") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a mapping (``where`` prefixes error messages)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of sections, got {data!r}")
    try:
        _require_data(data)
    except ConfigError as e:
        raise ConfigError(f"{where}.{e}" if where else str(e)) from None
    return _build(ExperimentConfig, data, where)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a training YAML file; every error is one line naming the file, the field and the problem."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training config {p} does not exist" if not p.exists()
                                else f"training config {p} is not a file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p}: YAML syntax error{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot be read as text: {e}") from None
    if data is None:
        raise ConfigError(f"{p}: the config is empty; a training config names at least its data "
                          "(data.train: {kind: synthetic | coco, ...})")
    try:
        return config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
