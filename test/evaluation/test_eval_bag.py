"""Offline rosbag evaluation: metric equality with evaluate_coco, oracle AP 1.0, stamp matching."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_helpers import TOPIC, make_bag, make_yolact_checkpoint

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.bag_eval import run_bag_eval
from instaseg_ros.evaluation.gt_tools import load_ground_truth
from instaseg_ros.evaluation.matching import match_frames, scan_bag
from instaseg_ros.evaluation.oracle import GroundTruthSegmenter
from instaseg_ros.evaluation.records import BagEvalConfig, EvalError, ModelSpec


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalbag")
    bag, gt = make_bag(root / "data")
    return {"root": root, "bag": bag, "gt": gt, "ckpt": make_yolact_checkpoint(root / "yolact_r18.pth")}


def test_offline_mask_ap_equals_direct_evaluate_coco(synth):
    from instaseg_ros.data.bag_io import iter_bag_images
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco
    from instaseg_ros.models import build_segmenter

    params = InferenceParams(score_threshold=0.05, top_k=20)
    spec = ModelSpec("yolact", weights=str(synth["ckpt"]), device="cpu", params=params)
    out = run_bag_eval(
        BagEvalConfig(bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC, model=spec), progress=False
    )
    s = out.summary
    assert s["frames"]["processed"] == s["frames"]["in_bag"] == 6 and s["frames"]["gt_matched"] == 6

    # the same frames scored directly with the project's COCO evaluation
    gt = json.loads(synth["gt"].read_text())
    id_by_stamp = {im["stamp_ns"]: im["id"] for im in gt["images"]}
    seg = build_segmenter("yolact", weights=str(synth["ckpt"]), device="cpu", params=params)
    results = []
    for stamp, _fid, img in iter_bag_images(synth["bag"], TOPIC):
        results += instances_to_coco(seg.segment([img])[0], id_by_stamp[stamp])
    assert results, "the random model should give some detections at score 0.05"
    direct = evaluate_coco(gt, results, image_ids=sorted(id_by_stamp.values()))
    for iou in ("segm", "bbox"):
        for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
            assert s["accuracy"][iou][k] == direct[iou][k], (iou, k)
        assert s["accuracy"][iou]["per_class"] == direct[iou]["per_class"]
    assert s["latency_ms"]["count"] == 6 and s["latency_ms"]["p50"] > 0
    assert s["drop_rate"] == 0.0 and s["throughput_fps"] > 0 and s["memory"]["peak_rss_mb"] > 100
    assert json.dumps(s)  # every number JSON-serialisable


def test_oracle_scores_ap_one(synth):
    gt = load_ground_truth(synth["gt"])
    frames = scan_bag(synth["bag"], TOPIC)
    from instaseg_ros.data.bag_io import iter_bag_images

    by_stamp = {st: iid for iid, st in gt.stamps.items()}
    oracle = GroundTruthSegmenter.from_frames(
        gt, ((by_stamp[st], img) for st, _f, img in iter_bag_images(synth["bag"], TOPIC))
    )
    out = run_bag_eval(
        BagEvalConfig(bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC),
        segmenter=oracle,
        progress=False,
    )
    acc = out.summary["accuracy"]
    assert len(frames) == 6
    for iou in ("bbox", "segm"):
        assert acc[iou]["AP"] == pytest.approx(1.0) and acc[iou]["AP50"] == pytest.approx(1.0)
        present = {gt.category_names[gt.category_ids.index(a["category_id"])] for a in gt.coco["annotations"]}
        assert all(acc[iou]["per_class"][n] == pytest.approx(1.0) for n in present)
    assert len(out.examples) == 4
    ex = out.examples[0]
    assert np.array_equal(ex.prediction.masks, ex.ground_truth.masks)


def test_oracle_from_image_files_matches_bag_frames(synth):
    oracle = GroundTruthSegmenter.from_image_files(synth["gt"])
    out = run_bag_eval(
        BagEvalConfig(bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC, num_examples=0),
        segmenter=oracle,
        progress=False,
    )
    assert out.summary["accuracy"]["segm"]["AP"] == pytest.approx(1.0)


def test_stamp_tolerance_and_partial_ground_truth(synth):
    gt = json.loads(synth["gt"].read_text())
    gt["images"] = gt["images"][::2]  # every other frame annotated, stamps off by 0.3 ms
    keep = {im["id"] for im in gt["images"]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
    for im in gt["images"]:
        im["stamp_ns"] += 300_000
    g = load_ground_truth(gt)
    frames = scan_bag(synth["bag"], TOPIC)
    m = match_frames(frames, g, tolerance_ns=1_000_000)
    assert sorted(m.frame_to_image) == [0, 2, 4] and m.max_offset_ns == 300_000 and not m.unmatched_images
    with pytest.raises(EvalError, match="matches no frame"):
        match_frames(frames, g, tolerance_ns=100_000)
    oracle = GroundTruthSegmenter.from_image_files(synth["gt"])
    out = run_bag_eval(
        BagEvalConfig(bag=str(synth["bag"]), gt=gt, topic=TOPIC, only_gt_frames=True, num_examples=1),
        segmenter=oracle,
        progress=False,
    )
    f = out.summary["frames"]
    assert (f["sent"], f["processed"], f["dropped"], f["gt_processed"]) == (3, 3, 0, 3)
    assert out.summary["accuracy"]["segm"]["AP"] == pytest.approx(1.0)


def test_size_mismatch_and_class_mismatch_are_clear(synth):
    gt = json.loads(synth["gt"].read_text())
    gt["images"][0]["width"] = 320
    with pytest.raises(EvalError, match="is 320x120 but the bag frame"):
        match_frames(scan_bag(synth["bag"], TOPIC), load_ground_truth(gt), 1_000_000)
    gt = json.loads(synth["gt"].read_text())
    for c in gt["categories"]:
        c["name"] = "x_" + c["name"]
    oracle = GroundTruthSegmenter.from_image_files(synth["gt"])
    with pytest.raises(EvalError, match="no model class name matches"):
        run_bag_eval(
            BagEvalConfig(bag=str(synth["bag"]), gt=gt, topic=TOPIC), segmenter=oracle, progress=False
        )


def test_model_load_errors_keep_the_loader_message(synth, tmp_path):
    from instaseg_ros.models.loading import ModelLoadError, load_model

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError) as direct:
        load_model("yolact", str(empty))
    spec = ModelSpec("yolact", weights=str(empty), device="cpu")
    with pytest.raises(EvalError) as evaluated:
        run_bag_eval(BagEvalConfig(bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC, model=spec))
    assert str(evaluated.value) == str(direct.value) and "is empty" in str(evaluated.value)


def test_onnxruntime_backend_scores_like_torch(synth, tmp_path):
    params = InferenceParams(score_threshold=0.05, top_k=20)

    def evaluate(backend: str, **options) -> dict:
        spec = ModelSpec(
            "yolact",
            weights=str(synth["ckpt"]),
            device="cpu",
            params=params,
            backend=backend,
            backend_options=options,
        )
        cfg = BagEvalConfig(
            bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC, model=spec, num_examples=0
        )
        return run_bag_eval(cfg, progress=False).summary

    ref = evaluate("torch")
    ort = evaluate("onnxruntime", cache_dir=str(tmp_path), threads=1)
    assert ref["model"]["backend"] == "torch" and ort["model"]["backend"] == "onnxruntime"
    assert ref["accuracy"]["num_detections"] > 0
    for iou in ("bbox", "segm"):
        assert ort["accuracy"][iou]["AP"] == pytest.approx(ref["accuracy"][iou]["AP"], abs=0.01), iou
    counts = [(a["num_detections"], b["num_detections"]) for a, b in zip(ref["per_frame"], ort["per_frame"])]
    assert all(abs(a - b) <= 1 for a, b in counts), counts
