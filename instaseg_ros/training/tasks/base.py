"""The base of every family's training task: data sets, augmentation, seeding, data reports and
COCO validation live here once; a family's task adds only what differs.

A family's task calls ``super().__init__(cfg)`` first (which seeds torch, so the model's initial
weights drawn afterwards depend on ``cfg.seed`` only), builds its model and provides:

* ``collate`` and ``loss`` (its batch layout and objective),
* ``save_inference`` / ``load_inference`` (its checkpoint format),
* ``eval_segmenter(device)`` for validation through the family's own segmenter, or its own
  ``evaluate`` when the metric differs (the FCN head on ground-truth boxes, the YOLO detector
  with box-shaped masks), both built on :func:`coco_metrics`,
* optionally ``data_class_names`` (the classes the data sets are read with), ``augment_size``
  (a fixed network input the augmentation resizes to) and its own random generators in ``rngs``.

Seeding, in one place: the experiment seed ``cfg.seed`` seeds torch before the model is built,
the albumentations pipeline (``data.augment.seed``, unless the config sets it explicitly) and the
trainer's sampler; every generator in ``rngs`` and every pipeline RNG is part of
:meth:`BaseTask.rng_state`, which the trainer stores in its resumable state.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instaseg_ros.training.config import ConfigError, ExperimentConfig, check_fields
from instaseg_ros.training.datasets import build_dataset, dataset_report
from instaseg_ros.training.trainer import TrainTask

#: one random generator of a task: torch or NumPy
Rng = torch.Generator | np.random.Generator


class BaseTask(TrainTask):
    """Data sets, augmentation, seeding, data reports and validation shared by every family.

    Attributes:
        cfg: the experiment config.
        rngs: the task's own random generators by name (saved and restored on resume).
    """

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self._train_ds: Any = None
        self._val_ds: Any = None
        self.rngs: dict[str, Rng] = {}
        self._mixed: Any = None
        torch.manual_seed(cfg.seed)
        if cfg.data.multi_scale and not self.supports_multi_scale:
            raise ConfigError(f"data.multi_scale: the {cfg.task} task has a fixed input size; remove it")

    #: whether the family draws its input size per batch (``data.multi_scale``)
    supports_multi_scale = False

    # ------------------------------------------------------------------ hooks
    def data_class_names(self) -> list[str] | None:
        """Class names the data sets are read with (None: every category of the data)."""
        return None

    def augment_size(self) -> tuple[int, int] | None:
        """``(height, width)`` the training augmentation resizes to (None: keep the image size)."""
        return None

    def eval_segmenter(self, device: torch.device | str) -> Any:
        """The current weights as the family's ``Segmenter`` on ``device`` (for :meth:`evaluate`)."""
        raise NotImplementedError(f"{type(self).__name__} has no segmenter; it overrides evaluate()")

    # ------------------------------------------------------------------ data
    def augment_config(self) -> Any:
        """``data.augment`` as an ``AugmentConfig`` seeded with the experiment seed."""
        from instaseg_ros.data.augment import AugmentConfig

        aug = dict(self.cfg.data.augment or {})
        check_fields(aug, AugmentConfig, "data.augment")
        aug.setdefault("seed", self.cfg.seed)
        size = self.augment_size()
        if size is not None:
            aug["size"] = tuple(size)
        try:
            return AugmentConfig.from_dict(aug)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data.augment: {e}") from None

    def source_class_names(self) -> list[str]:
        """Class names of the training data (synthetic classes, ``data.train.classes`` or the
        categories of the COCO file)."""
        spec = self.cfg.data.train
        if spec.kind == "synthetic":
            from instaseg_ros.data.synthetic import CLASS_NAMES

            return list(CLASS_NAMES)
        if spec.classes:
            return list(spec.classes)
        if self._train_ds is None:
            self._train_ds = build_dataset(spec, None, None)
        return list(self._train_ds.class_names)

    def train_dataset(self) -> Any:
        """The training split with the seeded augmentation pipeline attached, wrapped by mosaic /
        copy-paste (:mod:`instaseg_ros.data.mosaic`) when ``data.augment`` turns them on."""
        if self._train_ds is None:
            self._train_ds = build_dataset(self.cfg.data.train, None, self.data_class_names())
        if getattr(self._train_ds, "transform", None) is None:
            from instaseg_ros.data.augment import build_transform

            self._train_ds.transform = build_transform(self.augment_config(), train=True)
        if self._mixed is None:
            aug = self.augment_config()
            try:
                mix = aug.mix_config()
            except ValueError as e:
                raise ConfigError(f"data.augment: {e}") from None
            if mix.active:
                from instaseg_ros.data.mosaic import MixingDataset

                if aug.size is None:
                    raise ConfigError(f"data.augment: mosaic / copy-paste need samples of one size; the "
                                      f"{self.cfg.task} task keeps the image sizes")
                self._mixed = MixingDataset(self._train_ds, mix, seed=self.cfg.seed)
                self.rngs["mix"] = self._mixed.rng
        return self._mixed if self._mixed is not None else self._train_ds

    def val_dataset(self) -> Any | None:
        """The validation split (no augmentation), or None without ``data.val``."""
        if self._val_ds is None and self.cfg.data.val is not None:
            self._val_ds = build_dataset(self.cfg.data.val, None, self.data_class_names())
        return self._val_ds

    def data_reports(self) -> dict[str, Any]:
        out = {}
        for split, ds in (("train", self._train_ds), ("val", self._val_ds)):
            rep = dataset_report(ds) if ds is not None else None
            if rep:
                out[split] = rep
        return out

    # ------------------------------------------------------------------ seeding
    def rng_state(self) -> dict[str, Any]:
        """Every random state of the task (own generators, augmentation pipeline) as tensors and
        plain Python values (loads with ``torch.load(weights_only=True)``)."""
        tf = getattr(self._train_ds, "transform", None) if self._train_ds is not None else None
        return {
            "task": {k: _get_rng(g) for k, g in self.rngs.items()},
            "augment": [_pipeline_state(p) for p in _pipelines(tf)],
        }

    def set_rng_state(self, state: dict[str, Any]) -> None:
        for k, s in (state.get("task") or {}).items():
            if k in self.rngs:
                _set_rng(self.rngs[k], s)
        tf = getattr(self.train_dataset(), "transform", None)
        for p, s in zip(_pipelines(tf), state.get("augment") or [], strict=False):
            _set_pipeline_state(p, s)

    # ------------------------------------------------------------------ validation
    def eval_params(self) -> Any:
        """Inference parameters of validation (``train.score_threshold``, top 100)."""
        from instaseg_ros.core.segmenter import InferenceParams

        return InferenceParams(score_threshold=self.cfg.train.score_threshold, top_k=100)

    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        """COCO box/mask AP of :meth:`eval_segmenter` on ``dataset`` (first ``max_images``)."""
        was = self.module.training
        try:
            return segmenter_metrics(self.eval_segmenter(device), dataset, max_images, self.eval_params())
        finally:
            self.module.train(was)


def coco_metrics(dataset: Any, predict: Callable[[np.ndarray, dict[str, Any]], Any | None],
                 max_images: int = 0) -> dict[str, Any]:
    """COCO box/mask AP (``evaluate_coco`` layout) of ``predict(image, target) -> Instances`` over the
    first ``max_images`` samples of ``dataset`` (0 = all). Samples that cannot be read (None) and
    images ``predict`` returns None for are left out of the evaluated image ids."""
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    n = len(dataset) if not max_images else min(max_images, len(dataset))
    cat_ids = list(getattr(dataset, "category_ids", None) or []) or None
    results: list[dict[str, Any]] = []
    ids: list[int] = []
    with torch.inference_mode():
        for i in range(n):
            sample = dataset[i]
            if sample is None:
                continue
            image, target = sample
            ids.append(int(target["image_id"]))
            inst = predict(image, target)
            if inst is not None:
                results += instances_to_coco(inst, ids[-1], cat_ids)
    return evaluate_coco(dataset.coco_gt(), results, image_ids=sorted(set(ids)))


def segmenter_metrics(seg: Any, dataset: Any, max_images: int = 0, params: Any = None) -> dict[str, Any]:
    """COCO box/mask AP of any ``Segmenter`` on ``dataset`` (first ``max_images``; ``params`` default:
    the segmenter's own)."""
    return coco_metrics(dataset, lambda image, _t: seg.segment([image], params)[0], max_images)


def write_atomic(path: str | Path, save: Callable[[Path], None]) -> None:
    """``save(tmp)`` into a temporary file next to ``path``, then rename it to ``path`` (mode 0644):
    a reader never sees a half-written checkpoint."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        tmp = Path(f.name)
    try:
        save(tmp)
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def half_state(module: torch.nn.Module, fp16: bool) -> dict[str, torch.Tensor]:
    """``module``'s state dict, floating tensors in fp16 when ``fp16`` (``train.save_fp16``)."""
    sd = module.state_dict()
    return {k: v.half() if fp16 and v.is_floating_point() else v for k, v in sd.items()}


class StateView(torch.nn.Module):
    """A module that is only the given state dict (for checkpoint writers that read
    ``model.state_dict()``, e.g. with :func:`half_state`)."""

    def __init__(self, sd: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._sd = sd

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self._sd


# ---------------------------------------------------------------------- random states


def _get_rng(g: Rng) -> Any:
    if isinstance(g, torch.Generator):
        return g.get_state()
    return dict(g.bit_generator.state)


def _set_rng(g: Rng, state: Any) -> None:
    if isinstance(g, torch.Generator):
        g.set_state(state)
    else:
        g.bit_generator.state = state


def _pipelines(transform: Any) -> list[Any]:
    """Every albumentations object with its own RNGs in ``transform`` (an ``Augmenter``), in a fixed
    order: the ``Compose`` first, then its transforms depth first."""
    root = getattr(transform, "pipeline", None)
    out: list[Any] = []

    def walk(t: Any) -> None:
        if hasattr(t, "random_generator") and hasattr(t, "py_random"):
            out.append(t)
        for child in getattr(t, "transforms", None) or []:
            walk(child)

    if root is not None:
        walk(root)
    return out


def _pipeline_state(p: Any) -> dict[str, Any]:
    version, internal, gauss = p.py_random.getstate()
    return {"numpy": dict(p.random_generator.bit_generator.state),
            "python": [version, list(internal), gauss]}


def _set_pipeline_state(p: Any, s: dict[str, Any]) -> None:
    p.random_generator.bit_generator.state = s["numpy"]
    version, internal, gauss = s["python"]
    p.py_random.setstate((version, tuple(internal), gauss))

