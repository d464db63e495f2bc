"""instaseg_node with model.family solo or maskrcnn: load a checkpoint, answer a frame over DDS."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import NodeProcess, Probe, ensure_ros_env, random_image  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()


def solo_checkpoint(path):
    from instaseg_ros.models.solo import SoloConfig, SoloV2, save_checkpoint

    cfg = SoloConfig(backbone="resnet18", input_size=64, fpn_channels=32, head_channels=32, head_convs=1,
                     mask_channels=16, mask_mid_channels=16, num_grids=[8, 6, 4, 3, 2],
                     pre_nms_threshold=0.0)  # fmt: skip
    save_checkpoint(path, SoloV2(cfg), cfg)


def maskrcnn_checkpoint(path):
    from instaseg_ros.models.maskrcnn import MaskRcnnConfig, build_model, save_checkpoint

    cfg = MaskRcnnConfig(backbone="resnet18", min_size=64, max_size=96, rpn_pre_nms_top_n_test=100,
                         rpn_post_nms_top_n_test=30)  # fmt: skip
    save_checkpoint(path, build_model(cfg), cfg)


# family -> (checkpoint writer, namespace, input topic, score threshold that yields detections when untrained)
CASES = {
    "solo": (solo_checkpoint, "/t10solo", "/cam10s/image_raw", "0.0"),
    "maskrcnn": (maskrcnn_checkpoint, "/t10mr", "/cam10m/image_raw", "0.05"),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_node_runs_family_checkpoint(tmp_path, family):
    import torch

    write, ns, topic, score = CASES[family]
    torch.manual_seed(0)
    ckpt = tmp_path / f"{family}.pth"
    write(ckpt)
    proc = NodeProcess(["-r", f"__ns:={ns}", "-r", f"image:={topic}", "-p", f"model.family:={family}",
                        "-p", f"model.weights:={ckpt}", "-p", f"score_threshold:={score}", "-p", "top_k:=5"],
                       tmp_path / "node.log")  # fmt: skip
    probe = None
    try:
        assert proc.wait_log("active:", timeout=90), f"node did not become active:\n{proc.log()}"
        probe = Probe(f"{ns}/instaseg_node", topic)
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
