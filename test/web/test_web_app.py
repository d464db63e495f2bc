"""``instaseg web`` as a real server driven by ``gradio_client``: threshold changes re-run without a model
reload, downloads, wrong-family checkpoints, video, eval-bag reports, and the CLI without Gradio."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from web_helpers import REPO

from instaseg_ros.core.masks import decode_rle

pytestmark = pytest.mark.slow

SHIPPED = "models/yolact_se_r18_indoor.pth"


@pytest.fixture(scope="module")
def client(web_server):
    from gradio_client import Client

    return Client(web_server.url, verbose=False, download_files=str(web_server.work_dir.parent / "client"))


def _segment(client, files, family="yolact", weights=SHIPPED, score=0.3, top_k=100, classes="", upload=None):
    from gradio_client import handle_file

    return client.predict(
        [handle_file(str(f)) for f in files],
        family,
        weights,
        "",
        handle_file(str(upload)) if upload else None,
        "torch",
        "cpu",
        score,
        0.5,
        0.5,
        top_k,
        classes,
        "/data/local-files/?d=frames/",
        api_name="/segment",
    )


def _loads(status: str) -> int:
    m = re.search(r"models loaded since start: (\d+)", status)
    assert m, status
    return int(m.group(1))


def test_threshold_topk_and_class_filter_rerun_without_reload(client, synthetic_frame):
    _, table, coco, ids, ls_files, status = _segment(client, [synthetic_frame], score=0.05)
    rows = table["data"]
    assert len(rows) >= 3, status
    loads = _loads(status)
    scores = [r[3] for r in rows]
    assert scores == sorted(scores, reverse=True)
    # a higher threshold keeps exactly the rows scoring at least that much (same model, same image)
    cut = round((scores[1] + scores[-1]) / 2, 2)
    _, table_hi, *_, status_hi = _segment(client, [synthetic_frame], score=cut)
    assert [r[3] for r in table_hi["data"]] == [s for s in scores if s >= cut]
    _, table_k, *_, status_k = _segment(client, [synthetic_frame], score=0.05, top_k=2)
    assert [r[3] for r in table_k["data"]] == scores[:2]
    keep = rows[0][2]
    _, table_c, *_, status_c = _segment(client, [synthetic_frame], score=0.05, classes=keep)
    assert table_c["data"] and {r[2] for r in table_c["data"]} == {keep}
    assert _loads(status_hi) == _loads(status_k) == _loads(status_c) == loads  # never reloaded

    # downloads: COCO JSON (RLE) and the mono16 id PNG agree with the table
    import cv2

    coco_d = json.loads(Path(coco).read_text())
    id_img = cv2.imread(ids[0], cv2.IMREAD_UNCHANGED)
    assert id_img.dtype == np.uint16 and id_img.shape == (480, 640)
    owned = {int(v): int((id_img == v).sum()) for v in np.unique(id_img) if v}
    assert set(owned) == {r[1] for r in rows}
    for a, r in zip(coco_d["annotations"], rows):
        m = decode_rle(a["segmentation"])
        assert int(m.sum()) == r[8] >= owned[r[1]]  # overlaps go to the higher score in the id PNG
    # Label Studio files come with every run
    names = sorted(Path(p).name for p in ls_files)
    assert names == ["labeling_config.xml", "tasks.json"]
    tasks = json.loads(Path(next(p for p in ls_files if p.endswith("tasks.json"))).read_text())
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=frames/{synthetic_frame.name}"
    assert tasks[0]["predictions"][0]["model_version"].startswith("yolact:yolact_se_r18_indoor.pth@")


def test_wrong_family_checkpoint_and_bad_class_are_messages(client, synthetic_frame, web_server):
    # the shipped YOLACT checkpoint chosen for the YOLO+FCN family, then the right one
    *_, status = _segment(client, [synthetic_frame], family="yolo_fcn", weights=SHIPPED)
    assert "**Error:** cannot load the model" in status and "not a 'yolo_fcn' model" in status, status
    _, table, *_, status = _segment(
        client, [synthetic_frame], family="yolo_fcn", weights="models/yolo_fcn_indoor.pth"
    )
    assert "Error" not in status and "yolo_fcn:yolo_fcn_indoor.pth@" in status, status
    # an uploaded checkpoint of the wrong family
    *_, status = _segment(client, [synthetic_frame], family="yolo_fcn", upload=REPO / SHIPPED)
    assert "**Error:** cannot load the model" in status and "not a 'yolo_fcn' model" in status, status
    *_, status = _segment(client, [synthetic_frame], classes="giraffe")
    assert "unknown classes ['giraffe']" in status, status
    assert web_server.proc.poll() is None


def test_video_overlay_and_unreadable_video(client, tmp_path, web_server):
    import cv2
    from gradio_client import handle_file

    from instaseg_ros.data.synthetic import SynthConfig, generate_sequence

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    frames = generate_sequence(3, 4, SynthConfig(width=320, height=240))
    for sc in frames:
        w.write(sc.image)
    w.release()
    args = ("yolact", SHIPPED, "", None, "torch", "cpu", 0.3, 0.5, 0.5, 100, "", 10)
    out, coco, status = client.predict(handle_file(str(video)), *args, api_name="/segment_video")
    assert "4 frame(s) of clip" in status, status
    assert len(json.loads(Path(coco).read_text())["images"]) == 4
    out_path = out["video"] if isinstance(out, dict) else out
    cap = cv2.VideoCapture(out_path)
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    out, coco, status = client.predict(handle_file(str(bad)), *args, api_name="/segment_video")
    assert out is None and "cannot read the video" in status, status
    assert web_server.proc.poll() is None


def test_eval_bag_report_tab(client, web_server, tmp_path_factory):
    """A real ``eval-bag`` report (4 synthetic frames, the shipped model) opens in the report tab."""
    from instaseg_ros.data.synthetic import BagSpec, SynthConfig, write_synthetic_bag

    d = web_server.report_root / "eval"
    bag, gt = write_synthetic_bag(
        d, seed=3, config=SynthConfig(width=320, height=240), spec=BagSpec(num_frames=4, sequence_length=4)
    )
    out = d / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "instaseg_ros.cli",
            "eval-bag",
            str(bag),
            "--gt",
            str(gt),
            "--model",
            "yolact",
            "--weights",
            str(REPO / SHIPPED),
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    summary, frame, metrics, report, status = client.predict(str(out), api_name="/open_report")
    assert status.startswith("Run ") and "Opened" in status, status
    assert summary and "<iframe" in frame and metrics
    assert Path(report).read_text() == (out / "report.html").read_text()
    outside = tmp_path_factory.mktemp("elsewhere")
    *_, status = client.predict(str(outside), api_name="/open_report")
    assert "outside the report root" in status


def test_cli_without_gradio_exits_2_with_one_line():
    code = (
        "import sys; sys.modules['gradio'] = None\n"  # gradio absent, as import sees it
        "from instaseg_ros.cli import main; sys.exit(main(['web']))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "gradio is not installed" in lines[0] and "pip install" in lines[0], r.stderr
