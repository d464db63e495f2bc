"""rosbag2 image I/O: exact round trips, every supported encoding, and clear errors."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from instaseg_ros.data.bag_io import (
    BagError,
    BagImageWriter,
    TopicNotFoundError,
    bag_topics,
    image_msg_to_bgr,
    iter_bag_images,
    pinhole_camera_info,
    write_bag_images,
)
from instaseg_ros.data.synthetic import BagSpec, SynthConfig, iter_sequence_frames, write_synthetic_bag

TS = get_typestore(Stores.ROS2_JAZZY)
TOPIC = "/camera/color/image_raw"


def _frames(n=5, h=30, w=40, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (
            1_700_000_000_123_456_789 + i * 33_333_333,
            f"cam{i % 2}",
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        )
        for i in range(n)
    ]


def _header(stamp_ns, frame_id="f"):
    t = TS.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return TS.types["std_msgs/msg/Header"](stamp=t, frame_id=frame_id)


def _raw_msg(bgr, encoding, pad=0, stamp=0):
    if encoding == "rgb8":
        px = bgr[..., ::-1]
    elif encoding == "mono8":
        px = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None]
    elif encoding == "bgra8":
        px = np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 7, np.uint8)], axis=2)
    elif encoding == "rgba8":
        px = np.concatenate([bgr[..., ::-1], np.full(bgr.shape[:2] + (1,), 7, np.uint8)], axis=2)
    else:
        px = bgr
    h, w, c = px.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = px.reshape(h, -1)
    return TS.types["sensor_msgs/msg/Image"](
        header=_header(stamp),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * c + pad,
        data=rows.reshape(-1),
    )


def test_written_bag_reads_back_identical_pixels_stamps_and_frame_ids(tmp_path):
    frames = _frames()
    assert write_bag_images(tmp_path / "bag", frames, info_topic="/camera/color/camera_info") == 5
    got = list(iter_bag_images(tmp_path / "bag", TOPIC))
    assert [g[0] for g in got] == [f[0] for f in frames]
    assert [g[1] for g in got] == [f[1] for f in frames]
    for g, f in zip(got, frames):
        assert g[2].dtype == np.uint8 and g[2].shape == (30, 40, 3)
        np.testing.assert_array_equal(g[2], f[2])
    assert bag_topics(tmp_path / "bag")["/camera/color/camera_info"] == ("sensor_msgs/msg/CameraInfo", 5)
    # the single .mcap file works as well as the folder
    assert len(list(iter_bag_images(tmp_path / "bag" / "bag.mcap", TOPIC))) == 5


def test_camera_info_matches_image_stamp_and_intrinsics(tmp_path):
    info = pinhole_camera_info(40, 30)
    with BagImageWriter(tmp_path / "bag") as w:
        w.write(_frames(1)[0][2], 5_000_000_001, "cam", info)
    with Reader(tmp_path / "bag") as r:
        msgs = {c.topic: TS.deserialize_cdr(raw, c.msgtype) for c, _, raw in r.messages()}
    ci = msgs["/camera/color/camera_info"]
    assert (ci.width, ci.height, ci.header.frame_id) == (40, 30, "cam")
    assert ci.header.stamp.sec == 5 and ci.header.stamp.nanosec == 1
    assert ci.k[0] == pytest.approx(info.fx) and ci.k[2] == pytest.approx(19.5) and ci.k[8] == 1.0
    assert msgs[TOPIC].encoding == "bgr8" and msgs[TOPIC].step == 120


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "mono8", "bgra8", "rgba8"])
def test_raw_encodings_with_row_padding_through_a_bag(tmp_path, encoding):
    bgr = _frames(1, 9, 11)[0][2]
    path = tmp_path / "enc"
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    w.open()
    conn = w.add_connection(TOPIC, "sensor_msgs/msg/Image", typestore=TS)
    w.write(conn, 42, TS.serialize_cdr(_raw_msg(bgr, encoding, pad=5, stamp=42), "sensor_msgs/msg/Image"))
    w.close()
    ((stamp, _, img),) = list(iter_bag_images(path, TOPIC))
    assert stamp == 42
    expect = (
        cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if encoding == "mono8"
        else bgr
    )
    np.testing.assert_array_equal(img, expect)


def test_sqlite3_bags_are_read_too(tmp_path):
    frames = _frames(3)
    w = Writer(tmp_path / "db", version=8, storage_plugin=StoragePlugin.SQLITE3)
    w.open()
    conn = w.add_connection(TOPIC, "sensor_msgs/msg/Image", typestore=TS)
    for stamp, fid, img in frames:
        msg = _raw_msg(img, "bgr8", stamp=stamp)
        msg.header.frame_id = fid
        w.write(conn, stamp, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    w.close()
    got = list(iter_bag_images(tmp_path / "db", TOPIC))
    assert [(g[0], g[1]) for g in got] == [(f[0], f[1]) for f in frames]
    assert all(np.array_equal(g[2], f[2]) for g, f in zip(got, frames))


def test_mono16_big_and_little_endian():
    v = np.array([[0x1234, 0xFF00], [0x0100, 0x0000]], np.uint16)
    for big in (0, 1):
        data = v.astype(">u2" if big else "<u2").tobytes()
        msg = TS.types["sensor_msgs/msg/Image"](
            header=_header(0),
            height=2,
            width=2,
            encoding="mono16",
            is_bigendian=big,
            step=4,
            data=np.frombuffer(data, np.uint8),
        )
        np.testing.assert_array_equal(image_msg_to_bgr(msg)[..., 0], v >> 8)


def test_compressed_png_exact_and_jpeg_close(tmp_path):
    frames = [
        (i, "cam", np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 6, (30, 1, 3))) for i in range(2)
    ]
    write_bag_images(tmp_path / "png", frames, compressed="png")
    write_bag_images(tmp_path / "jpg", frames, compressed="jpeg")
    assert bag_topics(tmp_path / "png")[TOPIC][0] == "sensor_msgs/msg/CompressedImage"
    for (_, _, a), (_, _, f) in zip(iter_bag_images(tmp_path / "png", TOPIC), frames):
        np.testing.assert_array_equal(a, f)
    for (_, _, a), (_, _, f) in zip(iter_bag_images(tmp_path / "jpg", TOPIC), frames):
        assert np.abs(a.astype(int) - f).mean() < 3


def test_message_errors_are_specific():
    bgr = _frames(1, 4, 4)[0][2]
    msg = _raw_msg(bgr, "bgr8")
    msg.encoding = "32FC1"
    with pytest.raises(ValueError, match="32FC1"):
        image_msg_to_bgr(msg)
    short = _raw_msg(bgr, "bgr8")
    short.data = short.data[:-3]
    with pytest.raises(ValueError, match="do not fit"):
        image_msg_to_bgr(short)
    bad = TS.types["sensor_msgs/msg/CompressedImage"](
        header=_header(0), format="jpeg", data=np.frombuffer(b"nope", np.uint8)
    )
    with pytest.raises(ValueError, match="could not be decoded"):
        image_msg_to_bgr(bad)


def test_missing_topic_wrong_type_and_missing_bag(tmp_path):
    write_bag_images(tmp_path / "bag", _frames(2), info_topic="/info")
    with pytest.raises(TopicNotFoundError, match=r"'/nope' is not in .*/camera/color/image_raw"):
        list(iter_bag_images(tmp_path / "bag", "/nope"))
    with pytest.raises(BagError, match="CameraInfo"):
        list(iter_bag_images(tmp_path / "bag", "/info"))
    with pytest.raises(BagError, match="not found"):
        list(iter_bag_images(tmp_path / "missing", TOPIC))
    with pytest.raises(FileExistsError):
        BagImageWriter(tmp_path / "bag")
    BagImageWriter(tmp_path / "bag", overwrite=True).close()


def test_truncated_and_corrupt_bags_raise_bag_error(tmp_path):
    write_bag_images(tmp_path / "bag", _frames(4))
    mcap = tmp_path / "bag" / "bag.mcap"
    shutil.copytree(tmp_path / "bag", tmp_path / "cut")
    data = mcap.read_bytes()
    (tmp_path / "cut" / "bag.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="truncated"):
        list(iter_bag_images(tmp_path / "cut", TOPIC))
    shutil.copytree(tmp_path / "bag", tmp_path / "junk")
    (tmp_path / "junk" / "bag.mcap").write_bytes(b"\x00junk" * 50)
    with pytest.raises(BagError, match="not an mcap"):
        list(iter_bag_images(tmp_path / "junk", TOPIC))


def test_synthetic_bag_matches_its_ground_truth(tmp_path):
    cfg = SynthConfig(width=96, height=72)
    spec = BagSpec(num_frames=5, rate=30.0, sequence_length=3, write_images=True)
    bag, gt_path = write_synthetic_bag(tmp_path, seed=4, config=cfg, spec=spec)
    gt = json.loads(gt_path.read_text())
    got = list(iter_bag_images(bag, spec.image_topic))
    frames = list(iter_sequence_frames(4, 5, 3, cfg))
    assert [g[0] for g in got] == [im["stamp_ns"] for im in gt["images"]]
    assert {g[1] for g in got} == {"camera_color_optical_frame"}
    assert np.diff([g[0] for g in got]).tolist() == [33_333_333, 33_333_334, 33_333_333, 33_333_333]
    for g, f, im in zip(got, frames, gt["images"]):
        np.testing.assert_array_equal(g[2], f.image)
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / im["file_name"])), f.image)
    assert len(gt["annotations"]) == sum(len(f) for f in frames)
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3, 4, 5]


def test_synthetic_bag_with_compressed_images(tmp_path):
    cfg = SynthConfig(width=96, height=72)
    spec = BagSpec(num_frames=2, sequence_length=2, compressed="png")
    bag, gt_path = write_synthetic_bag(tmp_path, seed=1, config=cfg, spec=spec)
    topic = "/camera/color/image_raw/compressed"
    assert bag_topics(bag)[topic] == ("sensor_msgs/msg/CompressedImage", 2)
    assert json.loads(gt_path.read_text())["info"]["image_topic"] == topic
    frames = list(iter_sequence_frames(1, 2, 2, cfg))
    for (_, _, img), f in zip(iter_bag_images(bag, topic), frames):
        np.testing.assert_array_equal(img, f.image)  # png is lossless
    with pytest.raises(ValueError, match="compressed"):
        write_synthetic_bag(tmp_path / "x", config=cfg, spec=BagSpec(num_frames=1, compressed="webp"))


def test_interrupted_recording_is_recovered_up_to_the_damage(tmp_path):
    frames = _frames(24, 120, 160)  # 57.6 kB each: rosbags closes a chunk every 1 MiB -> 2 chunks
    write_bag_images(tmp_path / "bag", frames, info_topic="/info")
    mcap = tmp_path / "bag" / "bag.mcap"
    data = mcap.read_bytes()
    (tmp_path / "cut").mkdir()
    cut = tmp_path / "cut" / "bag.mcap"
    cut.write_bytes(data[: int(len(data) * 0.9)])  # the second chunk and the summary are lost
    with pytest.raises(BagError, match="truncated"):
        list(iter_bag_images(cut, TOPIC))
    got = list(iter_bag_images(cut, TOPIC, recover=True))
    assert 10 <= len(got) < 24
    for g, f in zip(got, frames):
        assert (g[0], g[1]) == (f[0], f[1])
        np.testing.assert_array_equal(g[2], f[2])
    with pytest.raises(TopicNotFoundError, match="recoverable topics"):
        list(iter_bag_images(cut, "/other", recover=True))
    with pytest.raises(BagError, match="CameraInfo"):
        list(iter_bag_images(cut, "/info", recover=True))
    # an intact bag reads the same with or without recover
    assert len(list(iter_bag_images(tmp_path / "bag", TOPIC, recover=True))) == 24
