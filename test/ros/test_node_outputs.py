"""The node's fast 2D output path (no DDS): exact visibility from a sampled histogram, the instance mask
rendered into a reused message buffer, and the pre-serialised Detection2DArray against rclpy's own
serialiser for the installed vision_msgs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not importable")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from instaseg_ros.core.instances import Instances  # noqa: E402
from instaseg_ros.ros import conversions as conv  # noqa: E402
from instaseg_ros.ros.detections_cdr import detections_cdr, detections_cdr_matches  # noqa: E402

NAMES = ["person", "chair", "dining table", "tv", "ü-bench"]  # a multi-byte name: CDR lengths in bytes


def scene(rng: np.random.Generator, n: int, h: int = 48, w: int = 64, tiny: bool = False) -> Instances:
    """``n`` random rectangles (some fully covered by higher scores); ``tiny``: 1-pixel masks too, which
    a 4-pixel sampling grid misses."""
    masks = np.zeros((n, h, w), bool)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        if tiny and i % 2:
            y, x = rng.integers(0, h), rng.integers(0, w)
            masks[i, y, x] = True
            boxes[i] = (x, y, x + 1, y + 1)
            continue
        y0, x0 = rng.integers(0, h - 1), rng.integers(0, w - 1)
        y1, x1 = y0 + rng.integers(1, h - y0 + 1), x0 + rng.integers(1, w - x0 + 1)
        masks[i, y0:y1, x0:x1] = True
        boxes[i] = (x0 + rng.random(), y0, x1, y1 - rng.random())
    scores = rng.random(n).astype(np.float32)
    return Instances(boxes, scores, rng.integers(0, len(NAMES), n), masks, (h, w), NAMES)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), seed=st.integers(0, 2**16), tiny=st.booleans())
def test_visible_ids_is_exact(n, seed, tiny):
    inst = scene(np.random.default_rng(seed), n, tiny=tiny)
    ids = inst.instance_id_image().astype(np.uint8)
    want = cv2.calcHist([ids], [0], None, [n + 1], [0, n + 1]).ravel()[1:] > 0
    np.testing.assert_array_equal(conv.visible_ids(ids, n), want)
    np.testing.assert_array_equal(conv.visible_ids(ids.astype(np.uint16), n), want)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), seed=st.integers(0, 2**16), tracked=st.booleans())
def test_render_into_a_reused_buffer_equals_a_fresh_render(n, seed, tracked):
    rng = np.random.default_rng(seed)
    buf = conv.ImageBuffer("mono16")
    for frame in range(2):  # the second frame overwrites the first one's pixels in the same buffer
        inst = scene(rng, n, tiny=True)
        track = rng.permutation(np.arange(1, 70000))[:n].astype(np.uint16) if tracked else None
        want = conv.render_outputs(inst, track)
        pixels = buf.pixels(*inst.image_size)
        got = conv.render_outputs(inst, track, semantic=False, instance_out=pixels)
        assert np.shares_memory(got.instance_ids, pixels)
        np.testing.assert_array_equal(got.instance_ids, want.instance_ids)
        np.testing.assert_array_equal(got.keep, want.keep)
        np.testing.assert_array_equal(got.ids, want.ids)
        assert got.semantic is None
        header = Header(frame_id=f"f{frame}")
        msg = buf.message(header)
        np.testing.assert_array_equal(conv.image_to_numpy(msg), want.instance_ids)
        assert msg == conv.numpy_to_image(want.instance_ids, "mono16", header)


def test_image_buffer_follows_the_frame_size_and_refuses_a_wrong_out():
    buf = conv.ImageBuffer("mono16")
    with pytest.raises(ValueError, match="before any pixels"):
        buf.message()
    a = buf.pixels(4, 6)
    assert a is buf.pixels(4, 6) and a.shape == (4, 6) and a.dtype == np.uint16
    b = buf.pixels(5, 6)
    assert b.shape == (5, 6) and buf.message().height == 5
    inst = scene(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match="instance_out must be"):
        conv.render_outputs(inst, instance_out=np.zeros((48, 64), np.uint8))
    with pytest.raises(ValueError, match="unsupported image encoding"):
        conv.ImageBuffer("yuv422")


def test_the_serialised_layout_matches_the_installed_vision_msgs():
    assert detections_cdr_matches()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 25),
    seed=st.integers(0, 2**16),
    fmt=st.sampled_from(["name", "index"]),
    # any frame_id a DDS message can carry: UTF-8 text without NUL (rclpy decodes incoming strings as UTF-8,
    # so lone surrogates, category Cs, never reach the node)
    frame_id=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
    sec=st.integers(-(2**31), 2**31 - 1),
    nanosec=st.integers(0, 999_999_999),
    tracked=st.booleans(),
)
def test_detections_cdr_reads_back_as_the_message(n, seed, fmt, frame_id, sec, nanosec, tracked):
    rng = np.random.default_rng(seed)
    inst = scene(rng, n)
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    keep = np.sort(rng.choice(n, rng.integers(0, n + 1), replace=False)) if tracked else None
    ids = rng.integers(1, 65536, len(keep)).astype(np.uint16) if tracked else None
    msg = conv.instances_to_detections(inst, header, fmt, keep=keep, ids=ids)
    data = detections_cdr(inst, header, fmt, keep=keep, ids=ids)
    assert len(data) == len(serialize_message(msg))
    assert deserialize_message(data, Detection2DArray) == msg


def test_detections_cdr_refuses_an_unknown_id_format():
    with pytest.raises(ValueError, match="class_id_format"):
        detections_cdr(scene(np.random.default_rng(1), 2), Header(), "bogus")


@pytest.mark.parametrize("serialised", [True, False])
def test_outputs_2d_publishes_the_same_messages_either_way(serialised, tmp_path):
    """Outputs2D on real publishers, read back by a subscriber over DDS: the detections (bytes or message
    path) and the instance mask match the message-built reference; the semantic mask only goes out while
    subscribed."""
    import threading
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from instaseg_ros.ros.outputs import Outputs2D

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"outputs_test_{int(serialised)}", context=ctx)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    ns = f"/t20out{int(serialised)}"
    types = {"detections": Detection2DArray, "instance_mask": Image, "semantic_mask": Image,
             "semantic_confidence": Image, "debug_image": Image}  # fmt: skip
    pubs = {k: node.create_publisher(t, f"{ns}/{k}", qos) for k, t in types.items()}
    got: dict[str, list] = {"detections": [], "instance_mask": [], "semantic_mask": []}
    subs = {k: node.create_subscription(types[k], f"{ns}/{k}", got[k].append, qos) for k in got}
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while any(pubs[k].get_subscription_count() == 0 for k in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        outputs = Outputs2D(pubs, serialised_detections=serialised)
        rng = np.random.default_rng(5)
        headers, semantics = [], []
        for k in range(3):
            if k == 2:  # nobody listens to the semantic mask any more: it is not rendered
                node.destroy_subscription(subs.pop("semantic_mask"))
                while pubs["semantic_mask"].get_subscription_count() and time.monotonic() < deadline:
                    time.sleep(0.02)
            inst = scene(rng, 6, tiny=True)
            track = np.array([9, 4, 300, 12, 7, 65535], np.uint16)
            header = Header(frame_id="cam")
            header.stamp.sec = 100 + k
            headers.append(header)
            out = outputs.publish(inst, header, track, "index")
            want = conv.render_outputs(inst, track)
            semantics.append(want.semantic)
            assert (out.semantic is None) == (k == 2)
            while len(got["detections"]) <= k and time.monotonic() < deadline:
                time.sleep(0.02)
            det = got["detections"][k]
            assert det == conv.instances_to_detections(inst, header, "index", keep=want.keep, ids=want.ids)
            mask = got["instance_mask"][k]
            assert mask.header == header
            np.testing.assert_array_equal(conv.image_to_numpy(mask), want.instance_ids)
        time.sleep(0.2)
        assert [m.header for m in got["semantic_mask"]] == headers[:2]
        for msg, semantic in zip(got["semantic_mask"], semantics):
            np.testing.assert_array_equal(conv.image_to_numpy(msg), semantic)
    finally:
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        thread.join(5)
