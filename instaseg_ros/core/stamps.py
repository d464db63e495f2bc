"""ROS time stamps as integer nanoseconds, without importing ROS.

Stamps are compared as integers (``sec * 1e9 + nanosec``) everywhere in the package: the
node's frame bookkeeping, the live evaluation's matching of outputs to inputs, bag reading
and the stamp-keyed ground truth.
"""

from __future__ import annotations

from typing import Any

NS_PER_SEC = 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """Nanoseconds since the epoch of a ``builtin_interfaces/Time`` or a ``std_msgs/Header``.

    ``stamp``: any object with integer ``.sec`` and ``.nanosec`` (a Time, rclpy or rosbags
    message alike), or one whose ``.stamp`` has them (a Header). Raises ``TypeError`` for
    anything else.
    """
    t = stamp.stamp if hasattr(stamp, "stamp") else stamp
    try:
        return int(t.sec) * NS_PER_SEC + int(t.nanosec)
    except AttributeError:
        raise TypeError(
            f"stamp_ns: expected a Time (sec, nanosec) or a Header (stamp), got {type(stamp).__name__}"
        ) from None


def split_ns(ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of a non-negative stamp in nanoseconds (the fields of a Time message)."""
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"split_ns: negative stamp {ns} ns")
    return ns // NS_PER_SEC, ns % NS_PER_SEC
