"""Offline mode of ``eval-bag``: every frame (or every matched one) through the model in this
process, one at a time, in log order, as fast as possible; deterministic. Latency = the
``segment()`` call (with temporal reuse: ``TemporalYolact.segment_frame(image, stamp)``, frames in bag
order, and the key-frame count, ratio and per-kind latency in ``RunData.extra["temporal"]``)."""

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
    temporal: Any = None,
) -> RunData:
    """Every frame (or only matched ones) through ``segmenter`` in log order, one at a time.

    ``warmup`` untimed calls on the first frame precede the timed run (the node warms up in configure
    too). ``on_output(stamp_ns, frame_id, image, instances)`` is called per processed frame (output bag),
    each of ``observers(stamp_ns, image_id or None, image, instances)`` too (tracking and 3D scoring).
    ``temporal`` (``TemporalSettings`` with ``enabled``): YOLACT temporal reuse on the header stamps; the
    warm-up then runs a key and a non-key frame and the timed run starts on a fresh stream.
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
    runner = _temporal_runner(segmenter, temporal)
    key_frames: list[int] = []
    t_start = time.perf_counter()
    bar = tqdm(total=todo, unit="frame", desc="eval-bag offline", disable=not progress, file=sys.stderr)
    try:
        for k, (stamp, frame_id, img) in enumerate(iter_bag_images(bag, topic)):
            iid = match.frame_to_image.get(k)
            if only_gt_frames and iid is None:
                records.append(FrameRecord(k, stamp, None, False, sent=False))
                continue
            if warm_left > 0:  # untimed warm-up on the first frame (lazy init, cuDNN autotune, caches)
                for i in range(warm_left):
                    if runner is None:
                        segmenter.segment([img], params)
                    else:  # both kinds (key, then non-key unless every frame is a key frame)
                        runner.segment_frame(img, 1e-9 * (stamp + i), params)
                        runner.segment_frame(img, 1e-9 * (stamp + i + 1), params)
                if runner is not None:  # the timed stream starts fresh: its first frame is a key frame
                    runner.restart()
                warm_left = 0
                t_start = time.perf_counter()
            t0 = time.perf_counter()
            if runner is None:
                inst = segmenter.segment([img], params)[0]
            else:
                fr = runner.segment_frame(img, stamp * 1e-9, params)
                inst = fr.instances
                if fr.key:
                    key_frames.append(k)
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
            **({"temporal": {"runner": type(runner).__name__,
                             **temporal_summary(temporal, records, key_frames, runner.stats.reasons)}}
               if runner is not None else {}),  # fmt: skip
        },
    )


def _temporal_runner(segmenter: Segmenter, settings: Any) -> Any:
    """A ``TemporalYolact`` for ``settings`` when enabled, else None (bad settings -> EvalError)."""
    if settings is None or not settings.enabled:
        return None
    from instaseg_ros.models.yolact.temporal_onnx import build_runner

    try:
        return build_runner(settings, segmenter)
    except (ValueError, FileNotFoundError) as e:
        raise EvalError(f"temporal reuse: {e}") from e


def temporal_summary(settings: Any, records: list[FrameRecord], key_frames: list[int],
                     reasons: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """Settings, key/non-key counts, key-frame ratio, per-kind latency (median, p95 ms of the timed
    ``segment_frame`` calls), why key frames were taken, and the bag indices of the key frames."""
    from dataclasses import asdict

    keys = set(key_frames)
    done = [r for r in records if r.processed and r.latency_ms is not None]
    key_ms = [r.latency_ms for r in done if r.index in keys]
    non_ms = [r.latency_ms for r in done if r.index not in keys]

    def pct(v: list[float], q: float) -> float | None:
        return float(np.percentile(v, q)) if v else None

    return {
        "settings": asdict(settings),
        "key_frames": len(key_ms), "nonkey_frames": len(non_ms),
        "key_ratio": len(key_ms) / len(done) if done else None,
        "key_ms_median": pct(key_ms, 50), "key_ms_p95": pct(key_ms, 95),
        "nonkey_ms_median": pct(non_ms, 50), "nonkey_ms_p95": pct(non_ms, 95),
        "key_reasons": dict(reasons),
        "key_frame_indices": key_frames,
    }  # fmt: skip
