"""Bounded soak of instaseg_node: memory (RSS) over time under a steady camera stream (not a test).

The node runs in its own process (``python -m instaseg_ros.ros.node``) with the large-image Fast DDS
profile; this script publishes frames at ``--rate`` Hz for ``--duration`` seconds, with a malformed or
hostile message (the fuzzers' generators) after every ``--hostile-every`` frames, samples the node's
RSS once a second and checks that outputs are never stale or duplicated.

    python benchmarks/soak_node.py                                   # 120 s, 640x480 raw, 10 Hz
    python benchmarks/soak_node.py --duration 300 --rate 30 --size 1280x720 --transport compressed \\
        --params-file config/yolact.yaml                             # the shipped model

Prints a table (10 s buckets: RSS, frames sent/answered) and writes JSON (machine, configuration,
every sample, RSS at start/end/peak and the slope over the second half in MiB/min).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "test"), str(ROOT / "test" / "ros")]


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of streaming (default 120)")
    ap.add_argument("--rate", type=float, default=10.0, help="frames per second published (default 10)")
    ap.add_argument("--size", default="640x480", help="WxH of the frames (default 640x480)")
    ap.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    ap.add_argument("--hostile-every", type=int, default=10, help="a fuzzed message after N frames; 0 = none")
    ap.add_argument("--params-file", default="", help="node parameter file (default: tiny random YOLACT)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak_node.json"))
    args = ap.parse_args(argv)

    from ros_probe import NodeProcess, Probe, ensure_ros_env, make_tiny_yolact, random_image, rss_mb
    from test_node_fuzz import fuzz_compressed, fuzz_raw

    from instaseg_ros.ros import conversions as conv

    ensure_ros_env()
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_images.xml"))
    tmp = Path(tempfile.mkdtemp(prefix="soak_"))
    compressed = args.transport == "compressed"
    ros_args = ["-r", "__ns:=/soak", "-r", "image:=/soak/camera", "-p", f"input_transport:={args.transport}"]
    if args.params_file:
        ros_args += ["--params-file", args.params_file]
    else:
        ros_args += [
            "-p",
            f"model.weights:={make_tiny_yolact(tmp / 'tiny.pth')}",
            "-p",
            "score_threshold:=0.05",
        ]
    node = NodeProcess(ros_args, tmp / "node.log")
    probe = None
    samples: list[dict] = []
    try:
        if not node.wait_log("active:", 300):
            print(f"node did not become active:\n{node.log()[-2000:]}", file=sys.stderr)
            return 1
        probe = Probe("/soak/instaseg_node", "/soak/camera")
        if not probe.wait_connected(compressed=compressed):
            print("probe and node did not discover each other", file=sys.stderr)
            return 1
        rng = np.random.default_rng(0)
        w, h = parse_size(args.size)
        pool = [random_image(rng, h, w) for _ in range(8)]
        fuzz_pool = [(bytes(conv.bgr8_to_compressed(p, "jpeg").data), "jpeg") for p in pool[:4]]
        sent: list[int] = []
        t0 = next_sample = time.monotonic()
        i = 0
        while (now := time.monotonic()) - t0 < args.duration:
            header = probe.next_header()
            img = pool[i % len(pool)]
            msg = (
                conv.bgr8_to_compressed(img, "jpeg", header)
                if compressed
                else conv.numpy_to_image(img, "bgr8", header)
            )
            probe.publish(msg, compressed)
            sent.append(header.stamp.sec)
            i += 1
            if args.hostile_every and i % args.hostile_every == 0:
                bad_header = probe.next_header()
                bad = fuzz_compressed(rng, bad_header, fuzz_pool) if compressed else fuzz_raw(rng, bad_header)
                probe.publish(bad, compressed)
            if now >= next_sample:
                answered = len(probe.outputs("detections"))
                samples.append({"t_s": round(now - t0, 2), "rss_mib": round(rss_mb(node.proc.pid), 1),
                                "frames_sent": len(sent), "frames_answered": answered})  # fmt: skip
                next_sample += 1.0
            time.sleep(max(0.0, t0 + i / args.rate - time.monotonic()))
        time.sleep(2.0)
        stamps = [m.header.stamp.sec for m in probe.outputs("detections")]
        diag = probe.latest_diagnostics(timeout=5) or {}
    finally:
        if probe is not None:
            probe.close()
        rc = node.stop()
    rss = np.array([s["rss_mib"] for s in samples])
    half = samples[len(samples) // 2 :]
    slope = (
        float(np.polyfit([s["t_s"] for s in half], [s["rss_mib"] for s in half], 1)[0] * 60)
        if len(half) > 2
        else float("nan")
    )
    summary = {
        "rss_start_mib": float(rss[0]), "rss_end_mib": float(rss[-1]), "rss_peak_mib": float(rss.max()),
        "rss_slope_second_half_mib_per_min": round(slope, 2), "frames_sent": len(sent),
        "frames_answered": len(stamps), "stale_or_duplicate": stamps != sorted(set(stamps)),
        "node_exit_code": rc,
        **{k: diag.get(k, "") for k in ("received", "processed", "dropped", "rejected", "errors",
                                        "latency_ms_p50")},
    }  # fmt: skip
    result = {
        "benchmark": "soak_node",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
        "config": {k: getattr(args, k)
                   for k in ("duration", "rate", "size", "transport", "hostile_every", "params_file")},
        "summary": summary,
        "samples": samples,
    }  # fmt: skip
    print(f"{'t (s)':>6} {'RSS (MiB)':>10} {'sent':>6} {'answered':>9}")
    for s in samples[::10] + ([samples[-1]] if len(samples) % 10 != 1 else []):
        print(f"{s['t_s']:>6.0f} {s['rss_mib']:>10.1f} {s['frames_sent']:>6} {s['frames_answered']:>9}")
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0 if rc == 0 and not summary["stale_or_duplicate"] else 1


if __name__ == "__main__":
    sys.exit(main())
