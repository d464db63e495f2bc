"""COCO-format dataset: formats, label maps, subsetting, validation report, robustness."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util

from instaseg_ros.core.masks import encode_rle, masks_to_boxes
from instaseg_ros.data.coco import CocoDataset, collate_skip_none, load_label_studio_export, read_label_map
from instaseg_ros.data.synthetic import SynthConfig, generate_scene, write_coco

H, W = 40, 60


def _img(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((H, W, 3), value, np.uint8))


def _rect_poly(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _uncompressed_rle(mask):
    """Column-major run lengths starting with a background run (COCO's uncompressed RLE)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [mask.shape[0], mask.shape[1]], "counts": counts}


def _write(tmp_path, coco, name="ann.json"):
    p = tmp_path / name
    p.write_text(json.dumps(coco))
    return p


@pytest.fixture
def mixed(tmp_path):
    """Polygons, compressed + uncompressed RLE, a crowd region, category ids 7/3/12."""
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    m_rle = np.zeros((H, W), bool)
    m_rle[5:15, 30:50] = True
    m_unc = np.zeros((H, W), bool)
    m_unc[20:30, 2:12] = True
    coco = {
        "images": [
            {"id": 10, "file_name": "a.png", "height": H, "width": W},
            {"id": 11, "file_name": "b.png", "height": H, "width": W},
        ],
        "categories": [{"id": 7, "name": "chair"}, {"id": 3, "name": "person"}, {"id": 12, "name": "toilet"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 10,
                "category_id": 3,
                "segmentation": _rect_poly(2, 2, 12, 22),
                "bbox": [2, 2, 10, 20],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 10,
                "category_id": 12,
                "segmentation": encode_rle(m_rle),
                "bbox": [30, 5, 20, 10],
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 11,
                "category_id": 7,
                "segmentation": _uncompressed_rle(m_unc),
                "bbox": [2, 20, 10, 10],
                "iscrowd": 1,
            },
            {
                "id": 4,
                "image_id": 11,
                "category_id": 7,
                "segmentation": _rect_poly(40, 10, 50, 30),
                "bbox": [40, 10, 10, 20],
            },  # no iscrowd key (Label Studio omits it sometimes)
        ],
    }
    return _write(tmp_path, coco), m_rle, m_unc


def test_polygons_rle_crowd_and_category_mapping(mixed):
    path, m_rle, m_unc = mixed
    ds = CocoDataset(path)
    assert ds.validation_report.ok, str(ds.validation_report)
    assert ds.class_names == ["person", "chair", "toilet"]  # ordered by category id 3, 7, 12
    assert ds.category_ids == [3, 7, 12]
    image, t = ds[0]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert t["image_id"] == 10
    assert t["labels"].tolist() == [0, 2]
    # the polygon rasterises to (about) its rectangle; RLE decodes exactly
    assert abs(int(t["masks"][0].sum()) - 10 * 20) <= 31
    np.testing.assert_array_equal(t["masks"][1].astype(bool), m_rle)
    np.testing.assert_array_equal(t["boxes"], masks_to_boxes(t["masks"].astype(bool)))
    _, t2 = ds[1]
    assert t2["labels"].tolist() == [1, 1] and t2["iscrowd"].tolist() == [1, 0]
    np.testing.assert_array_equal(t2["masks"][0].astype(bool), m_unc)
    assert t2["masks"].dtype == np.uint8 and t2["boxes"].dtype == np.float32


def test_crowd_can_be_excluded_and_classes_subset_by_name(mixed):
    path, _, _ = mixed
    ds = CocoDataset(path, include_crowd=False)
    assert ds[1][1]["iscrowd"].tolist() == [0]
    sub = CocoDataset(path, class_names=["Toilet", "person"])
    assert sub.class_names == ["Toilet", "person"] and sub.category_ids == [12, 3]
    assert sub[0][1]["labels"].tolist() == [1, 0]
    assert len(sub[1][1]["labels"]) == 0  # chairs left out: image kept as a negative
    assert len(CocoDataset(path, class_names=["toilet"], skip_empty=True)) == 1
    with pytest.raises(ValueError, match=r"\['sofa'\] match no category"):
        CocoDataset(path, class_names=["person", "sofa"])
    al = CocoDataset(path, class_names=["person", "seat"], aliases={"chair": "seat"})
    assert al[1][1]["labels"].tolist() == [1, 1]


def test_coco_gt_maps_back_to_original_category_ids(mixed):
    from instaseg_ros.core.instances import Instances
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    path, _, _ = mixed
    ds = CocoDataset(path)
    gt = ds.coco_gt()
    assert {c["id"] for c in gt["categories"]} == {3, 7, 12}
    results = []
    for i in range(len(ds)):
        _, t = ds[i]
        keep = t["iscrowd"] == 0
        inst = Instances(
            t["boxes"][keep],
            np.full(keep.sum(), 0.9),
            t["labels"][keep],
            t["masks"][keep].astype(bool),
            (H, W),
            ds.class_names,
        )
        results += instances_to_coco(inst, t["image_id"], ds.category_ids)
    m = evaluate_coco(gt, results)
    assert m["segm"]["AP"] == pytest.approx(1.0)


def _broken(tmp_path):
    _img(tmp_path / "ok.png")
    _img(tmp_path / "ok2.png")
    coco = {
        "images": [
            {"id": 1, "file_name": "ok.png", "height": H, "width": W},
            {"id": 2, "file_name": "missing.png", "height": H, "width": W},
            {"id": 3, "file_name": "ok2.png", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "chair"}],
        "annotations": [
            {
                "id": 100,
                "image_id": 1,
                "category_id": 1,
                "segmentation": _rect_poly(5, 5, 20, 30),
                "bbox": [5, 5, 15, 25],
            },
            {
                "id": 101,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[1, 1, 5, 5]],
                "bbox": [1, 1, 4, 4],
            },
            {
                "id": 102,
                "image_id": 1,
                "category_id": 2,
                "segmentation": [[1, 1, 5, 5, 9, 9]],
                "bbox": [1, 1, 8, 8],
            },
            {
                "id": 103,
                "image_id": 1,
                "category_id": 99,
                "segmentation": _rect_poly(1, 1, 9, 9),
                "bbox": [1, 1, 8, 8],
            },
            {
                "id": 104,
                "image_id": 2,
                "category_id": 1,
                "segmentation": _rect_poly(1, 1, 9, 9),
                "bbox": [1, 1, 8, 8],
            },
            {"id": 105, "image_id": 3, "category_id": 2, "segmentation": [], "bbox": [200, 200, 10, 10]},
            {
                "id": 106,
                "image_id": 3,
                "category_id": 2,
                "segmentation": _rect_poly(50, 30, 59, 39),
                "bbox": [50, 30, 40, 40],
            },
            {
                "id": 107,
                "image_id": 42,
                "category_id": 1,
                "segmentation": _rect_poly(1, 1, 9, 9),
                "bbox": [1, 1, 8, 8],
            },
            {"id": 108, "image_id": 3, "category_id": 1, "segmentation": {"size": [5, 5], "counts": "abc"}},
            {"id": 109, "image_id": 3, "category_id": 1, "segmentation": [[1, 1, 2, "x", 3]]},
        ],
    }
    return _write(tmp_path, coco)


def test_broken_file_is_reported_and_good_entries_kept(tmp_path):
    ds = CocoDataset(_broken(tmp_path))
    rep = ds.validation_report
    kinds = {(p.kind, p.image_id, p.ann_id, p.action) for p in rep.problems}
    assert ("missing_image", 2, None, "skipped") in kinds
    assert ("degenerate_polygon", 1, 101, "skipped") in kinds  # < 3 points
    assert ("degenerate_polygon", 1, 102, "skipped") in kinds  # zero area (collinear)
    assert ("unknown_category", 1, 103, "skipped") in kinds
    assert ("box_outside_image", 3, 105, "skipped") in kinds
    assert ("box_outside_image", 3, 106, "fixed") in kinds  # valid polygon: box recomputed
    assert ("unknown_image", 42, 107, "skipped") in kinds
    assert ("bad_segmentation", 3, 108, "skipped") in kinds
    assert ("degenerate_polygon", 3, 109, "skipped") in kinds
    assert len(ds) == 2 and ds.image_ids == [1, 3]
    assert rep.kept_annotations == 2 and rep.num_annotations == 10
    text = str(rep)
    assert "annotation 101" in text and "missing.png" in text
    assert rep.counts()["degenerate_polygon"] == 3
    out = tmp_path / "report.json"
    rep.write(out)
    assert json.loads(out.read_text())["kept_images"] == 2
    # every remaining sample loads, with the boxes coming from the masks
    _, t = ds[1]
    assert t["labels"].tolist() == [1]
    np.testing.assert_array_equal(t["boxes"], [[50, 30, 59, 39]])  # pycocotools excludes the far edge


def test_validate_command_prints_and_writes_the_report(tmp_path, capsys):
    from instaseg_ros.data.coco import main

    assert main([str(_broken(tmp_path)), "--decode", "--report", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "missing_image [image 2]" in out and "unknown_category [image 1, annotation 103]" in out
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["unknown_category"] == 1


def test_validate_module_runs_and_unusable_file_is_one_line(tmp_path):
    """``python -m instaseg_ros.data.coco`` (the package's __main__): report, exit 1; a missing or
    non-JSON file: exit 2 with one line on stderr and no traceback."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "instaseg_ros.data.coco"]
    r = subprocess.run([*cmd, str(_broken(tmp_path))], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "missing_image [image 2]" in r.stdout, r.stderr
    for bad, why in ((tmp_path / "nope.json", "not found"), (tmp_path / "bad.json", "not valid JSON")):
        if bad.name == "bad.json":
            bad.write_text("{oops")
        r = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_unreadable_image_at_getitem_is_replaced_or_skipped(tmp_path):
    path = _broken(tmp_path)
    (tmp_path / "ok.png").write_bytes(b"not a png at all")  # corrupt after validation
    ds = CocoDataset(path)
    image, t = ds[0]
    assert t["image_id"] == 3  # the neighbour
    probs = ds.validation_report.of_kind("unreadable_image")
    assert len(probs) == 1 and probs[0].image_id == 1 and probs[0].action == "replaced"
    ds.validation_report.problems.clear()
    ds[0]
    assert not ds.validation_report.of_kind("unreadable_image")  # reported once
    ds_none = CocoDataset(path, on_error="none")
    assert ds_none[0] is None
    images, targets = collate_skip_none([ds_none[0], ds_none[1]])
    assert len(images) == 1 and targets[0]["image_id"] == 3
    with pytest.raises(OSError, match="cannot read image"):
        CocoDataset(path, on_error="raise")[0]


def test_training_loop_over_broken_data_sees_every_good_sample(tmp_path):
    import torch

    ds = CocoDataset(_broken(tmp_path), on_error="none")
    (tmp_path / "ok.png").write_bytes(b"\x89PNG truncated")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_skip_none, num_workers=0)
    seen = [t["image_id"] for _, targets in loader for t in targets]
    assert seen == [3]


def test_dataloader_workers_and_synthetic_dataset_pickle(tmp_path):
    import torch

    from instaseg_ros.data.synthetic import SyntheticDataset

    cfg = SynthConfig(width=96, height=64)
    path = write_coco(tmp_path, [generate_scene(s, cfg) for s in range(4)])
    for ds in (CocoDataset(path), SyntheticDataset(4, seed=0, config=cfg)):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_skip_none)
        ids = [t["image_id"] for _, targets in loader for t in targets]
        assert ids == [1, 2, 3, 4]


def test_size_mismatch_is_reported(tmp_path):
    _img(tmp_path / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": H + 5, "width": W}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [],
    }
    ds = CocoDataset(_write(tmp_path, coco), on_error="none")
    assert ds[0] is None
    assert ds.validation_report.of_kind("image_size_mismatch")


def test_label_studio_export_layout(tmp_path):
    exp = tmp_path / "project-1-at-2024"
    _img(exp / "images" / "3f2a1b-kitchen.png")
    _img(exp / "images" / "9c8d7e-hall.png")
    _img(exp / "images" / "a1-living room.png")
    coco = {
        "images": [
            {"id": 0, "file_name": "images/3f2a1b-kitchen.png", "width": W, "height": H},
            {"id": 1, "file_name": "images\\9c8d7e-hall.png", "width": W, "height": H},
            {"id": 2, "file_name": "/data/upload/1/a1-living%20room.png", "width": W, "height": H},
        ],
        "categories": [{"id": 0, "name": "chair"}, {"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 0,
                "image_id": 0,
                "category_id": 0,
                "segmentation": _rect_poly(3, 3, 13, 23),
                "bbox": [3, 3, 10, 20],
                "ignore": 0,
                "iscrowd": 0,
                "area": 200,
            },
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": _rect_poly(20, 5, 30, 35),
                "bbox": [20, 5, 10, 30],
                "ignore": 0,
                "iscrowd": 0,
                "area": 300,
            },
        ],
        "info": {"contributor": "Label Studio"},
    }
    (exp / "result.json").write_text(json.dumps(coco))
    ds = load_label_studio_export(exp, class_names=["person", "chair"])
    assert ds.validation_report.ok, str(ds.validation_report)
    assert len(ds) == 3
    assert [ds[i][1]["labels"].tolist() for i in range(3)] == [[1], [0], []]
    assert ds.category_ids == [1, 0]
    with pytest.raises(FileNotFoundError, match="result.json"):
        load_label_studio_export(tmp_path)


def test_synthetic_coco_round_trip(tmp_path):
    cfg = SynthConfig(width=160, height=120)
    scenes = [generate_scene(s, cfg) for s in range(3)]
    path = write_coco(tmp_path, scenes)
    ds = CocoDataset(path)
    assert ds.validation_report.ok and ds.class_names[3] == "dining table"
    for i, sc in enumerate(scenes):
        image, t = ds[i]
        np.testing.assert_array_equal(image, sc.image)
        np.testing.assert_array_equal(t["masks"].astype(bool), sc.masks)
        np.testing.assert_array_equal(t["labels"], sc.labels)


def test_stale_synthetic_cache_is_flagged(tmp_path, caplog):
    from instaseg_ros.data.synthetic import GENERATOR_VERSION

    path = write_coco(tmp_path, [generate_scene(0, SynthConfig(width=96, height=64))])
    assert CocoDataset(path).generator_version == GENERATOR_VERSION and not caplog.records
    gt = json.loads(path.read_text())
    gt["info"]["generator_version"] = GENERATOR_VERSION - 1
    path.write_text(json.dumps(gt))
    with caplog.at_level("WARNING"):
        CocoDataset(path)
    assert "re-render" in caplog.text


def test_file_level_errors_are_specific(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoDataset(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CocoDataset(bad)
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="'categories'"):
        CocoDataset(bad)
    with pytest.raises(ValueError, match="on_error"):
        CocoDataset(bad, on_error="ignore")


def test_read_label_map_formats(tmp_path):
    (tmp_path / "l.txt").write_text("# classes\nperson\nchair\n\n")
    assert read_label_map(tmp_path / "l.txt") == ["person", "chair"]
    (tmp_path / "l.yaml").write_text("names:\n  0: person\n  1: dining table\n")
    assert read_label_map(tmp_path / "l.yaml") == ["person", "dining table"]
    (tmp_path / "l.json").write_text('["a", "b"]')
    assert read_label_map(tmp_path / "l.json") == ["a", "b"]
    with pytest.raises(ValueError, match="repeats"):
        read_label_map(["a", "a"])
    with pytest.raises(FileNotFoundError):
        read_label_map(tmp_path / "none.txt")


def test_rle_helpers_agree_with_pycocotools():
    m = np.zeros((H, W), bool)
    m[3:17, 11:29] = True
    m[30:33, 0:5] = True
    unc = _uncompressed_rle(m)
    dec = mask_util.decode(mask_util.frPyObjects(unc, H, W)).astype(bool)
    np.testing.assert_array_equal(dec, m)
