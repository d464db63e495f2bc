"""The colour/depth stamp synchroniser: nearest stamp within tolerance, buffer, camera info, counters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instaseg_ros.geometry import DepthSync

MS = 1_000_000


def test_pairs_with_the_nearest_depth_within_tolerance():
    sync = DepthSync(tolerance_ns=20 * MS)
    for t in (0, 33, 66, 100):
        sync.add_depth(t * MS, f"d{t}")
        sync.add_info(t * MS, f"i{t}")
    m = sync.match(40 * MS)
    assert (m.depth, m.info, m.dt_ns) == ("d33", "i33", -7 * MS)
    assert sync.match(60 * MS).depth == "d66"
    assert sync.match(50 * MS).depth == "d66"  # 16 ms from 66, 17 ms from 33
    assert sync.match(121 * MS) is None  # 21 ms past the newest
    assert sync.match(120 * MS).depth == "d100"  # exactly at the tolerance
    assert sync.counters() == {"paired": 4, "unpaired": 1, "no_info": 0}


def test_equal_distance_prefers_the_earlier_depth():
    sync = DepthSync(tolerance_ns=10 * MS)
    sync.add_depth(10 * MS, "a")
    sync.add_depth(20 * MS, "b")
    assert sync.match(15 * MS).depth == "a"


def test_unpaired_frames_are_counted():
    sync = DepthSync(tolerance_ns=5 * MS)
    assert sync.match(0) is None  # nothing buffered yet
    sync.add_depth(100 * MS, "d")
    assert sync.match(50 * MS) is None
    assert sync.match(104 * MS).depth == "d"
    assert (sync.paired, sync.unpaired) == (1, 2)


def test_buffer_keeps_only_the_newest_frames_and_accepts_out_of_order_arrival():
    sync = DepthSync(tolerance_ns=1 * MS, buffer_size=3)
    for t in (10, 30, 20, 40):  # 20 arrives late; 10 is then the oldest and dropped
        sync.add_depth(t * MS, t)
    assert sync.match(10 * MS) is None
    assert [sync.match(t * MS).depth for t in (20, 30, 40)] == [20, 30, 40]
    sync.add_depth(40 * MS, "again")  # same stamp: the newer message replaces the older
    assert sync.match(40 * MS).depth == "again"


def test_camera_info_of_the_same_stamp_else_the_newest():
    sync = DepthSync(tolerance_ns=10 * MS)
    sync.add_depth(0, "d0")
    m = sync.match(0)
    assert m.info is None and sync.no_info == 1  # depth without CameraInfo: counted
    sync.add_info(5 * MS, "i5")
    sync.add_info(3 * MS, "i3")  # older, arriving later: not the "newest"
    sync.add_depth(3 * MS, "d3")
    sync.add_depth(8 * MS, "d8")
    assert sync.match(3 * MS).info == "i3"  # exact stamp
    assert sync.match(8 * MS).info == "i5"  # no info at 8 ms: the newest one
    assert sync.no_info == 1


def test_invalid_settings():
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        DepthSync(tolerance_ns=-1)
    with pytest.raises(ValueError, match="buffer size must be >= 1"):
        DepthSync(tolerance_ns=0, buffer_size=0)


@given(
    depth=st.lists(st.integers(0, 10**9), min_size=0, max_size=30, unique=True),
    colour=st.integers(0, 10**9),
    tol=st.integers(0, 10**8),
    size=st.integers(1, 12),
)
def test_matches_brute_force(depth, colour, tol, size):
    """The match is the nearest of the newest ``size`` stamps (earlier on ties) if within ``tol``."""
    sync = DepthSync(tolerance_ns=tol, buffer_size=size)
    for t in depth:
        sync.add_depth(t, t)
    expect = None
    if depth:
        kept = _kept(depth, size)
        best = min(kept, key=lambda t: (abs(t - colour), t))
        expect = best if abs(best - colour) <= tol else None
    m = sync.match(colour)
    assert (None if m is None else m.depth) == expect


def _kept(arrivals: list[int], size: int) -> list[int]:
    """Reference buffer: after each arrival, drop the oldest stamp while more than ``size`` are held."""
    held: list[int] = []
    for t in arrivals:
        held.append(t)
        held.sort()
        while len(held) > size:
            held.pop(0)
    return held
