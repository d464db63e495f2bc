"""Datasets of a training config: synthetic scenes (optionally rendered once to disk) or COCO JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instaseg_ros.training.config import DatasetSpec

log = logging.getLogger(__name__)


def build_dataset(spec: DatasetSpec, transform: Callable | None = None, class_names: list[str] | None = None):
    """Dataset for ``spec`` with ``transform``; every dataset has ``class_names``, ``coco_gt()``
    and ``category_ids`` (COCO category id of each class index).

    Synthetic with ``cache_dir``: the scenes are written once as COCO (PNG + JSON) and read back
    with :class:`~instaseg_ros.data.coco.CocoDataset` afterwards.
    """
    if spec.kind == "synthetic":
        from instaseg_ros.data.synthetic import CLASS_NAMES, SynthConfig, SyntheticDataset, write_coco

        scfg = SynthConfig(width=spec.width, height=spec.height, **spec.synth)
        n = spec.num_images if not spec.max_images else min(spec.num_images, spec.max_images)
        if spec.cache_dir:
            root = Path(spec.cache_dir)
            ann = root / "annotations.json"
            if not ann.is_file():
                log.info("rendering %d synthetic scenes (seed %d) to %s", n, spec.seed, root)
                src = SyntheticDataset(n, seed=spec.seed, config=scfg)
                write_coco(root, (src.scene(i) for i in range(n)))
            return _coco(ann, root, transform, class_names or list(CLASS_NAMES), spec)
        ds = SyntheticDataset(n, seed=spec.seed, config=scfg, transform=transform)
        ds.category_ids = [i + 1 for i in range(len(ds.class_names))]
        return ds
    return _coco(Path(spec.annotations), Path(spec.images) if spec.images else None, transform,
                 class_names or spec.classes or None, spec)


def _coco(ann: Path, root: Path | None, transform, class_names, spec: DatasetSpec):
    from instaseg_ros.data.coco import CocoDataset

    ds = CocoDataset(ann, image_root=root, class_names=class_names, transform=transform)
    if spec.max_images and len(ds) > spec.max_images:
        log.info("%s: using %d of %d images", ann, spec.max_images, len(ds))
        ds._images = ds._images[: spec.max_images]  # noqa: SLF001 - documented max_images subset
    return ds


def dataset_report(ds: Any) -> dict[str, Any] | None:
    """The dataset's validation report as a dict (None when it has no problems or no report)."""
    rep = getattr(ds, "validation_report", None)
    if rep is None or rep.ok:
        return None
    d = rep.to_dict()
    d.setdefault("summary", rep.summary())
    return d
