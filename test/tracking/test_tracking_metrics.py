"""MOT metrics on hand-made sequences whose values are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instaseg_ros.evaluation.tracking_metrics import TrackFrame, frame_distances, tracking_metrics

A = [0, 0, 10, 10]
B = [50, 50, 60, 60]


def boxes_frame(ids, boxes, cls=None) -> TrackFrame:
    return TrackFrame(ids=ids, boxes=np.array(boxes, float).reshape(-1, 4), class_ids=cls)


def seq(*frames) -> list[TrackFrame]:
    return [boxes_frame(*f) for f in frames]


def test_perfect_tracking():
    gt = seq(([1, 2], [A, B]), ([1, 2], [A, B]), ([1, 2], [A, B]))
    pred = seq(([5, 9], [A, B]), ([5, 9], [A, B]), ([5, 9], [A, B]))
    m = tracking_metrics({"s": (gt, pred)})["overall"]
    assert m["mota"] == 1.0 and m["idf1"] == 1.0 and m["id_switches"] == 0 and m["fragmentations"] == 0
    assert m["num_gt"] == 6 and m["num_gt_tracks"] == 2 and m["mean_iou"] == 1.0


def test_one_id_switch():
    gt = seq(*[([1], [A])] * 4)
    pred = seq(([7], [A]), ([7], [A]), ([8], [A]), ([8], [A]))
    m = tracking_metrics({"s": (gt, pred)})["sequences"]["s"]
    assert m["id_switches"] == 1
    assert m["mota"] == pytest.approx(1 - 1 / 4)
    assert m["idf1"] == pytest.approx(0.5)  # the best one-to-one id mapping covers 2 of 4 frames
    assert m["id_switches_per_100_frames"] == pytest.approx(25.0)


def test_missed_frame_is_a_fragmentation():
    gt = seq(*[([1], [A])] * 4)
    pred = seq(([3], [A]), ([], []), ([3], [A]), ([3], [A]))
    m = tracking_metrics({"s": (gt, pred)})["overall"]
    assert m["misses"] == 1 and m["fragmentations"] == 1 and m["id_switches"] == 0
    assert m["mota"] == pytest.approx(0.75)
    assert m["idf1"] == pytest.approx(2 * 3 / (4 + 3))
    assert m["recall"] == pytest.approx(0.75) and m["precision"] == 1.0


def test_false_positive_and_wrong_class():
    gt = seq(([1], [A], [0]), ([1], [A], [0]))
    # a stray box, then the right box with a wrong class
    pred = seq(([1, 2], [A, B], [0, 0]), ([1], [A], [1]))
    m = tracking_metrics({"s": (gt, pred)})["overall"]
    assert m["false_positives"] == 2 and m["misses"] == 1
    assert m["mota"] == pytest.approx(1 - 3 / 2)


def test_mask_iou_preferred_over_box_iou():
    # two L-shaped masks with the same box but little overlap: boxes match, masks do not
    h = w = 20
    m1 = np.zeros((1, h, w), bool)
    m1[0, :, :4] = True
    m1[0, -4:, :] = True
    m2 = np.zeros((1, h, w), bool)
    m2[0, :4, :] = True
    m2[0, :, -4:] = True
    box = [[0, 0, 20, 20]]
    gt = TrackFrame([1], boxes=box, masks=m1)
    pred = TrackFrame([1], boxes=box, masks=m2)
    assert np.isnan(frame_distances(gt, pred)[0, 0])  # mask IoU 32/288
    assert frame_distances(TrackFrame([1], boxes=box), pred)[0, 0] == 0.0  # box fallback
    assert frame_distances(gt, TrackFrame([1], masks=m1))[0, 0] == 0.0


def test_overall_sums_sequences_and_is_json_ready():
    good = (seq(*[([1], [A])] * 4), seq(*[([4], [A])] * 4))
    bad = (seq(*[([1], [A])] * 4), seq(([7], [A]), ([8], [A]), ([7], [A]), ([8], [A])))
    res = tracking_metrics({"good": good, "bad": bad})
    assert res["sequences"]["good"]["id_switches"] == 0
    assert res["sequences"]["bad"]["id_switches"] == 3
    assert res["overall"]["id_switches"] == 3 and res["overall"]["num_frames"] == 8
    assert res["overall"]["mota"] == pytest.approx(1 - 3 / 8)
    json.dumps(res, allow_nan=False)
    # no predictions at all: undefined ratios are null, not NaN
    empty = tracking_metrics({"e": (seq(([1], [A])), seq(([], [])))})["overall"]
    assert empty["mean_iou"] is None and empty["recall"] == 0.0
    json.dumps(empty, allow_nan=False)


def test_bad_input():
    with pytest.raises(ValueError, match="unique"):
        TrackFrame([1, 1], boxes=[A, B])
    with pytest.raises(ValueError, match="boxes or masks"):
        TrackFrame([1])
    with pytest.raises(ValueError, match="2 ground-truth frames but 1"):
        tracking_metrics({"s": (seq(([1], [A]), ([1], [A])), seq(([1], [A])))})


def test_frames_from_id_images_and_coco_agree():
    from instaseg_ros.core.masks import encode_rle
    from instaseg_ros.evaluation.tracking_metrics import frames_from_coco, frames_from_id_images

    img = np.zeros((2, 8, 10), np.uint16)
    img[0, 1:4, 1:4] = 7
    img[0, 5:8, 5:9] = 300
    img[1, 2:5, 1:4] = 7
    frames = frames_from_id_images(img, classes=[{7: 1, 300: 2}, {7: 1}])
    assert frames[0].ids.tolist() == [7, 300] and frames[0].class_ids.tolist() == [1, 2]
    assert frames[1].masks.sum() == 9
    with pytest.raises(ValueError, match="no class for ids \\[300\\]"):
        frames_from_id_images(img[:1], classes=[{7: 1}])

    gt = {
        "images": [{"id": 1, "height": 8, "width": 10}, {"id": 2, "height": 8, "width": 10}],
        "annotations": [
            {"id": k + 1, "image_id": iid, "category_id": cat, "track_id": tid, "segmentation": encode_rle(m)}
            for k, (iid, cat, tid, m) in enumerate(
                [(1, 1, 3, img[0] == 7), (1, 2, 4, img[0] == 300), (2, 1, 3, img[1] == 7)]
            )
        ],
    }
    gt_frames = frames_from_coco(gt, [1, 2])
    assert gt_frames[0].ids.tolist() == [3, 4] and gt_frames[1].ids.tolist() == [3]
    m = tracking_metrics({"s": (gt_frames, frames)})["overall"]
    assert m["idf1"] == 1.0 and m["mean_iou"] == 1.0 and m["num_gt"] == 3
    del gt["annotations"][0]["track_id"]
    with pytest.raises(ValueError, match="no track_id"):
        frames_from_coco(gt, [1])
