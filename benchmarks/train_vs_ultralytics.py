"""Accuracy per hour of training (issue 24): our YOLACT-SE vs Ultralytics YOLO11n-seg, same data, same budget.

    python benchmarks/train_vs_ultralytics.py --side peer|ours|both [--budget-min 60] \\
        [--config config/train/yolact_se_synthetic_r18.yaml] [--workdir /tmp/tvu24] [--no-latency]

Each side trains on the same rendered training set with the same wall-clock budget on ONE CPU thread
(``OMP_NUM_THREADS=1``, torch threads 1), in its own process; both are then scored on the same 300 held-out
scenes with OUR COCO evaluator (``instaseg_ros.evaluation.coco_eval.evaluate_coco``), and, once both are
trained, timed end to end in interleaved rounds (torch and ONNX Runtime, 1 thread). Results of separate
invocations merge into ``benchmarks/results/train_vs_ultralytics.{json,md}``, so one side can run now and
the other later.

Data (rendered once under ``<workdir>/data``, reused afterwards): the training set of the config
(``data.train``: the shipped recipe's 4000 scenes 320x240, seed 1) as COCO (PNG + JSON) plus Ultralytics
YOLO-seg polygon labels next to it (``labels/``, see ``yolo_seg_io`` for how masks become polygons,
multi-part instances included); the config's validation set (100 scenes, seed 1000: what each trainer
validates on and selects its best checkpoint by); the 300 held-out scenes (seed 2000, never seen in training).

* The peer (``ultralytics_train_peer.py``, run with the python of the separate environment created by
  ``bench_ultralytics.ensure_venv``; Ultralytics is AGPL and is never imported here): YOLO11n-seg from
  ``yolo11n-seg.yaml`` trained from scratch as a new user would, defaults except ``time=<budget h>,
  imgsz=320, device=cpu, workers=0, seed=0, pretrained=False, plots=False`` (the images are 320x240;
  imgsz=320 is their long side; training letterboxes/mosaics to 320x320, prediction to 320x256), network
  off. Its ``best.pt`` predicts with ``conf=0.05, max_det=100, retina_masks=True``.
* Ours: ``instaseg train --config <config with optim.time_budget_min=<budget>, data.train.cache_dir=the
  rendered set, train.num_threads=1> --device cpu``; its ``best.pth`` predicts with score threshold 0.05,
  top-k 100 (as ``instaseg_ros.training.heldout`` does).

Records per side: the commands, the commit, process CPU seconds and wall seconds of training, the 1-minute
load average sampled every 30 s while it trained, versions; and per-class AP, AP50, AP75 of boxes and masks.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
TRAIN_PEER = ROOT / "benchmarks/ultralytics_train_peer.py"
DEFAULT_CONFIG = ROOT / "config/train/yolact_se_synthetic_r18.yaml"
HELDOUT = {"num_images": 300, "seed": 2000}
SCORE_THRESHOLD, TOP_K = 0.05, 100
LATENCY_CONF = 0.25  # one threshold for both sides when timing (Ultralytics' predict default)


class UsageError(Exception):
    """Bad arguments or inputs: reported as one line, exit status 2."""


# ----------------------------------------------------------------------------------------------- data
def _set_dir(spec: dict[str, Any], kind: str) -> str:
    w, h = spec.get("width", 640), spec.get("height", 480)
    extra = "".join(f"_{k}{v}" for k, v in sorted((spec.get("synth") or {}).items()))
    return f"{kind}_{w}x{h}_s{spec['seed']}_n{spec['num_images']}{extra}"


def render_coco(folder: Path, spec: dict[str, Any]) -> Path:
    """Render the synthetic set ``spec`` (num_images, seed, width, height, synth) to ``folder`` as COCO
    (once: a finished folder is reused)."""
    from instaseg_ros.data.synthetic import SynthConfig, SyntheticDataset, write_coco

    ann = folder / "annotations.json"
    if not ann.is_file():
        print(f"rendering {spec['num_images']} scenes (seed {spec['seed']}) to {folder} ...", flush=True)
        cfg = SynthConfig(
            width=spec.get("width", 640), height=spec.get("height", 480), **(spec.get("synth") or {})
        )
        ds = SyntheticDataset(spec["num_images"], seed=spec["seed"], config=cfg)
        tmp = folder.with_name(folder.name + ".partial")
        write_coco(tmp, (ds.scene(i) for i in range(len(ds))))
        tmp.rename(folder)
    return ann


def yolo_labels(folder: Path) -> dict[str, Any]:
    """YOLO-seg labels for the COCO set in ``folder`` (written once; counts cached in labels.json)."""
    from yolo_seg_io import coco_to_yolo_labels

    done = folder / "labels.json"
    if not done.is_file():
        done.write_text(json.dumps(coco_to_yolo_labels(folder / "annotations.json")))
    return json.loads(done.read_text())


def prepare_data(data_dir: Path, train_spec: dict[str, Any], val_spec: dict[str, Any]) -> dict[str, Any]:
    """Render train / val / held-out sets and the YOLO labels + dataset YAML -> paths and counts."""
    from yolo_seg_io import dataset_yaml

    data_dir.mkdir(parents=True, exist_ok=True)
    held_spec = {**HELDOUT, "width": train_spec.get("width", 640), "height": train_spec.get("height", 480)}
    sets = {"train": (train_spec, "train"), "val": (val_spec, "val"), "heldout": (held_spec, "heldout")}
    out: dict[str, Any] = {}
    for key, (spec, kind) in sets.items():
        folder = data_dir / _set_dir(spec, kind)
        render_coco(folder, spec)
        out[key] = {"dir": str(folder), "spec": spec}
        if key != "heldout":
            out[key]["labels"] = yolo_labels(folder)
    names = out["train"]["labels"]["class_names"]
    train_dir, val_dir = Path(out["train"]["dir"]), Path(out["val"]["dir"])
    yaml_path = data_dir / f"{train_dir.name}.yaml"
    out["yolo_yaml"] = str(dataset_yaml(yaml_path, train_dir / "images", val_dir / "images", names))
    return out


# ------------------------------------------------------------------------------------- child processes
class LoadSampler:
    """Samples ``os.getloadavg()`` every ``period`` seconds in a thread while a child trains."""

    def __init__(self, period: float = 30.0) -> None:
        self.period, self.samples = period, []
        self._stop = threading.Event()
        self._t0 = time.time()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append([round(time.time() - self._t0, 1), *os.getloadavg()])
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append([round(time.time() - self._t0, 1), *os.getloadavg()])

    def summary(self) -> dict[str, Any]:
        one = [s[1] for s in self.samples]
        return {"period_s": self.period, "load1_mean": float(np.mean(one)), "load1_max": float(np.max(one)),
                "samples": self.samples}  # fmt: skip


def run_child(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` (stdout+stderr -> ``log``) -> wall s, CPU s of the child (user + sys) and load samples."""
    print("$", shlex.join(cmd), f"(log: {log})", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    with LoadSampler() as load, open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if rc != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"{cmd[1] if len(cmd) > 1 else cmd[0]} exited {rc} (see {log}): {tail[0]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": time.time() - t0, "cpu_s": cpu, "load": load.summary()}


def _peer_env() -> dict[str, str]:
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "true",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    return env


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def evaluate(gt_json: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Our COCO evaluator on the held-out set -> box/mask AP, AP50, AP75, per class."""
    from instaseg_ros.evaluation.coco_eval import evaluate_coco

    m = evaluate_coco(json.loads(gt_json.read_text()), results)
    keep = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "per_class")
    return {
        "num_detections": m["num_detections"],
        **{t: {k: m[t][k] for k in keep} for t in ("bbox", "segm")},
    }


# --------------------------------------------------------------------------------------------- sides
def run_peer(args: argparse.Namespace, data: dict[str, Any], work: Path) -> dict[str, Any]:
    from bench_ultralytics import ensure_venv

    python = ensure_venv(Path(args.venv).expanduser(), args.ultralytics)
    side = work / "peer"
    side.mkdir(parents=True, exist_ok=True)
    summary = side / "train_summary.json"
    train_cmd = [str(python), str(TRAIN_PEER), "train", "--data", data["yolo_yaml"], "--project", str(side),
                 "--name", "run", "--budget-min", str(args.budget_min), "--imgsz", "320", "--seed", "0",
                 "--threads", "1", "--summary", str(summary)]  # fmt: skip
    record: dict[str, Any] = {"train_command": shlex.join(train_cmd)}
    if summary.is_file() and not args.retrain:
        print(f"peer: reusing the finished run in {side} (--retrain to train again)", flush=True)
        record["train_process"] = json.loads((side / "train_process.json").read_text())
    else:
        record["train_process"] = run_child(train_cmd, side / "train.log", _peer_env())
        (side / "train_process.json").write_text(json.dumps(record["train_process"]))
    record["train"] = json.loads(summary.read_text())
    held = Path(data["heldout"]["dir"])
    pred_json, pred_summary = side / "heldout_results.json", side / "predict_summary.json"
    pred_cmd = [str(python), str(TRAIN_PEER), "predict", "--weights", record["train"]["best"],
                "--coco", str(held / "annotations.json"), "--images-root", str(held), "--imgsz", "320",
                "--conf", str(SCORE_THRESHOLD), "--max-det", str(TOP_K), "--threads", "1",
                "--out", str(pred_json), "--summary", str(pred_summary)]  # fmt: skip
    record["predict_command"] = shlex.join(pred_cmd)
    record["predict_process"] = run_child(pred_cmd, side / "predict.log", _peer_env())
    record["predict"] = json.loads(pred_summary.read_text())
    record["heldout"] = evaluate(held / "annotations.json", json.loads(pred_json.read_text()))
    record["weights"] = record["train"]["best"]
    return record


def ours_config(config: Path, data: dict[str, Any], budget_min: float, out_dir: Path) -> dict[str, Any]:
    """The training config of our side: ``config`` with the budget, the rendered set and 1 thread."""
    import yaml

    cfg = yaml.safe_load(config.read_text())
    cfg.setdefault("optim", {})["time_budget_min"] = float(budget_min)
    cfg["data"]["train"]["cache_dir"] = data["train"]["dir"]
    cfg.setdefault("train", {})["num_threads"] = 1
    cfg["out_dir"] = str(out_dir)
    return cfg


def run_ours(args: argparse.Namespace, data: dict[str, Any], work: Path) -> dict[str, Any]:
    import yaml

    side = work / "ours"
    side.mkdir(parents=True, exist_ok=True)
    run_dir = side / "run"
    cfg_path = side / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(ours_config(Path(args.config), data, args.budget_min, run_dir),
                                       sort_keys=False))  # fmt: skip
    train_cmd = [sys.executable, "-m", "instaseg_ros.cli", "train", "--config", str(cfg_path),
                 "--device", "cpu", "--no-progress"]  # fmt: skip
    record: dict[str, Any] = {
        "train_command": shlex.join(["instaseg", *train_cmd[3:]]),
        "config_source": str(Path(args.config).resolve()),
        "config": str(cfg_path),
    }
    if (run_dir / "report.json").is_file() and not args.retrain:
        print(f"ours: reusing the finished run in {run_dir} (--retrain to train again)", flush=True)
        record["train_process"] = json.loads((side / "train_process.json").read_text())
    else:
        record["train_process"] = run_child(train_cmd, side / "train.log")
        (side / "train_process.json").write_text(json.dumps(record["train_process"]))
    rep = json.loads((run_dir / "report.json").read_text())
    record["train"] = {k: rep.get(k) for k in ("iterations", "best_iteration", "stopped_by", "train_wall_s",
                                               "train_cpu_s", "time_budget_min", "ema", "num_threads",
                                               "best_metric", "select_metric")}  # fmt: skip
    record["train"]["batch_size"] = yaml.safe_load(cfg_path.read_text())["data"].get("batch_size")
    record["weights"] = str(run_dir / "best.pth")
    record["heldout"], record["predict"] = predict_ours(record["weights"], Path(data["heldout"]["dir"]))
    return record


def predict_ours(weights: str, held: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our best checkpoint on the held-out PNGs (score >= 0.05, top-k 100) -> (metrics, timing)."""
    import cv2
    import torch

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.coco_eval import instances_to_coco
    from instaseg_ros.models.loading import load_model

    torch.set_num_threads(1)
    gt = json.loads((held / "annotations.json").read_text())
    seg = load_model("yolact", weights)
    params = InferenceParams(score_threshold=SCORE_THRESHOLD, top_k=TOP_K)
    results, times = [], []
    c0, t0 = time.process_time(), time.time()
    for im in gt["images"]:
        img = cv2.imread(str(held / im["file_name"]), cv2.IMREAD_COLOR)
        t = time.perf_counter()
        inst = seg.segment([img], params)[0]
        times.append(time.perf_counter() - t)
        results += instances_to_coco(inst, im["id"])
    timing = {
        "images": len(gt["images"]),
        "detections": len(results),
        "wall_s": time.time() - t0,
        "cpu_s": time.process_time() - c0,
        "latency_s": {"median": float(np.median(times)), "p95": float(np.percentile(times, 95))},
    }
    return evaluate(held / "annotations.json", results), timing


# ------------------------------------------------------------------------------------------- latency
def latency(
    doc: dict[str, Any], data: dict[str, Any], work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Interleaved end-to-end timing of both trained models, 1 thread, torch and ONNX Runtime, on the first
    ``--latency-images`` held-out scenes at one score threshold (0.25) and top-k 100 for both."""
    import cv2
    import torch
    from bench_ultralytics import PeerProcess, ensure_venv, stats

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.models.loading import load_model

    torch.set_num_threads(1)
    held = Path(data["heldout"]["dir"])
    names = sorted((held / "images").glob("*.png"))[: args.latency_images]
    img_dir = work / "latency_images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for p in names:
        if not (img_dir / p.name).exists():
            (img_dir / p.name).write_bytes(p.read_bytes())
    images = [cv2.imread(str(img_dir / p.name), cv2.IMREAD_COLOR) for p in names]
    params = InferenceParams(score_threshold=LATENCY_CONF, top_k=TOP_K)
    w = doc["ours"]["weights"]
    ours = {"ours_torch": load_model("yolact", w, params=params),
            "ours_onnxruntime": load_model("yolact", w, backend="onnxruntime", params=params,
                                           backend_options={"threads": 1})}  # fmt: skip
    python = ensure_venv(Path(args.venv).expanduser(), args.ultralytics)
    pwork = work / "peer_latency"
    pwork.mkdir(parents=True, exist_ok=True)
    peer = PeerProcess(python, img_dir, pwork)
    theirs = {}
    try:
        for backend in ("torch", "onnxruntime"):
            key = f"yolo11n_seg_{backend}"
            theirs[key] = peer.call(
                "load",
                key=key,
                imgsz=320,
                backend=backend,
                seed=0,
                nc=5,
                retina=True,
                cls_mean=0.0,
                cls_q999=0.0,
                weights=doc["peer"]["weights"],
                max_det=TOP_K,
            )
        configs = list(ours) + list(theirs)
        times = {k: {"wall": [], "cpu": [], "dets": []} for k in configs}

        def once(key: str, i: int) -> tuple[float, float, int]:
            if key in theirs:
                r = peer.call("run", key=key, index=i, conf=LATENCY_CONF)
                return r["wall_ms"], r["cpu_ms"], r["dets"]
            c, t = time.process_time(), time.perf_counter()
            n = len(ours[key].segment([images[i]], params)[0])
            return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000, n

        for key in configs:
            for i in range(args.latency_warmup):
                once(key, i % len(images))
        for r in range(args.latency_runs):
            for key in configs[r % len(configs) :] + configs[: r % len(configs)]:
                wall, cpu, n = once(key, r % len(images))
                times[key]["wall"].append(wall)
                times[key]["cpu"].append(cpu)
                times[key]["dets"].append(n)
    finally:
        peer.close()
    if "ultralytics" in sys.modules:  # AGPL: must stay in the peer's process
        raise RuntimeError("ultralytics was imported into the benchmark's main process")
    rows = {k: {"e2e_ms": stats(t["wall"]), "cpu_ms": stats(t["cpu"]), "mean_dets": float(np.mean(t["dets"]))}
            for k, t in times.items()}  # fmt: skip
    for k, info in theirs.items():
        rows[k]["input"] = "x".join(str(v) for v in info["input_shape"][2:][::-1])
    for k in ours:
        x = ours[k].preprocess([images[0]])[0]  # [1, 3, h, w] network input
        rows[k]["input"] = f"{x.shape[-1]}x{x.shape[-2]}"
    return {"images": len(images), "image_size": "320x240", "score_threshold": LATENCY_CONF, "top_k": TOP_K,
            "warmup": args.latency_warmup, "runs": args.latency_runs, "threads": 1, "rows": rows,
            "loadavg": list(os.getloadavg())}  # fmt: skip


# ------------------------------------------------------------------------------------------- report
def _trained(side: str, t: dict[str, Any]) -> str:
    """What a side's training did, e.g. ``1100 it x 8 (time_budget)`` or ``6 epochs x 250 it x 16``."""
    if side == "ours":
        return f"{t.get('iterations')} it x {t.get('batch_size')} ({t.get('stopped_by')})"
    its = f"{t['iterations_done']} it" if "iterations_done" in t else f"{t['iterations_per_epoch']} it/epoch"
    return f"{t['epochs_done']} epochs, {its} x {t['batch']} (time)"


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A sentence on whether the two trainings ran at the same time (start minute + process wall time)."""
    import calendar

    def span(s: dict[str, Any]) -> tuple[float, float]:
        t0 = calendar.timegm(time.strptime(s["date_utc"], "%Y-%m-%d %H:%M"))
        return t0, t0 + s["train_process"]["wall_s"]

    (a0, a1), (b0, b1) = span(a), span(b)
    both = max(0.0, min(a1, b1) - max(a0, b0)) / 60
    ratio = a["train_process"]["cpu_s"] / max(b["train_process"]["cpu_s"], 1e-9)
    return (
        f"The two trainings overlapped for about {both:.0f} min (each also shared the 2 cores with other "
        f"work; see the load column). CPU seconds of training, {a['label']} / {b['label']}: {ratio:.2f}."
    )


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Accuracy per hour of training: YOLACT-SE (ours) vs YOLO11n-seg (Ultralytics), same data, "
        "1 CPU thread",
        "",
    ]
    m = doc.get("machine", {})
    lines += [
        f"Machine: {m.get('cpu')} ({m.get('nproc')} cores, shared with other work), torch {m.get('torch')}, "
        f"onnxruntime {m.get('onnxruntime')}. Held-out: {HELDOUT['num_images']} scenes, seed "
        f"{HELDOUT['seed']}, 320x240; scored with instaseg_ros.evaluation.coco_eval (pycocotools), "
        f"score >= {SCORE_THRESHOLD}, top-k {TOP_K}.",
        "",
    ]
    sides = [(k, doc[k]) for k in ("ours", "peer") if k in doc]
    if sides:
        lines += [
            "| side | budget | trained | train wall s | train CPU s | load1 mean/max | box AP | box AP50 "
            "| box AP75 | mask AP | mask AP50 | mask AP75 |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for k, s in sides:
            tp, h = s["train_process"], s["heldout"]
            stopped = _trained(k, s["train"])
            lines.append(
                f"| {s['label']} | {s['budget_min']:g} min | {stopped} | {tp['wall_s']:.0f} | "
                f"{tp['cpu_s']:.0f} | {tp['load']['load1_mean']:.2f} / {tp['load']['load1_max']:.2f} | "
                + " | ".join(f"{h[t][a]:.3f}" for t in ("bbox", "segm") for a in ("AP", "AP50", "AP75"))
                + " |"
            )
        classes = list(sides[0][1]["heldout"]["segm"]["per_class"])
        lines += [
            "",
            "Per-class AP (box / mask):",
            "",
            "| class | " + " | ".join(s["label"] for _, s in sides) + " |",
            "|---|" + "---:|" * len(sides),
        ]
        for c in classes:
            lines.append(
                f"| {c} | "
                + " | ".join(
                    f"{s['heldout']['bbox']['per_class'][c]:.3f} / {s['heldout']['segm']['per_class'][c]:.3f}"
                    for _, s in sides
                )
                + " |"
            )
        if len(sides) == 2:
            lines += ["", _overlap(sides[0][1], sides[1][1])]
        lines += ["", "Commands and commits:", ""]
        for _, s in sides:
            lines.append(
                f"- {s['label']} (commit {s['commit'][:10]}{' + local changes' if s['dirty'] else ''}, "
                f"{s['date_utc']}): `{s['train_command']}`"
            )
    if "latency" in doc:
        la = doc["latency"]
        lines += [
            "",
            f"End-to-end latency, interleaved, 1 thread, {la['images']} held-out images 320x240, score >= "
            f"{la['score_threshold']}, top-k {la['top_k']}, {la['warmup']} warm-up + {la['runs']} rounds "
            f"(load average at the end {la['loadavg'][0]:.2f}):",
            "",
            "| model | input | e2e median ms | e2e p95 ms | CPU median ms | dets/img |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for k, r in la["rows"].items():
            lines.append(
                f"| {k} | {r['input']} | {r['e2e_ms']['median']:.1f} | {r['e2e_ms']['p95']:.1f} | "
                f"{r['cpu_ms']['median']:.1f} | {r['mean_dets']:.1f} |"
            )
    lines += ["", "Notes:", *[f"- {n}" for n in doc.get("notes", [])], ""]
    return "\n".join(lines)


NOTES = [
    "Same training set for both (config data.train, rendered once as PNG + COCO JSON); the peer's polygon "
    "labels come from the instance masks by OpenCV outer contours (holes filled; multi-part instances joined "
    "into one polygon by zero-width bridges), see benchmarks/yolo_seg_io.py; labels.json in the data folder "
    "has the counts.",
    "Both validate on the config's 100 validation scenes (seed 1000) and are scored with their best "
    "checkpoint (Ultralytics best.pt by its fitness, ours best.pth by segm AP).",
    "Peer: yolo11n-seg.yaml from scratch, Ultralytics defaults except time=budget, imgsz=320 (the images are "
    "320x240), device=cpu, workers=0, seed=0, pretrained=False, plots=False (plots need a font download); "
    "network refused and recorded (train.network_attempts). Ultralytics' time budget counts from the start "
    "of its first epoch and includes its per-epoch validation; ours counts from the start of its training "
    "loop. Wall and CPU seconds above are whole training processes (data loading, set-up and final report "
    "included).",
    "Each side keeps its own NMS (ours Fast NMS IoU 0.5, Ultralytics NMS IoU 0.7).",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", required=True, choices=("peer", "ours", "both"))
    ap.add_argument(
        "--budget-min", type=float, default=60.0, help="training wall-clock budget per side (minutes)"
    )
    ap.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="our training config (data.train = the set)"
    )
    ap.add_argument("--workdir", default="/tmp/tvu24", help="runs and logs")
    ap.add_argument("--data-dir", default=None, help="rendered data sets (default: <workdir>/data)")
    ap.add_argument(
        "--out",
        default=str(ROOT / "benchmarks/results/train_vs_ultralytics"),
        help="results path without suffix (.json and .md; merged with what is there)",
    )
    ap.add_argument("--retrain", action="store_true", help="train again even if the side's run finished")
    ap.add_argument("--no-latency", action="store_true", help="skip the interleaved timing")
    ap.add_argument("--latency-images", type=int, default=20)
    ap.add_argument("--latency-runs", type=int, default=60)
    ap.add_argument("--latency-warmup", type=int, default=3)
    ap.add_argument("--venv", default=str(Path.home() / ".cache/instaseg_ros/ultralytics_venv"))
    ap.add_argument("--ultralytics", default="ultralytics", help="pip requirement for the peer environment")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except UsageError as e:
        print(f"train_vs_ultralytics: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"train_vs_ultralytics: {e}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import yaml

    if not args.budget_min > 0:
        raise UsageError(f"--budget-min must be > 0, got {args.budget_min}")
    for k in ("latency_images", "latency_runs"):
        if getattr(args, k) < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be >= 1")
    config = Path(args.config)
    if not config.is_file():
        raise UsageError(f"--config {config}: no such file")
    try:
        cfg = yaml.safe_load(config.read_text())
        train_spec, val_spec = cfg["data"]["train"], cfg["data"]["val"]
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise UsageError(
            f"--config {config}: needs data.train and data.val ({type(e).__name__}: {e})"
        ) from None
    for name, spec in (("train", train_spec), ("val", val_spec)):
        if spec.get("kind") != "synthetic":
            raise UsageError(
                f"--config {config}: data.{name}.kind must be synthetic, got {spec.get('kind')!r}"
            )
    keys = ("num_images", "seed", "width", "height", "synth")
    train_spec = {k: train_spec[k] for k in keys if k in train_spec}
    val_spec = {k: val_spec[k] for k in keys if k in val_spec}

    from instaseg_ros.evaluation.benchmark import machine_info

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(Path(args.data_dir) if args.data_dir else work / "data", train_spec, val_spec)
    out = Path(args.out)
    common = {"benchmark": "train_vs_ultralytics", "machine": machine_info(), "notes": NOTES, "data": data}
    sides = ("peer", "ours") if args.side == "both" else (args.side,)
    for side in sides:
        start = {
            "label": "YOLO11n-seg (Ultralytics)" if side == "peer" else "YOLACT-SE (ours)",
            "budget_min": args.budget_min,
            "commit": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "--", "benchmarks", "instaseg_ros")),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "train_spec": train_spec,
            "command": shlex.join(["python", "benchmarks/train_vs_ultralytics.py", *sys.argv[1:]]),
        }
        rec = run_peer(args, data, work) if side == "peer" else run_ours(args, data, work)
        doc = _write(out, {**common, side: {**start, **rec}})
    doc = _write(out, common)
    if not args.no_latency and "ours" in doc and "peer" in doc:
        if doc["ours"].get("train_spec") != doc["peer"].get("train_spec"):
            print("warning: the two sides were trained on different data specs", file=sys.stderr)
        doc = _write(out, {"latency": latency(doc, data, work, args)})
    print(markdown(doc))
    return 0


def _write(out: Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the results JSON as it is on disk NOW (another invocation may have written the
    other side meanwhile), write JSON + Markdown -> the merged document."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".json")
    doc = {**(json.loads(path.read_text()) if path.is_file() else {}), **updates}
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    out.with_suffix(".md").write_text(markdown(doc))
    print("wrote", out.with_suffix(".json"), "and .md", flush=True)
    return doc


if __name__ == "__main__":
    sys.exit(main())
