"""Temporal reuse on ONNX Runtime: the exported key / non-key graphs behind the same policy as PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.data.synthetic import SynthConfig, generate_sequence
from instaseg_ros.models.loading import load_model
from instaseg_ros.models.yolact.temporal import (
    FeatFlowNet,
    FlowNetConfig,
    KeyframePolicyConfig,
    TemporalYolact,
    load_flow_net,
)

pytest.importorskip("onnxruntime")
from instaseg_ros.models.yolact.temporal_onnx import OnnxTemporalYolact  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "yolact_se_r18_indoor.pth"
FLOWNET = ROOT / "models" / "flownet_yolact_se_r18_indoor.pth"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    seg = load_model("yolact", str(SHIPPED))
    c = seg.cfg.fpn_channels
    fn = load_flow_net(FLOWNET)[0] if FLOWNET.exists() else FeatFlowNet(FlowNetConfig(c, 16, 16))
    frames = [f.image for f in generate_sequence(7, 30, SynthConfig(width=320, height=240))[10:18]]
    return seg, fn, frames, tmp_path_factory.mktemp("temporal_onnx")


def test_onnx_runner_follows_the_torch_runner(setup):
    seg, fn, frames, d = setup
    policy = KeyframePolicyConfig(keyframe_interval=4)
    ref = TemporalYolact(seg, fn, policy)
    ort_run = OnnxTemporalYolact(seg, fn, d, policy, threads=1)
    assert all(p.is_file() for p in ort_run.paths)
    for i, img in enumerate(frames):
        a, b = ref.segment_frame(img, i / 30), ort_run.segment_frame(img, i / 30)
        assert a.key == b.key and a.reason == b.reason
        assert len(a.instances) == len(b.instances) > 0, i
        np.testing.assert_allclose(b.instances.boxes, a.instances.boxes, atol=0.05)
        np.testing.assert_allclose(b.instances.scores, a.instances.scores, atol=1e-3)
        if not a.key:  # the policy's signals come out of the non-key graph
            assert b.change == pytest.approx(a.change, rel=1e-3) and b.flow == pytest.approx(a.flow, abs=1e-3)
    assert ort_run.stats.key_frames == 2 and ort_run.stats.nonkey_frames == 6
    # a second runner reuses the graphs in the folder
    again = OnnxTemporalYolact(seg, fn, d, policy, threads=1)
    assert again.paths == ort_run.paths


def test_onnx_runner_adaptive_candidate_becomes_key_frame(setup):
    seg, fn, frames, d = setup
    policy = KeyframePolicyConfig(mode="adaptive", change_threshold=1e-3)  # every candidate is rejected
    tm = OnnxTemporalYolact(seg, fn, d, policy, threads=1)
    r = [tm.segment_frame(img, i / 30) for i, img in enumerate(frames[:3])]
    assert [x.reason for x in r] == ["first", "scene_change", "scene_change"]
    assert all(np.isfinite(x.change) for x in r[1:])
    plain = seg.segment([frames[2]])[0]  # the key frame's graph gives the plain model's detections
    np.testing.assert_allclose(r[2].instances.boxes, plain.boxes, atol=0.05)


def test_onnx_runner_refuses_prototype_reuse(setup):
    seg, fn, _, d = setup
    tm = OnnxTemporalYolact(seg, fn, d, threads=1)
    with pytest.raises(ValueError, match="reuse_prototypes"):
        tm.configure(KeyframePolicyConfig(), reuse_prototypes=True)
    raw = tm._raw({k: np.zeros(1, np.float32) for k in ("loc", "conf", "mask", "proto")})
    assert torch.equal(raw["priors"], seg.model.priors)


def test_restart_starts_a_new_stream_on_the_same_graphs(setup):
    seg, fn, frames, d = setup
    tm = OnnxTemporalYolact(seg, fn, d, KeyframePolicyConfig(keyframe_interval=3), threads=1)
    sessions = (tm.key_session, tm.nonkey_session)
    assert [tm.segment_frame(img, i / 30).key for i, img in enumerate(frames[:2])] == [True, False]
    tm.restart()
    assert tm.stats.key_frames == tm.stats.nonkey_frames == 0
    assert (tm.key_session, tm.nonkey_session) == sessions
    r = [tm.segment_frame(img, i / 30) for i, img in enumerate(frames[:4])]
    assert [x.reason for x in r] == ["first", "", "", "interval"]
