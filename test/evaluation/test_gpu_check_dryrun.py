"""benchmarks/gpu_check.sh --dry-run: the whole GPU check runs on any machine, every CUDA step skips cleanly.

The dry run hides the GPUs (``CUDA_VISIBLE_DEVICES=""``), installs nothing, runs the CPU steps
(environment, prepare) for real and must record every CUDA step as skipped with a "no CUDA" reason
(no traceback), exit 0 and write its JSON + Markdown report into the given folder only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CUDA_STEPS = {"cuda_agreement", "tensorrt_r50_550", "tensorrt_shipped", "node_tensorrt", "amp_training",
              "gpu_tests"}  # fmt: skip
CPU_STEPS = {"environment", "prepare"}


@pytest.mark.timeout(600)
def test_gpu_check_dry_run(tmp_path: Path) -> None:
    results = ROOT / "benchmarks" / "results"
    before = sorted(results.iterdir()) if results.is_dir() else []
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out-dir", str(out),
         "--work", str(work)],
        capture_output=True, text=True, timeout=580, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    reports = sorted(out.glob("gpu_*.json"))
    assert len(reports) == 1, list(out.iterdir())
    assert reports[0].with_suffix(".md").is_file()
    report = json.loads(reports[0].read_text())
    assert report["dry_run"] is True
    steps = {s["name"]: s for s in report["steps"]}
    assert set(steps) == CUDA_STEPS | CPU_STEPS
    for name in CUDA_STEPS:
        s = steps[name]
        assert s["status"] == "skipped", s
        assert s["reason"].startswith("no CUDA:"), s
        assert "result" not in s and "traceback_tail" not in s
    for name in CPU_STEPS:
        assert steps[name]["status"] == "ok", steps[name]
    env_result = steps["environment"]["result"]
    assert env_result["cuda_available"] is False
    assert env_result["cuda_problem"].startswith("no CUDA:")
    prep = steps["prepare"]["result"]
    assert len(prep["images"]) == 8 and all(Path(p).is_file() for p in prep["images"])
    assert len(list(Path(prep["calib_dir"]).glob("*.png"))) == 64
    assert Path(prep["r50_checkpoint"]).stat().st_size > 10_000_000  # ResNet-50 YOLACT, ~30 M parameters
    md = reports[0].with_suffix(".md").read_text()
    for name in CUDA_STEPS:
        assert f"| {name} | skipped |" in md
    after = sorted(results.iterdir()) if results.is_dir() else []
    assert after == before, "a dry run must not write into benchmarks/results"


def test_gpu_check_unknown_step_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--steps", "nope",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown steps ['nope']" in proc.stderr
    assert not list(tmp_path.iterdir())
