"""Pair colour frames with the depth frame of the nearest stamp (ROS-free; stamps in nanoseconds).

A small stand-in for message_filters' ApproximateTime for one colour stream and one
depth stream (with its CameraInfo): depth frames and camera infos are buffered
(the last ``buffer_size`` of each); :meth:`DepthSync.match` looks up the depth frame
whose stamp is nearest to a colour stamp within ``tolerance_ns`` and the camera info
with that depth frame's stamp (else the newest one received: intrinsics rarely change).
Counters feed the node's diagnostics.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Any


@dataclass
class SyncMatch:
    """A pairing: depth item, its camera info (None if none arrived yet), ``depth - colour`` stamp in ns."""

    depth: Any
    info: Any
    dt_ns: int


class _Buffer:
    """The newest ``size`` (stamp, item) pairs, kept sorted by stamp."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stamps: list[int] = []
        self.items: list[Any] = []

    def add(self, stamp_ns: int, item: Any) -> None:
        i = bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:  # same stamp again: newest wins
            self.items[i] = item
            return
        insort(self.stamps, stamp_ns)
        self.items.insert(i, item)
        if len(self.stamps) > self.size:  # drop the oldest
            del self.stamps[0], self.items[0]

    def nearest(self, stamp_ns: int) -> int | None:
        """Index of the entry nearest ``stamp_ns`` (the earlier one on a tie), None if empty."""
        if not self.stamps:
            return None
        i = bisect_left(self.stamps, stamp_ns)
        if i == 0:
            return 0
        if i == len(self.stamps):
            return i - 1
        return i - 1 if stamp_ns - self.stamps[i - 1] <= self.stamps[i] - stamp_ns else i


class DepthSync:
    """Nearest-stamp pairing of colour frames with buffered depth frames.

    Args:
        tolerance_ns: the largest ``|depth stamp - colour stamp|`` accepted (>= 0).
        buffer_size: depth frames (and camera infos) kept (>= 1).

    Counters: ``paired`` and ``unpaired`` colour frames (no depth within tolerance),
    ``no_info`` pairings without any camera info.
    """

    def __init__(self, tolerance_ns: int, buffer_size: int = 10) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"sync tolerance must be >= 0 ns, got {tolerance_ns}")
        if buffer_size < 1:
            raise ValueError(f"sync buffer size must be >= 1, got {buffer_size}")
        self.tolerance_ns = int(tolerance_ns)
        self._depth = _Buffer(buffer_size)
        self._info = _Buffer(buffer_size)
        self._newest_info: Any = None
        self._newest_info_stamp: int | None = None
        self.paired = 0
        self.unpaired = 0
        self.no_info = 0

    def add_depth(self, stamp_ns: int, depth: Any) -> None:
        """Buffer a depth frame (any object, e.g. the Image message)."""
        self._depth.add(int(stamp_ns), depth)

    def add_info(self, stamp_ns: int, info: Any) -> None:
        """Buffer a camera info of the depth stream."""
        stamp_ns = int(stamp_ns)
        self._info.add(stamp_ns, info)
        if self._newest_info_stamp is None or stamp_ns >= self._newest_info_stamp:
            self._newest_info, self._newest_info_stamp = info, stamp_ns

    def match(self, colour_stamp_ns: int) -> SyncMatch | None:
        """The depth frame nearest ``colour_stamp_ns`` within tolerance, or None (counted as unpaired)."""
        colour_stamp_ns = int(colour_stamp_ns)
        i = self._depth.nearest(colour_stamp_ns)
        if i is None or abs(self._depth.stamps[i] - colour_stamp_ns) > self.tolerance_ns:
            self.unpaired += 1
            return None
        d_stamp = self._depth.stamps[i]
        j = self._info.nearest(d_stamp)
        info = self._info.items[j] if j is not None and self._info.stamps[j] == d_stamp else self._newest_info
        self.paired += 1
        if info is None:
            self.no_info += 1
        return SyncMatch(self._depth.items[i], info, d_stamp - colour_stamp_ns)

    def counters(self) -> dict[str, int]:
        """``{"paired", "unpaired", "no_info"}`` for diagnostics."""
        return {"paired": self.paired, "unpaired": self.unpaired, "no_info": self.no_info}
