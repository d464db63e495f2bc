"""``python -m instaseg_ros.data.coco`` (the validator of training data): malformed JSON is one line and
exit 2, never a traceback; ``--decode`` lists every broken entry, every bad category included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def run_coco(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "instaseg_ros.data.coco", *args], cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_malformed_json_is_one_line_exit_2(tmp_path):
    bad = {"cut.json": b'{"images": [ {"id": 1,', "binary.json": b"\xff\xfe", "list.json": b"[]"}
    for name, raw in bad.items():
        path = tmp_path / name
        path.write_bytes(raw)
        proc = run_coco(str(path))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert str(path) in proc.stderr


def test_decode_lists_every_broken_entry(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    tri = [[1, 1, 10, 1, 10, 10]]
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 20},
                   {"id": 2, "file_name": "bad.png", "width": 30, "height": 20},
                   {"id": 3, "file_name": "missing.png", "width": 30, "height": 20}],
        # four broken category entries after a good one: each must be listed, not only the first
        "categories": [{"id": 1, "name": "chair"}, {"name": "no id"}, {"id": "x", "name": "bad id"}, "text",
                       {"id": 5}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": tri},
                        {"id": 2, "image_id": 1, "category_id": 9, "segmentation": tri}],
    }  # fmt: skip
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    proc = run_coco(str(ann), "--decode", "--report", str(tmp_path / "report.json"))
    assert proc.returncode == 1, proc.stderr  # problems found, file usable
    assert "Traceback" not in proc.stderr
    for entry in ("categories[1]", "categories[2]", "categories[3]", "categories[4]"):
        assert entry in proc.stdout, proc.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    kinds = [p["kind"] for p in report["problems"]]
    assert kinds.count("bad_category_entry") == 4
    assert {"missing_image", "unreadable_image", "unknown_category"} <= set(kinds), kinds
    # no usable category at all: one line naming every broken entry, exit 2
    data["categories"] = data["categories"][1:]
    ann.write_text(json.dumps(data))
    proc = run_coco(str(ann))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all(f"categories[{i}]" in proc.stderr for i in range(4)), proc.stderr
