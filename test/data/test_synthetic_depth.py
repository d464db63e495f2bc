"""Synthetic depth: geometry of the room and objects, the true camera, 3D ground truth, noise, bag topics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instaseg_ros.data.synthetic import (
    BagSpec,
    DepthNoise,
    SynthConfig,
    encode_depth,
    generate_scene,
    generate_sequence,
    write_synthetic_bag,
)
from instaseg_ros.data.synthetic.config import _HEIGHT_M
from instaseg_ros.geometry.depth import back_project, decode_depth

CFG = SynthConfig(width=320, height=240, min_objects=3, max_objects=5, depth=True)


def test_depth_leaves_colour_masks_and_labels_unchanged():
    for seed in ((0, 0), (0, 3), (9, 1)):
        a, b = generate_scene(seed, SynthConfig(depth=True)), generate_scene(seed)
        assert b.depth is None and b.camera is None and b.centers_3d is None
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.id_map, b.id_map)
        np.testing.assert_array_equal(a.labels, b.labels)
    fa, fb = (
        generate_sequence(4, 5, CFG),
        generate_sequence(4, 5, SynthConfig(**{**vars(CFG), "depth": False})),
    )
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.id_map, y.id_map)


def _floor_height(sc) -> np.ndarray:
    """y (m, optical frame: down) of the background pixels of the bottom image row."""
    row = sc.depth.shape[0] - 1
    u = np.flatnonzero(sc.id_map[row] == 0)
    return back_project(u, np.full(len(u), row), sc.depth[row, u], sc.camera)[:, 1]


def test_scene_geometry_is_one_metric_world():
    checked = 0
    for i in range(6):
        sc = generate_scene((1, i), CFG)
        cam = sc.camera
        assert sc.depth.shape == sc.id_map.shape and sc.depth.dtype == np.float32
        assert np.isfinite(sc.depth).all() and sc.depth.min() > 0.5
        assert cam.fx == cam.fy == pytest.approx((320 / 2) / np.tan(np.radians(69.4) / 2))
        # the floor is one horizontal plane, 1.0-1.5 m below the camera
        floor = _floor_height(sc)
        if len(floor) > 10:
            assert floor.std() < 1e-3 and 1.0 <= np.median(floor) <= 1.5
        for k, lab in enumerate(sc.labels):
            x0, y0, z0, x1, y1, z1 = sc.boxes_3d[k]
            lo, hi = _HEIGHT_M[int(lab)]
            # an object's metric height from depth and its pixel rows is the height it was drawn with
            assert lo * 0.9 < y1 - y0 < hi * 1.1, (i, k, lab, y1 - y0)
            if len(floor) > 10:
                assert y1 == pytest.approx(np.median(floor), abs=2e-3)  # it stands on the floor
            # the visible surface lies inside the whole object's box; its median depth is the centre z
            m = sc.id_map == k + 1
            assert z0 - 1e-4 <= sc.depth[m].min() and sc.depth[m].max() <= z1 + 1e-4
            assert sc.centers_3d[k, 2] == pytest.approx(np.median(sc.depth[m]), abs=1e-5)
            assert (sc.sizes_3d[k] >= 0).all()
            checked += 1
    assert checked >= 12


def test_sequence_frames_have_their_own_true_camera():
    """Pan and zoom change K, not the world: with each frame's own K the floor stays at one height
    and an object in full view keeps its 3D centre (with the base canvas' K neither would hold)."""
    moving = []
    for s in range(4):
        frames = generate_sequence((2, s), 8, CFG)
        first_box, centres, floors = {}, {}, []
        for f in frames:
            assert f.camera.width == 320 and f.camera.height == 240
            floors.append(np.median(_floor_height(f)))
            for k, t in enumerate(f.track_ids.tolist()):
                # the camera does not move: the object's 3D box is the same in every frame
                np.testing.assert_array_equal(first_box.setdefault(t, f.boxes_3d[k]), f.boxes_3d[k])
                rows, cols = np.nonzero(f.id_map == k + 1)
                if rows.min() > 0 and cols.min() > 0 and rows.max() < 239 and cols.max() < 319:
                    centres.setdefault(t, []).append(f.centers_3d[k])
        assert np.ptp(floors) < 0.03, floors
        moving += [np.ptp(np.asarray(c), axis=0).max() for c in centres.values() if len(c) >= 3]
        assert np.ptp([f.camera.fx for f in frames]) > 1.0  # the zoom changes the focal length
        assert np.ptp([f.camera.cx for f in frames]) > 1.0  # the pan moves the principal point
    assert len(moving) >= 5 and max(moving) < 0.1, moving  # nearest-pixel resampling: a few cm


def test_noise_sigma_grows_with_z_squared_and_holes_follow_the_model():
    rng = np.random.default_rng(0)
    grey = np.full((200, 200, 3), 128, np.uint8)
    plain = DepthNoise(edge_hole_prob=0.0, dark_hole_prob=0.0, dropout=0.0)
    for z in (1.0, 2.0, 4.0):
        n = plain.apply(np.full((200, 200), z, np.float32), grey, rng)
        assert not np.isnan(n).any()
        assert np.mean(n) == pytest.approx(z, abs=3 * 0.0015 * z * z / 200)
        assert np.std(n) == pytest.approx(0.0015 * z * z, rel=0.03)
    # range: beyond max_m and nearer than min_m there is no return
    assert np.isnan(plain.apply(np.full((10, 10), 9.0, np.float32), grey[:10, :10], rng)).all()
    assert np.isnan(plain.apply(np.full((10, 10), 0.2, np.float32), grey[:10, :10], rng)).all()
    # edges: holes only within edge_px of a depth step, at the given rate
    step = np.full((200, 200), 3.0, np.float32)
    step[:, :100] = 1.0
    edge = DepthNoise(edge_hole_prob=0.5, dark_hole_prob=0.0, dropout=0.0, edge_px=2)
    holes = np.isnan(edge.apply(step, grey, rng))
    band = np.zeros_like(holes)
    band[:, 97:103] = True
    assert not holes[~band].any()
    assert holes[band].mean() == pytest.approx(0.5, abs=0.05)
    # a floor seen at a grazing angle is no edge
    ramp = np.repeat(np.linspace(1.0, 8.0, 200, dtype=np.float32)[:, None], 200, axis=1)
    assert not edge.edges(ramp).any()
    # dark surfaces and random dropout
    dark = grey.copy()
    dark[:100] = 10
    d = DepthNoise(edge_hole_prob=0.0, dark_hole_prob=0.9, dropout=0.01)
    holes = np.isnan(d.apply(np.full((200, 200), 2.0, np.float32), dark, rng))
    assert holes[:100].mean() == pytest.approx(0.9 + 0.1 * 0.01, abs=0.02)
    assert holes[100:].mean() == pytest.approx(0.01, abs=0.005)
    with pytest.raises(ValueError, match="probabilities"):
        DepthNoise(dropout=1.5)


def test_depth_encodings_round_trip():
    z = np.array([[0.5, 1.2344, np.nan], [70.0, 2.0, 0.0]], np.float32)
    mm = encode_depth(z, "16UC1")
    assert mm.dtype == np.uint16 and mm.tolist() == [[500, 1234, 0], [0, 2000, 0]]
    back = decode_depth(mm, "16UC1", 0.1, 60.0)
    assert back[0, 1] == pytest.approx(1.234) and np.isnan(back[0, 2]) and np.isnan(back[1, 0])
    f = encode_depth(z, "32FC1")
    assert f.dtype == np.float32 and np.isnan(f[0, 2]) and f[0, 1] == np.float32(1.2344)
    with pytest.raises(ValueError, match="16UC1"):
        encode_depth(z, "mono8")


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_bag_has_depth_topics_and_3d_ground_truth(tmp_path, encoding):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from instaseg_ros.data.bag_io import bag_topics
    from instaseg_ros.evaluation.gt_tools import load_ground_truth

    spec = BagSpec(num_frames=4, sequence_length=2, depth=encoding, write_images=True)
    bag, gt_path = write_synthetic_bag(tmp_path, seed=5, config=CFG, spec=spec)
    topics = bag_topics(bag)
    assert topics[spec.depth_topic] == ("sensor_msgs/msg/Image", 4)
    assert topics[spec.depth_info_topic] == ("sensor_msgs/msg/CameraInfo", 4)
    assert topics[spec.image_topic] == ("sensor_msgs/msg/Image", 4)
    gt = json.loads(gt_path.read_text())
    assert gt["info"]["depth_encoding"] == encoding and gt["info"]["depth_topic"] == spec.depth_topic
    assert len(load_ground_truth(gt_path).stamps) == 4
    images = {im["stamp_ns"]: im for im in gt["images"]}
    ts = get_typestore(Stores.ROS2_HUMBLE)
    seen = 0
    with Reader(bag) as r:
        conns = [
            c for c in r.connections if c.topic in (spec.depth_topic, spec.depth_info_topic, spec.info_topic)
        ]
        for conn, _t, raw in r.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            im = images[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec]
            assert msg.header.frame_id == spec.frame_id
            if conn.msgtype.endswith("CameraInfo"):  # colour and depth: the true K of that frame
                c = im["camera"]
                np.testing.assert_allclose(msg.k, [c["fx"], 0, c["cx"], 0, c["fy"], c["cy"], 0, 0, 1])
                continue
            assert msg.encoding == encoding and (msg.height, msg.width) == (240, 320)
            dtype = np.uint16 if encoding == "16UC1" else np.float32
            depth = decode_depth(np.frombuffer(msg.data, dtype).reshape(240, 320), encoding, 0.3, 8.0)
            for a in (a for a in gt["annotations"] if a["image_id"] == im["id"]):
                x, y, z = a["center_3d"]
                u = int(round(im["camera"]["fx"] * x / z + im["camera"]["cx"]))
                v = int(round(im["camera"]["fy"] * y / z + im["camera"]["cy"]))
                x0, y0, w, h = a["bbox"]
                if z < 4.0 and x0 + 2 < u < x0 + w - 2 and y0 + 2 < v < y0 + h - 2:
                    win = depth[v - 2 : v + 3, u - 2 : u + 3]
                    if np.isfinite(win).sum() >= 5:  # not a hole; the surface there is within the relief
                        assert abs(np.nanmedian(win) - z) < 0.3, (a["id"], np.nanmedian(win), z)
                        seen += 1
    assert seen >= 1
    assert (tmp_path / "depth" / "000001.png").is_file()


def test_estimator_on_noisy_depth_recovers_the_ground_truth_centres(tmp_path):
    """The 3D estimator of :mod:`instaseg_ros.geometry` on the bag's noisy depth, with the true masks,
    is within a few centimetres of the ground truth at 1-4 m (the issue's target: median < 5 cm)."""
    from instaseg_ros.evaluation.gt_tools import annotation_mask
    from instaseg_ros.geometry import Intrinsics, instances_3d

    cfg = SynthConfig(width=640, height=480, min_objects=4, max_objects=6, depth=True)
    spec = BagSpec(num_frames=6, sequence_length=1, depth="16UC1", write_images=True)
    _, gt_path = write_synthetic_bag(tmp_path, seed=12, config=cfg, spec=spec)
    gt = json.loads(gt_path.read_text())
    import cv2

    errors = []
    for im in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == im["id"]]
        ids = np.zeros((480, 640), np.uint16)
        for k, a in enumerate(anns, 1):
            ids[annotation_mask(a, 480, 640)] = k
        depth = cv2.imread(str(tmp_path / im["depth_file_name"]), cv2.IMREAD_UNCHANGED)
        c = im["camera"]
        res = instances_3d(ids, depth, "16UC1", Intrinsics(c["fx"], c["fy"], c["cx"], c["cy"], 640, 480))
        for k, centre in zip(res.ids.tolist(), res.centers):
            truth = np.asarray(anns[k - 1]["center_3d"])
            if 1.0 <= truth[2] <= 4.0:
                errors.append(float(np.linalg.norm(centre - truth)))
    assert len(errors) >= 5
    assert np.median(errors) < 0.05, errors
