"""The evaluated node's process: its command line (python module or ``ros2 launch``), the Fast DDS
profile, finding it under a launcher, its peak memory, its log, stopping it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from instaseg_ros.core.resources import resolve_path
from instaseg_ros.evaluation.records import BagEvalConfig, EvalError

NODE_NAME = "instaseg_node"


def node_arguments(cfg: BagEvalConfig, namespace: str) -> list[str]:
    """``--ros-args`` of the evaluated node: namespace, input remap, model, threshold and (when enabled)
    ``temporal.*`` parameters; ``cfg.node_params`` last (they win)."""
    m = cfg.model
    p = m.params
    params: dict[str, Any] = {
        "model.family": m.family,
        "backend": m.backend,
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
    if m.weights:  # absolute (package:// resolved): the node runs in another working directory
        params["model.weights"] = str(Path(resolve_path(m.weights)).resolve())
    if m.config:
        params["model.config"] = str(Path(resolve_path(m.config)).resolve())
    if p.class_filter:
        params["class_filter"] = list(p.class_filter)
    if cfg.temporal is not None and cfg.temporal.enabled:
        params.update(cfg.temporal.node_params())
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
        f"depth_image:={namespace}/depth/image_raw",
        f"depth_camera_info:={namespace}/depth/camera_info",
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
    from instaseg_ros.core.resources import package_file

    try:
        return str(package_file("config/fastdds_large_images.xml"))
    except FileNotFoundError as e:
        raise EvalError(str(e)) from e


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


def log_tail(path: Path, n: int = 2500) -> str:
    """The last ``n`` characters of a log file ("" when unreadable)."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def stop_node(proc: subprocess.Popen) -> None:
    """SIGINT (a clean lifecycle shutdown), then kill after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
