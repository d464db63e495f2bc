"""The GPU path in one run: CUDA FP16, TensorRT FP16/INT8 engines, the node over DDS, AMP training.

Driven by ``benchmarks/gpu_check.sh`` (which installs ``requirements/gpu.txt`` first). Every step is
one function below, run in its own process with a time limit taken from one overall budget (8
minutes by default), so a crash, hang or CUDA error in one step is recorded and the next one runs:
one run shows everything that is broken. Steps:

* ``environment``: torch/CUDA/GPU/TensorRT/ONNX Runtime/ROS versions, nvidia-smi.
* ``prepare`` (CPU): 8 synthetic 640x480 indoor scenes, 64 INT8 calibration scenes, YOLACT R50 550
  with random calibrated weights (``bench_yolact.decisive_random_model``) saved as a checkpoint.
* ``cuda_agreement``: CUDA FP32 and FP16 vs CPU FP32 (matched instances, box/score differences, mask
  IoU) for YOLACT R50 550, the shipped YOLACT-SE and YOLO+FCN, and their batch-1 latency.
* ``tensorrt_r50_550`` / ``tensorrt_shipped``: FP16 and calibrated INT8 engines: build time, agreement
  with PyTorch FP32 on CUDA, images/s at batch 1..8 for the network alone and for pre-processing to
  ``Instances`` (target: R50 550 FP16 batch 1 >= 400 images/s on an H100-class GPU).
* ``node_tensorrt``: instaseg_node (own process, TensorRT FP16, shipped model) answering a 640x480
  stream over DDS: latency p50/p95, GPU memory (nvidia-smi, node pid) before configure, after
  configure and after cleanup.
* ``amp_training``: 50 iterations of ``config/train/yolact_se_synthetic_r18.yaml`` with AMP on CUDA
  (small synthetic set): the loss falls, images/s.
* ``gpu_tests``: the suite's ``gpu``-marked tests (``pytest -m gpu test/runtime test/models``), per test.

A step that needs CUDA and finds none is ``skipped`` with a reason starting "no CUDA"; ``--dry-run``
hides the GPUs from every step (``CUDA_VISIBLE_DEVICES=""``), so the whole script can be checked on
any machine. Writes ``<out-dir>/gpu_<UTC date-time>.json`` and ``.md``.

    python benchmarks/gpu_check.py [--out-dir benchmarks/results] [--budget 480] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

SHIPPED_YOLACT = ROOT / "models" / "yolact_se_r18_indoor.pth"
SHIPPED_YOLO_FCN = ROOT / "models" / "yolo_fcn_indoor.pth"
TRAIN_CONFIG = ROOT / "config" / "train" / "yolact_se_synthetic_r18.yaml"
BATCHES = (1, 2, 4, 8)
R50_TARGET_IMG_S = 400.0
#: "cuda"; "cpu" only for ``--rehearse-on-cpu`` (the CUDA steps' code run on the CPU, fewer runs)
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
ON_GPU = DEVICE != "cpu"
#: (warm-up, timed runs) of every timing
RUNS = (5, 30) if ON_GPU else (1, 3)
#: test images compared per model (the CPU reference of R50 550 is slow on a small CPU)
N_IMAGES = 8 if ON_GPU else 2


#: import names of what the steps use (requirements/base.txt, ROS 2, TensorRT): missing ones are listed
IMPORTS = ("cv2", "scipy", "yaml", "pycocotools", "simplejpeg", "albumentations", "motmetrics", "onnx",
           "onnxruntime", "rclpy", "vision_msgs", "lifecycle_msgs", "tensorrt")  # fmt: skip


class Skip(Exception):
    """A step cannot run here; the message says why (e.g. "no CUDA: ...")."""


# ----------------------------------------------------------------------------- helpers
def cuda_problem() -> str | None:
    """Why CUDA cannot be used in this process (None when it can)."""
    import torch

    if torch.version.cuda is None:
        return f"no CUDA: torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = " (CUDA_VISIBLE_DEVICES is empty: --dry-run)" if hidden == "" else ""
        return (
            f"no CUDA: torch {torch.__version__} (CUDA {torch.version.cuda} build) sees no GPU, "
            f"torch.cuda.is_available() is False{why}"
        )
    return None


def require_cuda() -> None:
    """Raise :class:`Skip` ("no CUDA: ...") unless CUDA is usable (or this is a CPU rehearsal)."""
    if not ON_GPU:
        return
    problem = cuda_problem()
    if problem:
        raise Skip(problem)


def stats_ms(seconds: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


def timed(fn: Callable[[], Any], sync: Callable[[], None], warmup: int, runs: int) -> list[float]:
    """Wall seconds of ``runs`` calls of ``fn`` (each followed by ``sync``) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def cuda_sync() -> None:
    """Wait for queued GPU work (nothing to wait for in a CPU rehearsal)."""
    import torch

    if ON_GPU:
        torch.cuda.synchronize()


def load_prepared(work: Path) -> dict[str, Any]:
    p = work / "prepare.json"
    if not p.is_file():
        raise RuntimeError(f"{p} is missing: the prepare step did not complete")
    return json.loads(p.read_text())


def read_images(paths: list[str]) -> list[Any]:
    import cv2

    return [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]


def model_specs(prep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> load_model arguments of the three models under test."""
    return {
        "yolact_r50_550": {"family": "yolact", "weights": prep["r50_checkpoint"]},
        "yolact_se_r18_indoor": {"family": "yolact", "weights": str(SHIPPED_YOLACT)},
        "yolo_fcn_indoor": {"family": "yolo_fcn", "weights": str(SHIPPED_YOLO_FCN)},
    }


def infer_params() -> Any:
    from instaseg_ros.core.segmenter import InferenceParams

    return InferenceParams(score_threshold=0.05, top_k=100)


def agreement(ref: list[Any], test: list[Any], score_tol: float) -> dict[str, Any]:
    """Detections of ``test`` matched to ``ref`` per image (runtime/parity.py), summed over images."""
    from instaseg_ros.runtime.parity import compare_instances

    p = infer_params()
    per = [compare_instances(r, t, p.score_threshold, score_tol, p.top_k) for r, t in zip(ref, test)]
    matched = sum(len(x.matched) for x in per)
    n_ref = sum(x.n_ref for x in per)
    unexplained = sum(len(x.unmatched_ref) + len(x.unmatched_test) - x.borderline for x in per)
    return {
        "images": len(per),
        "n_ref": n_ref,
        "n_test": sum(x.n_test for x in per),
        "matched": matched,
        "matched_fraction": matched / n_ref if n_ref else 1.0,
        "borderline_unmatched": sum(x.borderline for x in per),
        "unexplained_unmatched": unexplained,
        "max_box_diff_px": max((x.max_box_diff for x in per), default=0.0),
        "max_score_diff": max((x.max_score_diff for x in per), default=0.0),
        "min_mask_iou": min((x.min_mask_iou for x in per), default=1.0),
        "score_tol": score_tol,
        "ok_1px_iou098": all(x.ok(1.0, 0.98) for x in per),
    }


def free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- steps
def step_environment(work: Path) -> dict[str, Any]:
    """Versions and devices (never skipped: it is what a failed step is read against)."""
    import torch

    from instaseg_ros.evaluation.benchmark.machine import machine_info
    from instaseg_ros.runtime.base import module_available
    from instaseg_ros.runtime.tensorrt import tensorrt_problems

    out: dict[str, Any] = {
        "machine": machine_info(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_problem": cuda_problem(),
        "tensorrt_problems": tensorrt_problems("cuda:0"),
        "missing_modules": [m for m in IMPORTS if not module_available(m)],
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out["gpu"] = {
            "name": props.name,
            "memory_gib": props.total_memory / 2**30,
            "capability": f"{props.major}.{props.minor}",
            "count": torch.cuda.device_count(),
        }
    if module_available("tensorrt"):
        try:
            import tensorrt

            out["tensorrt"] = str(tensorrt.__version__)
        except Exception as e:  # noqa: BLE001 - a broken install is a finding, not a crash
            out["tensorrt"] = f"import failed: {type(e).__name__}: {e}"
    try:
        import onnxruntime

        out["onnxruntime"] = {
            "version": onnxruntime.__version__,
            "providers": onnxruntime.get_available_providers(),
        }
    except ImportError as e:
        out["onnxruntime"] = f"not importable: {e}"
    try:
        smi = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total,memory.used",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=15,
        )
        out["nvidia_smi"] = (smi.stdout or smi.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        out["nvidia_smi"] = f"not available: {e}"
    return out


def step_prepare(work: Path) -> dict[str, Any]:
    """Test and calibration images (synthetic indoor scenes) and the YOLACT R50 550 checkpoint (CPU)."""
    import cv2
    import torch
    from bench_yolact import decisive_random_model

    from instaseg_ros.data.synthetic import SynthConfig, generate_scene
    from instaseg_ros.models.yolact import YolactConfig, save_checkpoint

    t0 = time.perf_counter()
    images, calib = work / "images", work / "calib"
    images.mkdir(exist_ok=True)
    calib.mkdir(exist_ok=True)
    test_paths = []
    for i in range(8):
        p = images / f"scene_{i:02d}.png"
        cv2.imwrite(str(p), generate_scene((3100, i), SynthConfig(width=640, height=480)).image)
        test_paths.append(str(p))
    for i in range(64):
        cv2.imwrite(
            str(calib / f"calib_{i:03d}.png"),
            generate_scene((3200, i), SynthConfig(width=640, height=480)).image,
        )
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    cfg = YolactConfig(backbone="resnet50", input_size=550, attention=False)  # as bench_yolact.py
    model = decisive_random_model(cfg, cv2.imread(test_paths[0]), seed=0)
    ckpt = work / "yolact_r50_550_random.pth"
    save_checkpoint(ckpt, model, cfg)
    prep = {
        "images": test_paths,
        "calib_dir": str(calib),
        "r50_checkpoint": str(ckpt),
        "seconds": time.perf_counter() - t0,
    }
    (work / "prepare.json").write_text(json.dumps(prep, indent=1))
    return prep


def step_cuda_agreement(work: Path) -> dict[str, Any]:
    """CUDA FP32 and FP16 vs CPU FP32 for every model; batch-1 latency of each (torch backend)."""
    require_cuda()
    import torch

    from instaseg_ros.models.loading import load_model

    prep = load_prepared(work)
    imgs = read_images(prep["images"][:N_IMAGES])
    params = infer_params()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    out: dict[str, Any] = {}
    for name, spec in model_specs(prep).items():
        row: dict[str, Any] = {}
        try:
            cpu = load_model(spec["family"], spec["weights"], device="cpu", params=params)
            ref = [cpu.segment([im], params)[0] for im in imgs]
            row["cpu_reference_latency_ms"] = stats_ms(
                timed(lambda c=cpu: c.segment([imgs[0]], params), lambda: None, 1, 3)
            )
            del cpu
            for prec in ("fp32", "fp16") if ON_GPU else ("fp32",):
                seg = load_model(
                    spec["family"], spec["weights"], device=DEVICE, precision=prec, params=params
                )
                test = [seg.segment([im], params)[0] for im in imgs]
                row[f"{DEVICE}_{prec}"] = agreement(ref, test, 1e-3 if prec == "fp32" else 2e-2)
                row[f"{DEVICE}_{prec}_latency_ms"] = stats_ms(
                    timed(lambda s=seg: s.segment([imgs[0]], params), cuda_sync, *RUNS)
                )
                del seg
                free_cuda()
        except Exception as e:  # noqa: BLE001 - one model failing must not hide the others
            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback_tail"] = traceback.format_exc().strip().splitlines()[-3:]
        out[name] = row
    failed = [n for n, r in out.items() if "error" in r]
    if failed:
        out["failed_models"] = failed
    return out


def _tensorrt_for(work: Path, model: str) -> dict[str, Any]:
    """FP16 and INT8 engines of one model: build time, agreement with torch FP32 CUDA, throughput."""
    require_cuda()
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.runtime.tensorrt import tensorrt_problems

    problems = tensorrt_problems("cuda:0")
    if problems:
        raise RuntimeError("TensorRT cannot run: " + "; ".join(problems))
    prep = load_prepared(work)
    spec = model_specs(prep)[model]
    imgs = read_images(prep["images"][:N_IMAGES])
    params = infer_params()
    ref_seg = load_model(spec["family"], spec["weights"], device=DEVICE, params=params)
    ref = [ref_seg.segment([im], params)[0] for im in imgs]
    del ref_seg
    free_cuda()
    out: dict[str, Any] = {"model": model}
    for prec in ("fp16", "int8"):
        row: dict[str, Any] = {}
        try:
            opts: dict[str, Any] = {
                "cache_dir": str(work / "cache"),
                "max_batch": max(BATCHES),
                "opt_batch": 1,
            }
            if prec == "int8":
                opts.update(calib=prep["calib_dir"], calib_images=64, calib_batch=8)
            t0 = time.perf_counter()
            seg = load_model(
                spec["family"],
                spec["weights"],
                backend="tensorrt",
                device="cuda",
                precision=prec,
                params=params,
                backend_options=opts,
            )
            row["load_and_build_s"] = time.perf_counter() - t0
            row["backend"] = seg.backend.info()
            test = [seg.segment([im], params)[0] for im in imgs]
            row["agreement_vs_torch_fp32"] = agreement(ref, test, 2e-2 if prec == "fp16" else 5e-2)
            thr = {}
            for b in BATCHES:
                batch = [imgs[i % len(imgs)] for i in range(b)]
                x, _ = seg.preprocess(batch)
                net = timed(lambda s=seg, x=x: s.forward_raw(x), cuda_sync, *RUNS)
                full = timed(lambda s=seg, bb=batch: s.segment(bb, params), cuda_sync, *RUNS)
                thr[str(b)] = {
                    "network_img_s": b / stats_ms(net)["median"] * 1e3,
                    "pipeline_img_s": b / stats_ms(full)["median"] * 1e3,
                    "pipeline_latency_ms": stats_ms(full),
                }
            best = max(thr, key=lambda k: thr[k]["pipeline_img_s"])
            row["throughput"] = thr
            row["best_batch"] = int(best)
            if model == "yolact_r50_550" and prec == "fp16":
                b1 = thr["1"]["pipeline_img_s"]
                row["target"] = {
                    "pipeline_b1_img_s": b1,
                    "target_img_s": R50_TARGET_IMG_S,
                    "met": b1 >= R50_TARGET_IMG_S,
                }
            del seg
            free_cuda()
        except Exception as e:  # noqa: BLE001 - INT8 may fail where FP16 worked: record both
            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback_tail"] = traceback.format_exc().strip().splitlines()[-3:]
        out[prec] = row
    errors = [p for p in ("fp16", "int8") if "error" in out[p]]
    if len(errors) == 2:
        raise RuntimeError(
            f"both engines failed: fp16: {out['fp16']['error']} | int8: {out['int8']['error']}"
        )
    return out


def step_tensorrt_r50_550(work: Path) -> dict[str, Any]:
    """TensorRT FP16/INT8 for YOLACT R50 550 (random calibrated weights)."""
    return _tensorrt_for(work, "yolact_r50_550")


def step_tensorrt_shipped(work: Path) -> dict[str, Any]:
    """TensorRT FP16/INT8 for the shipped YOLACT-SE R18 (its FP16 engine is the node's, cached)."""
    return _tensorrt_for(work, "yolact_se_r18_indoor")


def gpu_memory_mib(pid: int) -> dict[str, Any]:
    """nvidia-smi's compute apps: the MiB used by ``pid`` (0 when not listed) and the whole table."""
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"nvidia-smi: {e}"}
    if smi.returncode != 0:
        return {"error": (smi.stderr or smi.stdout).strip()}
    table = {}
    for line in smi.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            table[int(parts[0])] = float(parts[1]) if parts[1].replace(".", "").isdigit() else parts[1]
    return {
        "mib": table.get(pid, 0.0),
        "listed": pid in table,
        "table": {str(k): v for k, v in table.items()},
    }


def step_node_tensorrt(work: Path) -> dict[str, Any]:
    """instaseg_node with TensorRT FP16 on the GPU, lifecycle driven over DDS, fed a 640x480 stream."""
    require_cuda()
    from instaseg_ros.runtime.base import module_available

    frames, backend, precision = (100, "tensorrt", "fp16") if ON_GPU else (10, "torch", "fp32")
    missing = [m for m in ("rclpy", "vision_msgs", backend) if not module_available(m)]
    if missing:
        raise RuntimeError(
            f"cannot run the node with TensorRT: {missing} not importable (source env.sh / ROS 2)"
        )
    sys.path.insert(0, str(ROOT / "test"))
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 200 + 1))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_images.xml"))
    os.environ["INSTASEG_CACHE_DIR"] = str(work / "cache")  # the tensorrt_shipped step's engines
    from bench_node_overhead import Client
    from ros_probe import NodeProcess, Probe, wait_for

    from instaseg_ros.ros import conversions as conv

    prep = load_prepared(work)
    imgs = read_images(prep["images"])
    ns = f"/gpucheck{os.getpid()}"
    ros_args = [
        "-r",
        f"__ns:={ns}",
        "-r",
        "image:=camera/image",
        "-p",
        "autostart:=false",
        "-p",
        f"backend:={backend}",
        "-p",
        f"device:={DEVICE}",
        "-p",
        f"precision:={precision}",
        "-p",
        f"model.weights:={SHIPPED_YOLACT}",
        "-p",
        "score_threshold:=0.05",
        "-p",
        "debug_image:=false",
    ]
    node = NodeProcess(ros_args, work / "node.log")
    out: dict[str, Any] = {"frames": frames, "size": "640x480", "backend": backend, "precision": precision}
    probe = client = None
    try:
        probe = Probe(f"{ns}/instaseg_node", f"{ns}/camera/image")
        if not wait_for(lambda: probe.change_state_client.service_is_ready() or not node.alive(), 60, 0.1):
            raise RuntimeError("the node's lifecycle services did not appear in 60 s")
        if not node.alive():
            raise RuntimeError(f"the node process exited: {node.log()[-800:]}")
        mem = {"before_configure": gpu_memory_mib(node.proc.pid)}
        t0 = time.perf_counter()
        if not probe.transition("configure"):
            raise RuntimeError(f"configure failed: {node.log()[-800:]}")
        out["configure_s"] = time.perf_counter() - t0
        mem["after_configure"] = gpu_memory_mib(node.proc.pid)
        if not probe.transition("activate"):
            raise RuntimeError(f"activate failed: {node.log()[-800:]}")
        client = Client(f"{ns}/instaseg_node", f"{ns}/camera/image")
        if not client.wait_subscribed(False):
            raise RuntimeError("client and node did not connect over DDS")
        msgs = [conv.numpy_to_image(im, "bgr8") for im in imgs]
        lat, lost = [], 0
        for i in range(10 + frames):
            msg = msgs[i % len(msgs)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i, 0
            msg.header.frame_id = "gpu_check"
            dt = client.round_trip(msg, (1000 + i) * 1_000_000_000, False)
            if dt is None:
                lost += 1
            elif i >= 10:
                lat.append(dt)
        out["latency_ms"] = stats_ms(lat) if lat else None
        out["lost"] = lost
        mem["while_active"] = gpu_memory_mib(node.proc.pid)
        ok = probe.transition("deactivate") and probe.transition("cleanup")
        time.sleep(1.0)
        mem["after_cleanup"] = gpu_memory_mib(node.proc.pid)
        out["cleanup_ok"] = bool(ok)
        out["gpu_memory"] = mem
    finally:
        if client is not None:
            client.close()
        if probe is not None:
            probe.close()
        out["node_exit_code"] = node.stop()
        out["node_log_tail"] = node.log()[-1500:]
    return out


def step_amp_training(work: Path) -> dict[str, Any]:
    """``instaseg train`` of the shipped config with AMP on CUDA for ``iters`` iterations (small data)."""
    require_cuda()
    import yaml

    iters = 50 if ON_GPU else 4
    cfg = yaml.safe_load(TRAIN_CONFIG.read_text())
    run = work / "train"
    cfg["out_dir"] = str(run)
    bs = int(cfg["data"]["batch_size"])
    cfg["data"]["train"].update(num_images=bs * iters, cache_dir=str(work / "synth_train"))
    cfg["data"]["val"].update(num_images=8)
    cfg["data"]["num_workers"] = 4
    cfg["train"].update(
        amp=True,
        val_interval=10 * iters,
        checkpoint_interval=10 * iters,
        log_interval=5 if ON_GPU else 1,
        num_threads=4,
    )
    path = work / "train_amp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [
        sys.executable,
        "-m",
        "instaseg_ros.cli",
        "train",
        "--config",
        str(path),
        "--out",
        str(run),
        "--max-iters",
        str(iters),
        "--device",
        DEVICE,
        "--no-progress",
    ]
    timeout = float(os.environ.get("GPU_CHECK_STEP_TIMEOUT", "70")) - 8
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"instaseg train exited {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}")
    import csv

    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        raise RuntimeError(f"metrics.csv has {len(rows)} rows; need 2 to see the loss fall")
    loss = [float(r["loss_total"]) for r in rows]
    rate = sorted(float(r["images_per_s"]) for r in rows[1:])
    return {
        "iterations": iters,
        "batch_size": bs,
        "amp": ON_GPU,  # the config's amp: true; AMP is CUDA only (a CPU rehearsal trains in fp32)
        "device": DEVICE,
        "wall_s": wall,
        "loss_first": loss[0],
        "loss_last": loss[-1],
        "loss_falls": loss[-1] < loss[0],
        "loss_by_log": {r["iteration"]: float(r["loss_total"]) for r in rows},
        "images_per_s_median": rate[len(rate) // 2],
    }


def step_gpu_tests(work: Path) -> dict[str, Any]:
    """The suite's ``gpu``-marked tests (CUDA FP16 parity, TensorRT engines), outcome per test."""
    require_cuda()
    import re

    timeout = float(os.environ.get("GPU_CHECK_STEP_TIMEOUT", "45")) - 8
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-v",
        "-p",
        "no:cacheprovider",
        "test/runtime",
        "test/models",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
        text, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as e:
        raw = e.stdout or b""
        text, rc = raw.decode(errors="replace") if isinstance(raw, bytes) else raw, None
    outcomes = dict(re.findall(r"^(test/\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", text, re.MULTILINE))
    out = {
        "returncode": rc,
        "timed_out": rc is None,
        "tests": outcomes,
        "tail": text.strip().splitlines()[-15:],
    }
    if rc != 0:
        raise RuntimeError(f"gpu tests: exit {rc}, outcomes {outcomes}; tail: {' | '.join(out['tail'][-5:])}")
    return out


#: (name, function, needs CUDA, share of the budget in seconds at 480 s)
STEPS: list[tuple[str, Callable[[Path], dict[str, Any]], bool, float]] = [
    ("environment", step_environment, False, 15),
    ("prepare", step_prepare, False, 40),
    ("cuda_agreement", step_cuda_agreement, True, 55),
    ("tensorrt_r50_550", step_tensorrt_r50_550, True, 110),
    ("tensorrt_shipped", step_tensorrt_shipped, True, 60),
    ("node_tensorrt", step_node_tensorrt, True, 60),
    ("amp_training", step_amp_training, True, 70),
    ("gpu_tests", step_gpu_tests, True, 45),
]
STEP_FUNCS = {name: fn for name, fn, _, _ in STEPS}


# ----------------------------------------------------------------------------- running
def run_step_here(name: str, work: Path) -> dict[str, Any]:
    """Run one step in this process; never raises: status ok / skipped / failed with the reason."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"name": name}
    try:
        rec["result"] = STEP_FUNCS[name](work)
        rec["status"] = "ok"
    except Skip as e:
        rec.update(status="skipped", reason=str(e))
    except Exception as e:  # noqa: BLE001 - every failure is recorded; the next step still runs
        rec.update(
            status="failed",
            reason=f"{type(e).__name__}: {e}",
            traceback_tail=traceback.format_exc().strip().splitlines()[-4:],
        )
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec


def run_step_process(name: str, work: Path, timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """One step in a child process with a time limit; a crash or timeout becomes a failed record."""
    res = work / f"step_{name}.json"
    res.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--work", str(work)]
    t0 = time.perf_counter()
    env = dict(env, GPU_CHECK_STEP_TIMEOUT=str(int(timeout)))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
        tail = (proc.stderr or "").strip().splitlines()[-4:]
        if res.is_file():
            rec = json.loads(res.read_text())
        else:
            rec = {
                "name": name,
                "status": "failed",
                "reason": f"the step's process exited {proc.returncode} without a result",
                "stderr_tail": tail,
            }
    except subprocess.TimeoutExpired:
        rec = {"name": name, "status": "failed", "reason": f"timeout: the step ran past its {timeout:.0f} s"}
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    rec["timeout_s"] = round(timeout, 1)
    return rec


def _f(v: Any, fmt: str = ".1f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def summary(steps: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown tables of the headline numbers of the steps that produced results."""
    lines: list[str] = []
    res = steps.get("cuda_agreement", {}).get("result") or {}
    rows = [
        (m, k, a)
        for m, r in res.items()
        if isinstance(r, dict)
        for k, a in r.items()
        if isinstance(a, dict) and "matched" in a
    ]
    if rows:
        lines += [
            "",
            "Agreement with CPU FP32 (torch), and batch-1 latency:",
            "",
            "| model | run | matched / ref | unexplained | max box px | max score | min mask IoU | ms p50 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m, k, a in rows:
            lat = res[m].get(f"{k}_latency_ms", {}).get("median")
            lines.append(
                f"| {m} | {k} | {a['matched']} / {a['n_ref']} | {a['unexplained_unmatched']} | "
                f"{_f(a['max_box_diff_px'], '.2f')} | {_f(a['max_score_diff'], '.3f')} | "
                f"{_f(a['min_mask_iou'], '.3f')} | {_f(lat, '.2f')} |"
            )
    trt = [(n, steps[n].get("result") or {}) for n in ("tensorrt_r50_550", "tensorrt_shipped") if n in steps]
    trt_rows = [(n, p, r[p]) for n, r in trt for p in ("fp16", "int8") if isinstance(r.get(p), dict)]
    if trt_rows:
        lines += [
            "",
            "TensorRT engines vs PyTorch FP32 on CUDA (images/s: pre-processing to Instances):",
            "",
            "| model | precision | build s | matched / ref | min mask IoU | b1 img/s | best batch | img/s | "
            "network b1 img/s | error |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, p, r in trt_rows:
            a, thr = r.get("agreement_vs_torch_fp32") or {}, r.get("throughput") or {}
            best = str(r.get("best_batch", ""))
            b1, bb = thr.get("1", {}), thr.get(best, {})
            cells = [
                n,
                p,
                _f(r.get("load_and_build_s")),
                f"{a.get('matched', '-')} / {a.get('n_ref', '-')}",
                _f(a.get("min_mask_iou"), ".3f"),
                _f(b1.get("pipeline_img_s")),
                best or "-",
                _f(bb.get("pipeline_img_s")),
                _f(b1.get("network_img_s")),
                str(r.get("error", ""))[:120],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    node = steps.get("node_tensorrt", {}).get("result")
    if node:
        lat, mem = node.get("latency_ms") or {}, node.get("gpu_memory") or {}
        what = (
            f"{node.get('backend')} {node.get('precision')}, {node.get('size')}, {node.get('frames')} frames"
        )
        lines += [
            "",
            f"Node ({what} over DDS): latency p50 {_f(lat.get('median'), '.2f')} ms, "
            f"p95 {_f(lat.get('p95'), '.2f')} ms, lost {node.get('lost')}; GPU MiB (nvidia-smi, node pid): "
            + ", ".join(f"{k} {_f(v.get('mib'), '.0f')}" for k, v in mem.items()),
        ]
    train = steps.get("amp_training", {}).get("result")
    if train:
        lines += [
            "",
            f"Training ({train['iterations']} iterations, batch {train['batch_size']}, AMP {train['amp']}): "
            f"loss {train['loss_first']:.3f} -> {train['loss_last']:.3f} (falls: {train['loss_falls']}), "
            f"{train['images_per_s_median']:.1f} images/s",
        ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown: a status table, the headline numbers, then each step's full result."""
    lines = [
        f"# GPU check {report['date']}",
        "",
        f"Dry run: {report['dry_run']}; CPU rehearsal: {report['rehearsal_on_cpu']}; "
        f"budget {report['budget_s']:.0f} s, used {report['total_s']:.0f} s.",
        "",
        "| step | status | seconds | reason |",
        "|---|---|---|---|",
    ]
    for s in report["steps"]:
        reason = str(s.get("reason", "")).replace("|", "/").replace("\n", " ")[:300]
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']:.1f} | {reason} |")
    try:
        lines += summary({s["name"]: s for s in report["steps"]})
    except (KeyError, TypeError, ValueError) as e:  # the full results below are still written
        lines += ["", f"(summary failed: {type(e).__name__}: {e})"]
    for s in report["steps"]:
        if s.get("result") is None:
            continue
        lines += [
            "",
            f"## {s['name']}",
            "",
            "```json",
            json.dumps(s["result"], indent=1, default=str)[:6000],
            "```",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all steps together")
    ap.add_argument("--dry-run", action="store_true", help="hide the GPUs: every CUDA step must skip cleanly")
    ap.add_argument(
        "--rehearse-on-cpu",
        action="store_true",
        help="run the CUDA steps' code on the CPU (fewer runs, no TensorRT): checks the script, not the GPU",
    )
    ap.add_argument("--steps", default="", help="comma-separated subset of: " + ",".join(STEP_FUNCS))
    ap.add_argument("--work", default="", help="work folder (default: a temporary one)")
    ap.add_argument("--install-log", default="", help="the install log of gpu_check.sh (recorded)")
    ap.add_argument("--step", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:  # child: one step, result as JSON
        work = Path(args.work)
        rec = run_step_here(args.step, work)
        (work / f"step_{args.step}.json").write_text(json.dumps(rec, indent=1, default=str))
        return 0
    names = [n.strip() for n in args.steps.split(",") if n.strip()] or list(STEP_FUNCS)
    unknown = [n for n in names if n not in STEP_FUNCS]
    if unknown:
        print(f"gpu_check: unknown steps {unknown}; known: {list(STEP_FUNCS)}", file=sys.stderr)
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if args.dry_run and args.rehearse_on_cpu:
        print("gpu_check: --dry-run and --rehearse-on-cpu exclude each other", file=sys.stderr)
        return 2
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if args.rehearse_on_cpu:
        env["GPU_CHECK_DEVICE"] = "cpu"
    shares = {n: s for n, _, _, s in STEPS if n in names}
    start = time.perf_counter()
    records = []
    for name in names:
        left = args.budget - (time.perf_counter() - start)
        share = shares[name] * args.budget / 480.0
        timeout = max(5.0, min(share, left))
        rec = run_step_process(name, work, timeout, env)
        records.append(rec)
        print(
            f"{name:18s} {rec['status']:8s} {rec['seconds']:7.1f} s  {rec.get('reason', '')}"[:300],
            flush=True,
        )
    now = datetime.now(timezone.utc)
    report = {
        "benchmark": "gpu_check (benchmarks/gpu_check.sh)",
        "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dry_run": args.dry_run,
        "rehearsal_on_cpu": args.rehearse_on_cpu,
        "budget_s": args.budget,
        "total_s": time.perf_counter() - start,
        "install_log": Path(args.install_log).read_text()[-3000:]
        if args.install_log and Path(args.install_log).is_file()
        else None,
        "steps": records,
    }
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"gpu_{now.strftime('%Y%m%dT%H%MZ')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
