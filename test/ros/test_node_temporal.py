"""instaseg_node with YOLACT temporal reuse (YolactEdge) over real DDS: every processed frame is answered with
its own header, key and non-key frames are counted in /diagnostics, the policy changes at run time; on the
onnxruntime backend the node runs the exported key / non-key graphs and refuses the torch-only prototype
reuse."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import ROOT, active_node, connected_probe, ensure_ros_env  # noqa: E402

from instaseg_ros.data.synthetic import SynthConfig, generate_sequence  # noqa: E402
from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS = "/t17"
FQN = f"{NS}/instaseg_node"
IMAGE_TOPIC = "/cam17/color/image_raw"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with active_node(
        [
            "--params-file", str(ROOT / "config" / "yolact.yaml"),
            "-r", f"__ns:={NS}",
            "-r", f"image:={IMAGE_TOPIC}",
            "-p", "temporal.enabled:=true",
            "-p", "temporal.keyframe_interval:=3",
            "-p", "score_threshold:=0.2",
        ],
        tmp_path_factory.mktemp("log") / "node.log",
    ) as proc:  # fmt: skip
        yield proc


@pytest.fixture(scope="module")
def probe(node):
    with connected_probe(FQN, IMAGE_TOPIC) as p:
        yield p


@pytest.fixture(scope="module")
def frames():
    return generate_sequence(17, 30, SynthConfig(width=320, height=240))[10:19]


def send(probe, image, sec: int, i: int):
    """One frame stamped ``sec + i / 30`` s; returns (header, outputs) once every output for it arrived."""
    from std_msgs.msg import Header

    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = sec, i * 33_333_333
    probe.publish(conv.numpy_to_image(image, "bgr8", header))
    out = probe.result_for(header, timeout=30)
    assert out is not None, f"no output for the frame stamped {sec}.{i}"
    return header, out


def diagnostics(probe, frames: int) -> dict:
    """The first new /diagnostics status that counts ``frames`` temporal frames (key + non-key)."""
    end = time.monotonic() + 15
    while time.monotonic() < end:
        diag = probe.latest_diagnostics(timeout=3)
        if diag and float(diag["temporal_key_frames"]) + float(diag["temporal_nonkey_frames"]) == frames:
            return diag
    raise AssertionError(f"no /diagnostics counting {frames} frames (last: {diag})")


def test_every_frame_is_answered_with_its_header_and_frames_are_counted_by_kind(probe, frames):
    for i, f in enumerate(frames):
        header, out = send(probe, f.image, 100, i)
        assert [len(out[k]) for k in ("detections", "instance_mask", "semantic_mask")] == [1, 1, 1]
        dets, mask_msg, sem_msg = out["detections"][0], out["instance_mask"][0], out["semantic_mask"][0]
        assert dets.header == header and mask_msg.header == header and sem_msg.header == header
        mask = conv.image_to_numpy(mask_msg)
        assert mask.shape == (240, 320)
        assert {int(d.id) for d in dets.detections} == set(np.unique(mask).tolist()) - {0}
        assert len(dets.detections) > 0  # the shipped model finds the objects of these scenes
    diag = diagnostics(probe, 9)
    assert float(diag["temporal_key_frames"]) == 3 and float(diag["temporal_nonkey_frames"]) == 6  # 1 in 3
    assert diag["temporal_key_ratio"] == "0.33"
    assert diag["temporal_runner"] == "TemporalYolact"
    assert float(diag["temporal_nonkey_ms_median"]) > 0


def test_policy_changes_at_run_time_and_restart_with_a_key_frame(node, probe, frames):
    ok = probe.set_params(temporal__policy="adaptive", temporal__change_threshold=0.8)
    assert all(r.successful for r in ok)
    time.sleep(0.5)
    assert "apply_parameters:" not in node.log()  # the accepted change was applied, not failed in the node
    bad = probe.set_params(temporal__keyframe_interval=0)
    assert not bad[0].successful
    bad = probe.set_params(temporal__policy="sometimes")
    assert not bad[0].successful and "not one of" in bad[0].reason
    refused = probe.set_params(temporal__enabled=False)  # a model parameter: needs reconfigure
    assert not refused[0].successful and "reconfigure" in refused[0].reason
    for i, f in enumerate(frames[:3]):
        send(probe, f.image, 200, i)
    after = diagnostics(probe, 12)
    assert float(after["temporal_key_frames"]) >= 4  # the reconfigured policy starts with a key frame


ONNX_NS = "/t17onnx"
ONNX_IMAGE_TOPIC = "/cam17onnx/color/image_raw"


@pytest.fixture(scope="module")
def onnx_probe(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    args = [
        "--params-file", str(ROOT / "config" / "yolact.yaml"),
        "-r", f"__ns:={ONNX_NS}",
        "-r", f"image:={ONNX_IMAGE_TOPIC}",
        "-p", "backend:=onnxruntime",
        "-p", "temporal.enabled:=true",
        "-p", "temporal.keyframe_interval:=3",
        "-p", "score_threshold:=0.2",
    ]  # fmt: skip
    with active_node(args, tmp_path_factory.mktemp("log") / "node.log", timeout=240.0):
        with connected_probe(f"{ONNX_NS}/instaseg_node", ONNX_IMAGE_TOPIC) as p:
            yield p


def test_onnx_graphs_answer_every_frame_and_count_key_frames(onnx_probe, frames):
    for i, f in enumerate(frames[:6]):
        header, out = send(onnx_probe, f.image, 300, i)
        dets, mask_msg = out["detections"][0], out["instance_mask"][0]
        assert dets.header == header and mask_msg.header == header
        mask = conv.image_to_numpy(mask_msg)
        assert {int(d.id) for d in dets.detections} == set(np.unique(mask).tolist()) - {0}
        assert len(dets.detections) > 0
    diag = diagnostics(onnx_probe, 6)
    assert float(diag["temporal_key_frames"]) == 2 and float(diag["temporal_nonkey_frames"]) == 4
    assert diag["temporal_runner"] == "OnnxTemporalYolact"  # the exported graphs ran, not the torch model


def test_prototype_reuse_is_refused_on_onnxruntime(onnx_probe):
    refused = onnx_probe.set_params(temporal__reuse_prototypes=True)
    assert not refused[0].successful and "onnxruntime" in refused[0].reason
