"""instaseg_node with ``precision: int8`` (ONNX Runtime, static QDQ) over real DDS.

One node process: started with int8 on the torch backend (configure must fail with a message naming the
fix), then on ONNX Runtime without ``calib`` (fails again, naming ``calib``), then with a calibration
folder: it configures (quantising once into the cache), activates and answers frames with detections and
an instance mask that carry the input header.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

from ros_probe import NodeProcess, Probe, ensure_ros_env, make_tiny_yolact, random_image  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402
from instaseg_ros.ros.params import precision_problem  # noqa: E402

ensure_ros_env()
NS = "/t20int8"
FQN = f"{NS}/instaseg_node"
IMAGE_TOPIC = f"{NS}/camera/image"
H, W = 96, 128


def test_precision_problem_names_the_fix():
    assert precision_problem("onnxruntime", "int8", "/data/calib") == ""
    assert precision_problem("torch", "fp32", "") == ""
    assert "backend onnxruntime" in precision_problem("torch", "int8", "/data/calib")
    assert "needs calib" in precision_problem("onnxruntime", "int8", " ")
    assert "needs calib" in precision_problem("tensorrt", "int8", "")


def test_int8_node_over_dds(tmp_path, monkeypatch):
    weights = make_tiny_yolact(tmp_path / "tiny.pth", input_size=96)
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(3)
    for i in range(6):
        assert cv2.imwrite(str(calib / f"{i}.png"), random_image(rng, H, W))
    cache = tmp_path / "cache"
    monkeypatch.setenv("INSTASEG_CACHE_DIR", str(cache))  # the node process inherits it
    proc = NodeProcess(
        ["-r", f"__ns:={NS}", "-r", f"image:={IMAGE_TOPIC}", "-p", f"model.weights:={weights}",
         "-p", "precision:=int8", "-p", "score_threshold:=0.0", "-p", "top_k:=5",
         "-p", "qos_reliability:=reliable"],
        tmp_path / "node.log",
    )  # fmt: skip
    probe = None
    try:
        # int8 on the default torch backend: configure fails, naming the backend to use
        assert proc.wait_log("configure failed", 90), proc.log()
        needs = "precision int8 needs backend onnxruntime (CPU) or tensorrt (GPU); backend is torch"
        assert needs in proc.log()
        probe = Probe(FQN, IMAGE_TOPIC)
        assert probe.state() == "unconfigured" and proc.alive()
        # onnxruntime without a calibration set: refused again, naming calib
        assert all(r.successful for r in probe.set_params(backend="onnxruntime"))
        assert not probe.transition("configure")
        assert "precision int8 needs calib" in proc.log()
        assert probe.state() == "unconfigured"
        # with calibration images: quantised at configure, cached, then serves frames
        assert all(r.successful for r in probe.set_params(calib=str(calib)))
        assert probe.transition("configure") and probe.transition("activate")
        assert proc.wait_log("int8 [onnxruntime]", 10), proc.log()
        assert list(cache.rglob("*int8*.onnx")), sorted(str(p) for p in cache.rglob("*"))
        assert probe.wait_connected()
        for k in range(3):
            header = probe.next_header()
            probe.publish(conv.numpy_to_image(random_image(rng, H, W), "bgr8", header))
            out = probe.result_for(header, timeout=30)
            assert out is not None, f"frame {k}: no outputs\n{proc.log()[-2000:]}"
            (dets,) = out["detections"]
            (mask,) = out["instance_mask"]
            assert dets.header == header and mask.header == header
            ids = conv.image_to_numpy(mask)
            assert mask.encoding == "mono16" and ids.shape == (H, W)
            assert len(dets.detections) > 0  # score threshold 0: the top-5 instances
            assert sorted(int(d.id) for d in dets.detections) == sorted(int(v) for v in np.unique(ids) if v)
    finally:
        if probe is not None:
            probe.close()
        assert proc.stop() == 0, proc.log()[-3000:]
