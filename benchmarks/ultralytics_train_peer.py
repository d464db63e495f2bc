"""Peer side of ``train_vs_ultralytics.py``: train and run Ultralytics YOLO11n-seg in its own environment.

Ultralytics is AGPL-3.0: this file imports it and runs only as a child process of
``train_vs_ultralytics.py``, with the python of the separate virtual environment that
``bench_ultralytics.py`` creates; neither the ``instaseg_ros`` package nor the main process imports it.

    python ultralytics_train_peer.py train --data data.yaml --project DIR --name NAME --budget-min 60 \\
        [--imgsz 320] [--seed 0] [--threads 1] --summary train.json
    python ultralytics_train_peer.py predict --weights best.pt --coco annotations.json --images-root DIR \\
        [--imgsz 320] [--conf 0.05] [--max-det 100] [--threads 1] --out results.json

``train``: ``YOLO("yolo11n-seg.yaml").train(data, time=budget_h, imgsz, device="cpu", workers=0, seed,
pretrained=False, plots=False)``, every other argument at its default (as a new user would). Offline:
``YOLO_OFFLINE=1``; the dataset check's font download (``check_font``, only needed for plots) is replaced
by a no-op; and every socket connection or DNS look-up is refused and recorded (``network_attempts`` in
the summary, expected 0). Writes the summary JSON (wall and process CPU seconds, epochs, best/last weights).

``predict``: ``YOLO(weights).predict(image, imgsz, conf, max_det, retina_masks=True)`` on every image of
the COCO file -> COCO results through ``yolo_seg_io.predictions_to_coco`` (the conversion our results use).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NETWORK_ATTEMPTS: list[str] = []


def _block_network() -> None:
    """Refuse (and record) every DNS look-up and socket connection in this process."""

    def refuse(what: str):
        def f(*args: Any, **kw: Any):
            NETWORK_ATTEMPTS.append(f"{what}{args[:2]!r}")
            raise OSError(f"network disabled by ultralytics_train_peer ({what})")

        return f

    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]
    socket.create_connection = refuse("create_connection")  # type: ignore[assignment]
    socket.socket.connect = refuse("connect")  # type: ignore[method-assign]


def _setup(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import settings

    torch_utils.NUM_THREADS = threads  # select_device() resets torch threads to this on CPU
    data_utils.check_font = lambda *a, **k: None  # font download for plots only (plots=False)
    settings.update({"sync": False})


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from ultralytics import YOLO
    from ultralytics import __version__ as ul_version

    threads_seen: list[int] = []
    t0, c0 = time.time(), _cpu_s()
    model = YOLO("yolo11n-seg.yaml", task="segment")
    batches = [0]
    model.add_callback("on_train_epoch_start", lambda trainer: threads_seen.append(torch.get_num_threads()))
    model.add_callback("on_train_batch_end", lambda trainer: batches.__setitem__(0, batches[0] + 1))
    model.train(data=args.data, time=args.budget_min / 60.0, imgsz=args.imgsz, device="cpu", workers=0,
                seed=args.seed, pretrained=False, plots=False, project=args.project, name=args.name,
                exist_ok=True, verbose=True)  # fmt: skip
    trainer = model.trainer
    wall, cpu = time.time() - t0, _cpu_s() - c0
    save_dir = Path(trainer.save_dir)
    csv = save_dir / "results.csv"
    return {
        "ultralytics": ul_version, "torch": torch.__version__, "python": sys.version.split()[0],
        "wall_s": wall, "cpu_s": cpu,
        "train_time_s": time.time() - trainer.train_time_start,
        "epochs_done": int(trainer.epoch) + 1, "epochs_planned": int(trainer.epochs),
        "iterations_per_epoch": len(trainer.train_loader), "batch": int(trainer.batch_size),
        "iterations_done": batches[0],
        "train_images": len(trainer.train_loader.dataset),
        "torch_threads_per_epoch": threads_seen,
        "best": str(save_dir / "weights/best.pt"), "last": str(save_dir / "weights/last.pt"),
        "save_dir": str(save_dir), "results_csv": csv.read_text() if csv.exists() else None,
        "args": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
                 for k, v in vars(trainer.args).items()},
        "network_attempts": list(NETWORK_ATTEMPTS),
    }  # fmt: skip


def predict(args: argparse.Namespace) -> dict[str, Any]:
    import cv2
    import numpy as np
    from ultralytics import YOLO
    from yolo_seg_io import predictions_to_coco

    coco = json.loads(Path(args.coco).read_text())
    names = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
    yolo = YOLO(args.weights, task="segment")
    model_names = [yolo.names[i] for i in range(len(yolo.names))]
    if model_names != names:
        raise ValueError(f"class names of {args.weights} {model_names} != the COCO file's {names}")
    results, times = [], []
    t0, c0 = time.time(), _cpu_s()
    for im in coco["images"]:
        img = cv2.imread(str(Path(args.images_root) / im["file_name"]), cv2.IMREAD_COLOR)
        t = time.perf_counter()
        r = yolo.predict(img, imgsz=args.imgsz, conf=args.conf, max_det=args.max_det, retina_masks=True,
                         device="cpu", verbose=False)[0]  # fmt: skip
        boxes = r.boxes.xyxy.cpu().numpy()
        scores = r.boxes.conf.cpu().numpy()
        classes = r.boxes.cls.cpu().numpy().astype(np.int64)
        masks = (
            (r.masks.data.cpu().numpy() > 0.5) if r.masks is not None else np.zeros((0, *img.shape[:2]), bool)
        )
        times.append(time.perf_counter() - t)
        results += predictions_to_coco(boxes, scores, classes, masks, im["id"], names)
    Path(args.out).write_text(json.dumps(results))
    return {"images": len(coco["images"]), "detections": len(results), "wall_s": time.time() - t0,
            "cpu_s": _cpu_s() - c0, "latency_s": {"median": float(np.median(times)),
                                                 "p95": float(np.percentile(times, 95))},
            "network_attempts": list(NETWORK_ATTEMPTS)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--project", required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--budget-min", type=float, required=True)
    t.add_argument("--imgsz", type=int, default=320)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--summary", required=True)
    p = sub.add_parser("predict")
    p.add_argument("--weights", required=True)
    p.add_argument("--coco", required=True)
    p.add_argument("--images-root", required=True)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--conf", type=float, default=0.05)
    p.add_argument("--max-det", type=int, default=100)
    p.add_argument("--out", required=True)
    p.add_argument("--summary", required=True)
    for s in (t, p):
        s.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    sys.path[:0] = [str(HERE), str(HERE.parent)]  # yolo_seg_io and instaseg_ros (not installed in this venv)
    _block_network()
    _setup(args.threads)
    summary = train(args) if args.cmd == "train" else predict(args)
    Path(args.summary).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("results_csv", "args")}), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("YOLO_OFFLINE", "1")
    sys.exit(main())
