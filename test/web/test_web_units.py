"""The web app's Gradio-free parts: upload checks, the model cache, outputs, Label Studio conversion."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from web_helpers import REPO, png_with_header

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import decode_rle
from instaseg_ros.web import inference as wi
from instaseg_ros.web import labelstudio as ls

NAMES = ["person", "chair", "couch", "dining table", "toilet"]


def _instances() -> Instances:
    """Two overlapping squares and a two-part mask with a hole, on a 60x80 image."""
    masks = np.zeros((3, 60, 80), bool)
    masks[0, 10:30, 10:30] = True
    masks[1, 20:40, 20:40] = True
    masks[2, 45:58, 2:20] = True
    masks[2, 48:52, 8:12] = False  # a hole
    masks[2, 45:58, 60:75] = True  # a second part
    from instaseg_ros.core.masks import masks_to_boxes

    return Instances(masks_to_boxes(masks), [0.9, 0.8, 0.6], [0, 1, 3], masks, (60, 80), NAMES)


def test_read_image_file_refuses_bad_uploads(tmp_path):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.full((20, 30, 3), 7, np.uint8))
    assert wi.read_image_file(good).shape == (20, 30, 3)
    cases = {
        "empty.png": (b"", "the file is empty"),
        "text.png": (b"hello world, no image here", "not an image file"),
        "cut.png": (good.read_bytes()[:60], "corrupt PNG"),
        "cut.jpg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "corrupt JPEG"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(wi.WebInputError, match=message):
            wi.read_image_file(tmp_path / name)
    with pytest.raises(wi.WebInputError, match=r"huge.png: 30000x30000 is 900000000 pixels"):
        wi.read_image_file(png_with_header(tmp_path / "huge.png", 30000, 30000))
    with pytest.raises(wi.WebInputError, match="too small"):
        wi.read_image_file(png_with_header(tmp_path / "tiny.png", 8, 8))
    # header fine, pixel data not: decoding fails with a message, not an exception from OpenCV
    with pytest.raises(wi.WebInputError, match="corrupt and cannot be decoded"):
        wi.read_image_file(png_with_header(tmp_path / "nodata.png", 64, 64))


def test_model_cache_loads_once_per_model_and_names_wrong_family():
    cache = wi.ModelCache(capacity=2)
    yolact = str(REPO / "models" / "yolact_se_r18_indoor.pth")
    key = wi.ModelKey("yolact", yolact, "torch", "cpu")
    a = cache.get(key)
    assert cache.get(wi.ModelKey("yolact", yolact, "torch", "cpu")) is a
    assert cache.loads == 1
    with pytest.raises(wi.WebInputError, match="not a 'yolo_fcn' model"):
        cache.get(wi.ModelKey("yolo_fcn", yolact, "torch", "cpu"))
    assert cache.loads == 1
    with pytest.raises(wi.WebInputError, match="no shipped model"):
        wi.resolve_weights("solo", None, "", None)
    with pytest.raises(wi.WebInputError, match=r"unknown classes \['sofa'\]"):
        wi.parse_class_filter("person, sofa", NAMES)
    assert wi.parse_class_filter(" person ,chair,", NAMES) == ["person", "chair"]
    with pytest.raises(wi.WebInputError, match="score_threshold"):
        wi.make_params(1.5, 0.5, 0.5, 10, [])


def test_outputs_table_coco_and_id_png_agree(tmp_path):
    inst = _instances()
    rows = wi.instance_rows("x.png", inst)
    assert [r[1] for r in rows] == [1, 2, 3] and [r[2] for r in rows] == ["person", "chair", "dining table"]
    coco = wi.coco_results([("x.png", inst)], NAMES, "test")
    assert (
        [a["area"] for a in coco["annotations"]] == [r[8] for r in rows] == [400, 400, 13 * 18 - 16 + 13 * 15]
    )
    for a, m in zip(coco["annotations"], inst.masks):
        assert np.array_equal(decode_rle(a["segmentation"]), m)
    ids = cv2.imread(str(wi.write_id_png(tmp_path / "ids.png", inst)), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16
    assert ids[25, 25] == 1  # the overlap goes to the higher score
    assert set(np.unique(ids).tolist()) == {0, 1, 2, 3}


def test_label_studio_tasks_and_config(tmp_path):
    inst = _instances()
    cfg = ET.fromstring(ls.labeling_config(NAMES))
    assert [e.get("value") for e in cfg.iter("Label")] == NAMES
    poly = cfg.find("PolygonLabels")
    assert poly.get("name") == ls.FROM_NAME and poly.get("toName") == ls.TO_NAME
    task = ls.make_task("/data/local-files/?d=f/x.png", inst, "m@1")
    result = task["predictions"][0]["result"]
    # one region per connected part: 1 + 1 + 2
    assert [r["id"] for r in result] == ["i1p0", "i2p0", "i3p0", "i3p1"]
    assert [r["value"]["polygonlabels"][0] for r in result] == [
        "person",
        "chair",
        "dining table",
        "dining table",
    ]
    assert [r["score"] for r in result] == [0.9, 0.8, 0.6, 0.6]
    assert task["predictions"][0]["score"] == pytest.approx(np.mean([0.9, 0.8, 0.6]), abs=1e-4)
    assert all(0 <= v <= 100 for r in result for p in r["value"]["points"] for v in p)
    # a square's polygon rasterises to the square minus half of its boundary ring
    (_, pts), *_ = ls.result_polygons_px(result)
    r = ls.rasterize_polygon(pts, (60, 80))
    inner = np.zeros((60, 80), bool)
    inner[11:30, 11:30] = True
    assert np.array_equal(r, inner)
    # percent round trip noise (what Label Studio's export adds) does not change a pixel
    noisy = pts * (1 + 1e-15)
    assert np.array_equal(ls.rasterize_polygon(noisy, (60, 80)), r)
    tasks_path, config_path = ls.write_tasks(tmp_path / "out", [task], NAMES)
    assert json.loads(tasks_path.read_text()) == [task]
    assert config_path.read_text() == ls.labeling_config(NAMES)


def test_local_files_url_and_export_paths(tmp_path):
    root = tmp_path / "root"
    (root / "frames").mkdir(parents=True)
    img = root / "frames" / "a b.png"
    cv2.imwrite(str(img), np.zeros((20, 20, 3), np.uint8))
    assert ls.local_files_url(img, root) == "/data/local-files/?d=frames/a%20b.png"
    with pytest.raises(ValueError, match="not inside the document root"):
        ls.local_files_url(img, tmp_path / "elsewhere")
    export = tmp_path / "export"
    export.mkdir()
    coco = {"images": [{"id": 0, "file_name": "../../tmp/x/root/frames/a b.png", "width": 20, "height": 20}],
            "categories": [{"id": 0, "name": "person"}], "annotations": []}  # fmt: skip
    (export / "result.json").write_text(json.dumps(coco))
    out = ls.resolve_coco_export(export, [root], tmp_path / "out")
    assert json.loads(out.read_text())["images"][0]["file_name"] == str(img.resolve())
    coco["images"][0]["file_name"] = "../missing.png"
    (export / "result.json").write_text(json.dumps(coco))
    with pytest.raises(FileNotFoundError, match="not found"):
        ls.resolve_coco_export(export, [root], tmp_path / "out2")
    assert Path(out).is_file()


def test_predict_format_labelstudio_equals_label_studio_predict(tmp_path, monkeypatch):
    """``instaseg predict --format labelstudio`` = ``instaseg label-studio predict`` (same tasks)."""
    from instaseg_ros.cli import main
    from instaseg_ros.data.synthetic import SynthConfig, generate_scene

    frames = tmp_path / "frames"
    frames.mkdir()
    for seed in (1, 2):
        cv2.imwrite(
            str(frames / f"f{seed}.png"), generate_scene(seed, SynthConfig(width=320, height=240)).image
        )
    weights = str(REPO / "models" / "yolact_se_r18_indoor.pth")
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "frames", "--weights", weights, "--format", "labelstudio", "--out", "a"]) == 0
    assert main(["label-studio", "predict", "frames", "--weights", weights, "--out", "b"]) == 0
    a, b = (json.loads((tmp_path / d / "tasks.json").read_text()) for d in "ab")
    assert a == b and len(a) == 2
    assert a[0]["data"]["image"] == "/data/local-files/?d=frames/f1.png"
    assert (tmp_path / "a" / "labeling_config.xml").read_text() == ls.labeling_config(NAMES)
    outside = tmp_path.parent / f"{tmp_path.name}_elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert main(["predict", str(frames), "--weights", weights, "--format", "labelstudio", "--out", "c"]) == 2
