"""sensor_msgs/vision_msgs <-> NumPy conversions (no DDS: messages are built in-process)."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not importable")
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from instaseg_ros.core.instances import Instances  # noqa: E402
from instaseg_ros.ros import conversions as conv  # noqa: E402

CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 1}


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """Hand-built Image message with ``pad`` extra bytes per row."""
    h, w = pixels.shape[:2]
    px = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    row = px.reshape(h, -1).view(np.uint8).reshape(h, -1)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    msg = Image()
    msg.height, msg.width, msg.encoding = h, w, encoding
    msg.is_bigendian = int(bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


def random_pixels(rng: np.random.Generator, encoding: str, h: int, w: int) -> np.ndarray:
    ch = CHANNELS[encoding]
    dtype = np.uint16 if encoding == "mono16" else np.uint8
    shape = (h, w) if ch == 1 else (h, w, ch)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(sorted(CHANNELS)),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    pad=st.integers(0, 7),
    bigendian=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_image_to_numpy_reads_every_encoding_with_padding_and_byte_order(
    encoding, h, w, pad, bigendian, seed
):
    pixels = random_pixels(np.random.default_rng(seed), encoding, h, w)
    msg = make_image(pixels, encoding, pad=pad, bigendian=bigendian)
    view = conv.image_to_numpy(msg)
    assert view.shape == pixels.shape
    np.testing.assert_array_equal(view, pixels)
    assert not view.flags.writeable


def test_image_to_numpy_is_a_view_on_the_message_buffer():
    pixels = random_pixels(np.random.default_rng(0), "bgr8", 4, 5)
    msg = make_image(pixels, "bgr8", pad=3)
    view = conv.image_to_numpy(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert conv.image_to_bgr8(msg).base is not None  # bgr8 stays a view, no copy


@pytest.mark.parametrize("encoding", sorted(CHANNELS))
def test_image_to_bgr8_matches_opencv_conversion(encoding):
    rng = np.random.default_rng(1)
    pixels = random_pixels(rng, encoding, 6, 7)
    bgr = conv.image_to_bgr8(make_image(pixels, encoding, pad=2))
    assert bgr.shape == (6, 7, 3) and bgr.dtype == np.uint8
    expected = {
        "bgr8": lambda p: p,
        "rgb8": lambda p: p[..., ::-1],
        "rgba8": lambda p: p[..., 2::-1],
        "bgra8": lambda p: p[..., :3],
        "mono8": lambda p: np.repeat(p[..., None], 3, axis=2),
        "mono16": lambda p: np.repeat((p >> 8).astype(np.uint8)[..., None], 3, axis=2),
    }[encoding](pixels)
    np.testing.assert_array_equal(bgr, expected)


def test_bgr_from_padded_view_works_with_opencv():
    pixels = random_pixels(np.random.default_rng(2), "bgr8", 10, 12)
    view = conv.image_to_bgr8(make_image(pixels, "bgr8", pad=5))
    np.testing.assert_array_equal(
        cv2.resize(view, (6, 5), interpolation=cv2.INTER_NEAREST),
        cv2.resize(pixels, (6, 5), interpolation=cv2.INTER_NEAREST),
    )


def _good(**changes) -> Image:
    msg = make_image(np.zeros((4, 5, 3), np.uint8), "bgr8")
    for k, v in changes.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"encoding": "yuv422"}, "unsupported image encoding 'yuv422'"),
        ({"encoding": ""}, "unsupported image encoding ''"),
        ({"encoding": "32FC1"}, "unsupported image encoding '32FC1'"),
        ({"height": 0}, "zero-size image"),
        ({"width": 0}, "zero-size image"),
        ({"step": 14}, "step 14 is smaller than width"),
        ({"data": bytes(59)}, "59 bytes, shorter than step\\*height = 15\\*4 = 60"),
        ({"data": b""}, "0 bytes, shorter than"),
        ({"height": 100000}, "shorter than step\\*height"),
    ],
)
def test_bad_raw_images_raise_specific_value_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        conv.image_to_bgr8(_good(**changes))


def _compressed(data: bytes, fmt: str = "jpeg") -> CompressedImage:
    msg = CompressedImage()
    msg.format = fmt
    msg.data = data
    return msg


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(fmt):
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    msg = conv.bgr8_to_compressed(img, fmt, quality=95)
    out = conv.compressed_to_bgr8(msg)
    assert out.shape == img.shape and out.dtype == np.uint8
    tol = 0 if fmt == "png" else 12
    assert np.abs(out.astype(int) - img.astype(int)).mean() <= tol


def test_compressed_accepts_image_transport_format_strings():
    img = np.full((8, 8, 3), 77, np.uint8)
    data = bytes(conv.bgr8_to_compressed(img, "png").data)
    for fmt in ("png", "bgr8; png compressed bgr8", "rgb8; jpeg compressed bgr8", ""):
        if "jpeg" in fmt:
            data_f = bytes(conv.bgr8_to_compressed(img, "jpeg").data)
        else:
            data_f = data
        assert conv.compressed_to_bgr8(_compressed(data_f, fmt)).shape == (8, 8, 3)


def test_bad_compressed_images_raise_specific_value_errors():
    jpeg = bytes(conv.bgr8_to_compressed(np.full((32, 32, 3), 99, np.uint8), "jpeg").data)
    png = bytes(conv.bgr8_to_compressed(np.full((32, 32, 3), 99, np.uint8), "png").data)
    cases = [
        (_compressed(b""), "no data"),
        (_compressed(jpeg, "h264"), "unsupported compressed image format 'h264'"),
        (_compressed(b"hello world, not an image"), "neither JPEG nor PNG"),
        (_compressed(jpeg[: len(jpeg) // 2]), "corrupt JPEG.*end-of-image"),
        (_compressed(jpeg[:4] + bytes(200) + b"\xff\xd9"), "corrupt JPEG"),
        (_compressed(png[:40], "png"), "corrupt PNG"),
    ]
    for msg, match in cases:
        with pytest.raises(ValueError, match=match):
            conv.compressed_to_bgr8(msg)


@pytest.mark.parametrize(
    "encoding, dtype, shape",
    [("mono16", np.uint16, (5, 7)), ("mono8", np.uint8, (5, 7)), ("bgr8", np.uint8, (5, 7, 3))],
)
def test_numpy_to_image_round_trips(encoding, dtype, shape):
    pixels = np.random.default_rng(4).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = conv.numpy_to_image(pixels, encoding, header)
    assert msg.header == header and msg.encoding == encoding
    assert msg.is_bigendian == int(sys.byteorder == "big" and pixels.itemsize > 1)
    assert msg.step == shape[1] * (shape[2] if len(shape) == 3 else 1) * pixels.itemsize
    np.testing.assert_array_equal(conv.image_to_numpy(msg), pixels)
    # a non-native byte order is declared as such and reads back equal
    swapped = pixels.astype(pixels.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))
    np.testing.assert_array_equal(conv.image_to_numpy(conv.numpy_to_image(swapped, encoding)), pixels)


def test_numpy_to_image_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="does not fit encoding 'mono16'"):
        conv.numpy_to_image(np.zeros((3, 3), np.uint8), "mono16")
    with pytest.raises(ValueError, match="does not fit encoding 'bgr8'"):
        conv.numpy_to_image(np.zeros((3, 3, 4), np.uint8), "bgr8")
    with pytest.raises(ValueError, match="unsupported image encoding 'rgb16'"):
        conv.numpy_to_image(np.zeros((3, 3, 3), np.uint16), "rgb16")


def make_instances() -> Instances:
    h, w = 20, 30
    masks = np.zeros((4, h, w), bool)
    masks[0, 2:10, 2:12] = True  # score 0.9
    masks[1, 5:15, 8:20] = True  # score 0.8, overlaps 0
    masks[2, 3:8, 3:8] = True  # score 0.7, fully covered by 0 -> invisible
    masks[3, 15:19, 22:29] = True  # score 0.6
    return Instances(
        boxes=np.array([[2, 2, 12, 10], [8, 5, 20, 15], [3, 3, 8, 8], [22, 15, 29, 19]], np.float32),
        scores=np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        class_ids=np.array([0, 2, 1, 4], np.int64),
        masks=masks,
        image_size=(h, w),
        class_names=["person", "chair", "couch", "dining table", "toilet"],
    )


def test_render_outputs_drops_invisible_instances_and_renumbers():
    r = conv.render_outputs(make_instances())
    assert len(r.instances) == 3
    np.testing.assert_allclose(r.instances.scores, [0.9, 0.8, 0.6])
    assert set(np.unique(r.instance_ids)) == {0, 1, 2, 3}
    assert r.instance_ids.dtype == np.uint16 and r.semantic.dtype == np.uint8
    # higher score owns the overlap
    assert r.instance_ids[6, 9] == 1
    # semantic = class_id + 1 of the owner
    for k in (1, 2, 3):
        assert np.all(r.semantic[r.instance_ids == k] == r.instances.class_ids[k - 1] + 1)
    assert np.all(r.semantic[r.instance_ids == 0] == 0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 6),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_overlap_resolution_matches_reference_painting(n, h, w, seed):
    """The instance-id image (fast path in core.masks) equals painting masks from lowest to highest score,
    ties to the lower index."""
    from instaseg_ros.core.masks import resolve_overlaps

    rng = np.random.default_rng(seed)
    masks = rng.random((n, h, w)) > 0.5
    scores = rng.choice([0.2, 0.5, 0.9], size=n)  # many ties
    expected = np.zeros((h, w), np.uint16)
    for i in sorted(range(n), key=lambda i: (scores[i], -i)):
        expected[masks[i]] = i + 1
    np.testing.assert_array_equal(resolve_overlaps(masks, scores, (h, w)), expected)
    ids8 = resolve_overlaps(masks, scores, (h, w), dtype=np.uint8)
    assert ids8.dtype == np.uint8
    np.testing.assert_array_equal(ids8, expected)


def test_overlap_resolution_with_more_than_255_instances():
    from instaseg_ros.core.masks import resolve_overlaps

    rng = np.random.default_rng(12)
    masks = rng.random((300, 6, 7)) > 0.97
    scores = rng.random(300)
    expected = np.zeros((6, 7), np.uint16)
    for i in np.argsort(scores, kind="stable"):
        expected[masks[i]] = i + 1
    ids = resolve_overlaps(masks, scores, (6, 7))
    assert ids.dtype == np.uint16 and ids.max() > 255
    np.testing.assert_array_equal(ids, expected)
    with pytest.raises(ValueError, match="too many instances for a uint8 id image: 300 > 255"):
        resolve_overlaps(masks, scores, (6, 7), dtype=np.uint8)


def test_lookup_matches_fancy_indexing():
    from instaseg_ros.core.masks import lookup

    rng = np.random.default_rng(13)
    for ids in (
        rng.integers(0, 30, (9, 11)).astype(np.uint8),
        rng.integers(0, 300, (9, 11)).astype(np.uint16),
    ):
        table = rng.integers(0, 200, int(ids.max()) + 1).astype(np.uint8)
        out = lookup(table, ids)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, table[ids])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_render_outputs_keeps_exactly_the_visible_instances(n, seed):
    rng = np.random.default_rng(seed)
    h, w = 16, 20
    masks = np.zeros((n, h, w), bool)
    for i in range(n):  # random rectangles: some get fully covered by higher scores
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        masks[i, y0 : y0 + rng.integers(1, h), x0 : x0 + rng.integers(1, w)] = True
    inst = Instances(np.zeros((n, 4)), rng.random(n), rng.integers(0, 5, n), masks, (h, w), list("abcde"))
    ids = inst.instance_id_image()
    visible = [i for i in range(n) if np.any(ids == i + 1)]
    r = conv.render_outputs(inst)
    np.testing.assert_array_equal(r.keep, visible)
    np.testing.assert_array_equal(r.instances.scores, inst.scores[visible])
    assert set(np.unique(r.instance_ids).tolist()) - {0} == set(range(1, len(visible) + 1))
    for k, i in enumerate(visible, start=1):  # same pixels, renumbered
        np.testing.assert_array_equal(r.instance_ids == k, ids == i + 1)


def test_render_outputs_empty():
    r = conv.render_outputs(Instances.empty((4, 6), ["a"]))
    assert len(r.instances) == 0 and r.instance_ids.shape == (4, 6) and not r.instance_ids.any()


@pytest.fixture
def vision_msgs():
    return pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: source /work/main/env.sh")


@pytest.mark.parametrize("fmt", ["name", "index"])
def test_instances_to_detections(fmt, vision_msgs):
    r = conv.render_outputs(make_instances())
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 5, 6
    arr = conv.instances_to_detections(r.instances, header, class_id_format=fmt)
    assert arr.header == header and len(arr.detections) == 3
    for k, det in enumerate(arr.detections, start=1):
        assert det.header == header
        assert det.id == str(k) and np.any(r.instance_ids == k)
        x1, y1, x2, y2 = r.instances.boxes[k - 1]
        assert det.bbox.center.position.x == pytest.approx((x1 + x2) / 2)
        assert det.bbox.center.position.y == pytest.approx((y1 + y2) / 2)
        assert det.bbox.size_x == pytest.approx(x2 - x1) and det.bbox.size_y == pytest.approx(y2 - y1)
        hyp = det.results[0].hypothesis
        assert hyp.score == pytest.approx(float(r.instances.scores[k - 1]))
        cid = int(r.instances.class_ids[k - 1])
        assert hyp.class_id == (r.instances.class_names[cid] if fmt == "name" else str(cid + 1))
    # the node's path: the unselected instances plus the visible indices give the same message
    assert conv.instances_to_detections(r.source, header, class_id_format=fmt, keep=r.keep) == arr
    with pytest.raises(ValueError, match="class_id_format"):
        conv.instances_to_detections(r.instances, header, class_id_format="bogus")


def test_label_info_maps_wire_indices_to_names(vision_msgs):
    msg = conv.label_info(["person", "chair"], threshold=0.25)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, "background"),
        (1, "person"),
        (2, "chair"),
    ]
    assert msg.threshold == pytest.approx(0.25)


def test_agrees_with_cv_bridge_when_installed():
    cv_bridge = pytest.importorskip("cv_bridge", reason="cv_bridge not installed (ROS distro package)")
    bridge = cv_bridge.CvBridge()
    rng = np.random.default_rng(5)
    for encoding in sorted(CHANNELS):
        msg = make_image(random_pixels(rng, encoding, 6, 9), encoding, pad=4)
        np.testing.assert_array_equal(conv.image_to_numpy(msg), bridge.imgmsg_to_cv2(msg))
        np.testing.assert_array_equal(conv.image_to_bgr8(msg)[..., :3], bridge.imgmsg_to_cv2(msg, "bgr8"))
