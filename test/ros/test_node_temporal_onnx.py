"""instaseg_node with temporal reuse on the onnxruntime backend over real DDS: the node runs the exported
key / non-key graphs (OnnxTemporalYolact), answers every frame with its header and counts frames by kind; the
torch-only prototype reuse is refused at run time with a reason."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")
pytest.importorskip("onnxruntime")

from ros_probe import ROOT, active_node, connected_probe, ensure_ros_env  # noqa: E402

from instaseg_ros.data.synthetic import SynthConfig, generate_sequence  # noqa: E402
from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS = "/t17onnx"
FQN = f"{NS}/instaseg_node"
IMAGE_TOPIC = "/cam17onnx/color/image_raw"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with active_node(
        [
            "--params-file", str(ROOT / "config" / "yolact.yaml"),
            "-r", f"__ns:={NS}",
            "-r", f"image:={IMAGE_TOPIC}",
            "-p", "backend:=onnxruntime",
            "-p", "temporal.enabled:=true",
            "-p", "temporal.keyframe_interval:=3",
            "-p", "score_threshold:=0.2",
        ],
        tmp_path_factory.mktemp("log") / "node.log",
        timeout=240.0,
    ) as proc:  # fmt: skip
        yield proc


@pytest.fixture(scope="module")
def probe(node):
    with connected_probe(FQN, IMAGE_TOPIC) as p:
        yield p


def test_onnx_graphs_answer_every_frame_and_count_key_frames(node, probe):
    from std_msgs.msg import Header

    frames = generate_sequence(17, 30, SynthConfig(width=320, height=240))[10:16]
    for i, f in enumerate(frames):
        header = Header(frame_id="camera_optical_frame")
        header.stamp.sec, header.stamp.nanosec = 300, i * 33_333_333
        probe.publish(conv.numpy_to_image(f.image, "bgr8", header))
        out = probe.result_for(header, timeout=60)
        assert out is not None, f"no output for frame {i}"
        dets, mask_msg = out["detections"][0], out["instance_mask"][0]
        assert dets.header == header and mask_msg.header == header
        mask = conv.image_to_numpy(mask_msg)
        assert {int(d.id) for d in dets.detections} == set(np.unique(mask).tolist()) - {0}
        assert len(dets.detections) > 0
    diag = None
    for _ in range(10):
        diag = probe.latest_diagnostics(timeout=3) or {}
        counted = float(diag.get("temporal_key_frames", 0)) + float(diag.get("temporal_nonkey_frames", 0))
        if counted == 6:
            break
    assert float(diag["temporal_key_frames"]) == 2 and float(diag["temporal_nonkey_frames"]) == 4
    assert diag["temporal_runner"] == "OnnxTemporalYolact"  # the exported graphs ran, not the torch model


def test_prototype_reuse_is_refused_on_onnxruntime(probe):
    refused = probe.set_params(temporal__reuse_prototypes=True)
    assert not refused[0].successful and "onnxruntime" in refused[0].reason
