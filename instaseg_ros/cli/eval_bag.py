"""``instaseg eval-bag``: accuracy and latency of a model on a recorded rosbag2 (stamp-keyed ground truth).

  instaseg eval-bag BAG --gt GT.json --topic /camera/color/image_raw --model yolact --weights W.pth \\
      --mode offline --out DIR
  instaseg eval-bag BAG --gt GT.json --mode live --rate-multiplier 1.0 --out DIR --output-bag DIR/outputs
  instaseg eval-bag BAG --gt GT.json --weights W.pth --backend tensorrt --precision int8 \\
      --calib IMAGES --out DIR
  instaseg eval-bag BAG --gt GT.json --temporal --temporal.keyframe_interval 5 --out DIR

offline: every frame through the model in this process, as fast as possible (deterministic).
live:    the bag replayed at its recorded rate (x multiplier) to the real node (its own process, over
         DDS); latency, dropped frames and accuracy of what the node published.
Writes DIR/report.html (self-contained), DIR/summary.md and DIR/metrics.json (every number).
The ground truth is COCO JSON whose images carry "stamp_ns" (the image message's header stamp);
see `instaseg bag-extract` and `python -m instaseg_ros.evaluation.gt_tools` to make one.

Temporal reuse (YOLACT; YolactEdge key frames + warped features): --temporal, and the node's
temporal.* parameters as --temporal.NAME (or --temporal-NAME); giving any of them turns it on.
offline: frames in bag order through TemporalYolact on their header stamps (torch, or with
--backend onnxruntime the exported key / non-key graphs); live: the node's parameters (torch backend).
The key-frame count and ratio and the key / non-key latency are in metrics.json and the summary.
"""

from __future__ import annotations

import argparse
import sys


def _node_param(text: str) -> tuple[str, object]:
    if ":=" not in text:
        raise argparse.ArgumentTypeError(f"--node-param must look like name:=value, got {text!r}")
    name, raw = text.split(":=", 1)
    import yaml

    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return name.strip(), value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval-bag",
        help="evaluate a model on a rosbag2 with ground truth (offline or live through the node)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bag", help="rosbag2 folder (mcap or sqlite3) or a single .mcap/.db3 file")
    p.add_argument("--gt", required=True, help="ground-truth COCO JSON with images[*].stamp_ns")
    p.add_argument(
        "--topic",
        default=None,
        help="image topic (Image or CompressedImage); default: the ground truth's info.image_topic, "
        "else /camera/color/image_raw",
    )
    p.add_argument("--mode", choices=("offline", "live"), default="offline")
    p.add_argument("--out", required=True, help="output folder for report.html, summary.md, metrics.json")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="yolact", help="model family (yolact, yolo_fcn, ...; oracle = the GT)")
    g.add_argument("--weights", default=None, help="checkpoint file (oracle: the ground-truth JSON)")
    g.add_argument("--config", default=None, help="model config YAML")
    g.add_argument(
        "--backend",
        choices=("torch", "onnxruntime", "tensorrt"),
        default="torch",
        help="inference backend (offline: in this process; live: the node's backend parameter)",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default="fp32",
        help="fp16 needs CUDA; int8 needs --backend onnxruntime (CPU) or tensorrt, --calib, offline mode",
    )
    g.add_argument("--calib", default=None, help="INT8 calibration images: a folder or a COCO JSON")
    g.add_argument("--cache-dir", default=None, help="ONNX export / TensorRT engine cache")
    g.add_argument(
        "--score-threshold",
        type=float,
        default=0.05,
        help="keep instances scoring at least this (default 0.05, usual for AP)",
    )
    g.add_argument("--nms-threshold", type=float, default=0.5)
    g.add_argument("--mask-threshold", type=float, default=0.5)
    g.add_argument("--top-k", type=int, default=100)
    g.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (in the node too), e.g. to register a custom model family",
    )
    m = p.add_argument_group("matching and run")
    m.add_argument(
        "--stamp-tolerance-ms",
        type=float,
        default=1.0,
        help="max |header stamp - stamp_ns| for a ground-truth match (default 1 ms)",
    )
    m.add_argument("--only-gt-frames", action="store_true", help="offline: run only the annotated frames")
    m.add_argument(
        "--rate-multiplier", type=float, default=1.0, help="live: replay speed (2 = twice as fast)"
    )
    m.add_argument(
        "--transport",
        choices=("raw", "compressed"),
        default="raw",
        help="live: send bgr8 Image or JPEG CompressedImage to the node",
    )
    m.add_argument(
        "--node-param",
        type=_node_param,
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="live: extra node parameter (repeatable), e.g. qos_reliability:=reliable",
    )
    m.add_argument(
        "--launcher",
        choices=("python", "ros2-launch"),
        default="python",
        help="live: start the node as a Python module, or with ros2 launch (installed package)",
    )
    m.add_argument(
        "--large-image-profile",
        action="store_true",
        help="live: use the package's Fast DDS profile for camera-sized messages in both processes",
    )
    m.add_argument("--dds-profile", default=None, metavar="XML", help="live: this Fast DDS profile instead")
    m.add_argument("--startup-timeout", type=float, default=120.0, help="live: seconds for the node to start")
    m.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="live: seconds to wait for results after the last frame",
    )
    m.add_argument("--examples", type=int, default=4, help="example frames in the report")
    m.add_argument(
        "--output-bag",
        default=None,
        metavar="DIR",
        help="also write the input frames and the model's outputs to this rosbag2 (mcap)",
    )
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_temporal_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.bag_eval import run_bag_eval
    from instaseg_ros.evaluation.records import BagEvalConfig, EvalError, ModelSpec

    def fail(msg: str) -> int:
        print(f"instaseg eval-bag: error: {msg}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(f"[eval-bag] {msg}", file=sys.stderr)

    try:
        params = InferenceParams(
            score_threshold=args.score_threshold,
            nms_threshold=args.nms_threshold,
            top_k=args.top_k,
            mask_threshold=args.mask_threshold,
        )
    except ValueError as e:
        return fail(str(e))
    if args.rate_multiplier <= 0:
        return fail(f"--rate-multiplier must be > 0, got {args.rate_multiplier}")
    if args.calib and args.backend == "torch":
        return fail("--calib (INT8 calibration) needs --backend onnxruntime or tensorrt")
    if args.stamp_tolerance_ms < 0:
        return fail(f"--stamp-tolerance-ms must be >= 0, got {args.stamp_tolerance_ms}")
    try:
        temporal = _temporal_settings(args)
    except ValueError as e:
        return fail(f"temporal reuse: {e}")
    if temporal is not None and (args.model != "yolact" or args.backend not in ("torch", "onnxruntime")):
        return fail(
            f"--temporal needs --model yolact on the torch or onnxruntime backend, got "
            f"{args.model} on {args.backend} ({args.mode})"
        )
    plugins = list(args.plugin)
    if args.model == "oracle" and "instaseg_ros.evaluation.oracle" not in plugins:
        plugins.append("instaseg_ros.evaluation.oracle")
    if args.model == "oracle" and not args.weights:
        args.weights = args.gt
    topic = args.topic or _gt_topic(args.gt) or "/camera/color/image_raw"
    cfg = BagEvalConfig(
        bag=args.bag,
        gt=args.gt,
        topic=topic,
        mode=args.mode,
        model=ModelSpec(
            args.model,
            args.weights,
            args.config,
            args.device,
            args.precision,
            params,
            plugins,
            backend=args.backend,
            backend_options=_backend_options(args),
        ),
        stamp_tolerance_ns=int(round(args.stamp_tolerance_ms * 1e6)),
        only_gt_frames=args.only_gt_frames,
        rate_multiplier=args.rate_multiplier,
        node_params=dict(args.node_param),
        live_transport=args.transport,
        startup_timeout_s=args.startup_timeout,
        drain_timeout_s=args.drain_timeout,
        num_examples=args.examples,
        output_bag=args.output_bag,
        dds_profile=args.dds_profile,
        launcher="ros2 launch" if args.launcher == "ros2-launch" else "python",
        temporal=temporal,
    )
    try:
        if args.large_image_profile and not cfg.dds_profile:
            from instaseg_ros.evaluation.live import large_image_profile

            cfg.dds_profile = large_image_profile()
        outcome = run_bag_eval(cfg, progress=not args.no_progress, log=log)
        from instaseg_ros.evaluation.report import write_report

        paths = write_report(outcome, args.out)
    except EvalError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return fail("interrupted")
    except OSError as e:
        return fail(f"{type(e).__name__}: {e}")
    s = outcome.summary
    acc = s["accuracy"] or {}
    lat = s["latency_ms"]
    print(
        f"mask AP {_pct(acc.get('segm', {}).get('AP'))}  box AP {_pct(acc.get('bbox', {}).get('AP'))}  "
        f"on {s['frames']['gt_processed']} frames | latency p50 {_ms(lat['p50'])} p95 {_ms(lat['p95'])} | "
        f"{s['frames']['processed']}/{s['frames']['sent']} processed, "
        f"drop rate {100 * s['drop_rate']:.1f} % | "
        f"{s['throughput_fps']:.2f} frames/s"
    )
    tmp = (s.get(s["mode"]) or {}).get("temporal")
    if tmp:
        print(
            f"temporal reuse: {tmp['key_frames']} key / {tmp['nonkey_frames']} non-key frames "
            f"(key ratio {_num(tmp['key_ratio'], 2)}) | key p50 {_ms(tmp['key_ms_median'])}, "
            f"non-key p50 {_ms(tmp['nonkey_ms_median'])}"
        )
    print(f"report: {paths['html']}\nsummary: {paths['markdown']}\nmetrics: {paths['json']}")
    if args.output_bag:
        print(f"output bag: {args.output_bag}")
    return 0


#: the node's temporal.* parameters: (name, type, help); defaults come from TemporalSettings
_TEMPORAL_OPTIONS = (
    ("flow_weights", str, "FeatFlowNet checkpoint trained for --weights (default: the shipped one)"),
    ("policy", str, "key frames: interval (every keyframe_interval-th) or adaptive (scene change)"),
    ("keyframe_interval", int, "interval policy: frames per key frame (1 = every frame)"),
    ("max_interval", int, "adaptive: at most this many frames per key frame"),
    ("change_threshold", float, "adaptive: relative C3 feature change that forces a key frame"),
    ("flow_threshold", float, "adaptive: mean flow (network-input px) that forces a key frame"),
    ("max_time_gap", float, "a key frame after a longer stamp gap (s); 0 = none"),
)


def _add_temporal_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("temporal reuse (YOLACT; the node's temporal.* parameters)")
    g.add_argument("--temporal", "--temporal.enabled", dest="temporal_enabled", action="store_true",
                   help="key / non-key frames (implied by any option below)")  # fmt: skip
    for name, typ, text in _TEMPORAL_OPTIONS:
        flags = [f"--temporal.{name}", f"--temporal-{name.replace('_', '-')}"]
        choices = ("interval", "adaptive") if name == "policy" else None
        g.add_argument(*flags, dest=f"temporal_{name}", type=typ, default=None, choices=choices, help=text,
                       metavar=name.split("_")[-1].upper())  # fmt: skip
    g.add_argument("--temporal.reuse_prototypes", "--temporal-reuse-prototypes", action="store_true",
                   dest="temporal_reuse_prototypes", default=None,
                   help="non-key frames warp the key's prototypes too (faster, less accurate)")  # fmt: skip


def _temporal_settings(args: argparse.Namespace) -> object | None:
    """``TemporalSettings`` from the ``--temporal*`` options, or None when none was given.

    Raises:
        ValueError: a bad policy, interval or threshold.
    """
    given = {n: getattr(args, f"temporal_{n}") for n, *_ in _TEMPORAL_OPTIONS}
    given["reuse_prototypes"] = args.temporal_reuse_prototypes
    given = {k: v for k, v in given.items() if v is not None}
    if not args.temporal_enabled and not given:
        return None
    from instaseg_ros.models.yolact.temporal import TemporalSettings

    return TemporalSettings(enabled=True, **given)


def _backend_options(args: argparse.Namespace) -> dict[str, object]:
    """Options for ``load_model(backend_options=...)`` from ``--calib`` and ``--cache-dir``."""
    opts: dict[str, object] = {}
    if args.cache_dir and args.backend != "torch":
        opts["cache_dir"] = args.cache_dir
    if args.calib:
        opts["calib"] = args.calib
    return opts


def _gt_topic(path: str) -> str | None:
    """``info.image_topic`` of a ground-truth JSON, if it is readable and has one."""
    import json

    try:
        with open(path) as f:
            info = json.load(f).get("info", {})
    except (OSError, ValueError, AttributeError):
        return None  # the evaluation itself reports the problem with the file
    topic = info.get("image_topic") if isinstance(info, dict) else None
    return topic if isinstance(topic, str) and topic else None


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v < 0 else f"{100 * v:.1f}"


def _num(v: float | None, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"
