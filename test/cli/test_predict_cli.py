"""``instaseg predict`` end to end: YOLACT checkpoint and a second family -> COCO JSON + overlays."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from instaseg_ros.cli import main
from instaseg_ros.core.masks import decode_rle
from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = YolactConfig(backbone="resnet18", num_classes=2, class_names=["cat", "dog"], input_size=64)
    model = YolactSE(cfg)
    with torch.no_grad():  # make "dog" win everywhere so that there are detections
        b = model.prediction_layers[0].conf_layer.bias.view(cfg.num_anchors, 3)
        b[:, 0] = -4.0
        b[:, 2] = 4.0
    p = tmp_path_factory.mktemp("w") / "tiny.pth"
    save_checkpoint(p, model, cfg)
    return p


def _images(folder: Path) -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    sizes = [(48, 100), (90, 70)]
    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return sizes


def test_predict_yolact_folder(tmp_path, ckpt, capsys):
    sizes = _images(tmp_path / "imgs")
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            str(tmp_path / "imgs"),
            "--model",
            "yolact",
            "--weights",
            str(ckpt),
            "--score-threshold",
            "0.2",
            "--top-k",
            "3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    index = json.loads((out / "images.json").read_text())
    assert [c["name"] for c in index["categories"]] == ["cat", "dog"]
    assert [(im["height"], im["width"]) for im in index["images"]] == sizes
    per_image = {im["id"]: [r for r in results if r["image_id"] == im["id"]] for im in index["images"]}
    assert all(len(v) == 3 for v in per_image.values())
    for im in index["images"]:
        for r in per_image[im["id"]]:
            assert r["category_id"] == 2 and r["score"] > 0.2
            m = decode_rle(r["segmentation"])
            assert m.shape == (im["height"], im["width"])
            x, y, w, h = r["bbox"]
            assert 0 <= x and 0 <= y and x + w <= im["width"] + 1e-3 and y + h <= im["height"] + 1e-3
        ov = cv2.imread(str(out / "overlays" / Path(im["file_name"]).with_suffix(".png").name))
        assert ov.shape[:2] == (im["height"], im["width"])
    assert "3 instances" in capsys.readouterr().out


@pytest.mark.slow
def test_predict_other_family(tmp_path):
    cfg = ROOT / "config" / "models" / "yolo_fcn_tiny_random.yaml"
    assert cfg.is_file(), "the yolo_fcn tiny config is part of the repository"
    _images(tmp_path / "imgs")
    rc = main(
        [
            "predict",
            str(tmp_path / "imgs" / "img0.png"),
            "--model",
            "yolo_fcn",
            "--config",
            str(cfg),
            "--score-threshold",
            "0.0",
            "--out",
            str(tmp_path / "out"),
            "--no-overlay",
        ]
    )
    assert rc == 0
    assert isinstance(json.loads((tmp_path / "out" / "results.json").read_text()), list)
    assert not any((tmp_path / "out" / "overlays").iterdir())


def test_predict_errors(tmp_path, ckpt, capsys):
    assert (
        main(["predict", str(tmp_path / "missing.png"), "--weights", str(ckpt), "--out", str(tmp_path)]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_text("garbage")
    assert main(["predict", str(bad), "--weights", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read image" in capsys.readouterr().err
    _images(tmp_path / "imgs")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "imgs"),
                "--weights",
                str(ckpt),
                "--classes",
                "zebra",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "zebra" in capsys.readouterr().err
