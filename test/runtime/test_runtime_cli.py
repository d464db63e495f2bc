"""``instaseg export`` / ``instaseg benchmark`` and the benchmark harness, on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from instaseg_ros.cli import main
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.evaluation.benchmark import (
    build_maskrcnn_peer,
    format_table,
    run_model_backends,
    sample_images,
    throughput_summary,
    time_maskrcnn,
)
from instaseg_ros.models import build_segmenter
from instaseg_ros.runtime import create_backend
from instaseg_ros.runtime.onnx_export import read_metadata
from instaseg_ros.runtime.tensorrt import tensorrt_problems

ROOT = Path(__file__).resolve().parents[2]
YOLO_TINY = str(ROOT / "config" / "models" / "yolo_fcn_tiny_random.yaml")


@pytest.fixture()
def yolact_yaml(tmp_path) -> Path:
    p = tmp_path / "yolact_tiny.yaml"
    p.write_text(yaml.safe_dump({"backbone": "resnet18", "num_classes": 5, "input_size": 96}))
    return p


def test_export_onnx_yolact_validates_against_pytorch(yolact_yaml, tmp_path, capsys):
    out = tmp_path / "y.onnx"
    rc = main(
        ["export", "--model", "yolact", "--config", str(yolact_yaml), "--format", "onnx", "--out", str(out),
         "--opset", "17", "--num-images", "2", "--score-threshold", "0.25"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.is_file() and read_metadata(out)["dynamic_batch"] == "0"
    assert "largest |exported - pytorch| per raw output" in text and "conf" in text
    assert "validation: PASS" in text


def test_export_onnx_yolo_fcn_dynamic_batch_writes_both_networks(tmp_path, capsys):
    out = tmp_path / "yf.onnx"
    rc = main(
        ["export", "--model", "yolo_fcn", "--config", YOLO_TINY, "--out", str(out), "--dynamic-batch",
         "--num-images", "2"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (tmp_path / "yf.mask_head.onnx").is_file() and read_metadata(out)["dynamic_batch"] == "1"
    assert "validation: PASS" in text


def test_export_errors_are_specific(yolact_yaml, tmp_path, capsys):
    base = ["export", "--model", "yolact", "--config", str(yolact_yaml), "--out", str(tmp_path / "x.onnx")]
    assert main([*base, "--opset", "13"]) == 2
    assert "--opset must be >= 17" in capsys.readouterr().err
    assert main(["export", "--model", "nosuch", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model family 'nosuch'" in capsys.readouterr().err


@pytest.mark.skipif(not tensorrt_problems(), reason="TensorRT and CUDA are available here")
def test_export_tensorrt_without_tensorrt_says_what_is_missing(yolact_yaml, tmp_path, capsys):
    rc = main(["export", "--model", "yolact", "--config", str(yolact_yaml), "--format", "tensorrt",
               "--out", str(tmp_path / "y.engine")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--format tensorrt cannot run here" in err
    assert tensorrt_problems()[0] in err
    assert not (tmp_path / "y.onnx").exists()


def test_sample_images_synthetic_and_from_files(tmp_path):
    imgs = sample_images(None, 2, (96, 64))
    assert len(imgs) == 2 and imgs[0].shape == (64, 96, 3)
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), imgs[0])
    assert sample_images([tmp_path], 5)[0].shape == (64, 96, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sample_images([tmp_path / "missing"], 1)


def test_harness_times_every_stage_on_each_backend(tmp_path):
    torch.manual_seed(0)
    seg = build_segmenter("yolo_fcn", config=YOLO_TINY)
    images = sample_images(None, 2, (128, 96))
    factories = {
        "torch": lambda: create_backend("torch", seg),
        "onnxruntime": lambda: create_backend("onnxruntime", seg, threads=1, cache_dir=tmp_path),
        "tensorrt": lambda: create_backend("tensorrt", seg, cache_dir=tmp_path),
    }
    params = InferenceParams(score_threshold=0.33, top_k=5)
    rows, skipped = run_model_backends(
        seg, "yolo_fcn_160", factories, images, [1, 2], 0, 2, params, lambda s: None
    )
    available = 3 - len(skipped)
    assert len(rows) == 2 * available and {r.backend for r in rows} >= {"torch", "onnxruntime"}
    if tensorrt_problems():
        assert "tensorrt" in skipped and "cannot run here" in skipped["tensorrt"]
    for r in rows:
        assert r.runs == 2 and r.e2e.median_ms > 0 and r.net.median_ms > 0 and r.pre.median_ms > 0
        assert r.e2e.median_ms >= r.net.median_ms and r.e2e.p95_ms >= r.e2e.median_ms
        assert r.detections_per_image > 0  # the FCN mask head ran and was counted as network time
        assert r.images_per_s == pytest.approx(r.batch / (r.e2e.median_ms / 1e3))
    summary = throughput_summary(rows)
    assert {s["backend"] for s in summary} == {r.backend for r in rows}
    for s in summary:
        best = max((r for r in rows if r.backend == s["backend"]), key=lambda r: r.images_per_s)
        assert s["best_batch"] == best.batch
    table = format_table(rows)
    assert "pre ms med/p95" in table and "onnxruntime" in table and len(table.splitlines()) == 2 + len(rows)


@pytest.mark.slow
def test_maskrcnn_peer_stages(tmp_path):
    peer = build_maskrcnn_peer(0.05, 10, min_size=96, max_size=128)
    images = [generate_scene(0, SynthConfig(width=128, height=96)).image]
    row = time_maskrcnn(peer, images, 1, 0, 1)
    assert row.model == "maskrcnn_resnet50_fpn" and row.info["weights"] is None
    assert row.info["min_size"] == 96 and row.info["detections_per_img"] == 10
    assert 0 <= row.detections_per_image <= 10 and row.net.median_ms > 0


def test_benchmark_cli_writes_json_and_table(yolact_yaml, tmp_path, capsys):
    out = tmp_path / "res" / "bench.json"
    rc = main(
        ["benchmark", "--model", f"yolact={yolact_yaml}", "--backends", "torch,onnxruntime,tensorrt:fp16",
         "--batches", "1", "--warmup", "0", "--runs", "2", "--num-images", "2", "--size", "96x64",
         "--threads", "1", "--no-peer", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    data = json.loads(out.read_text())
    assert set(data) == {"machine", "settings", "rows", "summary", "skipped"}
    assert data["machine"]["nproc"] >= 1 and data["machine"]["date_utc"].endswith("Z")
    assert (
        data["settings"]["threads"] == 1 and data["settings"]["warmup"] == 0 and data["settings"]["runs"] == 2
    )
    assert {r["backend"] for r in data["rows"]} >= {"torch", "onnxruntime"}
    for r in data["rows"]:
        assert {"median_ms", "p95_ms"} <= set(r["e2e"]) and r["model"] == "yolact_resnet18_96"
    # every backend entry loads the same weights through load_model: the same detections
    dets = {r["backend"]: r["detections_per_image"] for r in data["rows"]}
    assert dets["onnxruntime"] == dets["torch"]
    md = out.with_suffix(".md").read_text()
    assert "e2e ms med/p95" in md and "img/s @1" in md
    assert main(["benchmark", "--backends", "openvino", "--out", str(out)]) == 2
    assert "unknown backend 'openvino'" in capsys.readouterr().err
    from instaseg_ros.models.loading import ModelLoadError, load_model

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError) as direct:
        load_model("yolact", str(empty))
    assert main(["benchmark", "--weights", str(empty), "--no-peer", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"instaseg benchmark: model yolact: {direct.value}"


def test_runners_are_timed_round_robin():
    """Run k of every runner before run k+1 of any: load drift hits all backends alike."""
    from instaseg_ros.evaluation.benchmark import Runner, Sample, time_interleaved

    calls = []

    class Recorder(Runner):
        def __init__(self, name: str, ms: float) -> None:
            self.model, self.backend, self.ms = "m", name, ms

        def __call__(self, imgs):
            calls.append((self.backend, len(imgs)))
            return Sample(0.001, self.ms / 1e3, 0.001, self.ms / 1e3 + 0.002, 1.0)

    images = sample_images(None, 2, (64, 48))
    rows = time_interleaved([Recorder("a", 10.0), Recorder("b", 30.0)], images, 2, warmup=1, runs=3)
    assert calls == [("a", 2), ("b", 2)] * 4
    assert [r.backend for r in rows] == ["a", "b"] and all(r.runs == 3 for r in rows)
    assert rows[0].net.median_ms == pytest.approx(10.0) and rows[1].e2e.median_ms == pytest.approx(32.0)
    assert rows[1].images_per_s == pytest.approx(2 / 0.032)
