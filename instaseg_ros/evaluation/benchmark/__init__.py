"""Benchmark harness: every available backend on the same images, stage by stage, plus a peer.

:mod:`.harness` times runners (a model on a backend) stage by stage (pre / net / post / e2e) on the
same batches, round-robin so that load changes affect every runner alike; :mod:`.peer` is
torchvision's Mask R-CNN split into the same stages; :mod:`.machine` records the machine;
:mod:`.tables` prints and saves the results. Used by ``instaseg benchmark`` and ``benchmarks/``.
"""

from __future__ import annotations

from instaseg_ros.evaluation.benchmark.harness import (
    BenchRow,
    Runner,
    Sample,
    SegmenterRunner,
    Stat,
    TimedBackend,
    make_runners,
    run_model_backends,
    sample_images,
    time_all,
    time_interleaved,
    time_segmenter,
)
from instaseg_ros.evaluation.benchmark.machine import machine_info
from instaseg_ros.evaluation.benchmark.peer import MaskRcnnRunner, build_maskrcnn_peer, time_maskrcnn
from instaseg_ros.evaluation.benchmark.tables import (
    format_summary,
    format_table,
    rows_to_json,
    throughput_summary,
    write_results,
)

__all__ = [
    "BenchRow",
    "MaskRcnnRunner",
    "Runner",
    "Sample",
    "SegmenterRunner",
    "Stat",
    "TimedBackend",
    "build_maskrcnn_peer",
    "format_summary",
    "format_table",
    "machine_info",
    "make_runners",
    "rows_to_json",
    "run_model_backends",
    "sample_images",
    "throughput_summary",
    "time_all",
    "time_interleaved",
    "time_maskrcnn",
    "time_segmenter",
    "write_results",
]
