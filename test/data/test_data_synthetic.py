"""Synthetic indoor scene generator: determinism, sample contract, occlusion cap, sequences, writers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.data.synthetic import (
    CLASS_NAMES,
    SynthConfig,
    SyntheticDataset,
    generate_scene,
    generate_sequence,
    write_coco,
)

SMALL = SynthConfig(width=320, height=240)


def test_class_names_follow_the_contract():
    assert CLASS_NAMES == ["person", "chair", "couch", "dining table", "toilet"]


def test_same_seed_same_scene_and_different_seed_differs():
    a, b = generate_scene(7, SMALL), generate_scene(7, SMALL)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.id_map, b.id_map)
    assert np.array_equal(a.labels, b.labels)
    c = generate_scene(8, SMALL)
    assert not np.array_equal(a.image, c.image)


def test_dataset_sample_contract_and_order_independence():
    ds = SyntheticDataset(6, seed=3, config=SMALL)
    later_first = ds[4]
    for i in range(len(ds)):
        image, t = ds[i]
        assert image.dtype == np.uint8 and image.shape == (240, 320, 3)
        n = len(t["labels"])
        assert t["boxes"].dtype == np.float32 and t["boxes"].shape == (n, 4)
        assert t["labels"].dtype == np.int64 and t["masks"].dtype == np.uint8
        assert t["masks"].shape == (n, 240, 320) and t["iscrowd"].shape == (n,)
        assert t["image_id"] == i + 1
        assert np.all((t["labels"] >= 0) & (t["labels"] < 5))
        np.testing.assert_array_equal(t["boxes"], masks_to_boxes(t["masks"].astype(bool)))
        # masks are disjoint (visible parts only)
        assert t["masks"].sum(axis=0).max(initial=0) <= 1
    np.testing.assert_array_equal(ds[4][0], later_first[0])
    with pytest.raises(IndexError):
        ds[6]


def test_occlusion_cap_and_min_area_hold():
    cfg = SynthConfig(width=320, height=240, min_objects=4, max_objects=8)
    for seed in range(12):
        sc = generate_scene(seed, cfg)
        areas = sc.masks.reshape(len(sc), -1).sum(axis=1)
        assert np.all(areas >= cfg.min_area)
        assert np.all(areas >= cfg.min_visible_fraction * sc.full_areas - 1), (seed, areas, sc.full_areas)


def test_classes_and_sizes_cover_a_wide_range():
    cfg = SynthConfig()  # 640x480
    labels, heights = [], []
    for seed in range(30):
        sc = generate_scene(seed, cfg)
        labels += sc.labels.tolist()
        b = sc.boxes
        heights += (b[:, 3] - b[:, 1]).tolist()
    assert set(labels) == set(range(5))
    assert min(heights) <= 40 and max(heights) >= 0.45 * 480
    assert len(labels) / 30 >= 2.0  # scenes are not nearly empty


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="class_weights"):
        SynthConfig(class_weights=(1, 1))
    with pytest.raises(ValueError, match="below 32x32"):
        SynthConfig(width=16)
    with pytest.raises(ValueError, match="min_objects"):
        SynthConfig(min_objects=5, max_objects=2)


def test_config_from_yaml_mapping():
    cfg = SynthConfig.from_dict({"width": 320, "height": 240, "size_range": [0.1, 0.5], "max_objects": 3})
    assert cfg.size_range == (0.1, 0.5) and cfg.max_objects == 3
    with pytest.raises(ValueError, match=r"unknown keys \['max_object'\]"):
        SynthConfig.from_dict({"max_object": 3})


def test_class_weights_restrict_classes():
    cfg = SynthConfig(width=320, height=240, class_weights=(0, 0, 0, 0, 1), min_objects=2)
    labels = np.concatenate([generate_scene(s, cfg).labels for s in range(5)])
    assert len(labels) and set(labels.tolist()) == {4}


def test_camera_motion_sequence_is_smooth():
    frames = generate_sequence(11, 8, SMALL)
    assert len(frames) == 8
    img = [f.image.astype(np.float32) for f in frames]
    step = np.mean([np.abs(img[i + 1] - img[i]).mean() for i in range(7)])
    other = np.abs(generate_scene(99, SMALL).image.astype(np.float32) - img[0]).mean()
    assert step < 0.5 * other
    for f in frames:
        assert f.image.shape == (240, 320, 3) and f.id_map.shape == (240, 320)
        assert f.id_map.max(initial=0) == len(f.labels)
    # same seed, same sequence
    again = generate_sequence(11, 8, SMALL)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, again))


def test_write_coco_files_and_categories(tmp_path):
    scenes = [generate_scene(s, SMALL) for s in range(3)]
    path = write_coco(tmp_path, scenes, image_ext=".jpg")
    gt = json.loads(path.read_text())
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3, 4, 5]
    assert [c["name"] for c in gt["categories"]] == CLASS_NAMES
    assert len(gt["images"]) == 3 and (tmp_path / gt["images"][0]["file_name"]).is_file()
    assert len(gt["annotations"]) == sum(len(s) for s in scenes)
    assert len({a["id"] for a in gt["annotations"]}) == len(gt["annotations"])
    with pytest.raises(ValueError, match="image_ext"):
        write_coco(tmp_path, scenes, image_ext=".bmp")


def test_dataset_coco_gt_scores_perfect_predictions():
    from instaseg_ros.core.instances import Instances
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    ds = SyntheticDataset(3, seed=5, config=SMALL)
    gt = ds.coco_gt()
    results = []
    for i in range(len(ds)):
        _, t = ds[i]
        n = len(t["labels"])
        inst = Instances(
            t["boxes"],
            np.linspace(0.9, 0.5, n),
            t["labels"],
            t["masks"].astype(bool),
            (240, 320),
            CLASS_NAMES,
        )
        results += instances_to_coco(inst, t["image_id"])
    m = evaluate_coco(gt, results)
    assert m["segm"]["AP"] == pytest.approx(1.0) and m["bbox"]["AP"] == pytest.approx(1.0)


def test_cli_synth_writes_coco_and_bag(tmp_path):
    from instaseg_ros.cli import main
    from instaseg_ros.data.bag_io import bag_topics

    assert (
        main(["synth", "--out", str(tmp_path / "c"), "--num-images", "2", "--seed", "1", "--size", "96x64"])
        == 0
    )
    gt = json.loads((tmp_path / "c" / "annotations.json").read_text())
    assert len(gt["images"]) == 2 and gt["images"][0]["width"] == 96
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "b"),
                "--num-images",
                "4",
                "--bag",
                "--rate",
                "20",
                "--sequence-length",
                "2",
                "--size",
                "96x64",
            ]
        )
        == 0
    )
    topics = bag_topics(tmp_path / "b" / "bag")
    assert topics["/camera/color/image_raw"] == ("sensor_msgs/msg/Image", 4)
    assert topics["/camera/color/camera_info"] == ("sensor_msgs/msg/CameraInfo", 4)
    gt = json.loads((tmp_path / "b" / "ground_truth.json").read_text())
    stamps = [im["stamp_ns"] for im in gt["images"]]
    assert np.all(np.diff(stamps) == 50_000_000)
    again = ["synth", "--out", str(tmp_path / "b"), "--num-images", "2", "--bag", "--size", "96x64"]
    assert main(again) == 2  # the bag exists
    assert main([*again, "--overwrite"]) == 0
    assert bag_topics(tmp_path / "b" / "bag")["/camera/color/image_raw"][1] == 2
    assert "/camera/depth/image_raw" not in bag_topics(tmp_path / "b" / "bag")
    assert main([*again, "--overwrite", "--depth", "32FC1", "--ideal-depth"]) == 0
    topics = bag_topics(tmp_path / "b" / "bag")
    assert topics["/camera/depth/image_raw"] == ("sensor_msgs/msg/Image", 2)
    assert topics["/camera/depth/camera_info"] == ("sensor_msgs/msg/CameraInfo", 2)
    gt = json.loads((tmp_path / "b" / "ground_truth.json").read_text())
    assert gt["info"]["depth_encoding"] == "32FC1" and gt["info"]["depth_noise"] is None
    assert all(len(a["center_3d"]) == 3 and len(a["box_3d"]) == 6 for a in gt["annotations"])
    assert main(["synth", "--out", str(tmp_path / "x"), "--num-images", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["synth", "--out", str(tmp_path / "x"), "--size", "640by480"])
