"""3D output messages: wire layout (type hashes, PointCloud2 offsets), CDR round trips, depth parsing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 Python messages) not importable")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from instaseg_ros.core.instances import Instances  # noqa: E402
from instaseg_ros.geometry import Depth3DParams, Intrinsics, Objects3D, instances_3d  # noqa: E402
from instaseg_ros.geometry.raycast import render_boxes  # noqa: E402
from instaseg_ros.ros import conversions_3d as c3  # noqa: E402

# RIHS01 type hashes of vision_msgs 4.1.1 (ros-perception/vision_msgs, branch ros2), computed with
# rosidl_generator_type_description from the upstream .msg files; Detection3D's also appears in
# an independent public message listing. Equal hashes = the same wire type as the distro package.
UPSTREAM_HASHES = {
    "BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray": "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "ObjectHypothesisWithPose": "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
}
INTR = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)


def header(sec: int = 12, nsec: int = 345, frame: str = "camera_color_optical_frame") -> Header:
    h = Header()
    h.stamp.sec, h.stamp.nanosec, h.frame_id = sec, nsec, frame
    return h


def scene():
    """Three boxes, their Instances (score order = id order) and the 3D result with points."""
    boxes = np.array(
        [[-0.9, -0.3, 2.0, -0.4, 0.3, 2.4], [-0.2, -0.3, 2.5, 0.2, 0.3, 2.9], [0.4, -0.3, 3.0, 0.9, 0.3, 3.4]]
    )
    depth, ids = render_boxes(INTR, boxes, background_z=6.0)
    masks = np.stack([ids == k for k in (1, 2, 3)])
    inst = Instances(
        boxes=np.zeros((3, 4)), scores=[0.9, 0.8, 0.5], class_ids=[56, 0, 61], masks=masks,
        image_size=(480, 640), class_names=[f"c{i}" for i in range(80)],
    )  # fmt: skip
    objs = instances_3d(ids, depth, "32FC1", INTR, Depth3DParams(points_decimation=8), with_points=True)
    return ids, inst, objs


@pytest.mark.parametrize("name", sorted(UPSTREAM_HASHES))
def test_stand_in_type_hashes_equal_upstream(name):
    import vision_msgs

    share = Path(vision_msgs.__file__).resolve()
    # <prefix>/lib/python3.X/site-packages/vision_msgs/__init__.py -> <prefix>/share/vision_msgs/msg
    desc = share.parents[4] / "share" / "vision_msgs" / "msg" / f"{name}.json"
    got = json.loads(desc.read_text())["type_hashes"][0]["hash_string"]
    assert got == UPSTREAM_HASHES[name]


def test_detection3d_array_fields_and_round_trip():
    ids, inst, objs = scene()
    table = c3.IdTable.from_instances(inst)
    h3 = c3.header_3d(header(), "camera_depth_optical_frame")
    msg = deserialize_message(serialize_message(c3.detections_3d(objs, table, h3)), Detection3DArray)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
    assert msg.header.frame_id == "camera_depth_optical_frame"
    assert [d.id for d in msg.detections] == ["1", "2", "3"]
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == ["c56", "c0", "c61"]
    assert [round(d.results[0].hypothesis.score, 6) for d in msg.detections] == [0.9, 0.8, 0.5]
    for j, d in enumerate(msg.detections):
        assert d.header.frame_id == "camera_depth_optical_frame"
        c, s = d.bbox.center.position, d.bbox.size
        np.testing.assert_allclose([c.x, c.y, c.z], objs.centers[j], rtol=1e-6)
        np.testing.assert_allclose([s.x, s.y, s.z], objs.sizes[j], rtol=1e-6)
        assert d.bbox.center.orientation.w == 1.0
        assert d.results[0].pose.pose.position.z == c.z
    index = c3.IdTable.from_instances(inst, class_id_format="index")
    assert index.class_text[1:] == ["57", "1", "62"]


def test_track_ids_select_the_rows():
    _, inst, _ = scene()
    table = c3.IdTable.from_instances(inst, ids=np.array([7, 3, 12]))
    assert table.class_text[7] == "c56" and table.class_text[3] == "c0" and table.class_text[12] == "c61"
    assert table.score[12] == pytest.approx(0.5) and table.score[0] == 0.0
    with pytest.raises(ValueError, match="one per instance"):
        c3.IdTable.from_instances(inst, ids=np.array([1, 2]))


def test_point_cloud_layout_and_round_trip():
    _, inst, objs = scene()
    table = c3.IdTable.from_instances(inst)
    msg = deserialize_message(serialize_message(c3.point_cloud(objs, table, header())), PointCloud2)
    layout = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert layout == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("instance_id", 12, PointField.UINT16, 1),
        ("class_id", 14, PointField.UINT16, 1),
    ]
    n = len(objs.points)
    assert n > 100
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, n, 16, 16 * n)
    assert msg.is_dense and not msg.is_bigendian and len(msg.data) == 16 * n
    rec = c3.point_cloud_to_numpy(msg)
    np.testing.assert_array_equal(np.stack([rec["x"], rec["y"], rec["z"]], 1), objs.points)
    np.testing.assert_array_equal(rec["instance_id"], objs.point_ids)
    # class_id on the wire = class index + 1 (as in ~/semantic_mask and ~/label_info)
    np.testing.assert_array_equal(rec["class_id"], np.array([0, 57, 1, 62])[objs.point_ids])
    # raw bytes: the first point's x at offset 0, its instance id at 12
    raw = bytes(msg.data)
    assert np.frombuffer(raw[0:4], "<f4")[0] == objs.points[0, 0]
    assert np.frombuffer(raw[12:14], "<u2")[0] == objs.point_ids[0]


def test_empty_point_cloud():
    _, inst, _ = scene()
    empty = instances_3d(np.zeros((48, 64), np.uint16), np.ones((48, 64), np.float32), "32FC1", INTR)
    msg = c3.point_cloud(empty, c3.IdTable.from_instances(inst), header())
    assert msg.width == 0 and len(msg.data) == 0 and msg.point_step == 16


def test_markers_clear_then_box_and_label_per_instance():
    _, inst, objs = scene()
    msg = c3.markers(objs, c3.IdTable.from_instances(inst), header(frame="depth_optical"))
    msg = deserialize_message(serialize_message(msg), MarkerArray)
    assert msg.markers[0].action == Marker.DELETEALL
    boxes = [m for m in msg.markers[1:] if m.ns == c3.MARKER_NS_BOX]
    labels = [m for m in msg.markers[1:] if m.ns == c3.MARKER_NS_LABEL]
    assert [m.id for m in boxes] == [m.id for m in labels] == [1, 2, 3]
    assert all(m.type == Marker.CUBE and m.action == Marker.ADD for m in boxes)
    assert all(m.type == Marker.TEXT_VIEW_FACING for m in labels)
    assert labels[0].text == "#1 c56 0.90"
    assert boxes[1].pose.position.z == pytest.approx(float(objs.centers[1, 2]))
    assert boxes[1].scale.x == pytest.approx(float(objs.sizes[1, 0]))
    assert labels[1].pose.position.y < boxes[1].pose.position.y  # above the box (optical y is down)
    assert all(m.header.frame_id == "depth_optical" for m in msg.markers)


def test_semantic_confidence_image():
    ids, inst, _ = scene()
    conf = c3.confidence_image(ids, c3.IdTable.from_instances(inst))
    assert conf.dtype == np.uint8 and conf.shape == ids.shape
    assert conf[ids == 0].max() == 0
    assert set(np.unique(conf[ids == 1])) == {230} and set(np.unique(conf[ids == 3])) == {128}
    with pytest.raises(ValueError, match="id image holds id 3 but the table has 2 rows"):
        c3.confidence_image(ids, c3.IdTable.from_instances(inst.select(np.array([0, 1]))))


def make_depth(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    h, w = pixels.shape
    px = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    rows = np.zeros((h, w * px.itemsize + pad), np.uint8)
    rows[:, : w * px.itemsize] = px.view(np.uint8).reshape(h, -1)
    msg = Image()
    msg.height, msg.width, msg.encoding, msg.is_bigendian = h, w, encoding, int(bigendian)
    msg.step = rows.shape[1]
    msg.data = rows.tobytes()
    return msg


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_image_parsing(bigendian):
    mm = np.arange(12, dtype=np.uint16).reshape(3, 4) * 500
    got = c3.depth_image_to_numpy(make_depth(mm, "16UC1", pad=6, bigendian=bigendian))
    np.testing.assert_array_equal(got, mm)
    m = (mm / 1000.0).astype(np.float32)
    np.testing.assert_array_equal(c3.depth_image_to_numpy(make_depth(m, "32FC1", bigendian=bigendian)), m)


def test_depth_input_errors():
    with pytest.raises(ValueError, match="unsupported depth encoding 'rgb8'"):
        c3.depth_image_to_numpy(make_depth(np.zeros((2, 2), np.uint16), "rgb8"))
    short = make_depth(np.zeros((2, 2), np.uint16), "16UC1")
    short.data = bytes(short.data)[:5]
    with pytest.raises(ValueError, match="shorter than step\\*height"):
        c3.depth_image_to_numpy(short)
    info = CameraInfo()
    info.width, info.height = 640, 480
    with pytest.raises(ValueError, match="missing or zero"):
        c3.intrinsics_from_camera_info(info)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    assert c3.intrinsics_from_camera_info(info) == INTR
    info.width = info.height = 0
    assert c3.intrinsics_from_camera_info(info, depth_shape=(480, 640)) == INTR
    with pytest.raises(ValueError, match="empty frame_id"):
        c3.header_3d(header(), "")


def test_published_ids_map_frame_indices_to_track_ids_in_every_3d_message():
    _, inst, objs = scene()
    table = c3.IdTable.from_instances(inst)
    track = np.array([400, 7, 65535], np.uint16)  # frame index k -> track[k - 1]
    want = [str(int(track[k - 1])) for k in objs.ids.tolist()]
    det = c3.detections_3d(objs, table, header(), ids=track)
    assert [d.id for d in det.detections] == want
    mk = c3.markers(objs, table, header(), ids=track)
    assert [str(m.id) for m in mk.markers[1:] if m.ns == c3.MARKER_NS_BOX] == want
    assert mk.markers[2].text.startswith(f"#{want[0]} ")
    if len(objs.points) == 0:
        objs = Objects3D(objs.ids, objs.centers, objs.sizes, objs.n_points,
                            points=np.zeros((3, 3), np.float32), point_ids=objs.ids.copy())  # fmt: skip
    pts = c3.point_cloud_to_numpy(c3.point_cloud(objs, table, header(), ids=track))
    assert set(pts["instance_id"].tolist()) <= set(track.tolist())
    np.testing.assert_array_equal(pts["instance_id"], track[objs.point_ids.astype(int) - 1])
