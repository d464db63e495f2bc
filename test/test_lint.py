"""Lint is part of the suite: ruff over the package, tests, benchmarks and launch files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    targets = [p for p in ("instaseg_ros", "test", "benchmarks", "launch", "setup.py") if (ROOT / p).exists()]
    out = subprocess.run([ruff, "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
