"""Side by side with Ultralytics YOLO11n-seg (what yolo_ros runs): end-to-end CPU latency on the same images.

    python benchmarks/bench_ultralytics.py [--runs 30] [--images 8] [--sizes 320,640] [--no-r50]
                                           [--int8 shipped,r50,yolo]
    python benchmarks/bench_ultralytics.py --setup-only      # only create the Ultralytics environment

Ultralytics is AGPL-3.0. It is never imported here nor by the ``instaseg_ros`` package: this script creates
a separate virtual environment (default ``~/.cache/instaseg_ros/ultralytics_venv``: ``python -m venv`` +
``pip install ultralytics onnxslim``; it sees this environment's site-packages through a ``.pth`` line, so
both sides use the same torch and onnxruntime builds and nothing large is downloaded twice) and runs
``benchmarks/ultralytics_peer.py`` there as a child process that answers JSON lines.

What is timed, per image, single-threaded (torch and ONNX Runtime intra-op threads = 1, OMP/MKL = 1):

* ours: ``preprocess -> forward_raw -> postprocess`` of a segmenter from ``load_model`` (BGR uint8 640x480
  in, ``Instances`` with full-resolution boolean masks out): the shipped YOLACT-SE R18 (input 256) on torch,
  ONNX Runtime FP32 and ONNX Runtime INT8 (``precision="int8"``, calibrated on 48 generated scenes, seed
  4242, never the timed ones); YOLACT R50 550 (80 classes) with random calibrated weights
  (``bench_yolact.decisive_random_model``) on torch and ONNX Runtime (INT8 with ``--int8 all``);
* the peer: ``YOLO.predict(img, imgsz, conf, retina_masks=True)`` (as yolo_ros calls it: letterbox, network,
  NMS, masks at the input resolution) + its results as NumPy (boxes, scores, classes, boolean masks), for
  YOLO11n-seg built from ``yolo11n-seg.yaml`` (80 classes, random weights, calibrated like ours) at 320 and
  640 on PyTorch and on ONNX Runtime (exported by Ultralytics' own exporter, static input imgsz x imgsz), FP32
  and INT8 (``export(format="onnx", quantize=8, data=...)`` on the same 48 calibration scenes as ours).

Both sides read the same PNGs (synthetic indoor scenes, 640x480, ``generate_scene((3100, i))``). Every
configuration is warmed up, then the runs alternate between all configurations in rounds (the order rotates
each round), so load changes on this shared machine hit every configuration alike; process CPU time is
recorded with the wall time. Detections: the shipped model keeps its trained defaults (score >= 0.3); every
random-weight model gets, per image, a score threshold found by bisection so that it returns as many
detections as the shipped model does on that image (so NMS and mask assembly do a realistic amount of work
on both sides; a random network's scores vary too much between images for one threshold). Each side keeps its
own NMS IoU default (ours 0.5, Ultralytics 0.7). Writes
``benchmarks/results/ultralytics_side_by_side.{json,md}``.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import site  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = Path.home() / ".cache/instaseg_ros"
PEER = ROOT / "benchmarks/ultralytics_peer.py"
PEER_KEYS = {"torch": "torch", "onnxruntime": "ort_fp32", "onnxruntime_int8": "ort_int8"}


def ensure_venv(venv: Path, spec: str) -> Path:
    """The Ultralytics environment's python (created and installed on first use)."""
    py = venv / "bin/python"
    stamp = venv / ".instaseg_ready"
    if stamp.exists() and py.exists():
        return py
    print(f"creating {venv} (pip install {spec} onnxslim) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    own = subprocess.run(
        [str(py), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # After the venv's own site-packages: torch, torchvision, onnx, onnxruntime, OpenCV come from here.
    Path(own, "_instaseg_project_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", spec, "onnxslim"], check=True)
    stamp.write_text(spec + "\n")
    return py


def write_images(folder: Path, n: int, seed: int, width: int, height: int) -> list[np.ndarray]:
    """Generate ``n`` synthetic scenes as PNGs in ``folder`` (reused if present) -> the images read back."""
    import cv2

    from instaseg_ros.data.synthetic import SynthConfig, generate_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"scene_{i:03d}.png" for i in range(n)]
    for i, p in enumerate(paths):
        if not p.exists():
            cv2.imwrite(str(p), generate_scene((seed, i), SynthConfig(width=width, height=height)).image)
    for stale in set(folder.glob("*.png")) - set(paths):
        stale.unlink()
    return [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]


class PeerProcess:
    """The Ultralytics child process (JSON lines over pipes)."""

    def __init__(self, python: Path, images: Path, workdir: Path) -> None:
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}
        env.pop("PYTHONPATH", None)
        self.log = open(workdir.parent / "peer_stderr.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), str(PEER), "--images", str(images), "--workdir", str(workdir), "--threads", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env,
        )  # fmt: skip
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Ultralytics peer exited (rc {self.proc.poll()}); see {self.log.name}")
        ans = json.loads(line)
        if not ans.pop("ok"):
            raise RuntimeError(f"Ultralytics peer: {ans['error']}")
        return ans

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.log.close()


def bisect_threshold(count: Callable[[float], float], target: float, lo: float = 1e-4, hi: float = 0.9999,
                     steps: int = 14) -> tuple[float, float]:  # fmt: skip
    """(threshold, count): the score threshold (bisected in logit space) whose detection count ``count(t)``
    is closest to ``target``."""

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    a, b = logit(lo), logit(hi)
    best = (lo, float("inf"))
    for _ in range(steps):
        mid = (a + b) / 2
        t = float(1 / (1 + np.exp(-mid)))
        n = count(t)
        if abs(n - target) < abs(best[1] - target):
            best = (t, n)
        if n == target:
            break
        if n > target:
            a = mid
        else:
            b = mid
    return best


def stats(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="timed rounds (each runs every configuration once)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--sizes", default="320,640", help="YOLO11n-seg imgsz values")
    ap.add_argument("--backends", default="torch,onnxruntime")
    ap.add_argument("--no-r50", action="store_true", help="skip YOLACT R50 550")
    ap.add_argument(
        "--int8",
        default="shipped,yolo",
        help="INT8 ONNX Runtime models, comma-separated: shipped, r50, yolo (the peer's INT8 export), all",
    )
    ap.add_argument("--venv", default=str(CACHE / "ultralytics_venv"))
    ap.add_argument("--ultralytics", default="ultralytics", help="pip requirement for the peer environment")
    ap.add_argument("--setup-only", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/ultralytics_side_by_side"))
    args = ap.parse_args(argv)

    python = ensure_venv(Path(args.venv).expanduser(), args.ultralytics)
    if args.setup_only:
        print("ready:", python)
        return 0

    import torch

    torch.set_num_threads(1)
    from bench_yolact import decisive_random_model

    from instaseg_ros.data.synthetic import SynthConfig, generate_scene
    from instaseg_ros.evaluation.benchmark import machine_info
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.models.yolact import YolactConfig, YolactSegmenter
    from instaseg_ros.runtime import wrap_segmenter

    load_before = os.getloadavg()
    t_start = time.time()
    img_dir = CACHE / "bench_ultralytics/images"
    images = write_images(img_dir, args.images, 3100, 640, 480)
    calib_dir = CACHE / "bench_ultralytics/calib_4242"
    write_images(calib_dir, 48, 4242, 320, 240)
    backends = args.backends.split(",")
    int8 = set(filter(None, args.int8.replace("all", "shipped,r50,yolo").split(",")))

    # ---- ours
    weights = str(ROOT / "models/yolact_se_r18_indoor.pth")
    ours: dict[str, dict[str, Any]] = {}
    shipped = load_model("yolact", weights)
    n_shipped = sum(p.numel() for p in shipped.model.parameters())
    base = {
        "side": "ours",
        "model": "YOLACT-SE R18 (shipped, trained)",
        "input": "256x256",
        "params": n_shipped,
    }
    if "torch" in backends:
        ours["ours_shipped_torch"] = {**base, "backend": "torch", "seg": shipped}
    if "onnxruntime" in backends:
        ours["ours_shipped_ort"] = {**base, "backend": "onnxruntime fp32",
                                    "seg": load_model("yolact", weights, backend="onnxruntime",
                                                      backend_options={"threads": 1})}  # fmt: skip
        if "shipped" in int8:
            ours["ours_shipped_ort_int8"] = {**base, "backend": "onnxruntime int8", "seg": load_model(
                "yolact", weights, backend="onnxruntime", precision="int8",
                backend_options={"threads": 1, "calib": str(calib_dir)})}  # fmt: skip
    for v in ours.values():
        v["thresholds"] = [v["seg"].params.score_threshold] * len(images)
    target = [len(shipped.segment([im])[0]) for im in images]
    gt = [
        len(generate_scene((3100, i), SynthConfig(width=640, height=480)).labels) for i in range(len(images))
    ]
    print(f"target: {target} detections (shipped model, score >= {shipped.params.score_threshold})")

    if not args.no_r50:
        cfg = YolactConfig(backbone="resnet50", input_size=550, attention=False)
        r50 = YolactSegmenter(decisive_random_model(cfg, images[0]), cfg)
        base = {"side": "ours", "model": "YOLACT R50 550 (random weights)", "input": "550x550",
                "params": sum(p.numel() for p in r50.model.parameters())}  # fmt: skip
        r50_configs = {}
        if "torch" in backends:
            r50_configs["ours_r50_torch"] = {**base, "backend": "torch", "seg": r50}
        if "onnxruntime" in backends:
            r50_configs["ours_r50_ort"] = {**base, "backend": "onnxruntime fp32",
                                           "seg": wrap_segmenter(r50, "onnxruntime", threads=1)}  # fmt: skip
            if "r50" in int8:
                q = wrap_segmenter(r50, "onnxruntime", threads=1, precision="int8", calib=str(calib_dir))
                r50_configs["ours_r50_ort_int8"] = {**base, "backend": "onnxruntime int8", "seg": q}
        for key, conf in r50_configs.items():  # per backend: INT8 shifts a random network's scores
            seg, thr = conf["seg"], []
            for im, n in zip(images, target):
                x, m = seg.preprocess([im])
                raw = seg.forward_raw(x)

                def count(t: float, seg: Any = seg, raw: Any = raw, m: Any = m) -> float:
                    return len(seg.postprocess(raw, m, seg.params.updated(score_threshold=t))[0])

                thr.append(bisect_threshold(count, n)[0])
            conf["thresholds"] = thr
            print(f"{key}: score thresholds {np.round(thr, 4).tolist()}", flush=True)
        ours.update(r50_configs)

    # ---- the peer
    workdir = CACHE / "bench_ultralytics/work"
    workdir.mkdir(parents=True, exist_ok=True)
    peer = PeerProcess(python, img_dir, workdir)
    print(f"peer: ultralytics {peer.hello['ultralytics']}, torch {peer.hello['torch']}", flush=True)
    theirs: dict[str, dict[str, Any]] = {}
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for backend in backends + (["onnxruntime_int8"] if "yolo" in int8 else []):
                key = f"yolo11n_seg_{size}_{PEER_KEYS[backend]}"
                info = peer.call("load", key=key, imgsz=size, backend=backend, seed=0, nc=80, retina=True,
                                 cls_mean=-6.0, cls_q999=-2.0, calib=str(calib_dir))  # fmt: skip

                # per backend too: the ONNX export's square input changes a random network's scores
                def count(t: float, key: str = key, i: int = 0) -> float:
                    return peer.call("count", key=key, conf=t, index=i)["dets"]

                found = [bisect_threshold(lambda t, i=i: count(t, i=i), n) for i, n in enumerate(target)]
                conf = [t for t, _ in found]
                note = None
                if sum(n for _, n in found) > 2 * sum(target) + len(target):
                    # e.g. the INT8 export of random weights: every class score is 1.0, no threshold below 1
                    # cuts them, and max_det (300) masks would be timed; time it with none (a lower bound)
                    conf = [1.0] * len(target)
                    mean_found = np.mean([n for _, n in found])
                    note = (f"no threshold below 1 came near the target (closest: {mean_found:.0f} "
                            "detections per image; scores saturate at 1.0): timed with conf 1.0, i.e. "
                            "0 detections, a lower bound")  # fmt: skip
                print(
                    f"{key}: conf {np.round(conf, 4).tolist()}{' (' + note + ')' if note else ''}", flush=True
                )
                theirs[key] = {
                    "side": "Ultralytics", "model": "YOLO11n-seg (yolo11n-seg.yaml, random weights)",
                    "backend": PEER_KEYS[backend].replace("ort", "onnxruntime").replace("_", " "),
                    "input": "x".join(str(v) for v in info["input_shape"][2:][::-1]),
                    "params": info["params"],
                    "thresholds": conf, "info": info, "note": note,
                }  # fmt: skip

        configs = list(ours) + list(theirs)
        times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": [], "dets": []} for k in configs}
        splits: dict[str, list[dict[str, float]]] = {k: [] for k in configs}

        def run_once(key: str, i: int) -> tuple[float, float, int, dict[str, float]]:
            if key in theirs:
                r = peer.call("run", key=key, index=i, conf=theirs[key]["thresholds"][i])
                return r["wall_ms"], r["cpu_ms"], r["dets"], r["speed"]
            o = ours[key]
            seg, img = o["seg"], images[i]
            c0, t0 = time.process_time(), time.perf_counter()
            x, metas = seg.preprocess([img])
            t1 = time.perf_counter()
            raw = seg.forward_raw(x)
            t2 = time.perf_counter()
            res = seg.postprocess(raw, metas, seg.params.updated(score_threshold=o["thresholds"][i]))
            t3 = time.perf_counter()
            cpu = (time.process_time() - c0) * 1000
            split = {
                "preprocess": (t1 - t0) * 1000,
                "inference": (t2 - t1) * 1000,
                "postprocess": (t3 - t2) * 1000,
            }
            return (t3 - t0) * 1000, cpu, len(res[0]), split

        print(
            f"warm-up ({args.warmup} per configuration), then {args.runs} interleaved rounds ...", flush=True
        )
        for key in configs:
            for w in range(args.warmup):
                run_once(key, w % len(images))
        for r in range(args.runs):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for key in order:
                wall, cpu, dets, split = run_once(key, r % len(images))
                times[key]["wall"].append(wall)
                times[key]["cpu"].append(cpu)
                times[key]["dets"].append(dets)
                splits[key].append(split)
    finally:
        peer.close()

    if "ultralytics" in sys.modules:  # AGPL: must stay in the peer's process
        raise RuntimeError("ultralytics was imported into the benchmark's main process")
    load_after = os.getloadavg()
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_peer = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = []
    for key in configs:
        meta = ours.get(key) or theirs[key]
        t = times[key]
        rows.append({
            "config": key, "side": meta["side"], "model": meta["model"], "backend": meta["backend"],
            "input": meta["input"], "params": meta["params"],
            "score_thresholds": meta["thresholds"],
            "e2e_ms": stats(t["wall"]), "cpu_ms": stats(t["cpu"]), "mean_dets": float(np.mean(t["dets"])),
            "stages_median_ms": {s: float(np.median([d[s] for d in splits[key]])) for s in splits[key][0]},
            **({"peer_info": meta["info"], "note": meta["note"]} if "info" in meta else {}),
        })  # fmt: skip
    doc = {
        "benchmark": "bench_ultralytics",
        "command": " ".join(["python benchmarks/bench_ultralytics.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "loadavg_before": list(load_before), "loadavg_after": list(load_after),
        "wall_s": time.time() - t_start,
        "cpu_s": {"main_process": usage_self.ru_utime + usage_self.ru_stime,
                  "peer_process": usage_peer.ru_utime + usage_peer.ru_stime},
        "peer": peer.hello, "threads": 1, "runs": args.runs, "warmup": args.warmup,
        "images": {"folder": str(img_dir), "count": len(images), "size": "640x480",
                   "generator": "instaseg_ros.data.synthetic.generate_scene((3100, i))"},
        "target_detections": target,
        "ground_truth_instances": gt,
        "int8_calibration": "48 generated scenes, seed 4242, 320x240",
        "caveats": [
            "random weights on every model except the shipped YOLACT-SE: the timings measure speed only, not "
            "accuracy (see issue 24 for trained accuracy)",
            "input sizes differ: ours 256x256 (shipped) and 550x550 (R50); YOLO11n-seg letterboxes to "
            "imgsz x (imgsz*3/4) on PyTorch and to a static imgsz x imgsz on its ONNX export",
            "random-weight models: a score threshold per image and backend, bisected so that each returns "
            "as many detections as the shipped model does on that image (so NMS and masks do a realistic "
            f"amount of work: the shipped model returns {sum(target)} detections for {sum(gt)} annotated "
            "instances here); "
            "each side keeps its NMS IoU default (ours 0.5, Ultralytics 0.7)",
            "masks: both sides return full-resolution (640x480) boolean masks "
            "(Ultralytics retina_masks=True)",
        ],
        "rows": rows,
    }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    md = markdown(doc)
    out.with_suffix(".md").write_text(md)
    print(md)
    print("wrote", out.with_suffix(".json"), "and .md")
    return 0


def _thr(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.3g}" if hi - lo < 1e-9 else f"{lo:.3g}-{hi:.3g}"


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Ours vs Ultralytics YOLO11n-seg: end-to-end CPU latency, 1 thread, same images",
        "",
        f"`{doc['command']}` — {m['date_utc']}, {m['cpu']} ({m['nproc']} cores, shared), commit "
        f"{str(m.get('git_commit'))[:10]}, torch {m['torch']}, onnxruntime {m.get('onnxruntime')}, "
        f"ultralytics {doc['peer']['ultralytics']}. Load average before/after: "
        f"{doc['loadavg_before'][0]:.1f} / {doc['loadavg_after'][0]:.1f}. CPU seconds: ours (main process) "
        f"{doc['cpu_s']['main_process']:.0f} s, peer {doc['cpu_s']['peer_process']:.0f} s, "
        f"wall {doc['wall_s']:.0f} s.",
        "",
        f"{doc['images']['count']} synthetic indoor scenes 640x480, {doc['warmup']} warm-up runs per "
        f"configuration, {doc['runs']} interleaved rounds. End to end = pre-processing + network + NMS + "
        "full-resolution masks.",
        "",
        "| model | backend | input | params | score thr. | dets/img | e2e median ms | e2e p95 ms "
        "| CPU median ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['input']} | {r['params'] / 1e6:.2f} M | "
            f"{_thr(r['score_thresholds'])} | {r['mean_dets']:.1f} | {r['e2e_ms']['median']:.1f} | "
            f"{r['e2e_ms']['p95']:.1f} | {r['cpu_ms']['median']:.1f} |"
        )
    notes = [f"- {r['config']}: {r['note']}" for r in doc["rows"] if r.get("note")]
    lines += ["", "Caveats:", *[f"- {c}" for c in doc["caveats"]], *notes, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
