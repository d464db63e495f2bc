"""``instaseg benchmark``: every available backend on the same images, one table, plus the peer.

instaseg benchmark [--model yolact[=CONFIG.yaml]] ... [--weights W]
                   [--backends torch,onnxruntime,tensorrt:fp16,tensorrt:int8,torch:fp16]
                   [--batches 1,2,4] [--warmup 2] [--runs 10] [--threads N] [--device cpu|cuda]
                   [--images FILES/DIRS | --num-images 8 --size 640x480]
                   [--score-threshold 0.05] [--top-k 100] [--no-peer] [--peer-min-size 800]
                   [--out benchmarks/results/NAME.json]

Default model: YOLACT ResNet-50 at 550 px with 80 classes (random init unless --weights). Every
model and the peer (torchvision Mask R-CNN ResNet-50 FPN, random init) run in this one process on
the same images, batch sizes and threads, with the same score threshold and detection cap, and
round-robin (run k of every model/backend, then run k+1), so load changes affect all alike.
Times are per batch (median and p95 over --runs after --warmup); img/s = batch / median e2e.
Writes JSON (machine, settings, rows, summary, skipped backends) and a Markdown copy of the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _ints(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 640x480, got {text!r}") from None
    return w, h


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "benchmark",
        help="time every available backend (and the Mask R-CNN peer) on the same images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", action="append", default=None, help="family[=config.yaml] (repeatable)")
    p.add_argument("--weights", default=None, help="checkpoint (only with a single --model)")
    p.add_argument(
        "--backends",
        default="torch,onnxruntime,tensorrt",
        help="comma-separated backend[:precision] list; unavailable ones are skipped and reported",
    )
    p.add_argument("--batches", type=_ints, default=[1, 2, 4], help="batch sizes (default 1,2,4)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per batch size")
    p.add_argument("--runs", type=int, default=10, help="timed runs per batch size")
    p.add_argument(
        "--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: torch's)"
    )
    p.add_argument("--device", default="cpu", help="device of the segmenter (cpu, cuda, cuda:1)")
    p.add_argument("--images", nargs="*", default=None, help="image files or folders (default: synthetic)")
    p.add_argument("--num-images", type=int, default=8, help="distinct images cycled through")
    p.add_argument("--size", type=_size, default=(640, 480), help="synthetic image size WxH")
    p.add_argument("--score-threshold", type=float, default=0.05, help="for every model and the peer")
    p.add_argument("--top-k", type=int, default=100, help="detection cap for every model and the peer")
    p.add_argument("--no-peer", action="store_true", help="skip torchvision Mask R-CNN")
    p.add_argument(
        "--peer-min-size", type=int, default=800, help="Mask R-CNN resize (torchvision default 800)"
    )
    p.add_argument("--peer-max-size", type=int, default=1333, help="Mask R-CNN max side (default 1333)")
    p.add_argument("--cache-dir", default=None, help="export/engine cache (default ~/.cache/instaseg_ros)")
    p.add_argument(
        "--calib", default=None, help="INT8 calibration images (for tensorrt:int8 and onnxruntime:int8)"
    )
    p.add_argument(
        "--out", default=None, help="JSON output (default benchmarks/results/benchmark_<date>.json)"
    )
    p.set_defaults(func=run)
    return p


def _fail(msg: str) -> int:
    print(f"instaseg benchmark: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    import torch

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.benchmark import (
        MaskRcnnRunner,
        build_maskrcnn_peer,
        format_summary,
        format_table,
        machine_info,
        make_runners,
        rows_to_json,
        sample_images,
        throughput_summary,
        time_all,
        write_results,
    )
    from instaseg_ros.models.loading import ModelLoadError, load_model

    models = args.model or ["yolact"]
    if args.weights and len(models) > 1:
        return _fail("--weights needs a single --model")
    if args.warmup < 0 or args.runs < 1:
        return _fail(f"need --warmup >= 0 and --runs >= 1, got {args.warmup}, {args.runs}")
    if args.threads is not None:
        if args.threads < 1:
            return _fail(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    try:
        params = InferenceParams(score_threshold=args.score_threshold, top_k=args.top_k)
        images = sample_images(args.images, args.num_images, args.size)
    except (ValueError, FileNotFoundError) as e:
        return _fail(str(e))
    machine = machine_info()
    print(
        f"machine: {machine['cpu']}, {machine['nproc']} CPUs, load {machine['loadavg']}, gpu {machine['gpu']}"
    )
    print(f"{len(images)} images {images[0].shape[1]}x{images[0].shape[0]}, batches {args.batches}, "
          f"warm-up {args.warmup}, runs {args.runs}, threads {threads}")  # fmt: skip

    specs = [b.strip() for b in args.backends.split(",") if b.strip()]
    for spec in specs:
        backend, _, precision = spec.partition(":")
        if backend not in ("torch", "onnxruntime", "ort", "tensorrt", "trt"):
            return _fail(f"unknown backend {backend!r} in --backends; known: torch, onnxruntime, tensorrt")
        if precision not in ("", "fp32", "fp16", "int8"):
            return _fail(f"unknown precision {precision!r} in --backends {spec!r}; known: fp32, fp16, int8")
    runners, skipped, model_info = [], {}, {}
    for m in models:
        family, _, config = m.partition("=")
        try:
            torch.manual_seed(0)  # random-init models: the same weights for every backend
            seg = load_model(family, args.weights, config or None, device=args.device, params=params)
        except ModelLoadError as e:
            return _fail(f"model {m}: {e}")
        name = _model_name(seg, family)
        model_info[name] = {"family": family, "config": config or None, "weights": args.weights}
        factories = {}
        for spec in specs:
            backend, _, precision = spec.partition(":")
            factories[spec] = _factory(backend, precision, seg, family, config, args, threads, params)
        r, s = make_runners(name, factories, params)
        runners += r
        skipped.update({f"{name}/{k}": v for k, v in s.items()})
    if not args.no_peer:
        peer = build_maskrcnn_peer(args.score_threshold, args.top_k, args.peer_min_size, args.peer_max_size)
        runners.append(MaskRcnnRunner(peer, args.device, params.mask_threshold))
    # every runner on the same batches, round-robin, so load changes affect all alike
    rows = time_all(runners, images, args.batches, args.warmup, args.runs, print)
    machine["loadavg_end"] = list(os.getloadavg())
    table = format_table(rows)
    summary = throughput_summary(rows)
    print()
    print(table)
    print()
    print(format_summary(summary))
    for k, v in skipped.items():
        print(f"skipped {k}: {v}")
    out = (
        Path(args.out)
        if args.out
        else Path("benchmarks/results") / f"benchmark_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    payload = {
        "machine": machine,
        "settings": {
            "models": model_info,
            "backends": specs,
            "batches": args.batches,
            "warmup": args.warmup,
            "runs": args.runs,
            "threads": threads,
            "device": args.device,
            "images": len(images),
            "image_size": [int(images[0].shape[1]), int(images[0].shape[0])],
            "synthetic_images": not args.images,
            "score_threshold": args.score_threshold,
            "top_k": args.top_k,
            "peer": None
            if args.no_peer
            else {"min_size": args.peer_min_size, "max_size": args.peer_max_size},
            "times": "milliseconds per batch; images_per_s = batch / median e2e",
        },
        "rows": rows_to_json(rows),
        "summary": summary,
        "skipped": skipped,
    }
    write_results(out, payload)
    md = out.with_suffix(".md")
    md.write_text(
        f"# instaseg benchmark {machine['date_utc']}\n\n"
        f"Machine: {machine['cpu']}, {machine['nproc']} CPUs, GPU {machine['gpu']}, "
        f"torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, tensorrt {machine['tensorrt']}, threads {threads}, "
        f"load {machine['loadavg']} -> {machine['loadavg_end']}\n\n"
        f"Images: {len(images)} x {images[0].shape[1]}x{images[0].shape[0]}, "
        f"warm-up {args.warmup}, runs {args.runs}, "
        f"score threshold {args.score_threshold}, top-k {args.top_k}. Times in ms per batch (median/p95).\n\n"
        f"```\n{table}\n\n{format_summary(summary)}\n```\n"
        + "".join(f"\nSkipped {k}: {v}\n" for k, v in skipped.items())
    )
    print(f"wrote {out} and {md}")
    return 0


def _model_name(seg, family: str) -> str:
    cfg = getattr(seg, "cfg", None)
    if cfg is not None and hasattr(cfg, "backbone"):
        return f"{family}_{cfg.backbone}_{cfg.input_size}"
    conf = getattr(seg, "config", None)
    if conf is not None and hasattr(conf, "input_size"):
        return f"{family}_{conf.input_size}"
    return family


def _factory(backend, precision, seg, family, config, args, threads, params):
    """A zero-argument callable loading the model on ``backend`` through ``load_model`` and returning
    its Backend (errors surface when the harness calls it, which reports the backend as skipped).

    ``torch`` at the model's own precision reuses ``seg``; every other entry loads the same weights
    again (random-init models with the same seed), so each backend has its own segmenter.
    """

    def make():
        import torch

        from instaseg_ros.models.loading import load_model
        from instaseg_ros.runtime import BackendSegmenter, create_backend

        if backend == "torch" and precision in ("", seg.precision):
            return create_backend("torch", seg)
        if backend in ("onnxruntime", "ort"):
            options = {"threads": threads, "cache_dir": args.cache_dir}
            if precision == "int8":  # statically quantised graphs need calibration images
                options["calib"] = args.calib
        elif backend in ("tensorrt", "trt"):
            options = {"cache_dir": args.cache_dir, "max_batch": max(args.batches), "calib": args.calib}
        else:
            options = {}
        default = "fp16" if backend in ("tensorrt", "trt") else "fp32"
        torch.manual_seed(0)
        loaded = load_model(
            family,
            args.weights,
            config or None,
            backend=backend,
            device=args.device,
            precision=precision or default,
            params=params,
            backend_options=options,
        )
        return loaded.backend if isinstance(loaded, BackendSegmenter) else create_backend("torch", loaded)

    return make
