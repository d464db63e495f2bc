"""Newest-frame-only scheduling and frame statistics (ROS-free, unit-testable).

:class:`LatestFrameWorker` runs a processing function on one worker thread
with a one-slot mailbox: a frame submitted while the worker is busy replaces
the waiting one (the replaced frame is counted as dropped), so the worker
always takes the newest frame, never a frame twice, and never one older than
a frame it already took. :class:`FrameStats` keeps the counters and the
latency/rate windows reported in diagnostics.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class StatsSnapshot:
    """Counters since start plus windowed rate and latency percentiles (milliseconds)."""

    received: int
    processed: int
    dropped: int
    stale: int
    rejected: int
    errors: int
    rate_hz: float
    latency_ms_p50: float
    latency_ms_p95: float
    inference_ms_p50: float
    inference_ms_p95: float


class FrameStats:
    """Thread-safe frame counters and windows of per-frame latency and inference time.

    Args:
        window: number of recent frames kept for the percentiles.
        rate_window_s: the processing rate is averaged over this many seconds.
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self, window: int = 300, rate_window_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ):
        self._lock = threading.Lock()
        self._clock = clock
        self._rate_window_s = rate_window_s
        self._frames: deque[tuple[int, float, float]] = deque(maxlen=window)  # (key, latency, inference)
        self._done_at: deque[float] = deque()
        self._started = clock()
        self.received = self.processed = self.dropped = self.stale = self.rejected = self.errors = 0

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (received, dropped, stale, rejected, errors)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def record_processed(self, latency_s: float, inference_s: float = float("nan"), key: int = 0) -> None:
        """Frame ``key`` (e.g. its stamp in ns) published ``latency_s`` after receipt, of which
        ``inference_s`` were spent in the model."""
        now = self._clock()
        with self._lock:
            self.processed += 1
            self._frames.append((int(key), float(latency_s), float(inference_s)))
            self._done_at.append(now)
            self._trim(now)

    def history(self) -> list[tuple[int, float, float]]:
        """The recent frames as (key, receipt-to-publish latency s, inference s), oldest first."""
        with self._lock:
            return list(self._frames)

    def _trim(self, now: float) -> None:
        while self._done_at and self._done_at[0] < now - self._rate_window_s:
            self._done_at.popleft()

    def snapshot(self) -> StatsSnapshot:
        """Current counters, rate over the last ``rate_window_s`` and p50/p95 in ms (NaN when empty)."""
        now = self._clock()
        with self._lock:
            self._trim(now)
            span = min(self._rate_window_s, max(now - self._started, 1e-9))
            rate = len(self._done_at) / span
            frames = np.asarray([f[1:] for f in self._frames], dtype=np.float64).reshape(-1, 2) * 1e3
            counts = (self.received, self.processed, self.dropped, self.stale, self.rejected, self.errors)

        def pct(a: np.ndarray, q: float) -> float:
            a = a[~np.isnan(a)]
            return float(np.percentile(a, q)) if len(a) else float("nan")

        lat, inf = frames[:, 0], frames[:, 1]

        return StatsSnapshot(
            *counts,
            rate_hz=rate,
            latency_ms_p50=pct(lat, 50),
            latency_ms_p95=pct(lat, 95),
            inference_ms_p50=pct(inf, 50),
            inference_ms_p95=pct(inf, 95),
        )


class LatestFrameWorker:
    """Runs ``process(item)`` on a worker thread, always on the newest submitted item.

    Args:
        process: called on the worker thread with each taken item; exceptions are
            caught, counted as ``errors`` and passed to ``on_error``.
        stats: counters to update (``dropped``, ``stale``, ``errors``).
        max_rate: cap on started items per second; 0 = no cap. Items arriving while
            the cap holds the worker back replace the waiting one (counted as dropped).
        stale_window_ns: an item whose key (e.g. the header stamp in ns) is older than
            the last taken key by at most this much is stale and skipped; a larger jump
            back (bag loop, clock reset) is accepted as a new time line. Key 0 = unknown,
            never stale.
        on_error: ``on_error(exc)`` for exceptions raised by ``process``.
        clock: monotonic clock in seconds (injectable for tests).

    The thread survives anything ``process`` raises. Should the loop itself fail, the thread ends
    with :attr:`failure` set and :meth:`dead` true, so that its owner can report it and start a new
    worker; waits for ``max_rate`` are taken in slices of at most :data:`MAX_WAIT_S`, so no rate can
    overflow ``Condition.wait``.
    """

    MAX_WAIT_S = 1.0

    def __init__(
        self,
        process: Callable[[Any], None],
        stats: FrameStats,
        max_rate: float = 0.0,
        stale_window_ns: int = 1_000_000_000,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "instaseg-worker",
        clock: Callable[[], float] = time.monotonic,
    ):
        self._process = process
        self.stats = stats
        self._max_rate = float(max_rate)
        self._stale_window_ns = int(stale_window_ns)
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: tuple[Any, int] | None = None
        self._stop = False
        self._last_key = 0
        self._last_start = -float("inf")
        self._busy = False
        self._clock = clock
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def max_rate(self) -> float:
        return self._max_rate

    @max_rate.setter
    def max_rate(self, value: float) -> None:
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"max_rate must be finite and >= 0 (0 = unlimited), got {value}")
        with self._cond:
            self._max_rate = float(value)
            self._cond.notify_all()

    def start(self) -> LatestFrameWorker:
        self._thread.start()
        return self

    def submit(self, item: Any, key: int = 0) -> bool:
        """Offer ``item`` (ordered by ``key``); returns True when it replaced a waiting item."""
        with self._cond:
            replaced = self._pending is not None
            self._pending = (item, int(key))
            self._cond.notify_all()
        if replaced:
            self.stats.count("dropped")
        return replaced

    def dead(self) -> bool:
        """True when the thread was started and ended without being asked to stop."""
        return self._thread.ident is not None and not self._thread.is_alive() and not self._stop

    def idle(self) -> bool:
        """True when nothing is waiting and nothing is being processed."""
        with self._cond:
            return self._pending is None and not self._busy

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the current item (the waiting one is discarded); True if the thread ended."""
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _take(self) -> tuple[Any, int] | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                if self._pending is not None:
                    now = self._clock()
                    wait = self._last_start + 1.0 / self._max_rate - now if self._max_rate > 0 else 0
                    if wait <= 0:
                        item, self._pending = self._pending, None
                        self._last_start = now
                        self._busy = True
                        return item
                    self._cond.wait(min(wait, self.MAX_WAIT_S))
                else:
                    self._cond.wait()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - recorded for the owner's watchdog (see dead())
            self.failure = exc
            with self._cond:
                self._busy = False

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            item, key = taken
            try:
                if key > 0 and self._last_key > 0 and 0 < self._last_key - key <= self._stale_window_ns:
                    self.stats.count("stale")
                    continue
                if key > 0:
                    self._last_key = key
                self._process(item)
            except BaseException as exc:  # noqa: BLE001 - the worker must survive anything
                self.stats.count("errors")
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except Exception:  # noqa: BLE001
                        pass
            finally:
                with self._cond:
                    self._busy = False
