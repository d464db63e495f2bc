"""One training task per model family on a shared base (:mod:`.base`: data sets, augmentation,
seeding, data reports, validation). ``config.TASKS`` maps a config's ``task:`` to its class: adding
a family means its task module here and one line there."""

from __future__ import annotations

from typing import Any


def build_task(cfg: Any) -> Any:
    """The :class:`~instaseg_ros.training.trainer.TrainTask` of ``cfg.task`` (an ``ExperimentConfig``)."""
    import importlib

    from instaseg_ros.training.config import TASKS

    module, name = TASKS[cfg.task].split(":")
    return getattr(importlib.import_module(module), name)(cfg)
