"""eval-bag's tracking (MOT: tracker vs IoU baseline) and 3D (centre/size error vs distance) scores,
offline with the oracle and a flickering oracle, live through the real node, and in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instaseg_ros.core.instances import Instances
from instaseg_ros.evaluation.bag_eval import run_bag_eval
from instaseg_ros.evaluation.gt_tools import load_ground_truth
from instaseg_ros.evaluation.oracle import GroundTruthSegmenter
from instaseg_ros.evaluation.records import BagEvalConfig, ModelSpec

TOPIC = "/camera/color/image_raw"


@pytest.fixture(scope="module")
def depth_bag(tmp_path_factory):
    from instaseg_ros.data.synthetic import BagSpec, SynthConfig, write_synthetic_bag

    root = tmp_path_factory.mktemp("evaltrk")
    cfg = SynthConfig(width=320, height=240, min_objects=3, max_objects=5, max_distractors=0)
    spec = BagSpec(num_frames=24, rate=10.0, sequence_length=12, write_images=True, depth="16UC1")
    bag, gt = write_synthetic_bag(root / "data", seed=4, config=cfg, spec=spec)
    return {"root": root, "bag": bag, "gt": gt}


class FlickeringOracle(GroundTruthSegmenter):
    """The ground truth with every object missing on every third frame of its own (a flickering
    detector): the IoU baseline loses the id on each gap, a tracker keeps it."""

    def postprocess(self, raw, metas, params=None):
        out = super().postprocess(raw, metas, params)
        self._frame = getattr(self, "_frame", -1) + 1
        res = []
        for inst in out:
            keep = np.array([(self._frame + i) % 3 != 0 for i in range(len(inst))], bool)
            res.append(inst.select(np.flatnonzero(keep)) if len(inst) else inst)
        return res


def _oracle(gt_path, cls=GroundTruthSegmenter) -> GroundTruthSegmenter:
    return cls.from_image_files(gt_path)


def test_offline_oracle_tracks_perfectly_and_scores_3d(depth_bag, tmp_path):
    cfg = BagEvalConfig(bag=str(depth_bag["bag"]), gt=str(depth_bag["gt"]), topic=TOPIC)
    s = run_bag_eval(cfg, segmenter=_oracle(depth_bag["gt"]), progress=False).summary
    t = s["tracking"]
    o = t["tracker"]["overall"]
    # perfect detections: every object found; ids can still switch once where an object enters at the
    # image border (its box grows several-fold per frame in this fast 12-frame pan)
    assert o["recall"] == 1.0 and o["precision"] == 1.0 and o["idf1"] > 0.9 and o["id_switches"] <= 4
    assert set(t["tracker"]["sequences"]) == {"0", "1"} and o["num_frames"] == 24
    assert t["iou_baseline"]["overall"]["num_frames"] == 24 and t["tracker_source"].endswith("evaluator")
    d = s["depth_3d"]
    assert d["matched_with_3d"] >= 20 and d["frames_without_depth"] == 0
    assert d["range_1_4m"]["count"] > 0 and d["range_1_4m"]["centre_median_m"] < 0.05
    assert sum(b["count"] for b in d["by_distance"]) == d["matched_with_3d"] == len(d["instances"])
    row = d["instances"][0]
    assert row["centre_error_m"] == pytest.approx(np.linalg.norm(row["centre_error_xyz_m"]))
    assert json.dumps(s)
    from instaseg_ros.evaluation.records import EvalOutcome
    from instaseg_ros.evaluation.report import write_report

    out = run_bag_eval(cfg, segmenter=_oracle(depth_bag["gt"]), progress=False)
    assert isinstance(out, EvalOutcome)
    files = write_report(out, tmp_path / "report")
    html = files["html"].read_text()
    assert "Tracking (MOT)" in html and "IoU baseline" in html and "3D from depth" in html
    assert html.count("data:image/png;base64,") >= 3
    md = files["markdown"].read_text()
    assert "IDF1" in md and "centre error" in md


def test_tracker_beats_the_iou_baseline_on_a_flickering_detector(depth_bag):
    cfg = BagEvalConfig(bag=str(depth_bag["bag"]), gt=str(depth_bag["gt"]), topic=TOPIC, depth_3d=False)
    s = run_bag_eval(cfg, segmenter=_oracle(depth_bag["gt"], FlickeringOracle), progress=False).summary
    assert "depth_3d" not in s
    tr, base = s["tracking"]["tracker"]["overall"], s["tracking"]["iou_baseline"]["overall"]
    assert tr["recall"] == pytest.approx(base["recall"]) and tr["recall"] < 0.8  # same detections
    assert tr["id_switches"] < base["id_switches"] and tr["idf1"] > base["idf1"] + 0.1, (tr, base)
    assert s["tracking"]["idf1_gain"] == pytest.approx(tr["idf1"] - base["idf1"])


def test_ground_truth_without_track_ids_or_depth_skips_both(depth_bag, tmp_path):
    gt = json.loads(depth_bag["gt"].read_text())
    for a in gt["annotations"]:
        a.pop("track_id")
    gt["info"].pop("depth_topic")
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    seg = GroundTruthSegmenter.from_frames(load_ground_truth(depth_bag["gt"]), [])
    cfg = BagEvalConfig(bag=str(depth_bag["bag"]), gt=str(path), topic=TOPIC)
    s = run_bag_eval(cfg, segmenter=seg, progress=False).summary
    assert "tracking" not in s and "depth_3d" not in s


@pytest.mark.ros
def test_live_node_ids_and_detections_3d_are_scored(depth_bag):
    pytest.importorskip("rclpy")
    from instaseg_ros.data.bag_io import bag_topics
    from instaseg_ros.evaluation.live import large_image_profile

    spec = ModelSpec("oracle", weights=str(depth_bag["gt"]), device="cpu",
                     plugins=["instaseg_ros.evaluation.oracle"])  # fmt: skip
    out_bag = depth_bag["root"] / "live_out"
    cfg = BagEvalConfig(bag=str(depth_bag["bag"]), gt=str(depth_bag["gt"]), topic=TOPIC, mode="live",
                        model=spec, rate_multiplier=1.0, output_bag=str(out_bag), startup_timeout_s=90,
                        dds_profile=large_image_profile())  # fmt: skip
    s = run_bag_eval(cfg, progress=False).summary
    assert s["live"]["node_diagnostics"]["depth_enabled"] == "True"
    t = s["tracking"]
    assert t["tracker_source"] == "the node's Detection2D ids"
    processed = s["frames"]["processed"]
    assert processed >= 18 and t["tracker"]["overall"]["num_frames"] == 24
    assert t["tracker"]["overall"]["idf1"] > 0.6
    d = s["depth_3d"]
    assert d["matched_with_3d"] > 0 and d["range_1_4m"]["centre_median_m"] < 0.05
    topics = bag_topics(out_bag)
    assert topics["/instaseg/detections_3d"][1] == processed and topics["/instaseg/markers"][1] >= 1


def test_instances_from_outputs_returns_the_ids_aligned_with_the_sorted_instances():
    from instaseg_ros.evaluation.live.outputs import instances_from_outputs
    from instaseg_ros.ros import conversions as conv

    masks = np.zeros((3, 20, 30), bool)
    masks[0, 1:5, 1:5] = masks[1, 6:12, 6:20] = masks[2, 14:19, 2:28] = True
    inst = Instances(np.array([[1, 1, 5, 5], [6, 6, 20, 12], [2, 14, 28, 19]], np.float32),
                     [0.9, 0.7, 0.5], [0, 1, 0], masks, (20, 30), ["a", "b"])  # fmt: skip
    r = conv.render_outputs(inst, np.array([40, 7, 1234]))
    det = conv.instances_to_detections(r.source, None, keep=r.keep, ids=r.ids)
    det.detections = list(det.detections)[::-1]  # any order on the wire
    back, ids = instances_from_outputs(det, conv.numpy_to_image(r.instance_ids, "mono16"), ["a", "b"], True)
    assert ids.tolist() == [40, 7, 1234] and np.array_equal(back.masks, masks)
