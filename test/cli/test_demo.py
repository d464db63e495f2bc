"""The README's demo in reduced form: the shipped default models through the real node over DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("family", ["yolact", "yolo_fcn"])
def test_demo_runs_end_to_end(tmp_path: Path, family: str) -> None:
    out = tmp_path / "demo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "instaseg_ros.cli", "demo", "--model", family, "--frames", "12", "--rate", "4",
         "--size", "320x240", "--out", str(out), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "=== instaseg demo summary ===" in proc.stdout
    if family == "yolact":  # a second run into the same folder replaces the first run's files
        again = subprocess.run(proc.args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["model"]["family"] == family
    assert summary["frames"]["sent"] == 12
    assert summary["frames"]["processed"] >= 1
    assert summary["frames"]["processed"] + summary["frames"]["dropped"] == 12
    assert summary["latency_ms"]["p50"] is not None and summary["latency_ms"]["p50"] > 0
    # a trained shipped model finds the synthetic objects: AP well above an untrained model's 0
    assert summary["box_AP"] is not None and summary["box_AP"] > 0.05
    assert summary["mask_AP"] is not None and summary["mask_AP"] > 0.05
    for key in ("report", "gif", "png"):
        path = Path(summary["files"][key])
        assert path.is_file() and path.stat().st_size > 1000, key
    html = Path(summary["files"]["report"]).read_text()
    assert "data:image/png;base64," in html
    # the synthetic stream has depth: 3D boxes scored and recorded, track ids scored against the baseline
    assert summary["depth_3d"]["instances"] > 0 and "3D from depth" in html
    assert summary["tracker"]["idf1"] is not None and "Tracking (MOT)" in html
    from instaseg_ros.data.bag_io import bag_topics

    assert bag_topics(summary["files"]["outputs"])["/instaseg/markers"][1] >= 1
