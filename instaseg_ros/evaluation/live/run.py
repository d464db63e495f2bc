"""The live run in four steps: start the node, replay the bag to it, collect its results, score them."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instaseg_ros.evaluation.gt_tools import StampedGroundTruth
from instaseg_ros.evaluation.live.outputs import class_names_from_label_info, instances_from_outputs
from instaseg_ros.evaluation.live.player import Collected, Player
from instaseg_ros.evaluation.live.process import (
    log_tail,
    node_command,
    node_pid,
    process_peak_rss_mb,
    stop_node,
)
from instaseg_ros.evaluation.matching import class_to_category, to_results
from instaseg_ros.evaluation.records import (
    BagEvalConfig,
    BagFrame,
    EvalError,
    FrameMatch,
    FrameRecord,
    RunData,
)

#: precisions the node's ``precision`` parameter accepts
NODE_PRECISIONS = ("fp32", "fp16")


def run_live(
    cfg: BagEvalConfig,
    frames: list[BagFrame],
    match: FrameMatch,
    gt: StampedGroundTruth,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    scoring: Any = None,
) -> RunData:
    """Replay ``cfg.bag`` to a freshly started node and score its outputs (see the package doc).

    ``scoring`` (:class:`~instaseg_ros.evaluation.bag_eval.Scoring`): tracking and 3D scores; with 3D
    the node runs with ``depth.enabled`` and gets the bag's depth frames before each colour frame.

    Raises:
        EvalError: bad settings, the node cannot start (its log tail is in the message), or its
            outputs do not fit together.
    """
    say = log or (lambda _m: None)
    env = live_environment(cfg)
    depth = scoring is not None and scoring.want_3d
    if depth:
        import dataclasses

        scoring.load_depth()
        cfg = dataclasses.replace(cfg, node_params={"depth.enabled": True, **cfg.node_params})
    namespace = f"/instaseg_eval_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    log_file = Path(tempfile.mkstemp(prefix="instaseg_eval_node_", suffix=".log")[1])
    player = Player(env, namespace, {frames[k].stamp_ns for k in match.frame_to_image})
    proc = None
    try:
        player.open(cfg, depth=depth)
        proc = start_node(cfg, player, env, log_file, say)
        class_names = class_names_from_label_info(player.col.label_info)
        cat_map = class_to_category(class_names, gt)
        if scoring is not None:
            scoring.start(class_names, own_tracker=False)
        say(
            f"node ready ({len(class_names)} classes); replaying {len(frames)} frames "
            f"at x{cfg.rate_multiplier:g}"
        )
        sent_at, lag = replay(cfg, frames, player, progress, scoring if depth else None)
        node_rss = collect(player.col, frames, sent_at, cfg.drain_timeout_s, proc, log_file)
    finally:
        if proc is not None:
            stop_node(proc)
        player.close()
    records, results, wall = score(frames, match, player.col, sent_at, class_names, cat_map, scoring)
    diag = player.col.diagnostics
    extra = {
        "model": {
            "family": cfg.model.family,
            "backend": diag.get("backend", cfg.model.backend),
            "device": diag.get("device", cfg.model.device),
        },
        "transport": cfg.live_transport,
        "namespace": namespace,
        "drain_timeout_s": cfg.drain_timeout_s,
        "dds_profile": env.get("FASTRTPS_DEFAULT_PROFILES_FILE", ""),
        "max_send_lag_ms": lag * 1e3,
        "node_log": str(log_file),
        "node_diagnostics": player.col.diagnostics,
    }
    if cfg.temporal is not None and cfg.temporal.enabled:
        extra["temporal"] = temporal_from_diagnostics(player.col.diagnostics, cfg.temporal)
    return RunData("live", records, results, wall, class_names, node_rss, "node process (VmHWM)", None, extra)


def temporal_from_diagnostics(diag: dict[str, str], settings: Any) -> dict[str, Any]:
    """The node's temporal-reuse diagnostics (``temporal_*`` strings; its last report, counted over
    its last 500 frames of each kind) as numbers, with the settings it ran: key/non-key frames,
    key-frame ratio, per-kind latency median / p95 ms (None where the node did not say)."""
    from dataclasses import asdict

    def num(key: str) -> float | None:
        try:
            v = float(diag[f"temporal_{key}"])
        except (KeyError, ValueError):
            return None
        return v if v == v else None  # NaN (no frame of this kind) -> None

    names = ("key_frames", "nonkey_frames", "key_ratio", "key_ms_median", "key_ms_p95", "nonkey_ms_median",
             "nonkey_ms_p95")  # fmt: skip
    out: dict[str, Any] = {"settings": asdict(settings), "source": "node diagnostics"}
    out.update({k: num(k) for k in names})
    for k in ("key_frames", "nonkey_frames"):
        out[k] = int(out[k]) if out[k] is not None else None
    return out


def live_environment(cfg: BagEvalConfig) -> dict[str, str]:
    """Check the live settings and model files; the environment of both processes (DDS profile set).

    Raises:
        EvalError: a bad rate, transport or precision, or a missing model or profile file.
    """
    from instaseg_ros.models.loading import ModelLoadError, check_model_file

    if cfg.rate_multiplier <= 0:
        raise EvalError(f"rate multiplier must be > 0, got {cfg.rate_multiplier}")
    if cfg.live_transport not in ("raw", "compressed"):
        raise EvalError(f"live transport must be 'raw' or 'compressed', got {cfg.live_transport!r}")
    if cfg.model.precision not in NODE_PRECISIONS:
        raise EvalError(
            f"live mode: the node runs precision {' or '.join(NODE_PRECISIONS)}, not {cfg.model.precision!r} "
            "(evaluate INT8 TensorRT engines in offline mode)"
        )
    try:
        check_model_file(cfg.model.weights, "weights")
        check_model_file(cfg.model.config, "config")
    except ModelLoadError as e:
        raise EvalError(str(e)) from e
    if cfg.temporal is not None and cfg.temporal.enabled:
        if cfg.model.family != "yolact" or cfg.model.backend != "torch":
            raise EvalError(
                f"temporal reuse needs --model yolact on the torch backend, got {cfg.model.family} on "
                f"{cfg.model.backend}"
            )
        try:
            cfg.temporal.node_params()
        except FileNotFoundError as e:
            raise EvalError(f"temporal reuse: flow-net checkpoint: {e}") from e
    env = dict(os.environ)
    if cfg.dds_profile:
        if not Path(cfg.dds_profile).is_file():
            raise EvalError(f"DDS profile file not found: {cfg.dds_profile}")
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(Path(cfg.dds_profile).resolve())
    return env


def start_node(
    cfg: BagEvalConfig, player: Player, env: dict[str, str], log_file: Path, say: Callable[[str], None]
) -> subprocess.Popen:
    """Start the node (its output in ``log_file``) and wait until it has loaded its model and matched."""
    cmd = node_command(cfg, player.namespace)
    say(f"starting the node {player.node_base} ({cfg.model.family}; log: {log_file})")
    with open(log_file, "wb") as lf:
        try:
            proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
        except FileNotFoundError as e:
            raise EvalError(
                f"cannot start the node: {cmd[0]!r} not found ({e.strerror}); for ros2 launch source the "
                f"ROS 2 setup (the installed package), or use the python launcher"
            ) from e
    try:
        player.wait_ready(proc, cfg.startup_timeout_s, log_file)
    except BaseException:
        stop_node(proc)
        raise
    return proc


def _read_frames(cfg: BagEvalConfig, q: queue.Queue, stop: threading.Event) -> None:
    """Reader thread: (index, stamp, frame id, image) of every bag frame into ``q``, then None
    (a ``BagError`` is put instead when the bag cannot be read)."""
    from instaseg_ros.data.bag_io import BagError, iter_bag_images

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


def replay(
    cfg: BagEvalConfig, frames: list[BagFrame], player: Player, progress: bool, depth: Any = None
) -> tuple[dict[int, float], float]:
    """Publish every frame on the recorded schedule (x ``rate_multiplier``) with its original header
    (``depth``: a Scoring with the bag's depth frames; the nearest one and its CameraInfo go first).

    Returns:
        (frame index -> send time (monotonic s), worst lateness against the schedule in s).
    """
    from tqdm import tqdm

    from instaseg_ros.evaluation.output_bag import OutputBagWriter
    from instaseg_ros.ros import conversions as conv

    q: queue.Queue = queue.Queue(maxsize=32)
    stop = threading.Event()
    reader = threading.Thread(target=_read_frames, args=(cfg, q, stop), daemon=True)
    reader.start()
    sent_at: dict[int, float] = {}
    lag, stamp0, start = 0.0, frames[0].stamp_ns, time.monotonic() + 0.2
    bar = tqdm(total=len(frames), unit="frame", desc="eval-bag live", disable=not progress, file=sys.stderr)
    try:
        while (item := q.get()) is not None:
            if isinstance(item, Exception):
                raise EvalError(str(item)) from item
            k, stamp, frame_id, img = item
            header = OutputBagWriter.header(stamp, frame_id)
            msg = (conv.bgr8_to_compressed(img, "jpeg", header) if player.compressed
                   else conv.numpy_to_image(img, "bgr8", header))  # fmt: skip
            target = start + max(0, stamp - stamp0) / 1e9 / cfg.rate_multiplier
            now = time.monotonic()
            if target > now:
                time.sleep(target - now)
            else:
                lag = max(lag, now - target)
            if depth is not None and (df := depth.depth_frame(stamp)) is not None:
                player.info_pub.publish(_camera_info(df))
                player.depth_pub.publish(_depth_image(df))
            sent_at[k] = time.monotonic()
            player.pub.publish(msg)
            if player.writer is not None:
                with player.wlock:
                    player.writer.write_raw("image", stamp, conv.numpy_to_image(img, "bgr8", header))
            bar.update(1)
            bar.set_postfix(processed=len(player.col.done), refresh=False)
    finally:
        stop.set()
        bar.close()
    reader.join(timeout=5)
    return sent_at, lag


def _header(stamp: int, frame_id: str) -> Any:
    from std_msgs.msg import Header

    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    return h


def _depth_image(df: Any) -> Any:
    """A bag depth frame (:class:`~instaseg_ros.evaluation.depth_eval.DepthFrame`) as an rclpy Image."""
    import numpy as np
    from sensor_msgs.msg import Image

    raw = np.ascontiguousarray(df.raw)
    msg = Image(header=_header(df.stamp_ns, df.frame_id), height=raw.shape[0], width=raw.shape[1])
    msg.encoding = df.encoding
    msg.is_bigendian = int(raw.dtype.byteorder == ">")
    msg.step = raw.shape[1] * raw.itemsize
    msg.data = raw.tobytes()
    return msg


def _camera_info(df: Any) -> Any:
    from sensor_msgs.msg import CameraInfo

    k = df.intrinsics
    info = CameraInfo(header=_header(df.stamp_ns, df.frame_id), width=k.width, height=k.height)
    info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    return info


def collect(
    col: Collected,
    frames: list[BagFrame],
    sent_at: dict[int, float],
    timeout: float,
    proc: subprocess.Popen,
    log_file: Path,
) -> float | None:
    """Wait for the last frame's result (the node takes frames in order), a short grace period and one
    more diagnostics period; returns the node's peak RSS in MB.

    Raises:
        EvalError: the node exited during the replay (its log tail is in the message).
    """
    if sent_at:
        last = frames[max(sent_at)].stamp_ns
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and last not in col.done and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.2)
    time.sleep(0.6)  # one more diagnostics period
    if proc.poll() is not None:
        raise EvalError(
            f"the node exited (code {proc.returncode}) during the replay; log tail:\n{log_tail(log_file)}"
        )
    return process_peak_rss_mb(node_pid(proc.pid))


def score(
    frames: list[BagFrame],
    match: FrameMatch,
    col: Collected,
    sent_at: dict[int, float],
    class_names: list[str],
    cat_map: list[int | None],
    scoring: Any = None,
) -> tuple[list[FrameRecord], list[dict[str, Any]], float]:
    """Per-frame records (processed, dropped or not sent; latency = send -> both outputs), the COCO
    results of the scored frames rebuilt from the node's messages, and the wall time in s.

    Raises:
        EvalError: a frame's detections and instance mask do not fit together.
    """
    t0 = min(sent_at.values()) if sent_at else 0.0
    records: list[FrameRecord] = []
    results: list[dict[str, Any]] = []
    for f in frames:
        iid = match.frame_to_image.get(f.index)
        done = col.done.get(f.stamp_ns)
        if f.index not in sent_at:
            records.append(FrameRecord(f.index, f.stamp_ns, iid, False, sent=False))
            continue
        if done is None:
            records.append(FrameRecord(f.index, f.stamp_ns, iid, False, None, sent_at[f.index] - t0))
            if scoring is not None and iid is not None:
                scoring.missing(iid)
            continue
        det_msg = col.det[f.stamp_ns][1]
        n = len(det_msg.detections) if det_msg is not None else None
        rec = FrameRecord(f.index, f.stamp_ns, iid, True, (done - sent_at[f.index]) * 1e3, done - t0, n)
        records.append(rec)
        if iid is not None:
            try:
                mask_msg = col.mask[f.stamp_ns][1]
                inst, ids = instances_from_outputs(det_msg, mask_msg, class_names, with_ids=True)
            except ValueError as e:
                raise EvalError(f"the node's outputs for stamp {f.stamp_ns} do not fit together: {e}") from e
            if scoring is not None:
                scoring.observe_live(f.stamp_ns, iid, inst, ids, col.det3d.get(f.stamp_ns))
            rec.num_detections = len(inst)
            results.extend(to_results(inst, iid, cat_map))
    wall = (max(col.done.values()) - t0) if col.done else 0.0
    return records, results, wall
