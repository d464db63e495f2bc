"""YOLACT-SE training end to end on generated data: loss falls, checkpoints reload exactly,
resume, fine-tuning with another class count, broken COCO files, config errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from instaseg_ros.training.config import ConfigError, OptimConfig, config_from_dict, load_config
from instaseg_ros.training.tasks.yolact import YolactTask, load_pretrained
from instaseg_ros.training.trainer import Trainer, lr_factor

NO_AUG = {"hflip": 0.0, "photometric": 0.0, "blur": 0.0, "noise": 0.0, "jpeg": 0.0, "scale_crop": 0.0}


def tiny_config(out: Path, iters: int = 20, **over) -> dict:
    cfg = {
        "task": "yolact",
        "seed": 0,
        "out_dir": str(out),
        "model": {"backbone": "resnet18_slim", "input_size": 64, "fpn_channels": 16, "num_prototypes": 4,
                  "attention_reduction": 4},
        "data": {
            "train": {"kind": "synthetic", "num_images": 4, "seed": 3, "width": 96, "height": 72},
            "val": {"kind": "synthetic", "num_images": 2, "seed": 4, "width": 96, "height": 72},
            "augment": dict(NO_AUG),
            "batch_size": 4,
        },
        "loss": {"contextual": {"weight": 0.1, "dim": 4, "max_pixels": 64}},
        "optim": {"lr": 0.004, "max_iters": iters, "warmup_iters": 2},
        "train": {"val_interval": 0, "log_interval": 1, "checkpoint_interval": 5, "num_threads": 1,
                  "save_fp16": False},
    }
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def _csv_losses(path: Path) -> list[float]:
    import csv

    with open(path) as f:
        return [float(r["loss_total"]) for r in csv.DictReader(f)]


def test_tiny_yolact_trains_and_checkpoint_reloads_identically(tmp_path):
    from instaseg_ros.models.registry import build_segmenter

    cfg = config_from_dict(tiny_config(tmp_path / "run", iters=24))
    task = YolactTask(cfg)
    assert task.model_cfg.embedding_dim == 4 and task.model_cfg.num_classes == 5
    result = Trainer(cfg, task, cfg.out_dir, progress=False).run()
    assert result.iterations == 24
    losses = _csv_losses(tmp_path / "run" / "metrics.csv")
    assert len(losses) == 24 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4])
    for name in ("best.pth", "final.pth", "last_state.pth", "loss_curve.png", "report.json", "report.md",
                 "config.yaml", "val.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    assert list((tmp_path / "run" / "tb").iterdir())
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    names = {"person", "chair", "couch", "dining table", "toilet"}
    assert set(report["validation"]["segm"]["per_class"]) == names
    # the inference checkpoint drops the training-only heads and reloads to identical outputs
    seg = build_segmenter("yolact", weights=str(tmp_path / "run" / "final.pth"))
    assert seg.cfg.embedding_dim == 0 and not seg.cfg.semantic_head
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = task.segmenter.forward_raw(x)  # the trained module through the same inference path
    raw = seg.forward_raw(x)
    for k in ("loc", "conf", "mask", "proto"):
        assert torch.equal(raw[k], ref[k]), k


def test_resume_continues_from_the_saved_iteration(tmp_path):
    out = tmp_path / "run"
    cfg = config_from_dict(tiny_config(out, iters=5))
    Trainer(cfg, YolactTask(cfg), out, progress=False).run()
    state = torch.load(out / "last_state.pth", weights_only=True)
    assert state["iteration"] == 5
    cfg2 = config_from_dict(tiny_config(out, iters=8))
    res = Trainer(cfg2, YolactTask(cfg2), out, resume=out / "last_state.pth", progress=False).run()
    assert res.iterations == 8
    assert _csv_losses(out / "metrics.csv") and len(_csv_losses(out / "metrics.csv")) == 8
    assert [h["iteration"] for h in res.history] == [5, 8]
    with pytest.raises(ValueError, match="not a training state"):
        torch.save({"foo": 1}, tmp_path / "bad.pth")
        Trainer(cfg2, YolactTask(cfg2), tmp_path / "o2", resume=tmp_path / "bad.pth", progress=False).run()


def test_finetune_from_checkpoint_with_other_class_count(tmp_path):
    from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

    torch.manual_seed(1)
    src_cfg = YolactConfig(backbone="resnet18_slim", num_classes=3, input_size=64, fpn_channels=16,
                           num_prototypes=4, attention_reduction=4)
    src = YolactSE(src_cfg)
    save_checkpoint(tmp_path / "three.pth", src, src_cfg)
    d = tiny_config(tmp_path / "ft", iters=2, init={"weights": str(tmp_path / "three.pth")})
    d["model"] = {}  # the architecture comes from the checkpoint
    cfg = config_from_dict(d)
    task = YolactTask(cfg)
    assert task.model_cfg.num_classes == 5 and task.model_cfg.fpn_channels == 16
    rep = task.init_report
    assert sorted(rep["reinitialised"]) == [
        "prediction_layers.0.conf_layer.bias", "prediction_layers.0.conf_layer.weight",
        "semantic_seg_conv.bias", "semantic_seg_conv.weight",
    ]
    own = task.module.state_dict()
    ref = src.state_dict()
    assert torch.equal(own["backbone.layers.2.0.conv1.weight"], ref["backbone.layers.2.0.conv1.weight"])
    assert torch.equal(own["proto_net.0.weight"], ref["proto_net.0.weight"])
    assert own["prediction_layers.0.conf_layer.weight"].shape[0] == 3 * 6
    assert rep["missing"] == [k for k in own if k.startswith("embedding_head.")]
    Trainer(cfg, task, tmp_path / "ft", progress=False).run()
    # "never" refuses the mismatch, naming the layer
    cfg_never = config_from_dict(tiny_config(tmp_path / "n", init={"weights": str(tmp_path / "three.pth"),
                                                                    "reinit_heads": "never"}))
    with pytest.raises(ValueError, match="conf_layer"):
        YolactTask(cfg_never)


def test_finetune_from_official_layout_state_dict(tmp_path):
    """A bare state dict in the official key layout (80 COCO classes), as the authors publish."""
    from instaseg_ros.models.yolact import YolactConfig, YolactSE

    torch.manual_seed(2)
    off = YolactSE(YolactConfig(backbone="resnet18", num_classes=80, input_size=64, fpn_channels=32,
                                num_prototypes=8, attention=False))
    sd = {k: v for k, v in off.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "yolact_tiny_54_800000.pth")
    d = tiny_config(tmp_path / "o", iters=1, init={"weights": str(tmp_path / "yolact_tiny_54_800000.pth")})
    d["model"] = {"input_size": 64, "attention": True}
    cfg = config_from_dict(d)
    task = YolactTask(cfg)
    assert task.model_cfg.backbone == "resnet18" and task.model_cfg.fpn_channels == 32
    assert "prediction_layers.0.conf_layer.weight" in task.init_report["reinitialised"]
    assert any(k.startswith("backbone.attention.") for k in task.init_report["missing"])
    assert torch.equal(task.module.state_dict()["fpn.lat_layers.0.weight"], sd["fpn.lat_layers.0.weight"])


def test_load_pretrained_always_reinitialises_heads():
    from instaseg_ros.models.yolact import YolactConfig, YolactSE

    cfg = YolactConfig(backbone="resnet18_slim", num_classes=2, input_size=64, fpn_channels=16,
                       num_prototypes=4)
    a, b = YolactSE(cfg), YolactSE(cfg)
    rep = load_pretrained(b, a.state_dict(), "always")
    assert "prediction_layers.0.conf_layer.weight" in rep["reinitialised"]
    assert not torch.equal(b.state_dict()["prediction_layers.0.conf_layer.weight"],
                           a.state_dict()["prediction_layers.0.conf_layer.weight"])
    assert torch.equal(b.state_dict()["fpn.lat_layers.0.weight"], a.state_dict()["fpn.lat_layers.0.weight"])


def _broken_coco(root: Path) -> Path:
    from instaseg_ros.data.synthetic import SynthConfig, generate_scene, write_coco

    scenes = [generate_scene((5, i), SynthConfig(width=96, height=72, min_objects=2)) for i in range(6)]
    ann = write_coco(root, scenes)
    data = json.loads(ann.read_text())
    (root / data["images"][1]["file_name"]).unlink()  # missing image file
    a0 = next(a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"])
    # a degenerate polygon (two points)
    data["annotations"].append({**a0, "id": 9001, "segmentation": [[1.0, 1.0, 2.0, 2.0]]})
    data["annotations"].append({**a0, "id": 9002, "category_id": 77})  # unknown category
    ann.write_text(json.dumps(data))
    return ann


def test_broken_coco_file_trains_on_good_entries_with_report(tmp_path):
    ann = _broken_coco(tmp_path / "coco")
    spec = {"kind": "coco", "annotations": str(ann)}
    cfg = config_from_dict(tiny_config(tmp_path / "run", iters=3, data={"train": spec, "val": spec}))
    res = Trainer(cfg, YolactTask(cfg), cfg.out_dir, progress=False).run()
    assert res.iterations == 3
    probs = json.loads((tmp_path / "run" / "data_report.json").read_text())
    kinds = probs["train"]["counts"]
    assert set(kinds) >= {"missing_image", "unknown_category"}, kinds
    assert any("polygon" in k for k in kinds), kinds
    assert probs["train"]["kept_images"] == 5
    assert "Dataset problems" in (tmp_path / "run" / "report.md").read_text()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["validation"]["num_images"] == 5


def test_cli_train_and_config_errors(tmp_path):
    import yaml

    from instaseg_ros.cli import main

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "cli", iters=50)))
    assert main(["train", "--config", str(path), "--max-iters", "2", "--out", str(tmp_path / "o"),
                 "--no-progress", "--device", "cpu"]) == 0
    state = torch.load(tmp_path / "o" / "last_state.pth", weights_only=True)
    assert state["iteration"] == 2 and state["config"]["optim"]["max_iters"] == 2
    bad = tiny_config(tmp_path / "x")
    bad["optim"]["learning_rate"] = 0.1
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"tiny.yaml: optim: unknown keys \['learning_rate'\]"):
        load_config(path)
    assert main(["train", "--config", str(path)]) == 2
    with pytest.raises(ConfigError, match="data.train"):
        config_from_dict({"data": {"train": {"kind": "coco"}}})
    with pytest.raises(ConfigError, match="task: must be one of"):
        config_from_dict({"task": "detr", "data": {"train": {"kind": "synthetic"}}})
    with pytest.raises(ConfigError, match="loss: unknown keys"):
        YolactTask(config_from_dict(tiny_config(tmp_path / "y", loss={"mask_alpha": 1.0})))


def test_lr_schedule_warmup_cosine_and_step():
    cos = OptimConfig(lr=1.0, warmup_iters=10, warmup_factor=0.1, schedule="cosine", max_iters=100,
                      min_lr_factor=0.0)
    assert lr_factor(0, cos) == pytest.approx(0.1)
    assert lr_factor(5, cos) == pytest.approx((0.1 + 0.9 * 0.5) * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert lr_factor(50, cos) == pytest.approx(0.5)
    assert lr_factor(100, cos) == pytest.approx(0.0, abs=1e-12)
    step = OptimConfig(lr=1.0, warmup_iters=0, schedule="step", steps=[10, 20], gamma=0.1, max_iters=30)
    assert [lr_factor(i, step) for i in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_training_images_are_normalised_like_inference(tmp_path):
    """collate() uses the segmenter's own preprocess: the tensors equal inference tensors."""
    cfg = config_from_dict(tiny_config(tmp_path / "n"))
    task = YolactTask(cfg)
    ds = task.train_dataset()
    img, tgt = ds[0]
    assert img.shape == (64, 64, 3)
    batch = task.collate([(img, tgt)])
    x, _ = task.segmenter.preprocess([img])
    assert torch.equal(batch["images"], x)
    t = batch["targets"][0]
    assert t["boxes"].min() >= 0 and t["boxes"].max() <= 1 and len(t["boxes"]) == len(t["labels"])
    # boxes are the masks' extents, relative to the 64 x 64 network input
    m = t["masks"][0].numpy().astype(bool)
    ys, xs = np.nonzero(m)
    assert t["boxes"][0].tolist() == pytest.approx([xs.min() / 64, ys.min() / 64, (xs.max() + 1) / 64,
                                                    (ys.max() + 1) / 64])
