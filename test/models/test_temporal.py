"""Temporal reuse (YolactEdge partial feature transform): warping, key/non-key passes, the policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.data.synthetic import SynthConfig, generate_sequence
from instaseg_ros.models.fuse import inference_copy
from instaseg_ros.models.loading import load_model
from instaseg_ros.models.yolact import YolactConfig, YolactSE
from instaseg_ros.models.yolact.temporal import (
    FeatFlowNet,
    FlowNetConfig,
    KeyframePolicy,
    KeyframePolicyConfig,
    build_temporal,
    key_pass,
    load_flow_net,
    partial_pass,
    save_flow_net,
    transformed_levels,
    warp_features,
    warp_prototypes,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "yolact_se_r18_indoor.pth"
FLOWNET = ROOT / "models" / "flownet_yolact_se_r18_indoor.pth"
OUTPUTS = ("loc", "conf", "mask", "proto")


@pytest.fixture(scope="module")
def frames():
    return generate_sequence(7, 30, SynthConfig(width=320, height=240))[10:18]  # 30 fps-like motion


@pytest.fixture(scope="module")
def shipped():
    return load_model("yolact", str(SHIPPED))


# ------------------------------------------------------------------------------ warping
def test_zero_flow_returns_key_features_exactly():
    torch.manual_seed(0)
    for shape in [(1, 64, 16, 16), (2, 7, 5, 9), (1, 3, 1, 1)]:
        feat = torch.randn(shape) * 100
        flow = torch.zeros(shape[0], 2, *shape[2:])
        assert torch.equal(warp_features(feat, flow), feat)
    cl = torch.randn(1, 32, 8, 8).contiguous(memory_format=torch.channels_last)  # inference layout
    assert torch.equal(warp_features(cl, torch.zeros(1, 2, 8, 8)), cl)


def test_integer_flow_shifts_and_clamps_at_the_border():
    feat = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 0] = 1.0  # sample one pixel to the right
    out = warp_features(feat, flow)
    assert torch.equal(out[..., :-1], feat[..., 1:])
    assert torch.equal(out[..., -1], feat[..., -1])  # clamped
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 1] = -0.5  # half a pixel up: the mean of the two rows
    out = warp_features(feat, flow)
    assert torch.allclose(out[:, :, 1:], 0.5 * (feat[:, :, 1:] + feat[:, :, :-1]))


def test_prototype_warp_upsamples_and_rescales_the_flow():
    torch.manual_seed(2)
    proto = torch.rand(1, 32, 32, 8)
    assert torch.equal(warp_prototypes(proto, torch.zeros(1, 2, 8, 8)), proto)
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 0.25  # a quarter P4 pixel = one prototype pixel (4x finer) to the right
    out = warp_prototypes(proto, flow)
    assert out.shape == proto.shape
    assert torch.allclose(out[:, :, :-1], proto[:, :, 1:], atol=1e-6)


def test_warp_rejects_mismatched_flow():
    with pytest.raises(ValueError, match="does not match"):
        warp_features(torch.zeros(1, 4, 8, 8), torch.zeros(1, 2, 4, 4))


# ------------------------------------------------------------------------ key / non-key passes
@pytest.mark.parametrize("backbone", ["resnet18_slim", "darknet53"])
def test_key_pass_and_resumed_backbone_equal_the_plain_forward(backbone):
    torch.manual_seed(1)
    cfg = YolactConfig(backbone=backbone, num_classes=3, input_size=96, fpn_channels=32, num_prototypes=8)
    net = inference_copy(YolactSE(cfg).eval())
    x = torch.randn(1, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = net(x)
        raw, state, _ = key_pass(net, x)
        feats, lateral = partial_pass(net, x)
        raw2, state2, _ = key_pass(net, x, feats)  # the adaptive path: C3 first, then the rest
    for k in OUTPUTS:
        assert torch.equal(raw[k], ref[k]), k
        assert torch.equal(raw2[k], ref[k]), k
    assert torch.equal(state.lateral, lateral)
    assert len(state.merged) == 2  # P4', P5'


def test_key_frame_is_bit_identical_to_the_plain_model(shipped, frames):
    tm = build_temporal(shipped, policy=KeyframePolicyConfig(keyframe_interval=3))
    n_key = 0
    for i, f in enumerate(frames):
        r = tm.segment_frame(f.image, stamp=i / 30)
        if not r.key:
            continue
        n_key += 1
        ref = shipped.segment([f.image])[0]
        assert len(ref) > 0
        for a in ("boxes", "scores", "class_ids", "masks"):
            assert np.array_equal(getattr(r.instances, a), getattr(ref, a)), a
    assert n_key == 3  # frames 0, 3, 6


def test_identity_flow_net_on_the_key_image_reproduces_the_key_outputs(shipped, frames):
    net = shipped._net
    fn = FeatFlowNet(FlowNetConfig(shipped.cfg.fpn_channels, 16, 16)).eval()  # identity init
    x, _ = shipped.preprocess([frames[0].image])
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref, key, _ = key_pass(net, x)
        _, lateral = partial_pass(net, x)
        flows = fn(lateral, key.lateral)
        assert all(torch.equal(f, torch.zeros_like(f)) for f, _, _ in flows)
        raw = net.heads(net.fpn.output_phase(transformed_levels(lateral, key, flows)))
    for k in OUTPUTS:
        assert torch.equal(raw[k], ref[k]), k


def test_nonkey_frames_use_the_flow_net_and_track_the_full_model(shipped, frames):
    tm = build_temporal(shipped, str(FLOWNET) if FLOWNET.exists() else None,
                        KeyframePolicyConfig(keyframe_interval=4))  # fmt: skip
    results = [tm.segment_frame(f.image, stamp=i / 30) for i, f in enumerate(frames)]
    assert [r.key for r in results] == [True, False, False, False, True, False, False, False]
    s = tm.stats.summary()
    assert s["key_ratio"] == pytest.approx(0.25) and s["nonkey_ms_median"] > 0
    for f, r in zip(frames, results):  # a non-key frame finds about the objects the full model finds
        ref = shipped.segment([f.image])[0]
        assert abs(len(r.instances) - len(ref)) <= max(1, len(ref) // 2)
        assert r.key or (np.isfinite(r.change) and np.isfinite(r.flow))


# ------------------------------------------------------------------------------ policy
def test_policy_interval_and_resets():
    pol = KeyframePolicy(KeyframePolicyConfig(keyframe_interval=3, max_time_gap=0.5))
    size = (480, 640)

    def step(stamp, sz=size):
        reason = pol.before(stamp, sz)
        pol.commit(reason is not None, stamp, sz)
        return reason

    assert step(0.0) == "first"
    assert [step(t) for t in (0.1, 0.2, 0.3, 0.4, 0.5)] == [None, None, "interval", None, None]
    assert step(0.45) == "time_jump_back"  # backwards stamp: a key frame, then the interval restarts
    assert step(0.5) is None
    assert step(0.55, (240, 320)) == "size_change"
    assert step(0.6, (240, 320)) is None
    assert step(2.0, (240, 320)) == "time_gap"
    assert step(2.05, (240, 320)) is None
    pol.reset()
    assert step(2.1, (240, 320)) == "reset"
    assert step(2.15, (240, 320)) is None
    every = KeyframePolicy(KeyframePolicyConfig(keyframe_interval=1))
    for i in range(4):
        r = every.before(i * 0.03, size)
        every.commit(r is not None, i * 0.03, size)
        assert r is not None


def test_adaptive_policy_thresholds():
    cfg = KeyframePolicyConfig(mode="adaptive", max_interval=4, change_threshold=0.2, flow_threshold=5.0)
    pol = KeyframePolicy(cfg)
    assert pol.before(0.0, (10, 10)) == "first"
    pol.commit(True, 0.0, (10, 10))
    assert pol.before(0.03, (10, 10)) is None
    assert pol.check_change(0.1) is None and pol.check_change(0.5) == "scene_change"
    assert pol.check_change(float("nan")) == "scene_change"
    assert pol.check_flow(1.0) is None and pol.check_flow(9.0) == "large_flow"
    for t in (0.03, 0.06, 0.09):
        pol.commit(False, t, (10, 10))
    assert pol.before(0.12, (10, 10)) == "interval"  # max_interval
    assert KeyframePolicy(KeyframePolicyConfig()).check_change(99.0) is None  # interval mode ignores it


def test_runner_resets_on_size_change_and_backwards_stamp(shipped, frames):
    tm = build_temporal(shipped, policy=KeyframePolicyConfig(keyframe_interval=10))
    img = frames[0].image
    assert tm.segment_frame(img, 1.0).reason == "first"
    assert not tm.segment_frame(frames[1].image, 1.03).key
    assert tm.segment_frame(img[:200, :300].copy(), 1.06).reason == "size_change"
    assert not tm.segment_frame(frames[2].image[:200, :300].copy(), 1.09).key
    assert tm.segment_frame(frames[3].image[:200, :300].copy(), 0.5).reason == "time_jump_back"
    tm.reset("reconfigure")
    assert tm.segment_frame(img, 0.53).reason == "reconfigure"
    assert tm.stats.reasons == {"first": 1, "size_change": 1, "time_jump_back": 1, "reconfigure": 1}


def test_policy_config_validation():
    with pytest.raises(ValueError, match="mode"):
        KeyframePolicyConfig(mode="sometimes")
    with pytest.raises(ValueError, match="keyframe_interval"):
        KeyframePolicyConfig(keyframe_interval=0)


# ------------------------------------------------------------------------------ checkpoints
def test_flow_net_checkpoint_round_trip_and_errors(tmp_path, shipped):
    torch.manual_seed(3)
    fn = FeatFlowNet(FlowNetConfig(64, 16, 16))
    for p in fn.parameters():
        p.data.normal_()
    path = tmp_path / "flow.pth"
    save_flow_net(path, fn, detector="x.pth")
    back, extra = load_flow_net(path)
    assert extra["detector"] == "x.pth"
    for k, v in fn.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    torch.save({"format": "something", "state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a flow-net checkpoint"):
        load_flow_net(tmp_path / "other.pth")
    with pytest.raises(ValueError, match="32-channel"):
        build_temporal(shipped, flow_config=FlowNetConfig(32, 16, 16))


@pytest.mark.skipif(not FLOWNET.exists(), reason="shipped flow net not present")
def test_shipped_flow_net_matches_the_shipped_model(shipped):
    fn, extra = load_flow_net(FLOWNET)
    assert fn.cfg.in_channels == shipped.cfg.fpn_channels
    assert "detector" in extra


def test_reuse_prototypes_skips_the_proto_net_on_nonkey_frames(shipped, frames):
    tm = build_temporal(shipped, policy=KeyframePolicyConfig(keyframe_interval=2), reuse_prototypes=True)
    calls = []
    hook = shipped._net.proto_net.register_forward_hook(lambda *a: calls.append(1))
    try:
        kinds = [tm.segment_frame(f.image, stamp=i / 30).key for i, f in enumerate(frames[:4])]
    finally:
        hook.remove()
    assert kinds == [True, False, True, False] and len(calls) == 2
    tm.configure(KeyframePolicyConfig(keyframe_interval=2), reuse_prototypes=False)
    assert tm.segment_frame(frames[0].image, stamp=1.0).reason == "reconfigure"


# ------------------------------------------------------------------------------ training task
def _flow_config(out: Path, **model: object) -> dict:
    return {
        "task": "flownet", "seed": 0, "out_dir": str(out),
        "model": {"detector": str(SHIPPED), "reduce_channels": 8, "encode_channels": 8,
                  "sequence_length": [6, 8], "max_gap": 3, "val_sequence_length": 4,
                  "val_keyframe_interval": 2, **model},
        "data": {"train": {"kind": "synthetic", "num_images": 8, "seed": 5, "width": 160, "height": 120},
                 "val": {"kind": "synthetic", "num_images": 1, "seed": 6, "width": 160, "height": 120},
                 "batch_size": 2},
        "optim": {"lr": 0.01, "warmup_iters": 0, "max_iters": 3},
        "train": {"val_interval": 3, "checkpoint_interval": 3, "num_threads": 1, "score_threshold": 0.05},
    }  # fmt: skip


def test_flownet_task_trains_and_writes_a_loadable_checkpoint(tmp_path):
    from instaseg_ros.training.config import config_from_dict
    from instaseg_ros.training.tasks import build_task
    from instaseg_ros.training.trainer import Trainer

    cfg = config_from_dict(_flow_config(tmp_path / "run"))
    task = build_task(cfg)
    assert not any(p.requires_grad for p in task.module.detector.parameters())
    before = {k: v.clone() for k, v in task.module.flow_net.state_dict().items()}
    det_before = {k: v.clone() for k, v in task.module.detector.state_dict().items()}
    Trainer(cfg, task, cfg.out_dir, progress=False).run()
    fn, extra = load_flow_net(tmp_path / "run" / "best.pth")
    assert fn.cfg == FlowNetConfig(64, 8, 8)
    assert extra["detector"]["file"] == SHIPPED.name and len(extra["detector"]["sha256"]) == 64
    assert any(not torch.equal(v, before[k]) for k, v in task.module.flow_net.state_dict().items())
    for k, v in task.module.detector.state_dict().items():  # frozen: BatchNorm statistics included
        assert torch.equal(v, det_before[k]), k
    assert "every_frame" in extra["training"]["metrics"]


def test_flownet_task_config_errors(tmp_path):
    from instaseg_ros.training.config import ConfigError, config_from_dict
    from instaseg_ros.training.tasks import build_task

    with pytest.raises(ConfigError, match="model: unknown keys"):
        build_task(config_from_dict(_flow_config(tmp_path, flow=1)))
    with pytest.raises(ConfigError, match="sequence_length"):
        build_task(config_from_dict(_flow_config(tmp_path, sequence_length=[5])))
    with pytest.raises(ConfigError, match="model.detector"):
        build_task(config_from_dict(_flow_config(tmp_path, detector=str(tmp_path / "none.pth"))))


# ------------------------------------------------------------------------------ ONNX
def test_key_and_nonkey_subgraphs_export_to_onnx_and_match_torch(tmp_path, shipped, frames):
    ort = pytest.importorskip("onnxruntime")
    from instaseg_ros.models.fuse import inference_copy
    from instaseg_ros.models.yolact.temporal import KeyState, export_temporal_onnx

    fn, _ = load_flow_net(FLOWNET) if FLOWNET.exists() else (FeatFlowNet(FlowNetConfig(64, 16, 16)), {})
    key_path, nonkey_path = export_temporal_onnx(shipped, fn, tmp_path)
    key_sess = ort.InferenceSession(str(key_path), providers=["CPUExecutionProvider"])
    nonkey_sess = ort.InferenceSession(str(nonkey_path), providers=["CPUExecutionProvider"])
    x0, _ = shipped.preprocess([frames[0].image])
    x1, _ = shipped.preprocess([frames[3].image])
    net = inference_copy(shipped.model, channels_last=False)
    with torch.inference_mode():
        ref_key, key, _ = key_pass(net, x0)
        _, lateral = partial_pass(net, x1)
        flows = fn(lateral, key.lateral)
        levels = transformed_levels(lateral, KeyState(key.merged, lateral), flows)
        ref_nonkey = net.heads(net.fpn.output_phase(levels))
    k = dict(zip([o.name for o in key_sess.get_outputs()], key_sess.run(None, {"input": x0.numpy()})))
    n = nonkey_sess.run(None, {"input": x1.numpy(), "key_p4": k["key_p4"], "key_p5": k["key_p5"],
                               "key_reduced": k["key_reduced"]})  # fmt: skip
    for i, name in enumerate(("loc", "conf", "mask", "proto")):
        for got, want in ((k[name], ref_key[name]), (n[i], ref_nonkey[name])):
            err = np.abs(got - want.numpy()).max() / (np.abs(want.numpy()).max() + 1e-6)
            assert err < 1e-4, (name, err)
