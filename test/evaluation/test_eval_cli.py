"""instaseg eval-bag, bag-extract and gt_tools on the command line: results, clear errors, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eval_helpers import TOPIC, make_bag

from instaseg_ros.cli import main
from instaseg_ros.evaluation import gt_tools


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcli")
    bag, gt = make_bag(root / "data")
    return {"root": root, "bag": bag, "gt": gt}


def _eval(synth, *extra: str, bag=None, gt=None, out="out") -> list[str]:
    return [
        "eval-bag",
        str(bag or synth["bag"]),
        "--gt",
        str(gt or synth["gt"]),
        "--topic",
        TOPIC,
        "--model",
        "oracle",
        "--weights",
        str(synth["gt"]),
        "--out",
        str(synth["root"] / out),
        "--no-progress",
        *extra,
    ]


def _mcap(bag_dir: Path) -> Path:
    return next(bag_dir.glob("*.mcap"))


def _copy_bag(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_eval_bag_cli_oracle_offline(synth, capsys):
    assert main(_eval(synth, "--output-bag", str(synth["root"] / "out" / "outputs"))) == 0
    out = capsys.readouterr().out
    assert "mask AP 100.0  box AP 100.0  on 6 frames" in out
    s = json.loads((synth["root"] / "out" / "metrics.json").read_text())
    assert s["accuracy"]["segm"]["AP"] == pytest.approx(1.0) and s["frames"]["processed"] == 6
    assert (synth["root"] / "out" / "report.html").stat().st_size > 10_000
    from instaseg_ros.data.bag_io import bag_topics

    topics = bag_topics(synth["root"] / "out" / "outputs")
    assert topics["/instaseg/detections"] == ("vision_msgs/msg/Detection2DArray", 6)
    assert topics["/instaseg/instance_mask"] == ("sensor_msgs/msg/Image", 6)
    assert topics[TOPIC] == ("sensor_msgs/msg/Image", 6)


def test_truncated_bag_exits_with_message_not_traceback(synth, tmp_path):
    bad = _copy_bag(synth["bag"], tmp_path / "truncated")
    f = _mcap(bad)
    f.write_bytes(f.read_bytes()[: f.stat().st_size * 6 // 10])
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from instaseg_ros.cli import main; sys.exit(main())",
            *_eval(synth, bag=bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "instaseg eval-bag: error:" in r.stderr and "truncated" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_corrupt_bag(synth, tmp_path, capsys):
    bad = _copy_bag(synth["bag"], tmp_path / "corrupt")
    f = _mcap(bad)
    data = bytearray(f.read_bytes())
    data[100:5000] = bytes(4900)
    f.write_bytes(bytes(data))
    assert main(_eval(synth, bag=bad)) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "corrupt" in err and str(bad) in err


def test_missing_topic(synth, capsys):
    args = _eval(synth)
    args[args.index("--topic") + 1] = "/camera/depth/image_raw"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "topic '/camera/depth/image_raw' is not in rosbag2" in err and TOPIC in err


def test_ground_truth_matching_no_frame(synth, tmp_path, capsys):
    gt = json.loads(synth["gt"].read_text())
    for im in gt["images"]:
        im["stamp_ns"] += 3_600_000_000_000  # one hour later: another recording
    p = tmp_path / "other_gt.json"
    p.write_text(json.dumps(gt))
    assert main(_eval(synth, gt=p)) == 2
    err = capsys.readouterr().err
    assert "matches no frame of the bag" in err and str(p) in err


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda g: g["images"][2].pop("stamp_ns"), "has no integer 'stamp_ns'"),
        (lambda g: g.pop("categories"), "missing COCO key 'categories'"),
        (lambda g: g["annotations"][0].update(image_id=999), "unknown image_id 999"),
    ],
)
def test_malformed_ground_truth(synth, tmp_path, capsys, mutate, message):
    gt = json.loads(synth["gt"].read_text())
    mutate(gt)
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(gt))
    assert main(_eval(synth, gt=p)) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--calib", "images"), "--calib (INT8 calibration) needs --backend onnxruntime or tensorrt"),
        (("--mode", "live", "--precision", "int8"), "live mode: the node runs precision fp32 or fp16"),
        (("--backend", "tensorflow"), "invalid choice: 'tensorflow'"),
    ],
)
def test_backend_and_precision_problems_are_one_line(synth, capsys, extra, message):
    try:
        code = main(_eval(synth, *extra))
    except SystemExit as e:  # argparse rejects an unknown choice itself
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_backend_and_precision_reach_the_loader(synth, capsys):
    """--backend/--precision go to load_model: its error for torch + int8 is the CLI's one line."""
    from instaseg_ros.models.loading import ModelLoadError, load_model

    with pytest.raises(ModelLoadError) as direct:
        load_model("oracle", str(synth["gt"]), backend="torch", precision="int8")
    assert main(_eval(synth, "--backend", "torch", "--precision", "int8")) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(f"error: {direct.value}") and "Traceback" not in err


def test_missing_files(synth, tmp_path, capsys):
    assert main(_eval(synth, gt=tmp_path / "nope.json")) == 2
    assert "ground-truth file not found" in capsys.readouterr().err
    assert main(_eval(synth, bag=tmp_path / "nobag")) == 2
    assert "rosbag2 not found" in capsys.readouterr().err


def test_extract_annotate_stamp_evaluate(synth, tmp_path, capsys):
    """bag-extract -> (a Label Studio style export of the frames) -> gt_tools -> eval-bag scores AP 1."""
    frames_dir = tmp_path / "frames"
    assert (
        main(["bag-extract", str(synth["bag"]), "--topic", TOPIC, "--out", str(frames_dir), "--every", "2"])
        == 0
    )
    mapping = json.loads((frames_dir / "frames.json").read_text())
    assert [f["index"] for f in mapping["frames"]] == [0, 2, 4]
    assert all((frames_dir / f["file_name"]).is_file() for f in mapping["frames"])

    # simulate the annotation tool: same annotations, LS-style upload names, no stamps, 0-based category ids
    gt = json.loads(synth["gt"].read_text())
    by_stamp = {im["stamp_ns"]: im for im in gt["images"]}
    images, keep = [], set()
    for k, f in enumerate(mapping["frames"]):
        im = by_stamp[f["stamp_ns"]]
        keep.add(im["id"])
        images.append(
            {
                "id": 100 + k,
                "file_name": f"../../data/upload/3/0a1b2c3d-{f['file_name']}",
                "width": im["width"],
                "height": im["height"],
                "_old": im["id"],
            }
        )
    new_id = {im["_old"]: im["id"] for im in images}
    export = {
        "images": [{k: v for k, v in im.items() if k != "_old"} for im in images],
        "categories": [{"id": c["id"] - 1, "name": c["name"]} for c in gt["categories"]],
        "annotations": [
            a | {"image_id": new_id[a["image_id"]], "category_id": a["category_id"] - 1}
            for a in gt["annotations"]
            if a["image_id"] in keep
        ],
    }
    (tmp_path / "export.json").write_text(json.dumps(export))
    out_gt = tmp_path / "gt.json"
    rc = gt_tools.main(
        [
            "--export",
            str(tmp_path / "export.json"),
            "--frames",
            str(frames_dir / "frames.json"),
            "--out",
            str(out_gt),
        ]
    )
    assert rc == 0
    stamped = json.loads(out_gt.read_text())
    assert [im["stamp_ns"] for im in stamped["images"]] == [f["stamp_ns"] for f in mapping["frames"]]

    capsys.readouterr()
    args = _eval(synth, gt=out_gt, out="out_ls")
    args[args.index("--weights") + 1] = str(synth["gt"])  # the oracle knows the frames from the synthetic GT
    assert main(args) == 0
    s = json.loads((synth["root"] / "out_ls" / "metrics.json").read_text())
    assert s["frames"]["gt_matched"] == 3 and s["frames"]["processed"] == 6
    assert s["accuracy"]["segm"]["AP"] == pytest.approx(1.0)


def test_gt_tools_rejects_unknown_file_names(synth, tmp_path, capsys):
    frames = {"frames": [{"file_name": "frame_000000.png", "stamp_ns": 1, "width": 160, "height": 120}]}
    export = {
        "images": [{"id": 1, "file_name": "holiday.jpg", "width": 160, "height": 120}],
        "categories": [],
    }
    (tmp_path / "f.json").write_text(json.dumps(frames))
    (tmp_path / "e.json").write_text(json.dumps(export))
    rc = gt_tools.main(
        [
            "--export",
            str(tmp_path / "e.json"),
            "--frames",
            str(tmp_path / "f.json"),
            "--out",
            str(tmp_path / "gt.json"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "match no extracted frame" in err and "holiday.jpg" in err


def test_compressed_bag_topic_defaults_to_the_ground_truth_topic(tmp_path, capsys):
    """A CompressedImage (png) bag; --topic omitted: the GT's info.image_topic is used."""
    from instaseg_ros.data.synthetic import BagSpec, SynthConfig, write_synthetic_bag

    cfg = SynthConfig(width=128, height=96, min_objects=2, max_objects=3, max_distractors=0)
    spec = BagSpec(num_frames=3, sequence_length=3, write_images=True, compressed="png")
    bag, gt = write_synthetic_bag(tmp_path / "c", seed=5, config=cfg, spec=spec)
    rc = main(["eval-bag", str(bag), "--gt", str(gt), "--model", "oracle", "--out", str(tmp_path / "o"),
               "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert s["topic"] == TOPIC + "/compressed" and s["accuracy"]["segm"]["AP"] == pytest.approx(1.0)
