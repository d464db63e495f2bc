"""eval-bag reports: self-contained HTML (base64 PNGs), Markdown and JSON; renders in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from eval_helpers import TOPIC, make_bag

from instaseg_ros.evaluation.bag_eval import run_bag_eval
from instaseg_ros.evaluation.oracle import GroundTruthSegmenter
from instaseg_ros.evaluation.records import BagEvalConfig
from instaseg_ros.evaluation.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
BOX_BGR = (176, 114, 76)  # report.figures.BOX_COLOR #4c72b0, in BGR


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalreport")
    bag, gt = make_bag(root / "data", num_frames=6)
    oracle = GroundTruthSegmenter.from_image_files(gt)
    # drop every third instance so the report shows imperfect, non-trivial numbers
    for key, inst in oracle.table.items():
        oracle.table[key] = inst.select(np.arange(len(inst)) % 3 != 2)
    outcome = run_bag_eval(
        BagEvalConfig(bag=str(bag), gt=str(gt), topic=TOPIC, num_examples=3), segmenter=oracle, progress=False
    )
    return outcome, write_report(outcome, root / "report")


def _embedded_pngs(text: str) -> list[np.ndarray]:
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, "an embedded image is not a valid PNG"
        out.append(img)
    return out


def test_html_is_self_contained_with_every_figure(report):
    outcome, paths = report
    text = paths["html"].read_text()
    # per-class AP, PR curve, latency plots, 3 examples x (prediction, ground truth)
    imgs = _embedded_pngs(text)
    assert len(imgs) == 3 + 2 * 3
    assert all(im.std() > 5 for im in imgs), "a blank figure"
    assert not re.search(r'(src|href)="(?!data:)', text), "the report must not reference external files"
    for needle in ("Per-class", "Accuracy (COCO, %)", "Latency", "prediction (left) vs ground truth (right)"):
        assert needle in text
    ap = outcome.summary["accuracy"]["segm"]["AP"]
    assert 0.3 < ap < 1.0
    assert f"{100 * ap:.1f}" in text


def test_markdown_and_json_carry_the_numbers(report):
    outcome, paths = report
    s = json.loads(paths["json"].read_text())
    assert s["accuracy"]["segm"]["AP"] == outcome.summary["accuracy"]["segm"]["AP"]
    assert len(s["per_frame"]) == 6 and s["latency_ms"]["count"] == 6
    md = paths["markdown"].read_text()
    assert f"| mask | {100 * s['accuracy']['segm']['AP']:.1f} |" in md
    assert "| person |" in md and "## Latency (ms)" in md


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_html_renders_in_headless_chromium(report, tmp_path):
    _outcome, paths = report
    shot = tmp_path / "report.png"
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1280,2000",
                paths["html"].resolve().as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None, "chromium wrote no screenshot"
    assert img.shape[:2] == (2000, 1280)
    non_white = np.any(img < 235, axis=2).mean()
    assert non_white > 0.05, f"screenshot nearly blank ({non_white:.3f} non-white)"
    # the embedded per-class bar chart was decoded and drawn: its bar colour covers many pixels
    bar = np.all(np.abs(img.astype(int) - np.array(BOX_BGR)) < 12, axis=2).sum()
    assert bar > 2000, f"per-class AP bars not visible in the screenshot ({bar} px of the bar colour)"


def test_classes_without_ground_truth_show_na_not_zero(tmp_path):
    """AP is undefined (pycocotools: -1) for a category with no ground truth in the scored frames: the
    bars, the HTML table and the Markdown summary say "n/a" instead of drawing a 0.0."""
    from instaseg_ros.evaluation.report.figures import per_class_ap_figure

    bag, gt_path = make_bag(tmp_path / "data", num_frames=3)
    gt = json.loads(gt_path.read_text())
    gt["categories"].append({"id": 99, "name": "bicycle"})
    extended = gt_path.with_name("gt_with_bicycle.json")  # next to the frames the oracle reads
    extended.write_text(json.dumps(gt))
    oracle = GroundTruthSegmenter.from_image_files(extended)
    outcome = run_bag_eval(
        BagEvalConfig(bag=str(bag), gt=str(extended), topic=TOPIC, num_examples=0),
        segmenter=oracle,
        progress=False,
    )
    s = outcome.summary
    counts = s["classes"]["gt_instances"]
    assert counts["bicycle"] == 0 and s["accuracy"]["segm"]["per_class"]["bicycle"] == -1.0
    absent = [n for n, c in counts.items() if c == 0]
    present = [n for n, c in counts.items() if c > 0]
    assert present, "the synthetic frames hold objects"

    paths = write_report(outcome, tmp_path / "report")
    md = paths["markdown"].read_text()
    html = paths["html"].read_text()
    for name in absent:
        assert f"| {name} | n/a | n/a |" in md
        assert f"<td>{name}</td><td>n/a</td><td>n/a</td>" in html
    for name in present:  # the oracle finds every present class
        assert f"| {name} | 100.0 | 100.0 |" in md
        assert f"<td>{name}</td><td>100.0</td><td>100.0</td>" in html
    assert "bicycle'] in the scored frames: their AP is undefined (n/a)" in md

    ax = per_class_ap_figure(s).axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels.count("n/a") == 2 * len(absent) and labels.count("100.0") == 2 * len(present)
    assert "0.0" not in labels
