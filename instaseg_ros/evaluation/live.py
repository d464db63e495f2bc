"""Live mode of ``eval-bag``: replay a bag to the real node over DDS and score what it publishes.

:func:`run_live` starts ``python -m instaseg_ros.ros.node`` in its own process (own namespace, model and
thresholds as parameters), waits until it has loaded the model and subscribed, then publishes the bag's
frames at their recorded rate (header stamps step the schedule; ``rate_multiplier`` speeds it up) with
the original header stamps and frame ids. It collects ``~/detections`` and ``~/instance_mask`` by stamp
and rebuilds ``Instances`` from them (:func:`instances_from_outputs`), so the node's published outputs
are what is scored.

Per frame: latency = our publish call -> both outputs received (one clock, this process), processed
or dropped (no result by the end of the drain wait). Peak RSS of the node process comes from
``/proc/<pid>/status`` (VmHWM); the node's own counters come from its ``/diagnostics``.
rclpy is imported inside the functions so this module imports without ROS.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.stamps import stamp_ns
from instaseg_ros.evaluation.bag_eval import (
    BagEvalConfig,
    BagFrame,
    EvalError,
    FrameMatch,
    FrameRecord,
    RunData,
    class_to_category,
    to_results,
)
from instaseg_ros.evaluation.gt_tools import StampedGroundTruth

NODE_NAME = "instaseg_node"


# --------------------------------------------------------------------------- node outputs -> Instances
def class_names_from_label_info(msg: Any) -> list[str]:
    """``vision_msgs/LabelInfo`` (0 = background, k = class k-1) -> class names in class-id order."""
    table = {int(c.class_id): str(c.class_name) for c in msg.class_map if int(c.class_id) > 0}
    if sorted(table) != list(range(1, len(table) + 1)):
        raise ValueError(f"label_info class ids are not 1..N: {sorted(table)}")
    return [table[k] for k in range(1, len(table) + 1)]


def instances_from_outputs(detections: Any, instance_mask: Any, class_names: list[str]) -> Instances:
    """Rebuild ``Instances`` from one ``Detection2DArray`` and its mono16 ``instance_mask``.

    Detection ``id`` k owns the mask pixels equal to k; the hypothesis class is a class name or the
    label_info index (``class_id_format`` name or index); boxes come from the bbox centre/size.

    Raises:
        ValueError: wrong mask encoding, an id that is not a positive integer, or an unknown class.
    """
    from instaseg_ros.ros.conversions import image_to_numpy

    if instance_mask.encoding != "mono16":
        raise ValueError(f"instance_mask encoding is {instance_mask.encoding!r}, expected mono16")
    ids = np.asarray(image_to_numpy(instance_mask), dtype=np.uint16)
    h, w = ids.shape
    index = {n: i for i, n in enumerate(class_names)}
    dets = list(detections.detections)
    n = len(dets)
    keys = np.zeros(n, np.int64)
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    classes = np.zeros(n, np.int64)
    for i, d in enumerate(dets):
        try:
            keys[i] = int(d.id)
        except ValueError:
            raise ValueError(f"Detection2D id {d.id!r} is not an integer instance-mask value") from None
        if keys[i] <= 0:
            raise ValueError(f"Detection2D id {d.id!r} must be >= 1 (0 is background)")
        if not d.results:
            raise ValueError(f"Detection2D {d.id} has no hypothesis")
        hyp = d.results[0].hypothesis
        cid = str(hyp.class_id)
        if cid in index:
            classes[i] = index[cid]
        elif cid.isdigit() and 1 <= int(cid) <= len(class_names):
            classes[i] = int(cid) - 1
        else:
            raise ValueError(f"Detection2D {d.id} has class {cid!r}, unknown to label_info {class_names}")
        scores[i] = float(hyp.score)
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        bw, bh = d.bbox.size_x, d.bbox.size_y
        boxes[i] = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
    masks = ids[None] == keys.astype(np.uint16)[:, None, None] if n else np.zeros((0, h, w), bool)
    return Instances(boxes, scores, classes, masks, (h, w), list(class_names))


# --------------------------------------------------------------------------- node process
def node_arguments(cfg: BagEvalConfig, namespace: str) -> list[str]:
    """``--ros-args`` of the evaluated node: namespace, input remap, model and threshold parameters."""
    m = cfg.model
    p = m.params
    params: dict[str, Any] = {
        "model.family": m.family,
        "device": m.device,
        "precision": m.precision,
        "score_threshold": float(p.score_threshold),
        "nms_threshold": float(p.nms_threshold),
        "mask_threshold": float(p.mask_threshold),
        "top_k": int(p.top_k),
        "cross_class_nms": bool(p.cross_class_nms),
        "input_transport": cfg.live_transport,
        "debug_image": False,
        "diagnostics_period": 0.5,
    }
    if m.weights:
        params["model.weights"] = str(Path(m.weights).resolve())
    if m.config:
        params["model.config"] = str(Path(m.config).resolve())
    if p.class_filter:
        params["class_filter"] = list(p.class_filter)
    params.update(cfg.node_params)
    args = ["--ros-args", "-r", f"__ns:={namespace}", "-r", f"__node:={NODE_NAME}"]
    args += ["-r", f"image:={namespace}/image"]
    for k, v in params.items():
        args += ["-p", f"{k}:={json.dumps(v)}"]
    return args


def launch_command(cfg: BagEvalConfig, namespace: str) -> list[str]:
    """``ros2 launch instaseg_ros instaseg.launch.py`` with the evaluation's parameters in a params file."""
    import yaml

    args = node_arguments(cfg, namespace)
    params = {
        args[i + 1].split(":=", 1)[0]: json.loads(args[i + 1].split(":=", 1)[1])
        for i in range(len(args) - 1)
        if args[i] == "-p"
    }
    fd, path = tempfile.mkstemp(prefix="instaseg_eval_params_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({"/**": {"ros__parameters": params}}, f)
    return [
        "ros2",
        "launch",
        "instaseg_ros",
        "instaseg.launch.py",
        f"namespace:={namespace.strip('/')}",
        f"node_name:={NODE_NAME}",
        f"image:={namespace}/image",
        f"params_file:={path}",
        f"use_compressed:={'true' if cfg.live_transport == 'compressed' else 'false'}",
    ]


def node_command(cfg: BagEvalConfig, namespace: str) -> list[str]:
    """The node's command line (plug-in modules are imported before the node's ``main``)."""
    if cfg.launcher == "ros2 launch":
        if cfg.model.plugins:
            raise EvalError("plug-in model families need the python launcher, not ros2 launch")
        return launch_command(cfg, namespace)
    if cfg.launcher != "python":
        raise EvalError(f"launcher must be 'python' or 'ros2 launch', got {cfg.launcher!r}")
    if cfg.model.plugins:
        code = (
            "import importlib, sys\n"
            f"for m in {list(cfg.model.plugins)!r}: importlib.import_module(m)\n"
            "from instaseg_ros.ros.node import main\n"
            "sys.exit(main())"
        )
        return [sys.executable, "-c", code, *node_arguments(cfg, namespace)]
    return [sys.executable, "-m", "instaseg_ros.ros.node", *node_arguments(cfg, namespace)]


def large_image_profile() -> str:
    """The package's Fast DDS profile for camera-sized messages (installed share, else the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("instaseg_ros")) / "config" / "fastdds_large_images.xml"
        if p.is_file():
            return str(p)
    except Exception:  # noqa: BLE001 - not installed as a ROS package: use the source tree
        pass
    p = Path(__file__).resolve().parents[2] / "config" / "fastdds_large_images.xml"
    if not p.is_file():
        raise EvalError("config/fastdds_large_images.xml not found (installed share or source tree)")
    return str(p)


def process_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a running process in MB (Linux; None elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def node_pid(pid: int, marker: str = "instaseg_ros.ros.node") -> int:
    """``pid`` itself, or its descendant running the node (``ros2 launch`` starts it as a child)."""

    def children(p: int) -> list[int]:
        """Processes whose parent is ``p``, from /proc/*/stat (task/*/children can miss new ones)."""
        out: list[int] = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                if int(text[text.rindex(")") + 2 :].split()[1]) == p:
                    out.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                pass
        return out

    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd or any(Path(t).name == "instaseg_node" for t in cmd.split()[:2]):
            return p
        todo += children(p)
    return pid


def _tail(path: Path, n: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass
class _Collected:
    """Outputs received per stamp (filled by subscription callbacks)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    det: dict[int, tuple[float, Any]] = field(default_factory=dict)
    mask: dict[int, tuple[float, Any]] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)
    label_info: Any = None
    diagnostics: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the run
def run_live(
    cfg: BagEvalConfig,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RunData:
    """Replay ``cfg.bag`` to a freshly started node and collect its outputs (see the module doc).

    Raises:
        EvalError: the node cannot start (its log tail is in the message), or its outputs do not fit.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from tqdm import tqdm

    say = log or (lambda _m: None)
    if cfg.rate_multiplier <= 0:
        raise EvalError(f"rate multiplier must be > 0, got {cfg.rate_multiplier}")
    if cfg.live_transport not in ("raw", "compressed"):
        raise EvalError(f"live transport must be 'raw' or 'compressed', got {cfg.live_transport!r}")
    for what, path in (("weights", cfg.model.weights), ("config", cfg.model.config)):
        if path and not Path(path).is_file():
            raise EvalError(f"model {what} file not found: {path}")
    namespace = f"/instaseg_eval_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    node_base = f"{namespace}/{NODE_NAME}"
    keep_stamps = {frames[k].stamp_ns for k in match.frame_to_image}
    col = _Collected()

    env = dict(os.environ)
    if cfg.dds_profile:
        if not Path(cfg.dds_profile).is_file():
            raise EvalError(f"DDS profile file not found: {cfg.dds_profile}")
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(cfg.dds_profile).resolve())
    ctx, node = _player_node(env)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spin_stop = threading.Event()
    spin = threading.Thread(target=_spin, args=(executor, ctx, spin_stop), daemon=True)
    writer = None
    wlock = threading.Lock()
    log_file = Path(tempfile.mkstemp(prefix="instaseg_eval_node_", suffix=".log")[1])
    proc = None
    try:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray, LabelInfo

        if cfg.output_bag:
            from instaseg_ros.evaluation.output_bag import OutputBagWriter

            try:
                writer = OutputBagWriter(cfg.output_bag, cfg.topic, [], debug_image=False)
            except (ImportError, OSError) as e:
                raise EvalError(f"cannot write the output bag {cfg.output_bag}: {e}") from e

        def on_output(kind: str) -> Callable[[Any], None]:
            """Callback storing one output kind by stamp; a frame is done when both kinds arrived."""
            mine, other = (col.det, col.mask) if kind == "detections" else (col.mask, col.det)

            def callback(msg: Any) -> None:
                t = time.monotonic()
                st = stamp_ns(msg.header)
                with col.lock:
                    mine[st] = (t, msg if st in keep_stamps else None)  # pixels kept for scored frames only
                    if st in other:
                        col.done.setdefault(st, max(t, other[st][0]))
                if writer is not None:
                    with wlock:
                        writer.write_raw(kind, st, msg)

            return callback

        def on_label(msg: Any) -> None:
            col.label_info = msg

        def on_diag(msg: Any) -> None:
            for s in msg.status:  # ours: the status whose input topic is in our namespace
                values = {kv.key: kv.value for kv in s.values}
                if values.get("input_topic", "").startswith(namespace + "/"):
                    col.diagnostics = values

        rel = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        node.create_subscription(Detection2DArray, f"{node_base}/detections", on_output("detections"), rel)
        node.create_subscription(Image, f"{node_base}/instance_mask", on_output("instance_mask"), rel)
        node.create_subscription(LabelInfo, f"{node_base}/label_info", on_label, latched)
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        compressed = cfg.live_transport == "compressed"
        in_topic = f"{namespace}/image" + ("/compressed" if compressed else "")
        pub_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
        pub = node.create_publisher(CompressedImage if compressed else Image, in_topic, pub_qos)
        spin.start()

        cmd = node_command(cfg, namespace)
        say(f"starting the node {node_base} ({cfg.model.family}; log: {log_file})")
        with open(log_file, "wb") as lf:
            try:
                proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
            except FileNotFoundError as e:
                raise EvalError(
                    f"cannot start the node: {cmd[0]!r} not found ({e.strerror}); for ros2 launch source the "
                    f"ROS 2 setup (the installed package), or use the python launcher"
                ) from e
        _wait_ready(proc, pub, node, node_base, col, cfg.startup_timeout_s, log_file)
        class_names = class_names_from_label_info(col.label_info)
        cat_map = class_to_category(class_names, gt)
        say(
            f"node ready ({len(class_names)} classes); replaying {len(frames)} frames "
            f"at x{cfg.rate_multiplier:g}"
        )

        sent_at, lag = _replay(cfg, frames, pub, compressed, writer, wlock, progress, tqdm, col)
        _drain(col, frames, sent_at, cfg.drain_timeout_s, proc)
        time.sleep(0.6)  # one more diagnostics period
        node_rss = process_peak_rss_mb(node_pid(proc.pid)) if proc.poll() is None else None
        if proc.poll() is not None:
            raise EvalError(
                f"the node exited (code {proc.returncode}) during the replay; log tail:\n{_tail(log_file)}"
            )
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        spin_stop.set()
        if spin.is_alive():
            spin.join(timeout=5)
        executor.shutdown(timeout_sec=2)
        node.destroy_node()
        if ctx.ok():
            rclpy.shutdown(context=ctx)
        if writer is not None:
            writer.close()

    t0 = min(sent_at.values()) if sent_at else 0.0
    records: list[FrameRecord] = []
    results: list[dict[str, Any]] = []
    for f in frames:
        iid = match.frame_to_image.get(f.index)
        if f.index not in sent_at:
            records.append(FrameRecord(f.index, f.stamp_ns, iid, False, sent=False))
            continue
        done = col.done.get(f.stamp_ns)
        if done is None:
            records.append(FrameRecord(f.index, f.stamp_ns, iid, False, None, sent_at[f.index] - t0))
            continue
        det_msg = col.det[f.stamp_ns][1]
        n = len(det_msg.detections) if det_msg is not None else None
        rec = FrameRecord(f.index, f.stamp_ns, iid, True, (done - sent_at[f.index]) * 1e3, done - t0, n)
        records.append(rec)
        if iid is not None:
            try:
                inst = instances_from_outputs(det_msg, col.mask[f.stamp_ns][1], class_names)
            except ValueError as e:
                raise EvalError(f"the node's outputs for stamp {f.stamp_ns} do not fit together: {e}") from e
            rec.num_detections = len(inst)
            results.extend(to_results(inst, iid, cat_map))
    wall = (max(col.done.values()) - t0) if col.done else 0.0
    return RunData(
        "live",
        records,
        results,
        wall,
        class_names,
        node_rss,
        "node process (VmHWM)",
        None,
        {
            "model": {"family": cfg.model.family, "device": col.diagnostics.get("device", cfg.model.device)},
            "transport": cfg.live_transport,
            "namespace": namespace,
            "drain_timeout_s": cfg.drain_timeout_s,
            "dds_profile": env.get("FASTRTPS_DEFAULT_PROFILES_FILE", ""),
            "max_send_lag_ms": lag * 1e3,
            "node_log": str(log_file),
            "node_diagnostics": col.diagnostics,
        },
    )


def _player_node(env: dict[str, str]) -> tuple[Any, Any]:
    """Our own rclpy context + node; the DDS profile in ``env`` applies to its participant only."""
    import rclpy

    key = "FASTRTPS_DEFAULT_PROFILES_FILE"
    before = os.environ.get(key)
    if env.get(key):
        os.environ[key] = env[key]  # read when the participant is created, restored right after
    try:
        ctx = rclpy.context.Context()
        try:  # keep Ctrl-C a KeyboardInterrupt in this process (the CLI turns it into a clean exit)
            from rclpy.signals import SignalHandlerOptions

            rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
        except (ImportError, TypeError):
            rclpy.init(context=ctx)
        node = rclpy.create_node(f"instaseg_eval_player_{os.getpid()}", context=ctx)
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
    return ctx, node


def _spin(executor: Any, ctx: Any, stop: threading.Event) -> None:
    try:
        while ctx.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
    except Exception:  # noqa: BLE001 - shutdown races end the spin thread quietly
        pass


def _wait_ready(proc, pub, node, node_base: str, col: _Collected, timeout: float, log_file: Path) -> None:
    """Until the node subscribes to our images and publishes both outputs and its label_info."""
    deadline = time.monotonic() + timeout
    next_log_check = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_log_check:  # a failed configure leaves the node alive but useless
            next_log_check = time.monotonic() + 0.5
            if "configure failed" in _tail(log_file, 20000):
                raise EvalError(f"the node could not load its model; log tail:\n{_tail(log_file)}")
        if proc.poll() is not None:
            raise EvalError(
                f"the node exited (code {proc.returncode}) during start-up; log tail:\n{_tail(log_file)}"
            )
        ready = (
            pub.get_subscription_count() > 0
            and node.count_publishers(f"{node_base}/detections") > 0
            and node.count_publishers(f"{node_base}/instance_mask") > 0
            and col.label_info is not None
        )
        if ready:
            time.sleep(0.5)  # let discovery settle in both directions
            return
        time.sleep(0.1)
    raise EvalError(
        f"the node did not become ready within {timeout:g} s (model loading? wrong parameters?); "
        f"log tail:\n{_tail(log_file)}"
    )


def _replay(
    cfg, frames, pub, compressed, writer, wlock, progress, tqdm, col
) -> tuple[dict[int, float], float]:
    """Publish every frame on schedule; returns (frame index -> send time, worst lateness in s)."""
    from instaseg_ros.data.bag_io import BagError, iter_bag_images
    from instaseg_ros.evaluation.output_bag import OutputBagWriter
    from instaseg_ros.ros import conversions as conv

    q: queue.Queue = queue.Queue(maxsize=32)
    stop = threading.Event()

    def reader() -> None:
        try:
            for k, item in enumerate(iter_bag_images(cfg.bag, cfg.topic)):
                while not stop.is_set():
                    try:
                        q.put((k, *item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(None)
        except BagError as e:
            q.put(e)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    sent_at: dict[int, float] = {}
    lag = 0.0
    stamp0 = frames[0].stamp_ns
    start = time.monotonic() + 0.2
    bar = tqdm(total=len(frames), unit="frame", desc="eval-bag live", disable=not progress, file=sys.stderr)
    try:
        while True:
            item = q.get()
            if item is None:
                break
            if isinstance(item, Exception):
                raise EvalError(str(item)) from item
            k, stamp, frame_id, img = item
            header = OutputBagWriter.header(stamp, frame_id)
            msg = (conv.bgr8_to_compressed(img, "jpeg", header) if compressed
                   else conv.numpy_to_image(img, "bgr8", header))  # fmt: skip
            target = start + max(0, stamp - stamp0) / 1e9 / cfg.rate_multiplier
            now = time.monotonic()
            if target > now:
                time.sleep(target - now)
            else:
                lag = max(lag, now - target)
            sent_at[k] = time.monotonic()
            pub.publish(msg)
            if writer is not None:
                with wlock:
                    writer.write_raw("image", stamp, conv.numpy_to_image(img, "bgr8", header))
            bar.update(1)
            bar.set_postfix(processed=len(col.done), refresh=False)
    finally:
        stop.set()
        bar.close()
    th.join(timeout=5)
    return sent_at, lag


def _drain(col: _Collected, frames: list[BagFrame], sent_at: dict[int, float], timeout: float, proc) -> None:
    """Wait for the last frame's result (the node takes frames in order), then a short grace period."""
    if not sent_at:
        return
    last = frames[max(sent_at)].stamp_ns
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and last not in col.done and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)
