"""core.stamps: header/Time -> integer nanoseconds and back, on real ROS message types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instaseg_ros.core.stamps import NS_PER_SEC, split_ns, stamp_ns


def test_rclpy_header_and_time_give_the_same_nanoseconds() -> None:
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    h = Header(stamp=Time(sec=1_700_000_123, nanosec=456_789_012), frame_id="cam")
    assert stamp_ns(h) == stamp_ns(h.stamp) == 1_700_000_123_456_789_012


def test_rosbags_header_round_trips_through_split_ns() -> None:
    from rosbags.typesys import Stores, get_typestore

    T = get_typestore(Stores.ROS2_HUMBLE).types
    ns = 1_700_000_000_999_999_999
    sec, nanosec = split_ns(ns)
    h = T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=""
    )
    assert (sec, nanosec) == (1_700_000_000, 999_999_999)
    assert stamp_ns(h) == ns


@given(st.integers(min_value=0, max_value=2**31 * NS_PER_SEC))
def test_split_ns_inverts_stamp_ns(ns: int) -> None:
    sec, nanosec = split_ns(ns)
    assert 0 <= nanosec < NS_PER_SEC
    from builtin_interfaces.msg import Time

    if sec < 2**31:  # Time.sec is int32
        assert stamp_ns(Time(sec=sec, nanosec=nanosec)) == ns


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(TypeError, match="expected a Time"):
        stamp_ns(object())
    with pytest.raises(ValueError, match="negative stamp"):
        split_ns(-1)
