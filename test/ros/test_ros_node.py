"""instaseg_node over real DDS: the node runs in its own process, a probe node talks to it.

One node process serves the whole module (started with ``--params-file config/yolact.yaml``, a
namespace and a remapped input topic); tests run in file order and leave it active. Bad-weights
handling gets its own short-lived process.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import (  # noqa: E402
    CLASSES,
    ROOT,
    NodeProcess,
    Probe,
    active_node,
    connected_probe,
    ensure_ros_env,
    make_tiny_yolact,
    random_image,
    wait_for,
)

from instaseg_ros.ros import conversions as conv  # noqa: E402

ensure_ros_env()
NS = "/t5"
FQN = f"{NS}/instaseg_node"
IMAGE_TOPIC = "/cam/color/image_raw"
H, W = 120, 160  # small frames: fast, and far below DDS shared-memory segment limits


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_yolact(tmp_path_factory.mktemp("ckpt") / "tiny_yolact.pth")


@pytest.fixture(scope="module")
def node(checkpoint, tmp_path_factory):
    with active_node(
        [
            "--params-file", str(ROOT / "config" / "yolact.yaml"),
            "-r", f"__ns:={NS}",
            "-r", f"image:={IMAGE_TOPIC}",
            "-p", f"model.weights:={checkpoint}",
            "-p", "score_threshold:=0.05",
            "-p", "top_k:=12",
        ],
        tmp_path_factory.mktemp("log") / "node.log",
    ) as proc:  # fmt: skip
        yield proc


@pytest.fixture(scope="module")
def probe(node):
    with connected_probe(FQN, IMAGE_TOPIC) as p:
        yield p


def latched_label_info(probe):
    """~/label_info as a late-joining subscriber receives it (transient local)."""
    from vision_msgs.msg import LabelInfo

    got = []
    sub = probe.node.create_subscription(LabelInfo, f"{FQN}/label_info", got.append, probe.latched)
    try:
        assert wait_for(lambda: got, 20), "no latched LabelInfo for a late joiner"
    finally:
        probe.node.destroy_subscription(sub)
    return got[-1]


@pytest.fixture(scope="module")
def label_map(probe):
    """Wire class index -> name, from a late-joining subscription to the latched ~/label_info."""
    return {c.class_id: c.class_name for c in latched_label_info(probe).class_map}


def send_and_collect(probe, pixels, encoding="bgr8", compressed=None, frame_id="camera_optical_frame"):
    """Publish one frame and return (header, outputs) once all three outputs for it arrived."""
    header = probe.next_header(frame_id)
    if compressed:
        msg = conv.bgr8_to_compressed(pixels, compressed, header)
    else:
        msg = conv.numpy_to_image(pixels, encoding, header)
    probe.publish(msg, compressed=bool(compressed))
    out = probe.result_for(header, timeout=30)
    assert out is not None, f"no output for frame stamped {header.stamp.sec}"
    return header, out


def check_outputs(header, out, label_map, size):
    """Headers equal the input's; ids == mask values; semantic agrees with detection classes."""
    assert {k: len(v) for k, v in out.items()} == {"detections": 1, "instance_mask": 1, "semantic_mask": 1}
    dets, mask_msg, sem_msg = out["detections"][0], out["instance_mask"][0], out["semantic_mask"][0]
    assert dets.header == header and mask_msg.header == header and sem_msg.header == header
    assert all(d.header == header for d in dets.detections)
    assert (mask_msg.encoding, sem_msg.encoding) == ("mono16", "mono8")
    mask, sem = conv.image_to_numpy(mask_msg), conv.image_to_numpy(sem_msg)
    assert mask.shape == size and sem.shape == size
    ids = {int(d.id) for d in dets.detections}
    assert ids == set(np.unique(mask).tolist()) - {0}
    name_to_index = {v: k for k, v in label_map.items()}
    for d in dets.detections:
        hyp = d.results[0].hypothesis
        assert hyp.class_id in name_to_index and 0 < hyp.score <= 1
        owned = mask == int(d.id)
        assert np.all(sem[owned] == name_to_index[hyp.class_id])
        assert 0 <= d.bbox.center.position.x <= size[1] and 0 <= d.bbox.center.position.y <= size[0]
    assert np.all(sem[mask == 0] == 0)
    return dets


def test_label_info_is_latched_for_late_joiners(label_map):
    assert label_map == {0: "background", **{i + 1: n for i, n in enumerate(CLASSES)}}


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "mono8", "mono16"])
def test_outputs_carry_the_input_header_and_ids_match_the_mask(probe, label_map, encoding):
    rng = np.random.default_rng(len(encoding))
    bgr = random_image(rng, H, W)
    pixels = {
        "bgr8": bgr,
        "rgb8": bgr[..., ::-1].copy(),
        "bgra8": np.dstack([bgr, np.full((H, W), 255, np.uint8)]),
        "mono8": bgr[..., 0].copy(),
        "mono16": bgr[..., 0].astype(np.uint16) * 257,
    }[encoding]
    header, out = send_and_collect(probe, pixels, encoding, frame_id=f"cam_{encoding}")
    dets = check_outputs(header, out, label_map, (H, W))
    assert 1 <= len(dets.detections) <= 12


def test_different_frame_sizes_give_masks_at_input_resolution(probe, label_map):
    header, out = send_and_collect(probe, random_image(np.random.default_rng(9), 90, 70))
    check_outputs(header, out, label_map, (90, 70))


def test_debug_image_is_rendered_for_subscribers_only_when_enabled(probe, label_map):
    from sensor_msgs.msg import Image

    got = []
    sub = probe.node.create_subscription(Image, f"{FQN}/debug_image", got.append, 10)
    try:
        assert wait_for(lambda: sub.get_publisher_count() > 0, 20)
        img = random_image(np.random.default_rng(11), H, W)
        header, out = send_and_collect(probe, img)
        debug = wait_for(lambda: [m for m in got if m.header == header], 20)
        assert debug, "no debug image for the frame"
        overlay = conv.image_to_numpy(debug[0])
        assert debug[0].encoding == "bgr8" and overlay.shape == (H, W, 3)
        assert out["detections"][0].detections and np.any(overlay != img)  # something was drawn
        assert all(r.successful for r in probe.set_params(debug_image=False))
        header, out = send_and_collect(probe, img)
        time.sleep(0.5)
        assert not [m for m in got if m.header == header]
    finally:
        probe.node.destroy_subscription(sub)
        assert all(r.successful for r in probe.set_params(debug_image=True))


def test_runtime_parameters_take_effect_and_invalid_ones_are_refused(probe, label_map):
    img = random_image(np.random.default_rng(3), H, W)
    assert all(r.successful for r in probe.set_params(top_k=2, class_id_format="index"))
    header, out = send_and_collect(probe, img)
    dets = out["detections"][0].detections
    assert 1 <= len(dets) <= 2
    assert all(d.results[0].hypothesis.class_id in {str(k) for k in label_map if k} for d in dets)

    assert all(
        r.successful for r in probe.set_params(top_k=50, class_id_format="name", class_filter=["chair"])
    )
    header, out = send_and_collect(probe, img)
    assert {d.results[0].hypothesis.class_id for d in out["detections"][0].detections} <= {"chair"}
    assert all(r.successful for r in probe.set_params(score_threshold=1.0, class_filter=[]))
    header, out = send_and_collect(probe, img)
    assert out["detections"][0].detections == [] and not conv.image_to_numpy(out["instance_mask"][0]).any()
    assert latched_label_info(probe).threshold == pytest.approx(1.0)

    refused = {
        "score_threshold": (1.5, ""),
        "top_k": (0, ""),
        "nms_threshold": (0.0, ""),
        "class_filter": (["unicorn"], "unknown classes ['unicorn']"),
        "class_id_format": ("bogus", "not one of ['name', 'index']"),
        "model.weights": ("/tmp/other.pth", "needs reconfigure"),
        "model.input_size": (256, "needs reconfigure"),
        "input_transport": ("compressed", "cannot change while active"),
        "autostart": (False, "read-only"),
    }
    for name, (value, reason) in refused.items():
        (res,) = probe.set_params(**{name.replace(".", "__"): value})
        assert not res.successful, f"{name}={value!r} was accepted"
        assert reason in res.reason and res.reason, (name, res.reason)
    assert all(r.successful for r in probe.set_params(score_threshold=0.05, top_k=12))
    header, out = send_and_collect(probe, img)
    assert len(out["detections"][0].detections) >= 1


def test_newest_frame_only_under_overload(probe):
    """Frames arrive far faster than inference: no stale or duplicate output, the newest frame is
    processed, and the replaced frames are counted as dropped."""
    probe.clear()
    before = probe.latest_diagnostics()
    rng = np.random.default_rng(4)
    frames = [conv.numpy_to_image(random_image(rng, H, W), "bgr8", probe.next_header()) for _ in range(40)]
    for msg in frames:
        probe.publish(msg)
        time.sleep(0.004)
    last = frames[-1].header
    assert probe.result_for(last, timeout=30) is not None, "the newest frame was not processed"
    time.sleep(0.5)
    stamps = [m.header.stamp.sec for m in probe.outputs("detections")]
    sent = [m.header.stamp.sec for m in frames]
    assert stamps == sorted(set(stamps)), f"stale or duplicate output: {stamps}"
    assert set(stamps) <= set(sent) and stamps[-1] == sent[-1]
    assert len(stamps) < len(sent)
    for key in ("instance_mask", "semantic_mask"):
        assert [m.header.stamp.sec for m in probe.outputs(key)] == stamps
    after = diag_when(probe, lambda d: int(d["processed"]) >= int(before["processed"]) + len(stamps))
    dropped = int(after["dropped"]) - int(before["dropped"])
    received = int(after["received"]) - int(before["received"])
    assert dropped >= 1
    assert received == len(stamps) + dropped + int(after["stale"]) - int(before["stale"])


def diag_when(probe, pred, timeout: float = 15.0) -> dict:
    """The first new diagnostics status satisfying ``pred``."""
    d = wait_for(lambda: (d := probe.latest_diagnostics(timeout=2)) and pred(d) and d, timeout)
    assert d, "no diagnostics satisfying the condition"
    return d


def bad_messages(rng: np.random.Generator) -> list:
    """>= 200 varied malformed Image messages."""
    from sensor_msgs.msg import Image

    good = conv.numpy_to_image(random_image(rng, 8, 10), "bgr8")
    out = []

    def variant(**kw):
        m = Image(height=good.height, width=good.width, encoding=good.encoding, step=good.step)
        m.data = bytes(good.data)
        for k, v in kw.items():
            setattr(m, k, v)
        out.append(m)

    for enc in ["yuv422", "32FC1", "16SC1", "bayer_rggb8", "rgb16", "", "BGR8", "jpeg", "nv21", "64FC1"]:
        for _ in range(5):
            variant(encoding=enc)
    for _ in range(40):
        variant(data=bytes(int(rng.integers(0, len(good.data)))))
    for _ in range(20):
        variant(height=0)
        variant(width=0)
    for _ in range(20):
        variant(step=int(rng.integers(0, good.width * 3)))
    for _ in range(20):
        variant(height=int(rng.integers(100, 100000)), width=int(rng.integers(100, 100000)), step=0)
        variant(height=int(rng.integers(9, 50000)))
    for _ in range(20):
        variant(encoding="mono16", step=good.width * 2, height=good.height * 10)
    return out


def test_malformed_image_barrage_leaves_the_node_alive_and_answering(node, probe, label_map):
    rng = np.random.default_rng(5)
    bad = bad_messages(rng)
    assert len(bad) >= 200
    before = probe.latest_diagnostics()
    for msg in bad:
        msg.header = probe.next_header()
        probe.publish(msg)
        time.sleep(0.002)
    time.sleep(0.5)
    assert node.alive()
    header, out = send_and_collect(probe, random_image(rng, H, W))
    check_outputs(header, out, label_map, (H, W))
    after = wait_for(
        lambda: (d := probe.latest_diagnostics()) and int(d["rejected"]) > int(before["rejected"]) and d, 10
    )
    rejected = int(after["rejected"]) - int(before["rejected"])
    # keep-last-1 input QoS may overwrite messages before the callback sees them; none is processed
    assert 0.5 * len(bad) <= rejected <= len(bad)
    assert int(after["errors"]) == int(before["errors"])
    assert after["level"] in (b"\x01", b"\x00")
    assert "rejected frame on /cam/color/image_raw: unsupported image encoding" in node.log()
    for reason in ("zero-size image", "shorter than step*height", "is smaller than width*channels*bytes"):
        assert reason in node.log()


def test_compressed_input_after_reactivation(node, probe, label_map):
    assert probe.transition("deactivate") and probe.state() == "inactive"
    assert all(r.successful for r in probe.set_params(input_transport="compressed"))
    assert probe.transition("activate") and probe.state() == "active"
    assert node.wait_log(f"active: CompressedImage on {IMAGE_TOPIC}/compressed", 10)
    assert probe.wait_connected(compressed=True)
    rng = np.random.default_rng(6)
    for fmt in ("jpeg", "png"):
        header, out = send_and_collect(probe, random_image(rng, H, W), compressed=fmt)
        check_outputs(header, out, label_map, (H, W))
    # corrupt compressed data is rejected, the node keeps answering
    jpeg = bytes(conv.bgr8_to_compressed(random_image(rng, H, W), "jpeg").data)
    from sensor_msgs.msg import CompressedImage

    before = probe.latest_diagnostics()
    corrupt = [jpeg[: len(jpeg) // 2], b"", b"GIF89a" + bytes(50), jpeg[:3] + bytes(300) + b"\xff\xd9"]
    for data in corrupt * 5:
        probe.publish(CompressedImage(header=probe.next_header(), format="jpeg", data=data), compressed=True)
        time.sleep(0.02)
    header, out = send_and_collect(probe, random_image(rng, H, W), compressed="jpeg")
    check_outputs(header, out, label_map, (H, W))
    after = wait_for(
        lambda: (d := probe.latest_diagnostics()) and int(d["rejected"]) > int(before["rejected"]) and d, 10
    )
    assert int(after["rejected"]) - int(before["rejected"]) >= 10
    assert "corrupt JPEG" in node.log()


def test_model_parameters_apply_after_reconfigure(node, probe, label_map):
    assert probe.transition("deactivate") and probe.transition("cleanup") and probe.state() == "unconfigured"
    # the network input size and the inference backend are model parameters (ONNX Runtime: exported now)
    assert all(r.successful for r in probe.set_params(model__input_size=96, backend="onnxruntime"))
    assert all(r.successful for r in probe.set_params(input_transport="raw"))
    assert probe.transition("configure") and probe.transition("activate")
    assert probe.wait_connected()
    header, out = send_and_collect(probe, random_image(np.random.default_rng(7), H, W))
    check_outputs(header, out, label_map, (H, W))
    assert node.log().count("configured: yolact") == 2
    assert "fp32 [onnxruntime]" in node.log()
    (res,) = probe.set_params(backend="cuda-magic")
    assert not res.successful


def test_bad_weights_leave_the_node_unconfigured_and_alive(tmp_path):
    missing = tmp_path / "missing.pth"
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint" * 100)
    proc = NodeProcess(["-r", "__ns:=/t5bad", "-p", f"model.weights:={missing}"], tmp_path / "bad.log")
    p = None
    try:
        assert proc.wait_log("configure failed", 60), proc.log()
        assert f"model weights file {missing} does not exist" in proc.log()
        p = Probe("/t5bad/instaseg_node", "/t5bad/image")
        assert p.state() == "unconfigured" and proc.alive()
        diag = p.latest_diagnostics(timeout=10)
        assert diag["level"] == b"\x02" and "does not exist" in diag["message"]
        assert all(r.successful for r in p.set_params(model__weights=str(corrupt)))
        assert not p.transition("configure")
        assert p.state() == "unconfigured" and proc.alive()
        assert f"configure failed: cannot load 'yolact' model from weights='{corrupt}'" in proc.log()
        # another model afterwards configures fine: the failures left nothing behind. This one is the
        # YOLO+FCN family from a package:// model config (tiny, random weights)
        assert all(
            r.successful
            for r in p.set_params(
                model__family="yolo_fcn",
                model__weights="",
                model__config="package://instaseg_ros/config/models/yolo_fcn_tiny_random.yaml",
            )
        )
        assert p.transition("configure") and p.state() == "inactive"
        assert proc.wait_log("configured: yolo_fcn (5 classes)", 10)
    finally:
        if p is not None:
            p.close()
        assert proc.stop() == 0


@pytest.mark.parametrize(
    "remaps, raw, compressed",
    [
        ([], "/image", "/image/compressed"),
        (["-r", "image:=/cam/color/image_raw"], "/cam/color/image_raw", "/cam/color/image_raw/compressed"),
        (["-r", "image/compressed:=/cam/jpeg"], "/image", "/cam/jpeg"),
        (["-r", "__ns:=/robot"], "/robot/image", "/robot/image/compressed"),
    ],
)
def test_input_topic_follows_image_transport_naming(remaps, raw, compressed):
    import rclpy

    from instaseg_ros.ros.node import InstasegNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = InstasegNode(context=ctx, cli_args=["--ros-args", *remaps, "-p", "autostart:=false"])
        assert (node._input_topic_name(False), node._input_topic_name(True)) == (raw, compressed)
        node.destroy_node()
    finally:
        ctx.try_shutdown()


@pytest.mark.parametrize("params_file", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_every_parameter_file_fits_the_node(params_file):
    """Each node parameter file under config/ is accepted by the node's declared parameters (names,
    types, ranges) and names a model family, a backend and an input transport the node knows."""
    import rclpy
    import yaml

    from instaseg_ros.ros.node import InstasegNode
    from instaseg_ros.ros.params import BACKENDS, SPECS

    data = yaml.safe_load((ROOT / "config" / params_file).read_text())
    params = data["/**"]["ros__parameters"]
    flat = {}
    for key, value in params.items():  # nested mappings are dotted names ("model: {family: x}")
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    assert set(flat) <= set(SPECS) | {"use_sim_time"}, set(flat) - set(SPECS)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = InstasegNode(
            context=ctx, cli_args=["--ros-args", "--params-file", str(ROOT / "config" / params_file)]
        )
        for name, value in flat.items():
            assert node.get_parameter(name).value == value, name
        assert node.get_parameter("backend").value in BACKENDS
        assert node.get_parameter("model.family").value in ("yolact", "yolo_fcn", "solo", "maskrcnn")
        assert node.get_parameter("input_transport").value in ("raw", "compressed")
        node.destroy_node()
    finally:
        ctx.try_shutdown()
