"""In-process node (own rclpy context): exceptions escaping callbacks and a dead worker thread.

Issue 23 item 1: no exception that escapes a callback ends the process (it is reported with its
traceback, counted as ``errors`` and diagnostics turn ERROR), and a worker thread that dies is
detected, reported and replaced, after which frames are processed again.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip("rclpy", reason="rclpy not importable: source env.sh")
pytest.importorskip("vision_msgs.msg", reason="vision_msgs not built: run make setup and source env.sh")

from ros_probe import make_tiny_yolact, wait_for  # noqa: E402


@pytest.fixture
def ctx():
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


def make_node(ctx, *overrides: str):
    from instaseg_ros.ros.node import InstasegNode

    args = ["--ros-args", "-r", "__ns:=/t23w", "-p", "autostart:=false"]
    for o in overrides:
        args += ["-p", o]
    return InstasegNode(context=ctx, cli_args=args)


def test_an_exception_escaping_a_callback_is_reported_and_spinning_goes_on(ctx):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.executors import SingleThreadedExecutor

    from instaseg_ros.ros.node import spin_guarded

    node = make_node(ctx, "diagnostics_period:=0.2")
    ticks = []

    def boom():  # an unguarded callback, like rclpy's own handlers
        ticks.append(1)
        raise RuntimeError("callback exploded")

    node.create_timer(0.05, boom)
    diags = []
    node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    end = time.monotonic() + 1.5
    try:
        spin_guarded(node, executor, lambda: time.monotonic() > end, context=ctx)
        assert len(ticks) >= 5  # kept spinning after the first exception
        assert node.stats.errors == len(ticks)
        levels = [st.level for arr in diags for st in arr.status]
        assert DiagnosticStatus.ERROR in levels
        msgs = [st.message for arr in diags for st in arr.status if st.level == DiagnosticStatus.ERROR]
        assert any("executor: RuntimeError: callback exploded" in m for m in msgs)
    finally:
        executor.shutdown()
        node.destroy_node()


def test_a_dead_worker_is_reported_and_replaced(ctx, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    ckpt = make_tiny_yolact(tmp_path / "tiny.pth")
    node = make_node(ctx, f"model.weights:={ckpt}", "max_rate:=50.0")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        processed = []
        node._process = processed.append  # record what the (new) worker takes
        old = node._worker
        old._process = processed.append
        calls = []

        def failing_clock():  # fault injection: the worker loop itself fails on its next wait
            calls.append(1)
            raise OverflowError("timeout value is too large")

        old._clock = failing_clock
        old.submit("frame-1", key=1)
        assert wait_for(old.dead, 5)
        node._watch()
        assert node._worker is not old and not node._worker.dead()
        assert node.stats.errors == 1
        assert any("worker thread: OverflowError" in e for e in node._errors)
        node._worker.submit("frame-2", key=2)
        assert wait_for(lambda: processed == ["frame-2"], 5), processed
    finally:
        node.destroy_node()


def test_frames_smaller_than_the_minimum_are_rejected_in_the_callback(ctx):
    from instaseg_ros.ros import conversions as conv

    node = make_node(ctx)
    try:
        for h, w in ((1, 640), (480, 1), (1000, 2), (1, 1)):
            node._on_image(conv.numpy_to_image(np.zeros((h, w, 3), np.uint8), "bgr8"))
        assert node.stats.rejected == 4 and node.stats.errors == 0
        assert all("too small" in p for p in node._problems[-4:])
    finally:
        node.destroy_node()
