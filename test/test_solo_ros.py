"""instaseg_node with ``model.family: solo``: configure from a SOLO checkpoint, answer a frame over DDS."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import NodeProcess, Probe, ensure_ros_env, random_image  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS, TOPIC = "/t10solo", "/cam10s/image_raw"
TINY = dict(backbone="resnet18", input_size=64, fpn_channels=32, head_channels=32, head_convs=1,
            mask_channels=16, mask_mid_channels=16, num_grids=[8, 6, 4, 3, 2],
            pre_nms_threshold=0.0)  # fmt: skip


def make_checkpoint(path):
    import torch

    from instaseg_ros.models.solo import SoloConfig, SoloV2, save_checkpoint

    torch.manual_seed(0)
    cfg = SoloConfig(**TINY)
    save_checkpoint(path, SoloV2(cfg), cfg)
    return path


def test_node_runs_solo_checkpoint(tmp_path):
    ckpt = make_checkpoint(tmp_path / "solo.pth")
    proc = NodeProcess(["-r", f"__ns:={NS}", "-r", f"image:={TOPIC}", "-p", "model.family:=solo",
                        "-p", f"model.weights:={ckpt}", "-p", "score_threshold:=0.0", "-p", "top_k:=5"],
                       tmp_path / "node.log")  # fmt: skip
    probe = None
    try:
        assert proc.wait_log("active:", timeout=90), f"node did not become active:\n{proc.log()}"
        probe = Probe(f"{NS}/instaseg_node", TOPIC)
        assert probe.wait_connected(), "probe and node did not discover each other"
        header = probe.next_header()
        img = random_image(np.random.default_rng(0), 60, 80)
        probe.publish(conv.numpy_to_image(img, "bgr8", header))
        out = probe.result_for(header, timeout=60)
        assert out is not None, f"no output for the frame:\n{proc.log()[-2000:]}"
        dets, mask = out["detections"][0], conv.image_to_numpy(out["instance_mask"][0])
        assert dets.header == header and out["instance_mask"][0].header == header
        assert mask.shape == (60, 80) and len(dets.detections) >= 1
        assert {int(d.id) for d in dets.detections} == set(np.unique(mask).tolist()) - {0}
    finally:
        if probe is not None:
            probe.close()
        assert proc.stop() == 0, proc.log()[-3000:]
