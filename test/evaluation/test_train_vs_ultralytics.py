"""The parts of benchmarks/train_vs_ultralytics.py that run without Ultralytics: instance masks -> YOLO-seg
polygon labels -> masks (as Ultralytics rasterises them), a YOLO-seg model's predictions -> COCO results
scored by our evaluator, and the script's argument errors (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import yolo_seg_io as ys  # noqa: E402

from instaseg_ros.data.synthetic import SynthConfig, generate_scene, write_coco  # noqa: E402
from instaseg_ros.evaluation.coco_eval import evaluate_coco  # noqa: E402

W, H = 320, 240


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _round_trip(mask: np.ndarray) -> np.ndarray:
    poly = ys.mask_to_polygon(mask)
    assert poly is not None
    cls, back = ys.parse_label_line(ys.yolo_label_line(3, poly, W, H), W, H)
    assert cls == 3
    return ys.polygon_to_mask(back, H, W)


def test_round_trip_on_generated_scenes():
    ious, multi = [], []
    for i in range(40):
        scene = generate_scene((1, i), SynthConfig(width=W, height=H))
        for m in scene.masks:
            iou = _round_trip(m)
            ious.append(_iou(iou, m))
            if len(ys._parts(m)) > 1:
                multi.append(ious[-1])
    assert len(ious) > 100
    assert np.mean(ious) >= 0.98 and np.min(ious) >= 0.85, (np.mean(ious), np.min(ious))
    assert len(multi) >= 10  # occlusion splits instances: the merge path is exercised
    assert np.mean(multi) >= 0.95, np.mean(multi)


def test_multi_part_instance_becomes_one_polygon_covering_every_part():
    m = np.zeros((H, W), bool)
    m[10:40, 10:50] = True
    m[100:130, 200:260] = True
    m[200:220, 20:30] = True
    poly = ys.mask_to_polygon(m)
    back = ys.polygon_to_mask(poly, H, W)
    assert back[m].all()  # every pixel of every part
    extra = back & ~m
    assert extra.sum() < 2 * (W + H)  # only the 1-pixel bridges between the parts
    assert _iou(back, m) > 0.9
    # a single part: exactly its pixels; a hole is filled (a polygon label has none)
    ring = np.zeros((H, W), bool)
    ring[50:90, 50:90] = True
    ring[60:80, 60:80] = False
    assert np.array_equal(ys.polygon_to_mask(ys.mask_to_polygon(ring), H, W), np.pad(
        np.ones((40, 40), bool), ((50, H - 90), (50, W - 90))))  # fmt: skip


def test_tiny_masks():
    m = np.zeros((H, W), bool)
    assert ys.mask_to_polygon(m) is None
    m[5, 5] = True  # one pixel: one vertex, not a polygon
    assert ys.mask_to_polygon(m) is None
    with pytest.raises(ValueError, match="no parts"):
        ys.merge_parts([])


def test_coco_folder_to_yolo_labels(tmp_path):
    scenes = [generate_scene((7, i), SynthConfig(width=W, height=H)) for i in range(4)]
    ann = write_coco(tmp_path, iter(scenes))
    counts = ys.coco_to_yolo_labels(ann)
    assert counts["images"] == 4 and counts["left_out"] == 0
    assert counts["instances"] == sum(len(s.labels) for s in scenes)
    assert counts["class_names"] == ["person", "chair", "couch", "dining table", "toilet"]
    for k, sc in enumerate(scenes):
        lines = (tmp_path / "labels" / f"{k + 1:06d}.txt").read_text().splitlines()
        assert len(lines) == len(sc.labels)
        for line, label, mask in zip(lines, sc.labels, sc.masks):
            cls, poly = ys.parse_label_line(line, W, H)
            assert cls == int(label)
            assert _iou(ys.polygon_to_mask(poly, H, W), mask) > 0.8
    y = ys.dataset_yaml(tmp_path / "d.yaml", tmp_path / "images", tmp_path / "images", counts["class_names"])
    text = y.read_text()
    assert f"train: {tmp_path / 'images'}" in text and "  4: toilet" in text


def test_predictions_to_coco_scored_by_our_evaluator():
    scene = generate_scene((3, 0), SynthConfig(width=W, height=H))
    gt_scene = {"images": [{"id": 1, "width": W, "height": H, "file_name": "a.png"}],
                "categories": [{"id": i + 1, "name": n} for i, n in
                               enumerate(["person", "chair", "couch", "dining table", "toilet"])],
                "annotations": []}  # fmt: skip
    from instaseg_ros.data.synthetic import scene_annotations

    gt_scene["annotations"] = scene_annotations(scene, 1, 1)
    n = len(scene.labels)
    scores = np.linspace(0.5, 0.9, n)  # ascending: the conversion sorts them
    names = [c["name"] for c in gt_scene["categories"]]
    res = ys.predictions_to_coco(scene.boxes, scores, scene.labels, scene.masks, 1, names)
    assert len(res) == n
    assert [r["score"] for r in res] == sorted((float(np.float32(s)) for s in scores), reverse=True)
    top = int(np.argmax(scores))
    assert res[0]["category_id"] == int(scene.labels[top]) + 1
    x0, y0, x1, y1 = scene.boxes[top]
    assert res[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
    from pycocotools import mask as mask_util

    rle = {**res[0]["segmentation"], "counts": res[0]["segmentation"]["counts"].encode()}
    assert np.array_equal(mask_util.decode(rle).astype(bool), scene.masks[top])
    m = evaluate_coco(gt_scene, res)
    assert m["bbox"]["AP"] == pytest.approx(1.0) and m["segm"]["AP"] == pytest.approx(1.0)
    # a wrong class on every prediction scores nothing
    wrong = ys.predictions_to_coco(scene.boxes, scores, (scene.labels + 1) % 5, scene.masks, 1, [])
    assert evaluate_coco(gt_scene, wrong)["segm"]["AP"] < 0.5
    with pytest.raises(ValueError, match="masks"):
        ys.predictions_to_coco(scene.boxes, scores, scene.labels, scene.masks[:1], 1, [])
    assert ys.predictions_to_coco(np.zeros((0, 4)), [], [], np.zeros((0, H, W), bool), 1, []) == []


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks/train_vs_ultralytics.py"),
                           "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "res"), *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--side", "peer", "--budget-min", "0"], "--budget-min must be > 0"),
        (["--side", "ours", "--config", "/nonexistent.yaml"], "no such file"),
        (["--side", "both", "--latency-runs", "0"], "--latency-runs must be >= 1"),
        (["--side", "sideways"], "invalid choice"),
        (["--side", "ours", "--config", "COCO"], "data.train.kind must be synthetic"),
        (["--side", "ours", "--config", "EMPTY"], "needs data.train and data.val"),
    ],
)
def test_argument_errors_exit_nonzero_with_one_line(tmp_path, args, message):
    coco_cfg = tmp_path / "coco.yaml"
    coco_cfg.write_text(json.dumps({"data": {"train": {"kind": "coco", "annotations": "a.json"},
                                             "val": {"kind": "synthetic", "num_images": 3}}}))  # fmt: skip
    empty = tmp_path / "empty.yaml"
    empty.write_text("task: yolact\n")
    args = [{"COCO": str(coco_cfg), "EMPTY": str(empty)}.get(a, a) for a in args]
    r = _cli(tmp_path, *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert message in r.stderr
    if "invalid choice" not in message:  # argparse prints usage + one error line; ours is one line
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "work").exists()  # nothing rendered or trained before the arguments are checked
