"""Per-instance 3D from depth: known geometry, holes, thin objects, encodings, size ratios, errors."""

from __future__ import annotations

import numpy as np
import pytest

from instaseg_ros.geometry import (
    Depth3DParams,
    Intrinsics,
    back_project,
    decode_depth,
    instances_3d,
    integer_ratio,
)
from instaseg_ros.geometry.raycast import render_boxes

INTR = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
CM = 0.01


def to_mm(depth_m: np.ndarray) -> np.ndarray:
    """32FC1 metres (NaN = none) -> 16UC1 millimetres (0 = none)."""
    return np.rint(np.nan_to_num(depth_m, nan=0.0) * 1000.0).astype(np.uint16)


def test_render_boxes_front_face_is_exact():
    depth, ids = render_boxes(INTR, np.array([[-0.3, -0.2, 2.0, 0.3, 0.2, 2.5]]), background_z=5.0)
    assert depth[240, 320] == pytest.approx(2.0)
    assert ids[240, 320] == 1 and ids[0, 0] == 0 and depth[0, 0] == pytest.approx(5.0)
    # face edge at x = 0.3 m, z = 2 m -> u = 525 * 0.15 + 319.5 = 398.25
    assert ids[240, 398] == 1 and ids[240, 399] == 0


def test_box_face_on_centre_and_size():
    """A box centred on the optical axis shows only its front face: centre (0, 0, z_front), size w x h."""
    depth, ids = render_boxes(INTR, np.array([[-0.3, -0.2, 2.0, 0.3, 0.2, 2.5]]), background_z=5.0)
    res = instances_3d(ids, depth, "32FC1", INTR, Depth3DParams(max_m=4.5))
    assert res.ids.tolist() == [1] and res.n_too_few == 0
    np.testing.assert_allclose(res.centers[0], [0.0, 0.0, 2.0], atol=CM)
    np.testing.assert_allclose(res.sizes[0], [0.6, 0.4, 0.0], atol=3 * CM)


def test_tilted_plane_centre():
    """Plane z = z0 + t * y over a pixel rectangle centred on the principal point: centre (0, 0, z0)."""
    z0, t = 3.0, 0.5
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    z = z0 / (1.0 - t * (v - INTR.cy) / INTR.fy)  # ray y = z * (v - cy) / fy meets z = z0 + t * y
    ids = np.zeros((480, 640), np.uint16)
    ids[140:340, 220:420] = 1  # rows 140..339 / cols 220..419: centred on (319.5, 239.5)
    res = instances_3d(ids, z.astype(np.float32), "32FC1", INTR, Depth3DParams(max_m=8.0))
    np.testing.assert_allclose(res.centers[0], [0.0, 0.0, z0], atol=CM)
    pts = back_project(u[ids == 1], v[ids == 1], z[ids == 1].astype(np.float32), INTR)
    extent = np.percentile(pts, 98, axis=0) - np.percentile(pts, 2, axis=0)
    np.testing.assert_allclose(res.sizes[0, 2], extent[2], atol=3 * CM)  # depth extent of the slope


def _scene(n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n boxes at 1.5..4 m in front of a 6 m wall; returns depth (m), ids, boxes."""
    boxes = []
    for i in range(n):
        x, y, z = (i % 3 - 1) * 0.8, (i // 3 - 0.5) * 0.9, 1.5 + 0.5 * i
        boxes.append([x - 0.25, y - 0.3, z, x + 0.25, y + 0.3, z + 0.4])
    depth, ids = render_boxes(INTR, np.array(boxes), background_z=6.0)
    return depth, ids, np.array(boxes)


def test_holes_do_not_move_centres():
    depth, ids, _ = _scene()
    clean = instances_3d(ids, depth, "32FC1", INTR)
    holed = depth.copy()
    rng = np.random.default_rng(0)
    holed[rng.random(holed.shape) < 0.2] = 0.0  # 20 % invalid pixels
    res = instances_3d(ids, holed, "32FC1", INTR)
    assert res.ids.tolist() == clean.ids.tolist() == [1, 2, 3, 4, 5, 6]
    # within one pixel's footprint (6.7 mm at 3.5 m): an even split of columns can move a median by one
    np.testing.assert_allclose(res.centers, clean.centers, atol=CM)
    np.testing.assert_allclose(res.sizes, clean.sizes, atol=2 * CM)


@pytest.mark.parametrize("erode_px", [0, 2])
def test_background_behind_thin_object_is_rejected(erode_px):
    """A 12 px pole at 2 m; its mask bleeds 3 px onto the 4 m wall on each side (a third of the mask)."""
    depth, ids = render_boxes(INTR, np.array([[-0.0229, -0.6, 2.0, 0.0229, 0.6, 2.05]]), background_z=4.0)
    assert 11 <= np.count_nonzero(ids[240]) <= 13
    import cv2

    bled = cv2.dilate((ids == 1).astype(np.uint8), np.ones((1, 7), np.uint8)).astype(np.uint16)
    assert np.count_nonzero(bled[240]) >= np.count_nonzero(ids[240]) + 6
    res = instances_3d(bled, depth, "32FC1", INTR, Depth3DParams(erode_px=erode_px))
    assert res.centers[0, 2] == pytest.approx(2.0, abs=CM)
    assert res.sizes[0, 2] < 0.05  # no wall points in the extent
    # without the robust band the median would still hold but the extent would reach the wall
    loose = instances_3d(bled, depth, "32FC1", INTR, Depth3DParams(erode_px=erode_px, min_gap_m=1e6))
    assert loose.sizes[0, 2] > 1.5


def test_16uc1_and_32fc1_give_identical_results():
    depth, ids, _ = _scene()
    mm = to_mm(depth)
    a = instances_3d(ids, mm, "16UC1", INTR, with_points=True)
    b = instances_3d(ids, mm.astype(np.float32) / np.float32(1000.0), "32FC1", INTR, with_points=True)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.centers, b.centers, atol=1e-6)
    np.testing.assert_allclose(a.sizes, b.sizes, atol=1e-6)
    np.testing.assert_allclose(a.points, b.points, atol=1e-6)
    big_endian = mm.astype(">u2")  # image_to_numpy hands big-endian data over as a '>u2' view
    c = instances_3d(ids, big_endian, "16UC1", INTR)
    np.testing.assert_array_equal(c.centers, a.centers)


def test_box_centres_match_ground_truth():
    depth, ids, boxes = _scene()
    res = instances_3d(ids, to_mm(depth), "16UC1", INTR)
    # ground truth: the median of the exact visible points of each box
    v, u = np.mgrid[0:480, 0:640]
    for j, k in enumerate(res.ids):
        sel = ids == k
        truth = np.median(back_project(u[sel], v[sel], depth[sel], INTR), axis=0)
        np.testing.assert_allclose(res.centers[j], truth, atol=CM)
        assert boxes[k - 1, 2] - CM <= res.centers[j, 2] <= boxes[k - 1, 5] + CM


def test_caller_boxes_give_the_same_result_as_the_scan():
    depth, ids, _ = _scene()
    from scipy import ndimage

    sl = ndimage.find_objects(ids)
    xyxy = np.array([[s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1] for s in sl], np.float32)
    a = instances_3d(ids, depth, "32FC1", INTR, with_points=True)
    b = instances_3d(ids, depth, "32FC1", INTR, boxes=xyxy, with_points=True)
    np.testing.assert_array_equal(a.ids, b.ids)
    # other crops sample other pixels for the statistics: equal within a pixel's footprint
    np.testing.assert_allclose(a.centers, b.centers, atol=0.5 * CM)
    np.testing.assert_array_equal(a.point_ids, b.point_ids)  # the cloud's grid is global: identical
    np.testing.assert_array_equal(a.points, b.points)


def test_too_few_points_are_counted_not_reported():
    depth, ids, _ = _scene(2)
    depth = depth.copy()
    depth[ids == 2] = np.nan  # instance 2: no depth at all
    ids = ids.copy()
    ids[10:13, 10:13] = 7  # instance 7: nine pixels
    res = instances_3d(ids, depth, "32FC1", INTR, Depth3DParams(min_points=20))
    assert res.ids.tolist() == [1]
    assert res.n_too_few == 2


def test_points_are_decimated_on_the_pixel_grid_and_inside_the_band():
    depth, ids, _ = _scene(3)
    d = 4
    res = instances_3d(ids, depth, "32FC1", INTR, Depth3DParams(points_decimation=d), with_points=True)
    full = instances_3d(ids, depth, "32FC1", INTR, Depth3DParams(points_decimation=1), with_points=True)
    assert res.points.dtype == np.float32 and res.points.shape[1] == 3
    assert len(res.points) == len(res.point_ids)
    assert set(res.point_ids.tolist()) == {1, 2, 3}
    u = np.rint(res.points[:, 0] * INTR.fx / res.points[:, 2] + INTR.cx).astype(int)
    v = np.rint(res.points[:, 1] * INTR.fy / res.points[:, 2] + INTR.cy).astype(int)
    assert np.all(u % d == 0) and np.all(v % d == 0)
    assert len(full.points) / len(res.points) == pytest.approx(d * d, rel=0.15)
    for j, k in enumerate(res.ids):
        z = res.points[res.point_ids == k, 2]
        assert np.all(np.abs(z - res.centers[j, 2]) <= 0.5)


def test_coarser_depth_with_integer_ratio():
    """Colour 640x480, depth 320x240 (its own K): the id image is sampled, the result matches."""
    depth, ids, _ = _scene()
    ref = instances_3d(ids, depth, "32FC1", INTR)
    half = Intrinsics(INTR.fx / 2, INTR.fy / 2, (INTR.cx - 0.5) / 2, (INTR.cy - 0.5) / 2, 320, 240)
    d_half, _ = render_boxes(half, _scene()[2], background_z=6.0)
    res = instances_3d(ids, d_half, "32FC1", half)
    assert res.ids.tolist() == ref.ids.tolist()
    np.testing.assert_allclose(res.centers, ref.centers, atol=CM)


def test_finer_depth_with_integer_ratio_and_camera_info_of_another_size():
    depth, ids, boxes = _scene()
    ref = instances_3d(ids, depth, "32FC1", INTR)
    # depth at 1280x960 (ratio 2); its CameraInfo describes the same camera at 640x480 (rescaled)
    fine = Intrinsics(INTR.fx * 2, INTR.fy * 2, INTR.cx * 2 + 0.5, INTR.cy * 2 + 0.5, 1280, 960)
    d_fine, _ = render_boxes(fine, boxes, background_z=6.0)
    res = instances_3d(ids, d_fine, "32FC1", fine)
    np.testing.assert_allclose(res.centers, ref.centers, atol=CM)
    res2 = instances_3d(ids, d_fine, "32FC1", INTR)  # K for 640x480, image 1280x960: scaled up
    np.testing.assert_allclose(res2.centers, ref.centers, atol=CM)


def test_sizes_without_a_ratio_are_an_error_naming_both():
    ids = np.zeros((480, 640), np.uint16)
    with pytest.raises(ValueError, match=r"colour image size 640x480 and depth image size 500x400"):
        instances_3d(ids, np.ones((400, 500), np.float32), "32FC1", Intrinsics(500, 500, 250, 200, 500, 400))
    with pytest.raises(ValueError, match="no whole-number ratio"):
        integer_ratio((480, 640), (240, 213), "a", "b")
    with pytest.raises(ValueError, match="size 640x480 and b size 640x240"):
        integer_ratio((480, 640), (240, 640), "a", "b")  # 2x in y, 1x in x
    assert integer_ratio((480, 640), (240, 320), "a", "b") == 2
    assert integer_ratio((240, 320), (720, 960), "a", "b") == 3


def test_validation_errors_are_specific():
    ids = np.zeros((4, 4), np.uint16)
    with pytest.raises(ValueError, match="unsupported depth encoding '8UC1'.*16UC1.*32FC1"):
        instances_3d(ids, np.zeros((4, 4), np.uint8), "8UC1", INTR)
    with pytest.raises(ValueError, match="16UC1 depth must be uint16, got float32"):
        decode_depth(np.zeros((4, 4), np.float32), "16UC1", 0.1, 5.0)
    with pytest.raises(ValueError, match="32FC1 depth must be float32, got uint16"):
        decode_depth(np.zeros((4, 4), np.uint16), "32FC1", 0.1, 5.0)
    with pytest.raises(ValueError, match="missing or zero: fx=0.0 fy=0.0"):
        Intrinsics.from_k([0.0] * 9, 640, 480)
    with pytest.raises(ValueError, match="must have 9 values, got 4"):
        Intrinsics.from_k([1.0, 0.0, 0.0, 1.0], 640, 480)
    with pytest.raises(ValueError, match="non-finite"):
        Intrinsics.from_k([np.nan, 0, 1, 0, 1, 1, 0, 0, 1], 640, 480)
    with pytest.raises(ValueError, match="need an image size"):
        Intrinsics.from_k([500, 0, 320, 0, 500, 240, 0, 0, 1], 0, 0)
    with pytest.raises(ValueError, match="0 <= min < max"):
        instances_3d(ids, np.zeros((4, 4), np.float32), "32FC1", INTR, Depth3DParams(min_m=3.0, max_m=1.0))
    with pytest.raises(ValueError, match="erode_px must be >= 0"):
        Depth3DParams(erode_px=-1).check()
    with pytest.raises(ValueError, match="extent_percentiles"):
        Depth3DParams(extent_percentiles=(50.0, 10.0)).check()
    with pytest.raises(ValueError, match="points_decimation"):
        Depth3DParams(points_decimation=0).check()
    with pytest.raises(ValueError, match="must be 2D"):
        instances_3d(ids, np.zeros((4, 4, 1), np.float32), "32FC1", INTR)


def test_decode_depth_marks_every_kind_of_invalid():
    raw = np.array([0.0, np.nan, np.inf, -np.inf, -1.0, 0.1, 0.5, 3.0, 12.0], np.float32)
    z = decode_depth(raw, "32FC1", 0.3, 10.0)
    assert np.isnan(z[:6]).all() and np.isnan(z[8])
    np.testing.assert_allclose(z[6:8], [0.5, 3.0])
    mm = decode_depth(np.array([0, 299, 300, 10000, 10001], np.uint16), "16UC1", 0.3, 10.0)
    assert np.isnan(mm[[0, 1, 4]]).all()
    np.testing.assert_allclose(mm[2:4], [0.3, 10.0])
    assert np.isnan(decode_depth(np.zeros(2, np.uint16), "16UC1", 0.0, 10.0)).all()  # 0 = no return


def test_empty_and_background_only_frames():
    res = instances_3d(np.zeros((48, 64), np.uint16), np.ones((48, 64), np.float32), "32FC1", INTR)
    assert len(res) == 0 and res.centers.shape == (0, 3) and res.n_too_few == 0


def test_structured_light_noise_keeps_centres_within_5_cm():
    """Noise sigma = 5 mm * z^2 (2 cm at 2 m, 8 cm at 4 m), 20 % holes, masks bleeding 2 px onto the wall."""
    import cv2

    depth, ids, _ = _scene()
    clean = instances_3d(ids, depth, "32FC1", INTR)
    rng = np.random.default_rng(1)
    noisy = depth + rng.normal(0.0, 1.0, depth.shape).astype(np.float32) * 0.005 * depth**2
    noisy[rng.random(depth.shape) < 0.2] = np.nan
    bled = cv2.dilate(ids, np.ones((5, 5), np.uint8))  # every mask grows 2 px (ids do not touch)
    res = instances_3d(bled, to_mm(noisy), "16UC1", INTR)
    assert res.ids.tolist() == clean.ids.tolist()
    err = np.linalg.norm(res.centers - clean.centers, axis=1)
    assert err.max() < 0.05, err
    assert np.all(res.sizes[:, 2] < 0.6)  # boxes 0.4 m deep: the 6 m wall seen through the bleed is cut
