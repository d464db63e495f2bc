"""The timing harness: runners (a model on a backend), stage-by-stage timing, round-robin over runners.

Each timed run of a batch measures, with device synchronisation between stages:

* ``pre``: ``preprocess`` (validation, resize/letterbox, normalisation, upload);
* ``net``: the network(s) through the backend, i.e. ``forward_raw`` plus, for YOLO+FCN, the FCN
  mask head that post-processing calls on the box crops;
* ``post``: the rest of ``postprocess`` (softmax/decoding, NMS, mask assembly/pasting, building
  ``Instances`` with full-resolution bool masks);
* ``e2e``: wall time from the BGR images to the list of ``Instances``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instaseg_ros.core.images import IMAGE_SUFFIXES
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.runtime import BackendSegmenter
from instaseg_ros.runtime.base import Backend, BackendUnavailableError


def sample_images(
    sources: Sequence[str | Path] | None = None,
    num: int = 4,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> list[np.ndarray]:
    """BGR uint8 images: from files/folders in ``sources``, else ``num`` synthetic indoor scenes.

    Args:
        sources: image files and/or folders (searched recursively); None/empty = synthetic.
        num: how many images (the first ``num`` files, sorted; or ``num`` generated scenes).
        size: (width, height) of generated scenes.
    Raises:
        FileNotFoundError / ValueError naming the path when sources give no readable image.
    """
    if sources:
        import cv2

        files: list[Path] = []
        for s in sources:
            p = Path(s)
            if p.is_dir():
                files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            elif p.is_file():
                files.append(p)
            else:
                raise FileNotFoundError(f"image source {p} does not exist")
        images = []
        for f in files:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is not None:
                images.append(img)
            if len(images) == num:
                break
        if not images:
            raise ValueError(f"no readable images in {list(map(str, sources))}")
        return images
    from instaseg_ros.data.synthetic import SynthConfig, generate_scene

    cfg = SynthConfig(width=size[0], height=size[1])
    return [generate_scene(seed + i, cfg).image for i in range(num)]


# -------------------------------------------------------------------------------------- timing
@dataclass
class Stat:
    """Median and 95th percentile of a list of durations, in milliseconds."""

    median_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Stat:
        a = np.asarray(seconds, np.float64) * 1e3
        return cls(float(np.median(a)), float(np.percentile(a, 95)))


@dataclass
class BenchRow:
    """Timings of one (model, backend, batch): stages per batch, throughput, workload."""

    model: str
    backend: str
    device: str
    precision: str
    batch: int
    warmup: int
    runs: int
    pre: Stat
    net: Stat
    post: Stat
    e2e: Stat
    images_per_s: float
    detections_per_image: float
    info: dict[str, Any] = field(default_factory=dict)


class TimedBackend(Backend):
    """Wraps a backend, accumulating synchronised time spent in its mask head (YOLO+FCN)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.segmenter, inner.device, inner.precision)
        self.inner = inner
        self.name = inner.name
        self.mask_head_s = 0.0

    def __call__(self, tensor: torch.Tensor) -> Any:
        return self.inner(tensor)

    @property
    def has_mask_head(self) -> bool:
        return self.inner.has_mask_head

    def mask_head(self, crops: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        out = self.inner.mask_head(crops)
        self.inner.synchronize()
        self.mask_head_s += time.perf_counter() - t0
        return out

    def synchronize(self) -> None:
        self.inner.synchronize()

    def info(self) -> dict[str, Any]:
        return self.inner.info()


def _batches(images: list[np.ndarray], batch: int, count: int) -> list[list[np.ndarray]]:
    """``count`` batches of ``batch`` images cycling through ``images``."""
    out, k = [], 0
    for _ in range(count):
        out.append([images[(k + j) % len(images)] for j in range(batch)])
        k += batch
    return out


@dataclass
class Sample:
    """One timed batch: stage durations in seconds and detections per image."""

    pre: float
    net: float
    post: float
    e2e: float
    dets: float


class Runner:
    """One thing to time (a model on a backend): ``runner(images) -> Sample`` for one batch."""

    model: str = ""
    backend: str = ""
    device: str = "cpu"
    precision: str = "fp32"

    def __call__(self, imgs: list[np.ndarray]) -> Sample:  # pragma: no cover - interface
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {}


class SegmenterRunner(Runner):
    """A segmenter with its network(s) on ``backend`` (None: ``backend.segmenter``)."""

    def __init__(self, seg: Any | None, backend: Backend, params: InferenceParams, model_name: str) -> None:
        self.timed = TimedBackend(backend)
        self.wrapped = BackendSegmenter(backend.segmenter if seg is None else seg, self.timed)
        self.params = params
        self.model, self.backend = model_name, backend.name
        self.device, self.precision = backend.device, backend.precision
        self._info = backend.info()

    def __call__(self, imgs: list[np.ndarray]) -> Sample:
        timed, wrapped = self.timed, self.wrapped
        timed.mask_head_s = 0.0
        t0 = time.perf_counter()
        x, metas = wrapped.preprocess(imgs)
        timed.synchronize()
        t1 = time.perf_counter()
        raw = wrapped.forward_raw(x)
        timed.synchronize()
        t2 = time.perf_counter()
        out = wrapped.postprocess(raw, metas, self.params)
        timed.synchronize()
        t3 = time.perf_counter()
        mh = timed.mask_head_s  # the FCN mask head runs inside post-processing: count it as network
        return Sample(t1 - t0, t2 - t1 + mh, t3 - t2 - mh, t3 - t0, sum(len(o) for o in out) / len(imgs))

    def info(self) -> dict[str, Any]:
        return self._info


def time_interleaved(
    runners: Sequence[Runner],
    images: list[np.ndarray],
    batch: int,
    warmup: int,
    runs: int,
    log: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """Time every runner on the same batches, round-robin (run k of every runner, then run k+1):
    a change of machine load during the benchmark affects all runners alike."""
    samples: list[list[Sample]] = [[] for _ in runners]
    for k, imgs in enumerate(_batches(images, batch, warmup + runs)):
        for i, r in enumerate(runners):
            s = r(imgs)
            if k >= warmup:
                samples[i].append(s)
    rows = []
    for r, ss in zip(runners, samples):
        e = Stat.of([s.e2e for s in ss])
        row = BenchRow(
            model=r.model,
            backend=r.backend,
            device=r.device,
            precision=r.precision,
            batch=batch,
            warmup=warmup,
            runs=runs,
            pre=Stat.of([s.pre for s in ss]),
            net=Stat.of([s.net for s in ss]),
            post=Stat.of([s.post for s in ss]),
            e2e=e,
            images_per_s=batch / (e.median_ms / 1e3),
            detections_per_image=float(np.mean([s.dets for s in ss])),
            info=dict(r.info()),
        )
        rows.append(row)
        if log is not None:
            log(
                f"[{r.model}] {r.backend} batch {batch}: e2e {e.median_ms:.1f} ms/batch, "
                f"{row.images_per_s:.2f} img/s"
            )
    return rows


def time_segmenter(
    seg: Any | None,
    backend: Backend,
    images: list[np.ndarray],
    batch: int,
    warmup: int,
    runs: int,
    params: InferenceParams,
    model_name: str,
) -> BenchRow:
    """Stage timings of ``seg`` (None: ``backend.segmenter``) with its network(s) on ``backend``."""
    return time_interleaved([SegmenterRunner(seg, backend, params, model_name)], images, batch, warmup, runs)[
        0
    ]


def make_runners(
    model_name: str,
    backends: dict[str, Callable[[], Backend]],
    params: InferenceParams,
    log: Callable[[str], None] = print,
) -> tuple[list[Runner], dict[str, str]]:
    """Create each backend (export/engine build happen here, untimed); returns runners and
    {backend: reason} for those that cannot run here."""
    runners, skipped = [], {}
    for name, make in backends.items():
        try:
            t0 = time.perf_counter()
            be = make()
        except (BackendUnavailableError, NotImplementedError, ValueError) as e:
            skipped[name] = str(e)
            log(f"[{model_name}] backend {name} skipped: {e}")
            continue
        setup_s = time.perf_counter() - t0
        log(f"[{model_name}] backend {name} ready in {setup_s:.1f} s")
        r = SegmenterRunner(None, be, params, model_name)
        r._info["setup_s"] = round(setup_s, 2)  # backend creation incl. export/engine build
        runners.append(r)
    return runners, skipped


def run_model_backends(
    seg: Any,
    model_name: str,
    backends: dict[str, Callable[[], Backend]],
    images: list[np.ndarray],
    batches: Sequence[int],
    warmup: int,
    runs: int,
    params: InferenceParams,
    log: Callable[[str], None] = print,
) -> tuple[list[BenchRow], dict[str, str]]:
    """Time each backend factory's segmenter (interleaved per batch size); rows and skipped backends."""
    runners, skipped = make_runners(model_name, backends, params, log)
    return time_all(runners, images, batches, warmup, runs, log), skipped


def time_all(
    runners: Sequence[Runner],
    images: list[np.ndarray],
    batches: Sequence[int],
    warmup: int,
    runs: int,
    log: Callable[[str], None] | None = None,
) -> list[BenchRow]:
    """:func:`time_interleaved` for each batch size; rows ordered by runner, then batch."""
    per_batch = [time_interleaved(runners, images, b, warmup, runs, log) for b in batches]
    return [rows[i] for i in range(len(runners)) for rows in per_batch]
