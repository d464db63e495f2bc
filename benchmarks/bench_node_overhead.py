"""instaseg_node overhead: end-to-end latency minus the model's own time, over real DDS.

The node runs in its own process (like on a robot); this script publishes one frame at a time,
stamps the receipt of ``~/detections`` (published last, after both masks) and subtracts the time
the node spent inside ``Segmenter.segment`` for that very frame (the node's per-frame history,
matched by header stamp). What remains is everything the ROS layer adds: DDS transport of the image
and of all outputs, decoding (JPEG for compressed input), the instance/semantic images, message
building and publishing.

    python benchmarks/bench_node_overhead.py                      # 640x480 + 1280x720, raw + compressed
    python benchmarks/bench_node_overhead.py --runs 50 --sizes 640x480 --transports raw

Prints a table and writes JSON (machine, sizes, warm-up, runs, median, p95). Both processes use
config/fastdds_large_images.xml (Fast DDS's default shared-memory segment is smaller than one
640x480 image) unless FASTRTPS_DEFAULT_PROFILES_FILE is already set. Target: < 3 ms median at
640x480 raw.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from instaseg_ros.core.labels import INDOOR_CLASSES

ROOT = Path(__file__).resolve().parents[1]
CLASSES = INDOOR_CLASSES


# ----------------------------------------------------------------------------- node side
def serve(ros_args: list[str]) -> int:
    """Run instaseg_node in this process; on stdin ``dump PATH`` write its per-frame history as JSON."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn

    from instaseg_ros.ros.node import InstasegNode

    rclpy.init(args=["serve", "--ros-args", *ros_args])
    node = InstasegNode()
    ok = TransitionCallbackReturn.SUCCESS
    if node.trigger_configure() != ok or node.trigger_activate() != ok:
        print("node failed to start", file=sys.stderr, flush=True)
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    print("READY", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "dump":
            Path(arg).write_text(json.dumps(node.stats.history()))
            print("DUMPED", flush=True)
        elif cmd == "quit":
            break
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ----------------------------------------------------------------------------- client side
class Client:
    """Publishes frames and stamps the receipt time of each ~/detections message by header stamp."""

    def __init__(self, node_fqn: str, image_topic: str):
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
        self.sub = self.node.create_subscription(
            Detection2DArray, f"{node_fqn}/detections", self._on_detections, qos
        )
        self.raw_pub = self.node.create_publisher(Image, image_topic, qos)
        self.compressed_pub = self.node.create_publisher(CompressedImage, image_topic + "/compressed", qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_detections(self, msg) -> None:
        t = time.perf_counter()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.cond:
            self.arrived[key] = t
            self.instances[key] = len(msg.detections)
            self.cond.notify_all()

    def wait_subscribed(self, compressed: bool, timeout: float = 60.0) -> bool:
        pub = self.compressed_pub if compressed else self.raw_pub
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pub.get_subscription_count() > 0 and self.sub.get_publisher_count() > 0:
                return True
            time.sleep(0.05)
        return False

    def round_trip(self, msg, key: int, compressed: bool, timeout: float = 20.0) -> float | None:
        """Publish ``msg`` and return seconds until its detections arrived (None if lost)."""
        pub = self.compressed_pub if compressed else self.raw_pub
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

    from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

    torch.manual_seed(0)
    cfg = YolactConfig(
        backbone="resnet18", num_classes=len(CLASSES), class_names=CLASSES, input_size=input_size
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


def mask_messages(out, header) -> tuple:
    from instaseg_ros.ros import conversions as conv

    return (
        conv.numpy_to_image(out.instance_ids, "mono16", header),
        conv.numpy_to_image(out.semantic, "mono8", header),
    )


def components(args, weights: Path) -> list[dict]:
    """CPU cost of the node's own per-frame steps, in this process without DDS (single thread, so far
    less sensitive to a loaded machine than the end-to-end numbers): input conversion/decoding, overlap
    resolution + semantic image, the two mask messages and the Detection2DArray."""
    from std_msgs.msg import Header

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.models import build_segmenter
    from instaseg_ros.ros import conversions as conv

    seg = build_segmenter("yolact", weights=str(weights))
    params = InferenceParams(score_threshold=0.0, top_k=args.top_k)
    header = Header(frame_id="bench")
    rows = []
    for size in args.sizes:
        raw, jpeg = frames(size, 1, False)[0], frames(size, 1, True)[0]
        image = conv.image_to_bgr8(raw)
        inst = seg.segment([image], params)[0]
        out = conv.render_outputs(inst)
        steps = {
            "raw_to_bgr8": partial(conv.image_to_bgr8, raw),
            "jpeg_decode": partial(conv.compressed_to_bgr8, jpeg),
            "render_masks": partial(conv.render_outputs, inst),
            "mask_messages": partial(mask_messages, out, header),
            "detections_message": partial(conv.instances_to_detections, out.source, header, keep=out.keep),
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
        raw_total = [sum(times[k][i] for k in steps if k != "jpeg_decode") for i in range(args.runs)]
        row["raw_total"] = stats_ms(raw_total)
        rows.append(row)
    return rows


def run_transport(args, transport: str, weights: Path, tmp: Path, env: dict) -> list[dict]:
    compressed = transport == "compressed"
    ns = f"/bench{os.getpid()}"
    ros_args = [
        "-r", f"__ns:={ns}", "-r", "image:=camera/image",
        "-p", f"model.weights:={weights}", "-p", "score_threshold:=0.0", "-p", f"top_k:={args.top_k}",
        "-p", f"input_transport:={transport}", "-p", "debug_image:=false",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--", *ros_args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    rows = []
    try:
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the node process did not start")
        client = Client(f"{ns}/instaseg_node", f"{ns}/camera/image")
        if not client.wait_subscribed(compressed):
            raise RuntimeError("client and node did not connect")
        stamp = 1
        for size in args.sizes:
            msgs = frames(size, args.runs, compressed)
            e2e: dict[int, float] = {}
            lost = 0
            for i in range(args.warmup + args.runs):
                msg = msgs[i % len(msgs)]
                msg.header.stamp.sec, stamp = stamp, stamp + 1
                msg.header.frame_id = "bench"
                key = msg.header.stamp.sec * 1_000_000_000
                dt = client.round_trip(msg, key, compressed)
                if dt is None:
                    lost += 1
                elif i >= args.warmup:
                    e2e[key] = dt
            dump = tmp / f"history_{transport}_{size[1]}x{size[0]}.json"
            proc.stdin.write(f"dump {dump}\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "DUMPED"
            history = {k: (lat, inf) for k, lat, inf in json.loads(dump.read_text())}
            keys = [k for k in e2e if k in history]
            overhead = [e2e[k] - history[k][1] for k in keys]
            node_internal = [history[k][0] - history[k][1] for k in keys]
            per_instance = [client.instances[k] for k in keys]
            h, w = size
            rows.append(
                {
                    "transport": transport,
                    "width": w,
                    "height": h,
                    "warmup": args.warmup,
                    "runs": len(keys),
                    "lost": lost,
                    "instances_median": float(np.median(per_instance)) if per_instance else 0.0,
                    "overhead_ms": stats_ms(overhead),
                    "node_internal_overhead_ms": stats_ms(node_internal),
                    "end_to_end_ms": stats_ms([e2e[k] for k in keys]),
                    "model_ms": stats_ms([history[k][1] for k in keys]),
                    # mask bytes on the wire vs. one full-size mono8 mask per instance (peer style)
                    "mask_bytes_ours": h * w * 3,
                    "mask_bytes_per_instance_images": int(np.median(per_instance) * h * w)
                    if per_instance
                    else 0,
                }
            )
        client.close()
    finally:
        if proc.poll() is None:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                proc.kill()
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--serve":
        return serve(argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="640x480,1280x720", help="WxH list")
    ap.add_argument("--transports", default="raw,compressed")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--top-k", type=int, default=20, help="instances per frame (score threshold 0)")
    ap.add_argument(
        "--input-size", type=int, default=256, help="network input of the random ResNet-18 YOLACT"
    )
    ap.add_argument("--weights", default="", help="a YOLACT checkpoint instead of the random one")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node_overhead.json"))
    args = ap.parse_args(argv)
    args.sizes = [tuple(int(v) for v in s.split("x"))[::-1] for s in args.sizes.split(",")]

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 200 + 1))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_images.xml"))
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                                           "FASTRTPS_DEFAULT_PROFILES_FILE")})  # fmt: skip
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        weights = (
            Path(args.weights) if args.weights else make_checkpoint(tmp / "yolact_r18.pth", args.input_size)
        )
        rows = []
        parts = components(args, weights)
        for transport in args.transports.split(","):
            rows += run_transport(args, transport, weights, tmp, env)

    header = [
        "input",
        "runs",
        "inst",
        "overhead p50",
        "p95",
        "node-internal p50",
        "p95",
        "e2e p50",
        "p95",
        "model p50",
    ]
    print("\n" + " | ".join(header))
    for r in rows:
        cells = [
            f"{r['width']}x{r['height']} {r['transport']}",
            str(r["runs"]),
            f"{r['instances_median']:.0f}",
        ]
        for key in ("overhead_ms", "node_internal_overhead_ms", "end_to_end_ms"):
            cells += [f"{r[key]['median']:.2f}", f"{r[key]['p95']:.2f}"]
        cells.append(f"{r['model_ms']['median']:.1f}")
        print(" | ".join(c.rjust(len(h)) for c, h in zip(cells, header)))
    names = ["raw_to_bgr8", "jpeg_decode", "render_masks", "mask_messages", "detections_message", "raw_total"]
    print("\nnode CPU work per frame, in-process, no DDS (median / p95 ms)")
    print(" | ".join(["input", "inst", *names]))
    for r in parts:
        cells = [f"{r['width']}x{r['height']}", str(r["instances"])]
        cells += [f"{r[n]['median']:.2f}/{r[n]['p95']:.2f}" for n in names]
        print(" | ".join(cells))
    result = {
        "benchmark": "instaseg_node overhead (end-to-end minus model time), one frame in flight",
        "machine": {**machine(), "load_avg_1m_start": load_at_start},
        "backend": "torch",
        "device": "cpu",
        "model": args.weights or f"random ResNet-18 YOLACT, input {args.input_size}",
        "target": "overhead median < 3 ms at 640x480 raw",
        "results": rows,
        "components_in_process": parts,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
