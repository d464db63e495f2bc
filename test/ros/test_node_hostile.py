"""The defects of issue 23, each against the real node over DDS (node in its own process).

One node process serves the module (raw input first, then compressed); start-up, signal and
no-data/duplicate-name checks start their own short-lived processes. Every test here failed on the
node before the issue-23 changes (the process died, a frame went unanswered or was counted wrongly,
or memory grew by gigabytes).
"""

from __future__ import annotations

import re
import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from hostile_inputs import jpeg, jpeg_header_bomb, png_chunk, png_of_size  # noqa: E402
from ros_probe import (  # noqa: E402
    ROOT,
    NodeProcess,
    Probe,
    active_node,
    connected_probe,
    ensure_ros_env,
    make_tiny_yolact,
    random_image,
    rss_mb,
    wait_for,
)

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS = "/t23"
FQN = f"{NS}/instaseg_node"
TOPIC = "/cam23/image_raw"
H, W = 96, 128


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_yolact(tmp_path_factory.mktemp("ckpt") / "tiny_yolact.pth")


@pytest.fixture(scope="module")
def node(checkpoint, tmp_path_factory):
    with active_node(
        ["-r", f"__ns:={NS}", "-r", f"image:={TOPIC}", "-p", f"model.weights:={checkpoint}",
         "-p", "score_threshold:=0.05", "-p", "top_k:=5", "-p", "qos_reliability:=reliable"],
        tmp_path_factory.mktemp("log") / "node.log",
    ) as proc:  # fmt: skip
        yield proc


@pytest.fixture(scope="module")
def probe(node):
    with connected_probe(FQN, TOPIC) as p:
        yield p


def answered(probe, pixels=None, compressed=None, timeout=30.0) -> bool:
    """Publish one valid frame; True when all three outputs for it arrive."""
    pixels = random_image(np.random.default_rng(probe._stamp), H, W) if pixels is None else pixels
    header = probe.next_header()
    if compressed:
        probe.publish(conv.bgr8_to_compressed(pixels, compressed, header), compressed=True)
    else:
        probe.publish(conv.numpy_to_image(pixels, "bgr8", header))
    return probe.result_for(header, timeout=timeout) is not None


def counters(probe) -> dict:
    d = probe.latest_diagnostics(timeout=5)
    assert d, "no diagnostics"
    return {k: int(d[k]) for k in ("received", "processed", "rejected", "errors")} | {"level": d["level"]}


def settled(probe, pred, timeout=10.0) -> dict:
    c = wait_for(lambda: (c := counters(probe)) and pred(c) and c, timeout, 0.2)
    assert c, "diagnostics never satisfied the condition"
    return c


def test_class_filter_of_any_wrong_type_is_refused_and_the_node_lives(node, probe):
    from rclpy.parameter import Parameter

    for value in (0, 0.0, False, 3, 2.5, True, [1, 2], [0.5], [True]):  # falsy ones raised TypeError
        (res,) = probe.set_param_msgs([Parameter("class_filter", value=value).to_parameter_msg()])
        assert not res.successful and "class_filter must be a string array" in res.reason, (value, res)
        assert node.alive(), f"class_filter={value!r} killed the node:\n{node.log()[-2000:]}"
    (res,) = probe.set_param_msgs([Parameter("class_filter", value="person").to_parameter_msg()])
    assert res.successful
    assert probe.get_params("class_filter") == {"class_filter": ["person"]}  # one name, not letters
    assert all(r.successful for r in probe.set_params(class_filter=[]))
    assert answered(probe)


def test_change_state_by_invalid_id_is_refused_and_the_node_lives(node, probe):
    for tid in (1, 2, 3, 10, 99, 255):  # configure/cleanup/activate while active, internal, unknown
        assert probe.transition_id(tid, timeout=20) is False
        assert node.alive(), f"transition id {tid} killed the node:\n{node.log()[-2000:]}"
    assert probe.state() == "active"
    assert answered(probe)


def test_max_rate_below_the_minimum_is_refused_and_frames_keep_flowing(node, probe):
    (res,) = probe.set_params(max_rate=1e-300)
    assert not res.successful and "too small" in res.reason
    assert all(r.successful for r in probe.set_params(max_rate=0.01))
    header = probe.next_header()
    probe.publish(conv.numpy_to_image(random_image(np.random.default_rng(1), H, W), "bgr8", header))
    assert probe.result_for(header, timeout=2) is None  # waits: the last frame started < 100 s ago
    assert all(r.successful for r in probe.set_params(max_rate=0.0))
    assert probe.result_for(header, timeout=30) is not None  # the waiting frame goes at once
    assert answered(probe)


@pytest.mark.parametrize("h, w", [(1, 640), (480, 1), (1000, 2), (1, 1)])
def test_tiny_raw_frames_are_rejected_not_errors(node, probe, h, w):
    before = counters(probe)
    header = probe.next_header()
    probe.publish(conv.numpy_to_image(np.full((h, w, 3), 90, np.uint8), "bgr8", header))
    after = settled(probe, lambda c: c["rejected"] > before["rejected"])
    assert after["errors"] == before["errors"]
    assert probe.result_for(header, timeout=1) is None
    assert answered(probe)
    assert f"image {w}x{h} is too small" in node.log()


def test_switch_to_compressed(node, probe):
    assert probe.transition("deactivate") and probe.state() == "inactive"
    assert all(r.successful for r in probe.set_params(input_transport="compressed"))
    assert probe.transition("activate") and probe.state() == "active"
    assert probe.wait_connected(compressed=True)
    assert answered(probe, compressed="jpeg") and answered(probe, compressed="png")


def send_compressed(probe, data: bytes, fmt: str):
    from sensor_msgs.msg import CompressedImage

    header = probe.next_header()
    probe.publish(CompressedImage(header=header, format=fmt, data=data), compressed=True)
    return header


def test_size_bombs_are_rejected_before_decoding(node, probe):
    """A 4 KB JPEG whose header says 32000x32000 and a valid ~0.9 MB 30000x30000 PNG: before the
    fix each drove the node past 5 GB; now both are refused from the header and RSS stays flat."""
    base = rss_mb(node.proc.pid)
    bombs = [(jpeg_header_bomb(), "jpeg"), (png_of_size(30000, 30000), "png")]
    assert len(bombs[0][0]) < 8000 and len(bombs[1][0]) < 2_000_000
    peak = base
    for data, fmt in bombs:
        before = counters(probe)
        send_compressed(probe, data, fmt)
        settled(probe, lambda c, b=before: c["rejected"] > b["rejected"])
        peak = max(peak, rss_mb(node.proc.pid))
        assert answered(probe, compressed="jpeg")
    assert peak - base < 150, f"RSS grew from {base:.0f} to {peak:.0f} MiB"
    log = node.log()
    assert "JPEG image 32000x32000 has 1024000000 pixels, more than max_input_pixels=16777216" in log
    assert "PNG image 30000x30000 has 900000000 pixels" in log


def test_truncated_jpeg_with_end_marker_is_rejected(node, probe):
    rng = np.random.default_rng(23)
    before = counters(probe)
    for fraction in (0.2, 0.4, 0.6, 0.8):
        data = jpeg(random_image(rng, H, W))
        header = send_compressed(probe, data[: int(len(data) * fraction)] + b"\xff\xd9", "jpeg")
        assert probe.result_for(header, timeout=2) is None, f"cut at {fraction} was answered"
    after = settled(probe, lambda c: c["rejected"] >= before["rejected"] + 4)
    assert after["errors"] == before["errors"]
    assert "corrupt JPEG: Corrupt JPEG data" in node.log()
    iend = png_chunk(b"IEND", b"")
    png = bytes(conv.bgr8_to_compressed(random_image(rng, H, W), "png").data)
    send_compressed(probe, png[: len(png) // 2] + iend, "png")
    settled(probe, lambda c: c["rejected"] >= before["rejected"] + 5)
    assert answered(probe, compressed="jpeg")
    assert "libpng" not in node.log() and "Corrupt JPEG data: premature" not in node.log().replace(
        "corrupt JPEG: Corrupt JPEG data: premature", ""
    )


def test_no_data_from_a_matched_publisher_is_named(node, probe):
    """Issue 22 item 4: a matched publisher that delivers nothing for 5 s is reported (log and
    diagnostics WARN) with the Fast DDS profile that fixes the usual cause."""
    time.sleep(6.5)
    d = wait_for(
        lambda: (d := probe.latest_diagnostics(timeout=3)) and "no image received" in d["message"] and d, 10
    )
    assert d, "no no-data warning in diagnostics"
    assert d["level"] == b"\x01" and "fastdds_large_images.xml" in d["message"]
    assert re.search(r"\[WARN\].*no image received on /cam23/image_raw\S* for \d+ s", node.log())
    assert answered(probe, compressed="jpeg")
    quiet = lambda: (d := probe.latest_diagnostics(timeout=3)) and "no image received" not in d["message"]  # noqa: E731
    assert wait_for(quiet, 5), "the warning stayed after a frame arrived"


def test_a_second_node_with_the_same_name_is_warned_about(node, probe):
    import rclpy

    twin = rclpy.create_node("instaseg_node", namespace=NS, context=probe.context)
    try:
        assert node.wait_log(f"2 nodes are named {FQN}", 15), node.log()[-2000:]
    finally:
        twin.destroy_node()


def test_bad_startup_parameters_are_refused_and_the_defaults_kept(tmp_path):
    proc = NodeProcess(
        ["-r", "__ns:=/t23p", "-p", "autostart:=false", "-p", "score_threshold:=5.0", "-p", "top_k:=abc",
         "-p", "num_threads:=-1", "-p", "diagnostics_period:=0.0", "-p", "debug_image:=maybe",
         "-p", "class_filter:=person", "-p", "top_k:=0"],
        tmp_path / "node.log",
    )  # fmt: skip
    p = None
    try:
        p = Probe("/t23p/instaseg_node", "/t23p/image")
        assert p.state() == "unconfigured" and proc.alive(), proc.log()
        values = p.get_params("score_threshold", "top_k", "num_threads", "diagnostics_period", "debug_image",
                              "class_filter")  # fmt: skip
        assert values == {"score_threshold": 0.3, "top_k": 100, "num_threads": 0, "diagnostics_period": 1.0,
                          "debug_image": True, "class_filter": ["person"]}  # fmt: skip
        log = proc.log()
        for name in ("score_threshold", "top_k", "num_threads", "diagnostics_period", "debug_image"):
            assert re.search(rf"start-up parameter {name}:=.* refused: .*; keeping the default", log), name
        (res,) = p.set_params(score_threshold=5.0)
        assert not res.successful and f"refused: {res.reason}; keeping" in log  # the same message
        assert "Traceback" not in log
    finally:
        if p is not None:
            p.close()
        assert proc.stop() == 0


def signal_during(tmp_path, sig, when: str, checkpoint) -> tuple[int, str]:
    args = ["-r", f"__ns:=/t23s{when}", "-r", "image:=/t23s/image"]
    if when == "configure":  # a full-size random YOLACT: loading takes seconds
        args += ["-p", "model.weights:=''"]
    else:
        args += ["-p", f"model.weights:={checkpoint}"]
    proc = NodeProcess(args, tmp_path / f"{when}_{sig.name}.log")
    probe = None
    try:
        if when == "configure":
            assert proc.wait_log("RANDOMLY INITIALISED", 60), proc.log()
        else:
            assert proc.wait_log("active:", 90), proc.log()
            probe = Probe(f"/t23s{when}/instaseg_node", "/t23s/image")
            assert probe.wait_connected()
            rng = np.random.default_rng(0)
            for _ in range(30):
                probe.publish(conv.numpy_to_image(random_image(rng, H, W), "bgr8", probe.next_header()))
                time.sleep(0.01)
        proc.proc.send_signal(sig)
        proc.proc.wait(30)
    finally:
        if probe is not None:
            probe.close()
        proc.stop()
    return proc.proc.returncode, proc.log()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["configure", "streaming"])
def test_sigint_and_sigterm_end_the_node_cleanly(tmp_path, checkpoint, sig, when):
    rc, log = signal_during(tmp_path, sig, when, checkpoint)
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log and "[ERROR]" not in log, log[-3000:]
    if when == "configure":
        assert "interrupted during start-up" in log and "configured:" not in log, log[-3000:]


def test_launch_file_sets_the_large_image_profile_unless_one_is_set():
    """launch/instaseg.launch.py gives the node config/fastdds_large_images.xml (issue 22 item 4)."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (ROS distro package)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("instaseg_launch", ROOT / "launch" / "instaseg.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.dds_profile_env("/share/instaseg_ros", {}) == {
        "FASTRTPS_DEFAULT_PROFILES_FILE": "/share/instaseg_ros/config/fastdds_large_images.xml"
    }
    assert mod.dds_profile_env("/s", {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
