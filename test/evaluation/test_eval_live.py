"""Live eval-bag: the bag replayed over DDS to the real node process; its published outputs are scored."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from eval_helpers import TOPIC, make_bag, make_yolact_checkpoint

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.bag_eval import run_bag_eval
from instaseg_ros.evaluation.live import large_image_profile
from instaseg_ros.evaluation.records import BagEvalConfig, EvalError, ModelSpec

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("evallive")
    bag, gt = make_bag(root / "data", num_frames=6, rate=10.0)
    return {"root": root, "bag": bag, "gt": gt}


def test_live_oracle_through_the_node_scores_ap_one(synth):
    spec = ModelSpec(
        "oracle", weights=str(synth["gt"]), device="cpu", plugins=["instaseg_ros.evaluation.oracle"]
    )
    cfg = BagEvalConfig(
        bag=str(synth["bag"]),
        gt=str(synth["gt"]),
        topic=TOPIC,
        mode="live",
        model=spec,
        rate_multiplier=2.0,
        startup_timeout_s=90,
        output_bag=str(synth["root"] / "live_out"),
    )
    out = run_bag_eval(cfg, progress=False)
    s = out.summary
    f = s["frames"]
    assert f["sent"] == 6 and f["processed"] + f["dropped"] == 6
    assert f["processed"] >= 3, f"the oracle node should keep up with 20 Hz: {f}"
    assert s["accuracy"]["segm"]["AP"] == pytest.approx(1.0) and s["accuracy"]["bbox"]["AP"] == pytest.approx(
        1.0
    )
    lat = s["latency_ms"]
    assert lat["count"] == f["processed"] and 0 < lat["p50"] <= lat["p95"] <= lat["max"] < 5000
    assert s["memory"]["peak_rss_of"].startswith("node process") and s["memory"]["peak_rss_mb"] > 20
    assert s["live"]["node_diagnostics"].get("model_family") == "oracle"
    assert json.dumps(s)
    from instaseg_ros.data.bag_io import bag_topics

    topics = bag_topics(synth["root"] / "live_out")
    assert topics["/instaseg/detections"][1] == f["processed"] and topics[TOPIC][1] == 6


def test_live_small_yolact_counts_drops_and_latency(synth):
    ckpt = make_yolact_checkpoint(synth["root"] / "yolact_r18.pth", input_size=64)
    env_before = os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    spec = ModelSpec("yolact", weights=str(ckpt), device="cpu", params=InferenceParams(score_threshold=0.05))
    cfg = BagEvalConfig(
        bag=str(synth["bag"]),
        gt=str(synth["gt"]),
        topic=TOPIC,
        mode="live",
        model=spec,
        rate_multiplier=4.0,
        dds_profile=large_image_profile(),
        startup_timeout_s=120,
        num_examples=2,
    )
    out = run_bag_eval(cfg, progress=False)
    s = out.summary
    f = s["frames"]
    assert f["sent"] == 6 and f["processed"] >= 1 and f["processed"] + f["dropped"] == 6
    assert s["drop_rate"] == pytest.approx(f["dropped"] / 6)
    if f["dropped"] and f["gt_processed"] < f["gt_matched"]:
        assert s["accuracy_counting_drops"] is not None
    done = [r for r in s["per_frame"] if r["processed"]]
    assert all(r["latency_ms"] > 0 and r["t_s"] is not None for r in done)
    assert s["live"]["node_diagnostics"]["model_family"] == "yolact"
    assert s["live"]["dds_profile"].endswith("fastdds_large_images.xml")
    assert os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE") == env_before, (
        "the profile leaked into this process"
    )
    assert out.examples and isinstance(out.examples[0].prediction, Instances)


def test_live_node_that_cannot_load_its_model_is_a_clear_error(synth, tmp_path):
    bad = tmp_path / "not_a_checkpoint.pth"
    bad.write_bytes(b"this is not a checkpoint")
    spec = ModelSpec("yolact", weights=str(bad), device="cpu")
    cfg = BagEvalConfig(
        bag=str(synth["bag"]), gt=str(synth["gt"]), topic=TOPIC, mode="live", model=spec, startup_timeout_s=20
    )
    with pytest.raises(EvalError, match="could not load its model") as e:
        run_bag_eval(cfg, progress=False)
    assert "configure failed" in str(e.value)  # the node's own log line is quoted


def test_instances_from_outputs_round_trip():
    from instaseg_ros.core.masks import masks_to_boxes
    from instaseg_ros.evaluation.live import instances_from_outputs
    from instaseg_ros.ros import conversions as conv

    rng = np.random.default_rng(0)
    masks = np.zeros((3, 40, 50), bool)
    masks[0, 5:20, 5:30] = masks[1, 22:35, 10:45] = masks[2, 2:10, 35:48] = True
    inst = Instances(
        masks_to_boxes(masks), rng.uniform(0.3, 1, 3), [0, 2, 1], masks, (40, 50), ["a", "b", "c"]
    )
    out = conv.render_outputs(inst)
    for fmt in ("name", "index"):
        det = conv.instances_to_detections(out.instances, None, fmt)
        back = instances_from_outputs(det, conv.numpy_to_image(out.instance_ids, "mono16"), ["a", "b", "c"])
        assert np.array_equal(back.masks, inst.masks) and np.array_equal(back.class_ids, inst.class_ids)
        np.testing.assert_allclose(back.boxes, inst.boxes, atol=1e-4)
        np.testing.assert_allclose(back.scores, inst.scores, atol=1e-6)


def test_node_pid_finds_the_node_under_a_launcher(tmp_path):
    """Under ``ros2 launch`` the node is a child process: its peak RSS must be the one reported."""
    import subprocess
    import sys

    from instaseg_ros.evaluation.live import node_pid, process_peak_rss_mb

    parent = tmp_path / "launcher.py"
    parent.write_text(
        "import subprocess, sys\n"
        "code = 'import time  # instaseg_ros.ros.node\\ntime.sleep(20)'\n"
        "c = subprocess.Popen([sys.executable, '-c', code])\n"
        "print(c.pid, flush=True)\n"
        "c.wait()\n"
    )
    p = subprocess.Popen([sys.executable, str(parent)], stdout=subprocess.PIPE, text=True)
    child = int(p.stdout.readline())
    try:
        assert node_pid(p.pid) == child
        # the child was just forked: give its interpreter a moment to load before its RSS is read
        deadline = time.monotonic() + 10
        while process_peak_rss_mb(child) <= 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_peak_rss_mb(child) > 1
    finally:
        subprocess.run(["kill", str(child)], check=False)
        p.kill()
        p.wait(timeout=10)


def test_node_arguments_carry_the_model_spec():
    """The live node gets the evaluated backend/device/precision and absolute model paths
    (package:// resolved), since it runs as another process."""
    from instaseg_ros.evaluation.live import node_arguments

    spec = ModelSpec(
        "yolact",
        weights="package://instaseg_ros/models/yolact_se_r18_indoor.pth",
        device="cpu",
        precision="fp32",
        params=InferenceParams(score_threshold=0.2, class_filter=["chair"]),
        backend="onnxruntime",
    )
    args = node_arguments(BagEvalConfig(bag="b", gt="g", model=spec, node_params={"top_k": 7}), "/ns")
    params = dict(args[i + 1].split(":=", 1) for i in range(len(args) - 1) if args[i] == "-p")
    assert json.loads(params["backend"]) == "onnxruntime" and json.loads(params["device"]) == "cpu"
    weights = json.loads(params["model.weights"])
    assert os.path.isabs(weights) and weights.endswith("models/yolact_se_r18_indoor.pth")
    assert os.path.isfile(weights)
    assert json.loads(params["score_threshold"]) == 0.2 and json.loads(params["class_filter"]) == ["chair"]
    assert json.loads(params["top_k"]) == 7  # node_params override the spec's
    assert args[:5] == ["--ros-args", "-r", "__ns:=/ns", "-r", "__node:=instaseg_node"]
