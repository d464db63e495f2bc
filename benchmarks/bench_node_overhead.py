"""instaseg_node overhead: end-to-end latency minus the model's own time, over real DDS, before/after.

Each node runs in its own process (like on a robot); this script publishes one frame at a time, stamps
the receipt of ``~/detections`` (published last, after the instance mask; stamped on the raw bytes,
before the client's own Python deserialisation) and subtracts the time the
node spent inside ``Segmenter.segment`` for that very frame (the node's per-frame history, matched by
header stamp). What remains is everything the ROS layer adds: DDS transport of the image and of the
outputs, decoding (JPEG for compressed input), tracking, the instance (and, when subscribed, semantic)
image, message building and publishing.

Variants run side by side and interleaved frame by frame (each frame goes to every node in turn, the
order alternating), so they see the same machine load:

* ``before``: the node as of ``--before-ref`` (default c53c340, the commit before issue 20's node work:
  semantic mask always rendered, Detection2DArray built as a Python message, no buffer reuse), run from
  a ``git archive`` of that commit;
* ``after``: the node in this checkout;

each with the tracker on (the node's default) and off (``--tracking``; the < 3 ms target was set before
the tracker existed).

    python benchmarks/bench_node_overhead.py                      # before/after, 640x480 raw
    python benchmarks/bench_node_overhead.py --sizes 640x480,1280x720 --transports raw,compressed
    python benchmarks/bench_node_overhead.py --threads 1,2,0 --weights models/yolact_se_r18_indoor.pth \
        --out benchmarks/results/num_threads.json               # num_threads: model ms per setting

``--threads`` compares ``num_threads`` settings of this checkout's node instead (0 = PyTorch's default,
with OMP_NUM_THREADS unset in that node's process). Prints a table and writes JSON (machine, load,
sizes, warm-up, runs, median, p95). Every process uses config/fastdds_large_images.xml (Fast DDS's
default shared-memory segment is smaller than one 640x480 image) unless FASTRTPS_DEFAULT_PROFILES_FILE
is already set. Target: < 3 ms median at 640x480 raw.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEFORE_REF = "c53c340"


# ----------------------------------------------------------------------------- node side
STEPS: dict[str, list[tuple[float, float]]] = {}  # step -> [(wall s, thread CPU s)] (--serve --profile)


def _timed(owner, name: str, step: str) -> None:
    """Wrap ``owner.name`` (a function or a plain method) so each call records its wall and CPU time."""
    fn = owner.__dict__[name]
    static = isinstance(fn, staticmethod)
    inner = fn.__func__ if static else fn

    def wrapper(*a, **k):
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return inner(*a, **k)
        finally:
            STEPS.setdefault(step, []).append((time.perf_counter() - w0, time.thread_time() - c0))

    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def profile_node(node_cls) -> None:
    """Per-step timing inside the node (either version): the hand-off from the subscription callback to
    the worker, tracking, the 2D outputs (render + messages + publish) and the overlap rendering alone."""
    from instaseg_ros.ros import conversions

    process = node_cls._process

    def handoff(self, frame):
        STEPS.setdefault("handoff", []).append((time.monotonic() - frame[3], float("nan")))
        return process(self, frame)

    node_cls._process = handoff
    _timed(node_cls, "_track", "tracking")
    _timed(conversions, "render_outputs", "render_outputs")
    try:
        from instaseg_ros.ros.outputs import Outputs2D

        _timed(Outputs2D, "publish", "outputs_2d")
    except ImportError:  # the node before ros/outputs.py
        _timed(node_cls, "_publish_2d", "outputs_2d")


def serve(ros_args: list[str], profile: bool = False) -> int:
    """Run instaseg_node in this process; on stdin ``dump PATH`` write its per-frame history (and, with
    ``profile``, its per-step times) as JSON."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    import instaseg_ros
    from instaseg_ros.ros.node import InstasegNode

    if profile:
        profile_node(InstasegNode)
    rclpy.init(args=["serve", "--ros-args", *ros_args])
    node = InstasegNode()
    ok = TransitionCallbackReturn.SUCCESS
    if node.trigger_configure() != ok or node.trigger_activate() != ok:
        print("node failed to start", file=sys.stderr, flush=True)
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    print("READY", Path(instaseg_ros.__file__).parent, flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "dump":
            steps = {k: np.asarray(v[3:], np.float64).reshape(-1, 2).tolist() for k, v in STEPS.items()}
            Path(arg).write_text(json.dumps({"history": node.stats.history(), "steps": steps}))
            print("DUMPED", flush=True)
        elif cmd == "quit":
            break
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


@dataclass
class Variant:
    """One node process: its code (a package root on PYTHONPATH, or None for this checkout), extra
    parameters and environment changes."""

    name: str
    code: Path | None = None
    params: list[str] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    package: str = ""
    log: Path | None = None

    def ns(self) -> str:
        words = "".join(c if c.isalnum() else " " for c in self.name).split()
        return f"/bench{os.getpid()}_" + "_".join(words)


def start(
    variant: Variant, transport: str, weights: Path, top_k: int, env: dict, log: Path, profile: bool = False
) -> None:
    ros_args = [
        "-r", f"__ns:={variant.ns()}", "-r", "image:=camera/image",
        "-p", f"model.weights:={weights}", "-p", "score_threshold:=0.0", "-p", f"top_k:={top_k}",
        "-p", f"input_transport:={transport}", "-p", "debug_image:=false", *variant.params,
    ]  # fmt: skip
    penv = dict(env)
    if variant.code is not None:
        paths = [str(variant.code), penv.get("PYTHONPATH", "")]
        penv["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    for k, v in variant.env.items():
        if v is None:
            penv.pop(k, None)
        else:
            penv[k] = v
    variant.log = log
    with open(log, "w") as err:
        variant.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", *(["--profile"] if profile else []), "--", *ros_args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=penv,
        )  # fmt: skip


def wait_ready(variant: Variant) -> None:
    line = variant.proc.stdout.readline().split()
    if not line or line[0] != "READY":
        tail = variant.log.read_text(errors="replace")[-2000:] if variant.log else ""
        raise RuntimeError(f"the node process of {variant.name!r} did not start ({line}):\n{tail}")
    variant.package = line[1]


def stop(variant: Variant) -> None:
    proc = variant.proc
    if proc is not None and proc.poll() is None:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(20)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            proc.kill()


def history(variant: Variant, path: Path) -> tuple[dict[int, tuple[float, float]], dict]:
    """(stamp key -> (node latency s, inference s) of every frame the node processed, per-step times:
    step -> {wall_ms, cpu_ms} medians over the frames after the first three; empty without --profile)."""
    variant.proc.stdin.write(f"dump {path}\n")
    variant.proc.stdin.flush()
    if variant.proc.stdout.readline().strip() != "DUMPED":
        raise RuntimeError(f"{variant.name}: no history")
    data = json.loads(path.read_text())
    steps = {}
    for step, rows in data["steps"].items():
        a = np.asarray(rows, np.float64).reshape(-1, 2) * 1e3
        steps[step] = {"wall_ms": stats_ms(list(a[:, 0] / 1e3)), "cpu_ms": float(np.nanmedian(a[:, 1]))
                       if np.isfinite(a[:, 1]).any() else None}  # fmt: skip
    return {k: (lat, inf) for k, lat, inf in data["history"]}, steps


# ----------------------------------------------------------------------------- client side
class Client:
    """Publishes frames to every node and stamps the receipt time of each ~/detections by header stamp."""

    def __init__(self, namespaces: list[str]):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray

        rclpy.init()
        self.node = rclpy.create_node("instaseg_overhead_client")
        self.arrived: dict[int, float] = {}
        self.instances: dict[int, int] = {}
        self.cond = threading.Condition()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.subs, self.raw_pubs, self.compressed_pubs = {}, {}, {}
        for ns in namespaces:  # raw: the receipt is stamped before rclpy's Python deserialisation
            self.subs[ns] = self.node.create_subscription(
                Detection2DArray, f"{ns}/instaseg_node/detections", self._on_detections, qos, raw=True
            )
            self.raw_pubs[ns] = self.node.create_publisher(Image, f"{ns}/camera/image", qos)
            self.compressed_pubs[ns] = self.node.create_publisher(
                CompressedImage, f"{ns}/camera/image/compressed", qos
            )
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_detections(self, data: bytes) -> None:
        """Stamp the receipt first, then read the message (checks it and counts its detections)."""
        from rclpy.serialization import deserialize_message
        from vision_msgs.msg import Detection2DArray

        t = time.perf_counter()
        msg = deserialize_message(data, Detection2DArray)
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.cond:
            self.arrived[key] = t
            self.instances[key] = len(msg.detections)
            self.cond.notify_all()

    def wait_subscribed(self, compressed: bool, timeout: float = 60.0) -> bool:
        pubs = self.compressed_pubs if compressed else self.raw_pubs
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(p.get_subscription_count() > 0 for p in pubs.values()) and all(
                s.get_publisher_count() > 0 for s in self.subs.values()
            ):
                return True
            time.sleep(0.05)
        return False

    def round_trip(self, ns: str, msg, key: int, compressed: bool, timeout: float = 20.0) -> float | None:
        """Publish ``msg`` to the node in ``ns``; seconds until its detections arrived (None if lost)."""
        pub = (self.compressed_pubs if compressed else self.raw_pubs)[ns]
        t0 = time.perf_counter()
        pub.publish(msg)
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrived, timeout):
                return None
            return self.arrived[key] - t0

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def make_checkpoint(path: Path, input_size: int) -> Path:
    import torch

    from instaseg_ros.core.labels import INDOOR_CLASSES as CLASSES
    from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

    torch.manual_seed(0)
    cfg = YolactConfig(
        backbone="resnet18", num_classes=len(CLASSES), class_names=list(CLASSES), input_size=input_size
    )
    save_checkpoint(path, YolactSE(cfg), cfg)
    return path


def frames(size: tuple[int, int], n: int, compressed: bool, seed: int = 0) -> list:
    import cv2

    from instaseg_ros.ros import conversions as conv

    h, w = size
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(min(n, 8)):  # a few distinct smooth images, reused round robin
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (15, 15), 0)
        out.append(
            conv.bgr8_to_compressed(img, "jpeg", quality=90)
            if compressed
            else conv.numpy_to_image(img, "bgr8")
        )
    return out


def stats_ms(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64) * 1e3
    if not len(a):
        return {"median": float("nan"), "p95": float("nan"), "mean": float("nan"), "n": 0}
    return {
        "median": float(np.median(a)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
        "n": len(a),
    }


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0],
        "rmw": os.environ.get("RMW_IMPLEMENTATION", "default"),
        "fastdds_profile": os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE", ""),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def checkout(ref: str, dest: Path) -> tuple[Path, str]:
    """The ``instaseg_ros`` package as of git ``ref`` under ``dest`` (for PYTHONPATH); (root, commit)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if commit.returncode != 0:
        raise SystemExit(f"--before-ref {ref!r}: not a commit of {ROOT} (shallow clone? fetch it or pass '')")
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "instaseg_ros"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest, commit.stdout.strip()


def components(args, weights: Path) -> list[dict]:
    """CPU cost of the node's own per-frame steps in this process, without DDS (single thread, so far
    less sensitive to a loaded machine than the end-to-end numbers): input conversion/decoding, the
    tracker, the instance mask rendered (overlaps by score, track ids) into the reused message buffer,
    its message, the Detection2DArray as pre-serialised bytes; for reference the old paths: a fresh mask
    array plus the semantic image, the two image messages, the Python Detection2DArray message and its
    serialisation (what publish did with it)."""
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.models import build_segmenter

    seg = build_segmenter("yolact", weights=str(weights))
    params = InferenceParams(score_threshold=0.0, top_k=args.top_k)
    return [component_row(args, seg, params, size) for size in args.sizes]


def component_row(args, seg, params, size: tuple[int, int]) -> dict:
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from instaseg_ros.ros import conversions as conv
    from instaseg_ros.ros.detections_cdr import detections_cdr
    from instaseg_ros.tracking import Tracker

    header = Header(frame_id="bench")
    raw, jpeg = frames(size, 1, False)[0], frames(size, 1, True)[0]
    image = conv.image_to_bgr8(raw)
    inst = seg.segment([image], params)[0]
    track_ids = np.arange(1, len(inst) + 1)
    buf = conv.ImageBuffer("mono16")
    pixels = buf.pixels(*inst.image_size)
    out = conv.render_outputs(inst, track_ids, semantic=False, instance_out=pixels)
    old = conv.render_outputs(inst, track_ids)
    tracker, stamp = Tracker(), [0]

    def track() -> None:
        stamp[0] += 33_000_000
        tracker.update(inst, image, stamp[0])

    steps = {
        "raw_to_bgr8": partial(conv.image_to_bgr8, raw),
        "jpeg_decode": partial(conv.compressed_to_bgr8, jpeg),
        "tracking": track,
        "render_mask": partial(conv.render_outputs, inst, track_ids, False, pixels),
        "mask_message": partial(buf.message, header),
        "detections_bytes": partial(detections_cdr, out.source, header, keep=out.keep, ids=out.ids),
        "old_render_masks": partial(conv.render_outputs, inst, track_ids),
        "old_mask_messages": lambda: (
            conv.numpy_to_image(old.instance_ids, "mono16", header),
            conv.numpy_to_image(old.semantic, "mono8", header),
        ),
        "old_detections_message": lambda: serialize_message(
            conv.instances_to_detections(out.source, header, keep=out.keep, ids=out.ids)
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(args.warmup + args.runs):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    row = {"width": size[1], "height": size[0], "instances": len(out.keep)}
    row.update({k: stats_ms(v) for k, v in times.items()})
    new = ("raw_to_bgr8", "tracking", "render_mask", "mask_message", "detections_bytes")
    old_steps = ("raw_to_bgr8", "tracking", "old_render_masks", "old_mask_messages",
                 "old_detections_message")  # fmt: skip
    for key, names in (("raw_total", new), ("old_raw_total", old_steps)):
        row[key] = stats_ms([sum(times[k][i] for k in names) for i in range(args.runs)])
    return row


def run_transport(
    args, transport: str, variants: list[Variant], weights: Path, tmp: Path, env: dict
) -> list[dict]:
    """Every variant's node answers the same frames, interleaved; one result row per variant and size."""
    compressed = transport == "compressed"
    rows = []
    try:
        for i, v in enumerate(variants):
            start(v, transport, weights, args.top_k, env, tmp / f"node{i}_{transport}.log", args.profile)
        for v in variants:
            wait_ready(v)
        client = Client([v.ns() for v in variants])
        if not client.wait_subscribed(compressed):
            raise RuntimeError("client and nodes did not connect")
        stamp = 1
        for size in args.sizes:
            msgs = frames(size, args.runs, compressed)
            e2e: dict[str, dict[int, float]] = {v.name: {} for v in variants}
            lost = dict.fromkeys(e2e, 0)
            for i in range(args.warmup + args.runs):
                order = variants if i % 2 == 0 else variants[::-1]  # no variant always goes first
                for v in order:
                    msg = msgs[i % len(msgs)]
                    msg.header.stamp.sec, stamp = stamp, stamp + 1
                    msg.header.frame_id = "bench"
                    key = msg.header.stamp.sec * 1_000_000_000
                    dt = client.round_trip(v.ns(), msg, key, compressed)
                    if dt is None:
                        lost[v.name] += 1
                    elif i >= args.warmup:
                        e2e[v.name][key] = dt
                    time.sleep(args.gap)
            h, w = size
            for v in variants:
                hist, steps = history(v, tmp / f"history_{v.name}_{transport}_{w}x{h}.json")
                keys = [k for k in e2e[v.name] if k in hist]
                per_instance = [client.instances[k] for k in keys]
                rows.append(
                    {
                        "variant": v.name,
                        "package": v.package,
                        "transport": transport,
                        "width": w,
                        "height": h,
                        "warmup": args.warmup,
                        "runs": len(keys),
                        "lost": lost[v.name],
                        "instances_median": float(np.median(per_instance)) if per_instance else 0.0,
                        "overhead_ms": stats_ms([e2e[v.name][k] - hist[k][1] for k in keys]),
                        "node_internal_overhead_ms": stats_ms([hist[k][0] - hist[k][1] for k in keys]),
                        "end_to_end_ms": stats_ms([e2e[v.name][k] for k in keys]),
                        "model_ms": stats_ms([hist[k][1] for k in keys]),
                        "steps_in_node": steps,
                    }
                )
        client.close()
    finally:
        for v in variants:
            stop(v)
    return rows


def print_tables(rows: list[dict], parts: list[dict]) -> None:
    header = ["variant", "input", "runs", "inst", "overhead p50", "p95", "node-internal p50", "p95",
              "e2e p50", "model p50", "p95"]  # fmt: skip
    print("\n" + " | ".join(header))
    for r in rows:
        cells = [r["variant"], f"{r['width']}x{r['height']} {r['transport']}", str(r["runs"]),
                 f"{r['instances_median']:.0f}"]  # fmt: skip
        for key in ("overhead_ms", "node_internal_overhead_ms"):
            cells += [f"{r[key]['median']:.2f}", f"{r[key]['p95']:.2f}"]
        cells += [f"{r['end_to_end_ms']['median']:.1f}", f"{r['model_ms']['median']:.1f}",
                  f"{r['model_ms']['p95']:.1f}"]  # fmt: skip
        print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    if any(r.get("steps_in_node") for r in rows):
        print("\ninside the node, per frame (--profile): wall p50 ms (thread CPU p50 ms)")
        for r in rows:
            cells = [f"{k} {v['wall_ms']['median']:.2f}" + (f" ({v['cpu_ms']:.2f})" if v["cpu_ms"] else "")
                     for k, v in r["steps_in_node"].items()]  # fmt: skip
            print(f"  {r['variant']}: " + ", ".join(cells))
    if not parts:
        return
    names = ["raw_to_bgr8", "jpeg_decode", "tracking", "render_mask", "mask_message", "detections_bytes",
             "raw_total", "old_render_masks", "old_mask_messages", "old_detections_message",
             "old_raw_total"]  # fmt: skip
    print("\nnode CPU work per frame, in-process, no DDS (median / p95 ms)")
    for r in parts:
        print(f"{r['width']}x{r['height']}, {r['instances']} instances")
        for n in names:
            print(f"  {n:24s} {r[n]['median']:.3f} / {r[n]['p95']:.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        profile = len(argv) > 1 and argv[1] == "--profile"
        rest = argv[2:] if profile else argv[1:]
        return serve(rest[1:] if rest and rest[0] == "--" else rest, profile)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640x480", help="WxH list")
    ap.add_argument("--transports", default="raw", help="raw,compressed")
    ap.add_argument("--runs", type=int, default=100, help="frames per variant and size")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between frames")
    ap.add_argument("--top-k", type=int, default=20, help="instances per frame (score threshold 0)")
    ap.add_argument("--before-ref", default=BEFORE_REF, help="git commit of the 'before' node; '' = none")
    ap.add_argument(
        "--tracking", choices=("both", "on", "off"), default="both",
        help="variants with the tracker on (the default), off (the issue's < 3 ms target predates it), both",
    )  # fmt: skip
    ap.add_argument(
        "--threads", default="", help="compare num_threads settings of this node instead (e.g. 1,2,0)"
    )
    ap.add_argument(
        "--input-size", type=int, default=256, help="network input of the random ResNet-18 YOLACT"
    )
    ap.add_argument("--weights", default="", help="a YOLACT checkpoint instead of the random one")
    ap.add_argument("--no-components", action="store_true", help="skip the in-process step timings")
    ap.add_argument(
        "--profile", action="store_true",
        help="time steps inside each node (hand-off, tracking, 2D outputs, rendering: wall and CPU)",
    )  # fmt: skip
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node_overhead.json"))
    args = ap.parse_args(argv)
    args.sizes = [tuple(int(v) for v in s.split("x"))[::-1] for s in args.sizes.split(",")]

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 200 + 1))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_images.xml"))
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                                           "FASTRTPS_DEFAULT_PROFILES_FILE")})  # fmt: skip
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        weights = (
            Path(args.weights).resolve()
            if args.weights
            else make_checkpoint(tmp / "yolact_r18.pth", args.input_size)
        )
        before_commit = ""
        if args.threads:
            variants = [
                Variant(f"num_threads={t}", params=["-p", f"num_threads:={t}"],
                        env={"OMP_NUM_THREADS": None} if int(t) == 0 else {"OMP_NUM_THREADS": t})
                for t in args.threads.split(",")
            ]  # fmt: skip
        else:
            code = None
            if args.before_ref:
                code, before_commit = checkout(args.before_ref, tmp / "before")
            variants = []
            for tracking in ("on", "off") if args.tracking == "both" else (args.tracking,):
                suffix = "" if tracking == "on" else ", no tracking"
                params = [] if tracking == "on" else ["-p", "tracking.enabled:=false"]
                if code is not None:
                    variants.append(Variant("before" + suffix, code=code, params=params))
                variants.append(Variant("after" + suffix, params=params))
        parts = [] if args.no_components or args.threads else components(args, weights)
        rows = []
        for transport in args.transports.split(","):
            rows += run_transport(args, transport, variants, weights, tmp, env)
    load_at_end = os.getloadavg()
    print_tables(rows, parts)
    print(f"\nload average (1 min) at start {load_at_start[0]:.2f}, at end {load_at_end[0]:.2f}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    result = {
        "benchmark": "instaseg_node overhead (end-to-end minus model time), one frame in flight, variants "
        "interleaved frame by frame",
        "command": "python benchmarks/bench_node_overhead.py " + " ".join(argv),
        "machine": {**machine(), "load_avg_start": list(load_at_start), "load_avg_end": list(load_at_end)},
        "backend": "torch",
        "device": "cpu",
        "model": args.weights or f"random ResNet-18 YOLACT, input {args.input_size}",
        "before_ref": before_commit,
        "variants": [
            {"name": v.name, "params": v.params, "env": v.env, "package": v.package} for v in variants
        ],
        "client_subscribes": "~/detections only, raw: its receipt is stamped before the client's own "
        "Python deserialisation (~0.6 ms for 20 detections in rclpy; a C++ subscriber's is negligible)",
        "target": "overhead median < 3 ms at 640x480 raw",
        "results": rows,
        "components_in_process": parts,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
