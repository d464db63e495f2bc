"""Property tests of track ids: unique per frame, in 1..65535, never handed to a new track while alive."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tracking_scenes import COLOURS, PERIOD_NS, frame

from instaseg_ros.tracking import MAX_ID, IdAllocator, IoUMatcher, Tracker, TrackerConfig

SIZE = (96, 128)

objects = st.lists(
    st.fixed_dictionaries(
        {
            "x": st.integers(0, 110),
            "y": st.integers(0, 80),
            "w": st.integers(4, 40),
            "h": st.integers(4, 40),
            "cls": st.integers(0, 2),
            "score": st.floats(0.05, 1.0),
            "colour": st.sampled_from(COLOURS),
        }
    ),
    max_size=6,
)
sequences = st.lists(st.tuples(objects, st.sampled_from([1, 1, 1, 2, 0, -3])), min_size=1, max_size=20)


def _frame(objs: list[dict]):
    return frame(
        [{"box": (o["x"], o["y"], o["x"] + o["w"], o["y"] + o["h"]), **o} for o in objs], size=SIZE
    )


@settings(max_examples=60, deadline=None)
@given(
    seq=sequences,
    min_hits=st.integers(1, 3),
    max_age=st.integers(0, 6),
    first_id=st.sampled_from([1, MAX_ID - 4, MAX_ID]),
)
def test_tracker_ids_are_unique_and_never_reused_while_alive(seq, min_hits, max_age, first_id):
    tracker = Tracker(TrackerConfig(min_hits=min_hits, max_age=max_age), first_id=first_id)
    last_class: dict[int, int] = {}
    stamp = 10
    for objs, step in seq:
        stamp += step
        inst, image = _frame(objs)
        alive = set(tracker.alive_ids().tolist())
        births, resets = tracker.stats.births, tracker.stats.resets
        ids = tracker.update(inst, image, stamp * PERIOD_NS)
        assert ids.dtype == np.uint16 and len(ids) == len(inst)
        assert len(set(ids.tolist())) == len(ids)
        assert (ids >= 1).all()
        if tracker.stats.resets > resets:
            alive = set()
        continued = [i for i in ids.tolist() if i in alive]
        # a new track never takes an id that is still alive
        assert tracker.stats.births - births == len(ids) - len(continued)
        # a continued track keeps its class
        for k, i in enumerate(ids.tolist()):
            if i in alive:
                assert last_class[i] == int(inst.class_ids[k])
            last_class[i] = int(inst.class_ids[k])
        after = tracker.alive_ids().tolist()
        assert len(set(after)) == len(after)
        assert set(ids.tolist()) <= set(after)
        assert tracker.stats.live == len(ids)


@settings(max_examples=40, deadline=None)
@given(seq=sequences, first_id=st.sampled_from([1, MAX_ID - 2]))
def test_iou_baseline_ids_are_unique(seq, first_id):
    matcher = IoUMatcher(first_id=first_id)
    stamp = 10
    previous: set[int] = set()
    for objs, step in seq:
        stamp += step
        inst, image = _frame(objs)
        births = matcher.stats.births
        ids = matcher.update(inst, image, stamp * PERIOD_NS).tolist()
        assert len(set(ids)) == len(ids) and all(i >= 1 for i in ids)
        if step >= 0:
            assert matcher.stats.births - births == len(set(ids) - previous)
        previous = set(ids)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(1, MAX_ID),
    alive=st.sets(st.integers(1, MAX_ID), max_size=50),
    count=st.integers(0, 20),
)
def test_id_allocator_skips_alive_ids_and_wraps(start, alive, count):
    alloc = IdAllocator(start)
    out = alloc.allocate(count, alive)
    assert len(out) == len(set(out)) == count
    assert not set(out) & alive
    assert all(1 <= i <= MAX_ID for i in out)
    # ids come in counter order from ``start`` (wrapping), skipping only the alive ones
    expected, c = [], start
    while len(expected) < count:
        if c not in alive:
            expected.append(c)
        c = c % MAX_ID + 1
    assert out == expected
