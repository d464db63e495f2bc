"""Tracker behaviour on constructed sequences (coloured rectangles, 10 Hz stamps)."""

from __future__ import annotations

import numpy as np
import pytest
from tracking_scenes import COLOURS, PERIOD_NS, frame, run

from instaseg_ros.core.instances import Instances
from instaseg_ros.tracking import IdAllocator, IoUMatcher, Tracker, TrackerConfig


def obj(key, x, y=80, w=40, h=60, **kw) -> dict:
    return {"key": key, "box": (x, y, x + w, y + h), **kw}


def test_every_detection_gets_a_fresh_id_at_once_and_keeps_it_while_moving():
    frames = [[obj("a", 20 + 4 * k), obj("b", 150 + 3 * k, 20, colour=COLOURS[1]), obj("c", 250, 150 - 2 * k)]
              for k in range(20)]
    tracker = Tracker(TrackerConfig(min_hits=3))
    out = run(tracker, frames)
    assert out[0] == {"a": 1, "b": 2, "c": 3}  # ids on the very first frame, before confirmation
    assert all(o == out[0] for o in out)
    assert tracker.stats.births == 3 and tracker.stats.deaths == 0
    assert tracker.stats.live == 3 and tracker.stats.confirmed == 3 and tracker.stats.lost == 0


def test_crossing_objects_keep_their_ids():
    # a moves right, b moves left on the same row; b passes in front of a, which is hidden
    # while they overlap by more than half
    frames = []
    for k in range(30):
        xa, xb = 20 + 8 * k, 250 - 8 * k
        a = obj("a", xa, colour=COLOURS[0])
        b = obj("b", xb, colour=COLOURS[1])
        frames.append([b] if abs(xa - xb) < 20 else [a, b])
    out = run(Tracker(), frames)
    assert any(len(o) == 1 for o in out), "the scene must hide a for a few frames"
    assert {o["a"] for o in out if "a" in o} == {out[0]["a"]}
    assert {o["b"] for o in out} == {out[0]["b"]}


def test_occlusion_shorter_than_max_age_keeps_the_id():
    # constant velocity: the Kalman prediction carries the track through 10 missing frames
    frames = [[obj("a", 10 + 6 * k)] if not 10 <= k < 20 else [] for k in range(30)]
    tracker = Tracker(TrackerConfig(max_age=15))
    out = run(tracker, frames)
    assert {o["a"] for o in out if o} == {1}
    assert tracker.stats.reidentifications == 1 and tracker.stats.births == 1


def test_occlusion_longer_than_max_age_gives_a_new_id():
    frames = [[obj("a", 100)] if not 5 <= k < 15 else [] for k in range(20)]
    out = run(Tracker(TrackerConfig(max_age=5)), frames)
    assert out[0]["a"] == 1 and out[-1]["a"] == 2


def test_reappearance_away_from_the_prediction_is_reidentified_by_colour():
    # a static object hides for 8 frames and comes back shifted by 60% of its width (box IoU
    # with the prediction too low for motion matching); a new object of another colour next to it
    # must not take the old id
    before = [[obj("a", 100, colour=COLOURS[2])] for _ in range(6)]
    gap = [[] for _ in range(8)]
    after = [[obj("a", 124, colour=COLOURS[2]), obj("x", 200, colour=COLOURS[4])] for _ in range(3)]
    tracker = Tracker(TrackerConfig(max_age=20))
    out = run(tracker, before + gap + after)
    assert out[-1]["a"] == out[0]["a"]
    assert out[-1]["x"] != out[0]["a"]
    assert tracker.stats.appearance_reids == 1

    # without the image (no appearance cue) the same sequence gives a new id
    tracker = Tracker(TrackerConfig(max_age=20))
    ids = []
    for k, objects in enumerate(before + gap + after):
        inst, _ = frame(objects)
        ids.append(tracker.update(inst, None, k * PERIOD_NS).tolist())
    assert ids[-1][0] != ids[0][0]


def test_a_different_colour_is_not_reidentified():
    before = [[obj("a", 100, colour=COLOURS[2])] for _ in range(6)]
    after = [[obj("a", 124, colour=COLOURS[4])] for _ in range(2)]
    out = run(Tracker(TrackerConfig(max_age=20)), before + [[] for _ in range(8)] + after)
    assert out[-1]["a"] != out[0]["a"]


def test_detection_missing_for_one_frame():
    frames = [[obj("a", 30 + 5 * k), obj("b", 200, 150, colour=COLOURS[1])] for k in range(12)]
    frames[6] = [frames[6][1]]  # a missed once
    out = run(Tracker(), frames)
    assert {o["a"] for o in out if "a" in o} == {out[0]["a"]}
    assert {o["b"] for o in out} == {out[0]["b"]}


def test_unconfirmed_track_is_not_kept():
    # seen twice (min_hits 3), then gone for 2 frames, then back at the same place: new id
    frames = [[obj("a", 100)], [obj("a", 100)], [], [], [obj("a", 100)]]
    tracker = Tracker(TrackerConfig(min_hits=3))
    out = run(tracker, frames)
    assert out[0]["a"] == out[1]["a"] == 1 and out[-1]["a"] == 2
    assert tracker.stats.deaths == 1


def test_time_jump_backwards_resets_without_reusing_ids():
    frames = [[obj("a", 50 + 2 * k), obj("b", 200, colour=COLOURS[1])] for k in range(10)]
    tracker = Tracker()
    first = run(tracker, frames)
    assert tracker.track_count == 2
    second = run(tracker, frames[:3], start=0)  # the bag loops: stamps go back to the start
    assert tracker.stats.time_jumps == 1 and tracker.stats.resets == 1
    assert set(second[0].values()).isdisjoint(first[-1].values())
    assert second[0] == second[-1]
    # an explicit reset also starts over with fresh ids
    tracker.reset()
    third = run(tracker, frames[:1], start=100)
    assert set(third[0].values()).isdisjoint(set(second[0].values()) | set(first[0].values()))


def test_dropped_frames_lengthen_the_prediction():
    # 8 px per frame on a 30 px box, then three of every four frames dropped (32 px jumps).
    # No image, so only the motion model can keep the id.
    tracker = Tracker()
    ids = []
    for k in [*range(10), 12, 16, 20]:
        inst, _ = frame([obj("a", 10 + 8 * k, w=30)])
        ids.append(int(tracker.update(inst, None, k * PERIOD_NS)[0]))
    assert set(ids) == {1}


def test_class_consistent_matching():
    # the same box changes class: a new id; low-score detections extend tracks of their class only
    frames = [[obj("a", 100, cls=0)] for _ in range(5)] + [[obj("b", 100, cls=2)]]
    out = run(Tracker(), frames)
    assert out[-1]["b"] != out[0]["a"]


def test_low_score_detection_extends_a_track_but_starts_new_ones_too():
    frames = [[obj("a", 60 + 3 * k, score=0.9)] for k in range(5)]
    frames += [
        [obj("a", 75 + 3 * k, score=0.3), obj("n", 220, 20, score=0.3, colour=COLOURS[3])] for k in range(3)
    ]
    out = run(Tracker(TrackerConfig(high_threshold=0.5, low_threshold=0.1)), frames)
    assert {o["a"] for o in out} == {1}
    assert out[-1]["n"] == out[5]["n"] == 2


def test_disabled_gives_per_frame_indices():
    tracker = Tracker(TrackerConfig(enabled=False))
    out = run(tracker, [[obj("a", 10 + 50 * k), obj("b", 200, 150, score=0.5)] for k in range(3)])
    assert out == [{"a": 1, "b": 2}] * 3


def test_configure_at_run_time():
    objs = [obj("a", 10), obj("b", 100, colour=COLOURS[1])]
    tracker = Tracker()
    run(tracker, [objs] * 3)
    tracker.configure(TrackerConfig(max_age=5))  # a threshold change keeps the tracks
    assert run(tracker, [objs], start=3)[0] == {"a": 1, "b": 2} and tracker.stats.resets == 0
    tracker.configure(TrackerConfig(mask_stride=4))  # a new mask grid starts over
    assert tracker.track_count == 0 and tracker.stats.resets == 1
    assert run(tracker, [objs] * 2, start=4)[-1] == {"a": 3, "b": 4}
    tracker.configure(TrackerConfig(enabled=False))
    assert tracker.track_count == 0
    assert run(tracker, [objs], start=6)[0] == {"a": 1, "b": 2}
    tracker.configure(TrackerConfig())
    assert run(tracker, [objs], start=7)[0] == {"a": 5, "b": 6}


def test_ids_wrap_past_65535_and_skip_live_ids():
    alloc = IdAllocator(start=65534)
    assert alloc.allocate(3, alive=[1]) == [65534, 65535, 2]
    assert alloc.allocate(1, alive=[3, 4]) == [5]
    with pytest.raises(RuntimeError, match="free"):
        IdAllocator().allocate(2, alive=range(1, 65535))

    tracker = Tracker(first_id=65534)
    objs = [obj("a", 10), obj("b", 70, colour=COLOURS[1]), obj("c", 130, colour=COLOURS[2])]
    out = run(tracker, [objs, objs])
    assert out[0] == out[1] == {"a": 65534, "b": 65535, "c": 1}
    out = run(tracker, [objs + [obj("d", 200, colour=COLOURS[3])]], start=2)
    assert out[0]["d"] == 2


def test_empty_frames_and_image_size_change():
    tracker = Tracker()
    assert tracker.update(Instances.empty((H := 48, 64)), None, 0).shape == (0,)
    inst, image = frame([obj("a", 10, 5, 20, 20)], size=(H, 64))
    assert tracker.update(inst, image, PERIOD_NS).tolist() == [1]
    inst, image = frame([obj("a", 10, 5, 20, 20)], size=(96, 128))
    assert tracker.update(inst, image, 2 * PERIOD_NS).tolist() == [2]  # new size: reset
    assert tracker.stats.resets == 1


def test_bad_input_is_a_clear_error():
    tracker = Tracker()
    inst, image = frame([obj("a", 10)])
    with pytest.raises(ValueError, match="image_bgr must be uint8"):
        tracker.update(inst, image[:, :-1], 0)
    inst.boxes[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        tracker.update(inst, image, 0)
    with pytest.raises(ValueError, match="low_threshold"):
        TrackerConfig(high_threshold=0.3, low_threshold=0.5)
    with pytest.raises(ValueError, match="max_age"):
        TrackerConfig(max_age=-1)
    with pytest.raises(ValueError, match=r"unknown keys \['maxage'\]"):
        TrackerConfig.from_dict({"maxage": 3})
    assert TrackerConfig.from_dict({"max_age": 3}).max_age == 3


def test_iou_baseline_matches_frame_to_frame_only():
    frames = [[obj("a", 100)] if k != 3 else [] for k in range(6)]
    matcher = IoUMatcher()
    out = run(matcher, frames)
    assert out[0]["a"] == out[2]["a"] == 1 and out[4]["a"] == out[5]["a"] == 2
    out = run(matcher, frames[:1], start=0)  # stamps went back: reset
    assert matcher.stats.time_jumps == 1 and out[0]["a"] == 3
