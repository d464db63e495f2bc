"""``instaseg demo``: the whole product on the embedded default, end to end on real ROS 2.

  make demo                                   # synthetic indoor camera stream -> instaseg_node (YOLACT-SE)
  make demo DEMO_ARGS="--model yolo_fcn"      # the other family on the same stream
  make demo DEMO_ARGS="--image-dir DIR"       # your own images (played as a camera stream, no AP)
  make demo DEMO_ARGS="--bag BAG [--gt GT.json] [--topic T]"   # your own recording

Steps: (1) make or read the camera stream (a deterministic synthetic rosbag2 with ground truth by
default); (2) start ``instaseg_node`` in its own process (through ``ros2 launch`` where the ROS 2 CLI
and launch_ros exist, else the same node directly) and replay the stream to it over DDS at its recorded
rate; (3) record the node's outputs (an output rosbag2); (4) score them (box/mask AP) and time them
(latency, drops); (5) write an animated overlay, an HTML report, and print a summary.

The synthetic stream carries registered depth (16UC1, structured-light noise) unless ``--no-depth``:
the node then runs with ``depth.enabled``, its 3D boxes (``~/detections_3d``, ``~/markers``) go into
the output bag and the report gains a 3D section (centre/size error vs distance) next to the
tracking section (MOT metrics of the node's track ids vs a plain IoU matcher).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.images import IMAGE_SUFFIXES

# The shipped default of each family: (weights, model config) relative to the package's share or repo.
DEFAULT_MODELS: dict[str, tuple[str, str | None]] = {
    "yolact": ("models/yolact_se_r18_indoor.pth", None),
    "yolo_fcn": ("models/yolo_fcn_indoor.pth", None),
}
SYNTH_SEED = 2026


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="run the node on a camera stream end to end and report accuracy and latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="yolact", help="model family (default: yolact = YOLACT-SE)")
    p.add_argument("--weights", default=None, help="weights file (default: the family's shipped model)")
    p.add_argument("--config", default=None, help="model config YAML")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--bag", default=None, help="replay this rosbag2 instead of the synthetic stream")
    src.add_argument("--image-dir", default=None, help="play these images as a camera stream")
    p.add_argument("--gt", default=None, help="with --bag: stamp-keyed COCO ground truth (for AP)")
    p.add_argument("--topic", default="/camera/color/image_raw", help="with --bag: the image topic")
    p.add_argument("--frames", type=int, default=60, help="synthetic stream length (default 60)")
    p.add_argument("--rate", type=float, default=10.0, help="stream rate in Hz (synthetic, --image-dir)")
    p.add_argument("--size", default="640x480", help="synthetic frame size WxH (default 640x480)")
    p.add_argument("--no-depth", action="store_true",
                   help="synthetic stream without depth (no 3D outputs, no 3D score)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    p.add_argument("--score-threshold", type=float, default=0.3, help="node score threshold (default 0.3)")
    p.add_argument("--launch", choices=("auto", "yes", "no"), default="auto",
                   help="start the node through `ros2 launch` (auto: where it exists)")
    p.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def find_resource(rel: str) -> Path | None:
    """``rel`` in the installed package share (colcon) or the source tree, whichever exists."""
    from instaseg_ros.core.resources import package_file

    try:
        return package_file(rel)
    except FileNotFoundError:
        return None


class _Steps:
    """Numbered progress lines with elapsed time."""

    def __init__(self, total: int) -> None:
        self.total, self.k, self.t0 = total, 0, time.monotonic()

    def __call__(self, text: str) -> None:
        self.k += 1
        print(f"[demo {self.k}/{self.total} +{time.monotonic() - self.t0:5.1f}s] {text}", flush=True)

    def log(self, text: str) -> None:
        print(f"          {text}", flush=True)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise ValueError(f"--size must look like 640x480, got {text!r}") from e
    if w < 64 or h < 64:
        raise ValueError(f"--size must be at least 64x64, got {text!r}")
    return w, h


def _empty_gt(stamps: list[tuple[int, int, int]], class_names: list[str], topic: str) -> dict[str, Any]:
    """A stamp-keyed COCO file with every frame and no annotations (timing only, AP undefined)."""
    return {
        "info": {"image_topic": topic, "note": "no ground truth: instaseg demo on user data"},
        "images": [
            {"id": i + 1, "file_name": f"frame_{i:06d}.png", "height": h, "width": w, "stamp_ns": s}
            for i, (s, h, w) in enumerate(stamps)
        ],
        "annotations": [],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)],
    }


def _images_to_bag(image_dir: Path, bag: Path, rate: float) -> list[tuple[int, int, int]]:
    """Write the images of ``image_dir`` (sorted by name) to an mcap bag at ``rate``; returns stamps+sizes."""
    import cv2

    from instaseg_ros.data.bag_io import write_bag_images

    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no .png/.jpg/.bmp images in {image_dir}")
    t0 = time.time_ns()
    stamps: list[tuple[int, int, int]] = []

    def frames():
        for i, f in enumerate(files):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                print(f"          skipping unreadable image {f}", flush=True)
                continue
            s = t0 + int(i * 1e9 / rate)
            stamps.append((s, img.shape[0], img.shape[1]))
            yield s, "camera_color_optical_frame", img

    write_bag_images(bag, frames(), info_topic="/camera/color/camera_info", overwrite=True)
    return stamps


def _model_class_names(family: str, weights: str | None, config: str | None) -> list[str]:
    """Class names of a model (loaded on the CPU once; only needed when there is no ground truth)."""
    from instaseg_ros.models.loading import load_model

    return list(load_model(family, weights=weights, config=config, device="cpu").class_names)


def write_overlay(outcome: Any, bag: str, topic: str, out: Path, max_frames: int = 120) -> dict[str, Path]:
    """Animated GIF + MP4 of the node's answered frames with their masks drawn over the input."""
    import cv2
    from PIL import Image as PILImage

    from instaseg_ros.core.draw import draw_instances
    from instaseg_ros.data.bag_io import iter_bag_images
    from instaseg_ros.evaluation.matching import results_to_instances

    answered = {r.stamp_ns: r for r in outcome.run.frames if r.processed and r.image_id is not None}
    stills: list[np.ndarray] = []
    for stamp, _frame, img in iter_bag_images(bag, topic):
        rec = answered.get(stamp)
        if rec is None:
            continue
        inst = results_to_instances(outcome.run.results, rec.image_id, outcome.gt)
        frame = draw_instances(img, inst)
        cv2.putText(frame, f"{len(inst)} instances, {rec.latency_ms or 0:.0f} ms", (8, 22),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        stills.append(frame)
        if len(stills) >= max_frames:
            break
    if not stills:
        return {}
    paths = {"gif": out / "overlay.gif", "mp4": out / "overlay.mp4", "png": out / "overlay_frame.png"}
    scale = min(1.0, 480 / stills[0].shape[1])
    small = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in stills]
    pil = [PILImage.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in small]
    pil[0].save(paths["gif"], save_all=True, append_images=pil[1:], duration=100, loop=0, optimize=True)
    h, w = stills[0].shape[:2]
    vw = cv2.VideoWriter(str(paths["mp4"]), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    if vw.isOpened():
        for f in stills:
            vw.write(f)
        vw.release()
    if not paths["mp4"].exists() or paths["mp4"].stat().st_size == 0:
        paths.pop("mp4")
    cv2.imwrite(str(paths["png"]), stills[len(stills) // 2])
    return paths


def _fmt(v: float | None, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if v is None or v < 0 else f"{v * scale:.{digits}f}{unit}"


def _headline_3d_tracking(s: dict[str, Any]) -> dict[str, Any]:
    """The tracking and 3D headline numbers of an eval-bag summary (absent keys when not scored)."""
    out: dict[str, Any] = {}
    t = s.get("tracking")
    if t:
        for m in ("tracker", "iou_baseline"):
            o = t[m]["overall"]
            out[m] = {k: o[k] for k in ("idf1", "mota", "id_switches_per_100_frames", "recall")}
    d = s.get("depth_3d")
    if d:
        out["depth_3d"] = {"instances": d["matched_with_3d"],
                           "centre_median_m_1_4m": d["range_1_4m"]["centre_median_m"],
                           "centre_median_m": d["overall"]["centre_median_m"],
                           "size_median_m": d["overall"]["size_median_m"]}  # fmt: skip
    return out


def print_summary(s: dict[str, Any], files: dict[str, Path]) -> None:
    """The demo's closing summary."""
    fr, lat, acc = s["frames"], s["latency_ms"], s.get("accuracy") or {}
    model = s["model"]
    rows = [
        ("model", f"{model['family']} ({Path(model['weights']).name if model.get('weights') else 'default'})"
                  f" on {model.get('device', '?')}"),
        ("frames", f"{fr['sent']} sent, {fr['processed']} processed, {fr['dropped']} dropped "
                   f"({_fmt(s['drop_rate'], ' %', 100)})"),
        ("rate", f"{_fmt(s['throughput_fps'], ' frames/s', digits=2)} processed"),
        ("latency", f"p50 {_fmt(lat.get('p50'), ' ms')}, p95 {_fmt(lat.get('p95'), ' ms')} "
                    "(image receipt to publish, measured by the subscriber)"),
        ("box AP", f"{_fmt(acc.get('bbox', {}).get('AP'), '', 100)} (AP50 "
                   f"{_fmt(acc.get('bbox', {}).get('AP50'), '', 100)})"),
        ("mask AP", f"{_fmt(acc.get('segm', {}).get('AP'), '', 100)} (AP50 "
                    f"{_fmt(acc.get('segm', {}).get('AP50'), '', 100)})"),
    ]
    h = _headline_3d_tracking(s)
    if "tracker" in h:
        t, b = h["tracker"], h["iou_baseline"]
        idf1 = f"IDF1 {_fmt(t['idf1'], '', 100)} vs {_fmt(b['idf1'], '', 100)} (IoU baseline)"
        sw = f"{t['id_switches_per_100_frames']:.1f} vs {b['id_switches_per_100_frames']:.1f}"
        recall = _fmt(t["recall"], " %", 100)
        rows.append(("tracking", f"{idf1}, ID switches/100 frames {sw}, recall {recall}"))
    if "depth_3d" in h:
        d = h["depth_3d"]
        near = _fmt(d["centre_median_m_1_4m"], " cm", 100)
        err = f"{_fmt(d['centre_median_m'], ' cm', 100)} (1-4 m: {near})"
        rows.append(("3D", f"{d['instances']} instances, centre error median {err}; /instaseg/markers"))
    print("\n=== instaseg demo summary ===")
    for k, v in rows:
        print(f"  {k:<8} {v}")
    for k, p in files.items():
        print(f"  {k:<8} {p}")


def run(args: argparse.Namespace) -> int:
    def fail(msg: str) -> int:
        print(f"instaseg demo: error: {msg}", file=sys.stderr)
        return 2

    steps = _Steps(4)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        import rclpy  # noqa: F401 - the demo is the real ROS graph: fail early and clearly without ROS
        import vision_msgs.msg  # noqa: F401
    except ImportError as e:
        return fail(f"ROS 2 Python packages missing ({e}); run `make setup` and `source env.sh`")

    # --- model
    weights, config = args.weights, args.config
    if weights is None:
        if args.model not in DEFAULT_MODELS:
            return fail(f"no shipped default for --model {args.model}; pass --weights")
        rel_w, rel_c = DEFAULT_MODELS[args.model]
        found = find_resource(rel_w)
        if found is None:
            return fail(f"the shipped model {rel_w} is missing from this installation; pass --weights")
        weights = str(found)
        if config is None and rel_c:
            config = str(find_resource(rel_c) or "") or None

    # --- 1: the camera stream
    topic = args.topic
    if args.bag:
        bag = str(Path(args.bag).resolve())
        steps(f"camera stream: {bag} ({topic})")
        gt: Any = args.gt
        if gt is None:
            from instaseg_ros.evaluation.matching import scan_bag
            from instaseg_ros.evaluation.records import EvalError

            try:
                frames = scan_bag(bag, topic)
            except EvalError as e:
                return fail(str(e))
            sizes = [(f.stamp_ns, f.height, f.width) for f in frames] if frames and hasattr(
                frames[0], "height") else None
            if sizes is None:
                from instaseg_ros.data.bag_io import iter_bag_images

                sizes = [(s, im.shape[0], im.shape[1]) for s, _f, im in iter_bag_images(bag, topic)]
            gt = _empty_gt(sizes, _model_class_names(args.model, weights, config), topic)
            steps.log("no --gt: latency and drops only, AP n/a")
    elif args.image_dir:
        d = Path(args.image_dir)
        if not d.is_dir():
            return fail(f"--image-dir {d} is not a folder")
        steps(f"camera stream: images of {d} played at {args.rate:g} Hz")
        bag = str(out / "input" / "bag")
        try:
            stamps = _images_to_bag(d, Path(bag), args.rate)
        except ValueError as e:
            return fail(str(e))
        gt = _empty_gt(stamps, _model_class_names(args.model, weights, config), topic)
        steps.log(f"{len(stamps)} frames -> {bag}; no ground truth: latency and drops only")
    else:
        from instaseg_ros.data.synthetic import BagSpec, demo_stream_config, write_synthetic_bag

        try:
            w, h = _parse_size(args.size)
        except ValueError as e:
            return fail(str(e))
        if args.frames < 2 or args.rate <= 0:
            return fail("--frames must be >= 2 and --rate > 0")
        steps(f"camera stream: {args.frames} synthetic indoor frames, {w}x{h} at {args.rate:g} Hz "
              f"(seed {SYNTH_SEED})")
        spec = BagSpec(num_frames=args.frames, rate=args.rate, sequence_length=min(30, args.frames),
                       depth=None if args.no_depth else "16UC1")
        if (out / "input").exists():  # our own stream from an earlier run: make it anew
            shutil.rmtree(out / "input")
        bag_dir, gt_path = write_synthetic_bag(out / "input", seed=SYNTH_SEED,
                                               config=demo_stream_config(w, h), spec=spec)
        bag, gt = str(bag_dir), str(gt_path)
        steps.log(f"bag {bag}, ground truth {gt}")

    # --- 2-4: the node over DDS, recorded and scored
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.bag_eval import run_bag_eval
    from instaseg_ros.evaluation.live import large_image_profile
    from instaseg_ros.evaluation.records import BagEvalConfig, EvalError, ModelSpec

    launcher = _launcher(args.launch)
    steps(f"instaseg_node ({args.model}, {Path(weights).name}) started via {launcher}; "
          "replaying the stream over DDS at its recorded rate")
    cfg = BagEvalConfig(
        bag=bag, gt=gt, topic=topic, mode="live",
        model=ModelSpec(args.model, weights, config, args.device, "fp32",
                        InferenceParams(score_threshold=args.score_threshold)),
        output_bag=str(out / "outputs"), launcher=launcher,
        # camera-sized frames between processes need Fast DDS's larger shared-memory segment
        dds_profile=large_image_profile(),
    )
    if (out / "outputs").exists():
        shutil.rmtree(out / "outputs")
    try:
        outcome = run_bag_eval(cfg, progress=not args.no_progress, log=steps.log)
    except EvalError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return fail("interrupted")
    steps(f"node outputs recorded to {out / 'outputs'}; scored against the ground truth")

    # --- 5: files and summary
    from instaseg_ros.evaluation.report import write_report

    steps("writing the overlay animation and the HTML report")
    files = write_report(outcome, out / "report")
    files = {"report": files["html"], "metrics": files["json"], **write_overlay(outcome, bag, topic, out),
             "outputs": out / "outputs"}
    (out / "demo_summary.json").write_text(json.dumps(
        {k: outcome.summary[k] for k in ("model", "frames", "latency_ms", "throughput_fps", "drop_rate")}
        | _headline_3d_tracking(outcome.summary)
        | {"box_AP": (outcome.summary.get("accuracy") or {}).get("bbox", {}).get("AP"),
           "mask_AP": (outcome.summary.get("accuracy") or {}).get("segm", {}).get("AP"),
           "launcher": launcher, "files": {k: str(v) for k, v in files.items()}}, indent=1))
    print_summary(outcome.summary, files)
    return 0


def _launcher(choice: str) -> str:
    """``ros2 launch`` where the ROS 2 CLI, launch_ros and our installed package exist, else ``python``."""
    import importlib.util

    can_launch = shutil.which("ros2") is not None and importlib.util.find_spec("launch_ros") is not None
    if can_launch:
        from instaseg_ros.core.resources import share_dir

        can_launch = share_dir() is not None  # installed in an ament prefix
    if choice == "yes" and not can_launch:
        raise SystemExit("instaseg demo: error: --launch yes needs `ros2`, launch_ros and a colcon-installed "
                         "instaseg_ros (source install/setup.bash)")
    return "ros2 launch" if (choice == "yes" or (choice == "auto" and can_launch)) else "python"
