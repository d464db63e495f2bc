"""eval-bag with YOLACT temporal reuse: offline frames in bag order through TemporalYolact, key-frame
counts and per-kind latency in the summary, interval 1 identical to the plain evaluation, CLI flags
named like the node's temporal.* parameters, and the live node's parameters."""

from __future__ import annotations

import json

import pytest
import torch
from eval_helpers import TOPIC, make_bag, make_yolact_checkpoint

from instaseg_ros.cli import main
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.bag_eval import run_bag_eval
from instaseg_ros.evaluation.records import BagEvalConfig, EvalError, ModelSpec
from instaseg_ros.models.yolact.temporal import FeatFlowNet, FlowNetConfig, TemporalSettings, save_flow_net

PARAMS = InferenceParams(score_threshold=0.05, top_k=20)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A 9-frame camera-motion bag (3 sequences of 3 frames at 10 Hz), a random YOLACT-SE (FPN 64) and a
    flow net for it whose predictions are not the identity (non-key frames really differ)."""
    root = tmp_path_factory.mktemp("evaltemporal")
    bag, gt = make_bag(root / "data", num_frames=9, rate=10.0)
    ckpt = make_yolact_checkpoint(root / "yolact_r18.pth")
    torch.manual_seed(3)
    fn = FeatFlowNet(FlowNetConfig(64, 16, 16))
    with torch.no_grad():  # move away from the identity initialisation: a real (small) flow and scale
        for pred in (fn.pred4, fn.pred5):
            pred.flow.weight.normal_(0.0, 0.05)
            pred.scale.weight.normal_(0.0, 0.02)
    save_flow_net(root / "flownet.pth", fn)
    return {"root": root, "bag": bag, "gt": gt, "ckpt": ckpt, "flow": root / "flownet.pth"}


def _cfg(synth, temporal=None) -> BagEvalConfig:
    spec = ModelSpec("yolact", weights=str(synth["ckpt"]), device="cpu", params=PARAMS)
    bag, gt = str(synth["bag"]), str(synth["gt"])
    return BagEvalConfig(bag=bag, gt=gt, topic=TOPIC, model=spec, temporal=temporal)


def test_offline_interval_3_key_frames_and_latency_per_kind(synth):
    settings = TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), keyframe_interval=3)
    out = run_bag_eval(_cfg(synth, settings), progress=False)
    s = out.summary
    assert s["frames"]["processed"] == 9
    t = s["offline"]["temporal"]
    # 9 frames 0.1 s apart in one stream: key frames at 0, 3, 6 (the warm-up does not count)
    assert t["key_frame_indices"] == [0, 3, 6]
    assert (t["key_frames"], t["nonkey_frames"]) == (3, 6) and t["key_ratio"] == pytest.approx(1 / 3)
    assert t["key_reasons"] == {"first": 1, "interval": 2}
    assert 0 < t["key_ms_median"] <= t["key_ms_p95"] and 0 < t["nonkey_ms_median"] <= t["nonkey_ms_p95"]
    assert t["settings"]["keyframe_interval"] == 3 and t["settings"]["flow_weights"] == str(synth["flow"])
    assert t["runner"] == "TemporalYolact"
    assert json.dumps(s)

    plain = run_bag_eval(_cfg(synth), progress=False)
    assert "temporal" not in plain.summary["offline"]
    # key frames are the plain model's outputs exactly; non-key frames are warped ones, not the same
    by_image = {}
    for run, name in ((out.run, "temporal"), (plain.run, "plain")):
        for r in run.results:
            by_image.setdefault((name, r["image_id"]), []).append(r)
    ids = {r.index: r.image_id for r in out.run.frames}
    for k in (0, 3, 6):
        assert by_image.get(("temporal", ids[k])) == by_image.get(("plain", ids[k]))
    nonkey = (1, 2, 4, 5, 7, 8)
    assert any(by_image.get(("temporal", ids[k])) != by_image.get(("plain", ids[k])) for k in nonkey)


def test_offline_interval_1_is_identical_to_plain_eval(synth):
    settings = TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), keyframe_interval=1)
    tmp = run_bag_eval(_cfg(synth, settings), progress=False)
    plain = run_bag_eval(_cfg(synth), progress=False)
    assert tmp.summary["offline"]["temporal"]["key_frames"] == 9
    assert tmp.summary["offline"]["temporal"]["nonkey_frames"] == 0
    assert tmp.run.results == plain.run.results and tmp.run.results
    assert tmp.summary["accuracy"] == plain.summary["accuracy"]


def test_offline_time_jump_forces_key_frame(synth, tmp_path):
    """A bag whose frames are 0.6 s apart (> max_time_gap 0.5): every frame is a key frame."""
    bag, gt = make_bag(tmp_path / "slow", num_frames=4, rate=1 / 0.6)
    settings = TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), keyframe_interval=3)
    cfg = _cfg(synth, settings)
    cfg.bag, cfg.gt = str(bag), str(gt)
    t = run_bag_eval(cfg, progress=False).summary["offline"]["temporal"]
    assert t["key_frame_indices"] == [0, 1, 2, 3] and t["key_reasons"] == {"first": 1, "time_gap": 3}


def test_offline_onnxruntime_runs_the_key_and_nonkey_graphs(synth):
    """--backend onnxruntime: the exported graphs; key frames agree with plain ONNX Runtime eval."""
    pytest.importorskip("onnxruntime")
    settings = TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), keyframe_interval=3)
    cfg = _cfg(synth, settings)
    cfg.model.backend = "onnxruntime"
    out = run_bag_eval(cfg, progress=False)
    t = out.summary["offline"]["temporal"]
    assert t["key_frame_indices"] == [0, 3, 6] and out.summary["model"]["backend"] == "onnxruntime"
    assert t["runner"] == "OnnxTemporalYolact"  # also after the warm-up
    torch_run = run_bag_eval(_cfg(synth, settings), progress=False)
    for a, b in zip(sorted(out.run.results, key=lambda r: (r["image_id"], -r["score"])),
                    sorted(torch_run.run.results, key=lambda r: (r["image_id"], -r["score"]))):  # fmt: skip
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-3)
        assert a["bbox"] == pytest.approx(b["bbox"], abs=0.05)
    assert len(out.run.results) == len(torch_run.run.results)


def test_offline_bad_temporal_settings_are_eval_errors(synth, tmp_path):
    with pytest.raises(EvalError, match="flow-net checkpoint"):
        run_bag_eval(_cfg(synth, TemporalSettings(enabled=True, flow_weights=str(tmp_path / "no.pth"))),
                     progress=False)  # fmt: skip
    wrong = tmp_path / "fn256.pth"
    save_flow_net(wrong, FeatFlowNet(FlowNetConfig(256, 64, 64)))
    with pytest.raises(EvalError, match="256-channel"):
        run_bag_eval(_cfg(synth, TemporalSettings(enabled=True, flow_weights=str(wrong))), progress=False)
    with pytest.raises(ValueError, match="keyframe_interval"):
        TemporalSettings(enabled=True, keyframe_interval=0)


def test_cli_temporal_flags_named_like_node_parameters(synth, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval-bag", str(synth["bag"]), "--gt", str(synth["gt"]), "--topic", TOPIC, "--weights",
            str(synth["ckpt"]), "--device", "cpu", "--out", str(out), "--no-progress",
            "--temporal.flow_weights", str(synth["flow"]), "--temporal-keyframe-interval", "3"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "temporal reuse: 3 key / 6 non-key frames (key ratio 0.33)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["offline"]["temporal"]["key_frame_indices"] == [0, 3, 6]
    assert "temporal reuse: key / non-key frames" in (out / "summary.md").read_text()


NEEDS_YOLACT = "--temporal needs --model yolact on the torch or onnxruntime backend"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temporal", "--model", "oracle"], NEEDS_YOLACT),
        (["--temporal.keyframe_interval", "0"], "temporal reuse: keyframe_interval and max_interval must be"),
        (["--temporal", "--backend", "tensorrt"], NEEDS_YOLACT),
    ],
)
def test_cli_temporal_problems_are_one_line(synth, tmp_path, capsys, extra, message):
    args = ["eval-bag", str(synth["bag"]), "--gt", str(synth["gt"]), "--weights", str(synth["ckpt"]),
            "--out", str(tmp_path / "o"), "--no-progress", *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_live_node_gets_temporal_parameters(synth):
    from instaseg_ros.evaluation.live.process import node_arguments

    cfg = _cfg(synth, TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), policy="adaptive",
                                       max_interval=7))  # fmt: skip
    cfg.node_params = {"temporal.flow_threshold": 3.0}  # an explicit --node-param wins
    args = node_arguments(cfg, "/ns")
    given = dict(a.split(":=", 1) for a in args[1:] if ":=" in a and not a.startswith("__"))
    assert json.loads(given["temporal.enabled"]) is True
    assert json.loads(given["temporal.policy"]) == "adaptive"
    assert json.loads(given["temporal.max_interval"]) == 7
    assert json.loads(given["temporal.flow_threshold"]) == 3.0
    assert json.loads(given["temporal.flow_weights"]) == str(synth["flow"].resolve())
    assert "temporal.enabled" not in " ".join(node_arguments(_cfg(synth), "/ns"))


def test_settings_defaults_match_the_node_parameter_table():
    from instaseg_ros.ros.params import PARAMS as NODE_PARAMS

    node = {p.name[len("temporal."):]: p.default for p in NODE_PARAMS if p.name.startswith("temporal.")}
    from dataclasses import asdict

    assert asdict(TemporalSettings()) == node


@pytest.mark.ros
def test_live_eval_runs_the_node_with_temporal_reuse(synth):
    """The real node over DDS with temporal.* from the settings; its key / non-key counts come back."""
    from instaseg_ros.evaluation.live import large_image_profile

    cfg = _cfg(synth, TemporalSettings(enabled=True, flow_weights=str(synth["flow"]), keyframe_interval=3))
    cfg.mode, cfg.startup_timeout_s, cfg.dds_profile = "live", 120, large_image_profile()
    cfg.node_params = {"qos_reliability": "reliable"}
    s = run_bag_eval(cfg, progress=False).summary
    f, t = s["frames"], s["live"]["temporal"]
    assert f["sent"] == 9 and f["processed"] >= 3
    assert s["live"]["node_diagnostics"]["temporal_enabled"] == "True"
    assert t["source"] == "node diagnostics" and t["settings"]["keyframe_interval"] == 3
    assert t["key_frames"] + t["nonkey_frames"] == int(s["live"]["node_diagnostics"]["processed"])
    assert t["key_frames"] >= 1 and t["nonkey_frames"] >= 1 and 0 < t["key_ratio"] < 1
    assert t["key_ms_median"] > 0 and t["nonkey_ms_median"] > 0
