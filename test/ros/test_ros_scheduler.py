"""Newest-frame-only worker and frame statistics (no ROS needed)."""

from __future__ import annotations

import math
import threading
import time

import pytest

from instaseg_ros.ros.scheduler import FrameStats, LatestFrameWorker


def wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return False


class Recorder:
    """Processing function that blocks until released, recording what it took."""

    def __init__(self, block: bool = True):
        self.taken: list[int] = []
        self.gate = threading.Event()
        if not block:
            self.gate.set()
        self.started = threading.Event()

    def __call__(self, item: int) -> None:
        self.taken.append(item)
        self.started.set()
        assert self.gate.wait(5)


def test_newest_frame_replaces_waiting_one_and_drops_are_counted():
    rec = Recorder()
    stats = FrameStats()
    w = LatestFrameWorker(rec, stats).start()
    try:
        w.submit(1, key=1)
        assert rec.started.wait(2)  # worker busy with 1
        for i in range(2, 11):
            w.submit(i, key=i)  # 2..9 replaced by their successors
        rec.gate.set()
        assert wait_until(w.idle)
        assert rec.taken == [1, 10]
        assert stats.dropped == 8
    finally:
        assert w.stop()


def test_every_frame_processed_when_worker_keeps_up():
    rec = Recorder(block=False)
    stats = FrameStats()
    w = LatestFrameWorker(rec, stats).start()
    try:
        for i in range(1, 21):
            w.submit(i, key=i)
            assert wait_until(w.idle)
        assert rec.taken == list(range(1, 21))
        assert stats.dropped == 0
    finally:
        w.stop()


def test_stale_frames_are_skipped_but_a_big_jump_back_is_accepted():
    rec = Recorder(block=False)
    stats = FrameStats()
    w = LatestFrameWorker(rec, stats, stale_window_ns=1000).start()
    try:
        for key in (5000, 4500, 5000, 0, 10, 20):  # 4500: stale; 5000 again: same stamp ok; 0: unknown;
            w.submit(key, key=key)  # 10: jump back > window -> new time line; 20 follows it
            assert wait_until(w.idle)
        assert rec.taken == [5000, 5000, 0, 10, 20]
        assert stats.stale == 1
    finally:
        w.stop()


def test_exceptions_are_counted_and_the_worker_survives():
    errors = []
    taken = []

    def process(item):
        if item % 2:
            raise ValueError(f"bad {item}")
        taken.append(item)

    stats = FrameStats()
    w = LatestFrameWorker(process, stats, on_error=errors.append).start()
    try:
        for i in range(6):
            w.submit(i)
            assert wait_until(w.idle)
        assert taken == [0, 2, 4] and stats.errors == 3
        assert [str(e) for e in errors] == ["bad 1", "bad 3", "bad 5"]
    finally:
        w.stop()


def test_max_rate_caps_processing_and_still_takes_the_newest():
    rec = Recorder(block=False)
    stats = FrameStats()
    w = LatestFrameWorker(rec, stats, max_rate=20.0).start()  # >= 50 ms between starts
    try:
        t0 = time.monotonic()
        for i in range(1, 41):  # 40 frames over ~0.4 s
            w.submit(i, key=i)
            time.sleep(0.01)
        assert wait_until(w.idle)
        elapsed = time.monotonic() - t0
        assert rec.taken[-1] == 40
        assert len(rec.taken) <= elapsed * 20 + 2
        assert rec.taken == sorted(rec.taken)
        assert stats.dropped == 40 - len(rec.taken)
        with pytest.raises(ValueError, match="max_rate must be finite and >= 0"):
            w.max_rate = -1
    finally:
        w.stop()


def test_tiny_max_rate_does_not_kill_the_worker_and_a_reset_resumes_it():
    """Issue 23: max_rate=1e-300 made Condition.wait raise OverflowError and the thread died silently."""
    rec = Recorder(block=False)
    w = LatestFrameWorker(rec, FrameStats(), max_rate=1e-300).start()
    try:
        w.submit(1, key=1)
        assert wait_until(lambda: rec.taken == [1])
        w.submit(2, key=2)  # must wait ~1e300 s
        time.sleep(1.5)  # longer than one wait slice
        assert not w.dead() and w.failure is None and rec.taken == [1]
        w.max_rate = 0.0
        assert wait_until(lambda: rec.taken == [1, 2])
    finally:
        w.stop()


def test_a_loop_failure_is_reported_as_dead_not_hidden():
    """Anything that escapes the loop (here an injected clock failure) ends the thread with ``failure``
    set and ``dead()`` true, so the node's watchdog can report it and start a new worker."""
    calls = []

    def clock():
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("clock broke")
        return time.monotonic()

    rec = Recorder(block=False)
    w = LatestFrameWorker(rec, FrameStats(), max_rate=5.0, clock=clock).start()
    w.submit(1, key=1)
    assert wait_until(lambda: rec.taken == [1])
    w.submit(2, key=2)
    assert wait_until(w.dead)
    assert isinstance(w.failure, RuntimeError) and str(w.failure) == "clock broke"
    w.stop()
    assert not w.dead()  # a stopped worker is not dead


def test_stop_discards_waiting_frame_and_joins():
    rec = Recorder()
    w = LatestFrameWorker(rec, FrameStats()).start()
    w.submit(1)
    assert rec.started.wait(2)
    w.submit(2)
    rec.gate.set()
    assert w.stop()
    assert rec.taken in ([1], [1, 2])  # 2 may have been taken before stop; never processed after it
    w.submit(3)
    time.sleep(0.05)
    assert 3 not in rec.taken


def test_stats_percentiles_and_rate():
    now = [100.0]
    stats = FrameStats(window=100, rate_window_s=5.0, clock=lambda: now[0])
    snap = stats.snapshot()
    assert snap.processed == 0 and math.isnan(snap.latency_ms_p50) and snap.rate_hz == 0
    for i in range(1, 101):  # 100 frames over 10 s, latency 1..100 ms
        now[0] += 0.1
        stats.record_processed(i / 1000, inference_s=i / 2000, key=i)
    stats.count("received", 120)
    stats.count("rejected", 3)
    snap = stats.snapshot()
    assert snap.processed == 100 and snap.received == 120 and snap.rejected == 3
    assert snap.latency_ms_p50 == pytest.approx(50.5)
    assert snap.latency_ms_p95 == pytest.approx(95.05)
    assert snap.inference_ms_p50 == pytest.approx(25.25)
    assert snap.rate_hz == pytest.approx(10.0, abs=0.3)
    hist = stats.history()
    assert len(hist) == 100 and hist[0] == (1, 0.001, 0.0005) and hist[-1][0] == 100
    stats.record_processed(0.2, key=101)  # inference unknown: latency counted, inference window not
    assert stats.snapshot().inference_ms_p50 == pytest.approx(25.5)
    now[0] += 60  # nothing processed for a minute -> rate decays to 0
    assert stats.snapshot().rate_hz == 0


def test_diagnostic_status_levels_and_values():
    pytest.importorskip("diagnostic_msgs.msg", reason="diagnostic_msgs not importable: source env.sh")
    from diagnostic_msgs.msg import DiagnosticStatus

    from instaseg_ros.ros.diagnostics import node_status

    stats = FrameStats()
    stats.count("received", 5)
    stats.count("dropped", 2)
    stats.record_processed(0.012, 0.010, key=1)
    snap = stats.snapshot()
    info = {"state": "active", "backend": "torch", "device": "cpu"}
    ok = node_status("/ns/instaseg_node: instance segmentation", snap, info, [], hardware_id="cpu")
    values = {kv.key: kv.value for kv in ok.values}
    assert ok.level == DiagnosticStatus.OK and ok.message.startswith("active:")
    assert values["backend"] == "torch" and values["received"] == "5" and values["dropped"] == "2"
    assert values["latency_ms_p50"] == "12.00" and values["inference_ms_p95"] == "10.00"
    warn = node_status("n", snap, info, ["rejected frame: zero-size image"])
    assert warn.level == DiagnosticStatus.WARN and "zero-size" in warn.message
    err = node_status("n", FrameStats().snapshot(), {"state": "unconfigured"}, ["configure failed: x"])
    assert err.level == DiagnosticStatus.ERROR and err.message == "configure failed: x"
    assert {kv.key: kv.value for kv in err.values}["latency_ms_p50"] == "nan"
    crashed = node_status("n", snap, info, ["rejected frame: x"], errors=["executor: RuntimeError: boom"])
    assert crashed.level == DiagnosticStatus.ERROR and crashed.message.startswith("executor: RuntimeError")
