"""A node process running the ``oracle`` family (answers each frame with its ground truth), and a
synthetic recording to feed it: deterministic detections for the tracking and 3D integration tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from ros_probe import ROOT, NodeProcess

_CODE = (
    "import sys; import instaseg_ros.evaluation.oracle\n"
    "from instaseg_ros.ros.node import main\n"
    "sys.exit(main())"
)


class OracleNodeProcess(NodeProcess):
    """``instaseg_node`` with the oracle family registered (``-p model.family:=oracle``)."""

    def __init__(self, ros_args: list[str], log_path: Path) -> None:  # noqa: D107
        import os

        self.log_path = log_path
        self._log = open(log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CODE, "--ros-args", *ros_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT),
        )  # fmt: skip


@contextmanager
def oracle_node(
    gt: Path, ros_args: list[str], log_path: Path, timeout: float = 90.0
) -> Iterator[NodeProcess]:
    """An active oracle node answering the frames of ground truth ``gt``; must exit 0 on SIGINT."""
    proc = OracleNodeProcess(
        ["-p", "model.family:=oracle", "-p", f"model.weights:={gt}", "-p", "device:=cpu", *ros_args], log_path
    )
    try:
        assert proc.wait_log("active:", timeout), f"node did not become active:\n{proc.log()}"
        yield proc
    finally:
        rc = proc.stop()
        print(proc.log()[-3000:])
        assert rc == 0, f"node exited with {rc}"


def load_recording(gt_path: Path) -> tuple[dict, list[dict]]:
    """(ground truth JSON, per frame ``{"image", "depth" (uint16 mm or None), "anns", "rec"}``)."""
    gt = json.loads(Path(gt_path).read_text())
    root = Path(gt_path).parent
    by_image: dict[int, list] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    frames = []
    for rec in sorted(gt["images"], key=lambda r: r["stamp_ns"]):
        depth = None
        if rec.get("depth_file_name"):
            depth = cv2.imread(str(root / rec["depth_file_name"]), cv2.IMREAD_UNCHANGED)
        frames.append({
            "image": cv2.imread(str(root / rec["file_name"]), cv2.IMREAD_COLOR),
            "depth": depth,
            "anns": by_image.get(rec["id"], []),
            "rec": rec,
        })  # fmt: skip
    return gt, frames


def match_boxes(det_xyxy: np.ndarray, anns: list[dict]) -> list[int]:
    """For each detection box [K, 4] xyxy the index of the annotation with the nearest box (the oracle
    answers with the ground-truth boxes, so the distances are ~0)."""
    gt = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                   for a in anns]).reshape(-1, 4)  # fmt: skip
    return [int(np.argmin(np.abs(gt - b).sum(1))) for b in det_xyxy]
