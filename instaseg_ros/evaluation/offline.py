"""Offline mode of ``eval-bag``: every frame (or every matched one) through the model in this
process, one at a time, in log order, as fast as possible; deterministic. Latency = the
``segment()`` call."""

from __future__ import annotations

import importlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth
from instaseg_ros.evaluation.matching import class_to_category, to_results
from instaseg_ros.evaluation.records import BagFrame, EvalError, FrameMatch, FrameRecord, ModelSpec, RunData


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def load_eval_model(spec: ModelSpec) -> Segmenter:
    """The segmenter of ``spec`` through :func:`instaseg_ros.models.loading.load_model` (after
    importing ``spec.plugins``); its errors become :class:`EvalError` with the same message."""
    from instaseg_ros.models.loading import ModelLoadError, load_model
    from instaseg_ros.runtime.base import BackendUnavailableError

    for mod in spec.plugins:
        importlib.import_module(mod)
    try:
        return load_model(
            spec.family,
            spec.weights,
            spec.config,
            backend=spec.backend,
            device=spec.device,
            precision=spec.precision,
            params=spec.params,
            backend_options=dict(spec.backend_options),
        )
    except (ModelLoadError, BackendUnavailableError) as e:
        raise EvalError(str(e)) from e


def run_offline(
    bag: str | Path,
    topic: str,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    segmenter: Segmenter,
    params: InferenceParams | None = None,
    only_gt_frames: bool = False,
    progress: bool = True,
    on_output: Callable[[int, str, np.ndarray, Instances], None] | None = None,
    warmup: int = 1,
    observers: list[Callable[[int, int | None, np.ndarray, Instances], None]] | None = None,
) -> RunData:
    """Every frame (or only matched ones) through ``segmenter`` in log order, one at a time.

    ``warmup`` untimed calls on the first frame precede the timed run (the node warms up in configure
    too). ``on_output(stamp_ns, frame_id, image, instances)`` is called per processed frame (output bag),
    each of ``observers(stamp_ns, image_id or None, image, instances)`` too (tracking and 3D scoring).
    """
    from tqdm import tqdm

    from instaseg_ros.data.bag_io import BagError, iter_bag_images

    cat_map = class_to_category(segmenter.class_names, gt)
    cuda = str(segmenter.device).startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    records: list[FrameRecord] = []
    results: list[dict[str, Any]] = []
    todo = len(match.frame_to_image) if only_gt_frames else len(frames)
    warm_left = warmup
    t_start = time.perf_counter()
    bar = tqdm(total=todo, unit="frame", desc="eval-bag offline", disable=not progress, file=sys.stderr)
    try:
        for k, (stamp, frame_id, img) in enumerate(iter_bag_images(bag, topic)):
            iid = match.frame_to_image.get(k)
            if only_gt_frames and iid is None:
                records.append(FrameRecord(k, stamp, None, False, sent=False))
                continue
            if warm_left > 0:  # untimed warm-up on the first frame (lazy init, cuDNN autotune, caches)
                for _ in range(warm_left):
                    segmenter.segment([img], params)
                warm_left = 0
                t_start = time.perf_counter()
            t0 = time.perf_counter()
            inst = segmenter.segment([img], params)[0]
            t1 = time.perf_counter()
            records.append(FrameRecord(k, stamp, iid, True, (t1 - t0) * 1e3, t1 - t_start, len(inst)))
            if iid is not None:
                results.extend(to_results(inst, iid, cat_map))
            for obs in observers or ():
                obs(stamp, iid, img, inst)
            if on_output is not None:
                on_output(stamp, frame_id, img, inst)
            bar.update(1)
    except BagError as e:
        raise EvalError(str(e)) from e
    finally:
        bar.close()
    wall = time.perf_counter() - t_start
    cuda_mb = None
    if cuda:
        import torch

        cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return RunData(
        "offline",
        records,
        results,
        wall,
        list(segmenter.class_names),
        peak_rss_mb(),
        "evaluator process: model + bag reading",
        cuda_mb,
        {
            "model": {
                "family": segmenter.family or type(segmenter).__name__,
                "backend": getattr(getattr(segmenter, "backend", None), "name", "torch"),
                "device": str(segmenter.device),
                "precision": segmenter.precision,
            },
            "warmup_calls": warmup,
        },
    )
