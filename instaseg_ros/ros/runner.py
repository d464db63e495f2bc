"""Running a lifecycle node as a process: guarded spinning, autostart and clean signal handling.

:func:`run` is what ``instaseg_node`` does: ``rclpy.init`` without rclpy's own signal handlers, an
optional configure + activate at start-up, then :func:`spin_guarded` until SIGINT/SIGTERM. A signal
during the start-up transitions (loading a model can take minutes) abandons them; in every state the
process ends with status 0 and no traceback. An unparsable command line is one line and status 2.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn


class GuardedNode(Protocol):
    """What :func:`spin_guarded` and :func:`run` need from a node (InstasegNode has it)."""

    def report_exception(self, where: str, exc: BaseException) -> None: ...


class _Interrupted(BaseException):
    """Raised by the signal handler to abandon a blocking start-up step (loading a model)."""


def spin_guarded(node: GuardedNode, executor, should_stop: Callable[[], bool], context=None) -> None:
    """Spin ``executor`` one callback at a time until ``should_stop()`` or shutdown; an exception that
    escapes a callback (ours are guarded; rclpy's own handlers are not) is reported by ``node`` and
    spinning goes on."""
    while not should_stop() and rclpy.ok(context=context):
        try:
            executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, ExternalShutdownException):
            break
        except Exception as exc:  # noqa: BLE001 - e.g. from rclpy's own service handlers
            node.report_exception("executor", exc)


def run(make_node: Callable[[], Any], args: list[str] | None = None, name: str = "node") -> int:
    """Create the node with ``make_node()`` and spin it until SIGINT/SIGTERM; returns the exit status.

    The node's ``autostart`` parameter (when declared and true) triggers configure and activate first.
    """
    from rclpy.signals import SignalHandlerOptions

    try:
        rclpy.init(
            args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO
        )
    except Exception as e:  # noqa: BLE001 - e.g. an unparsable --ros-args rule: one line, no traceback
        print(f"{name}: cannot start: {e}", file=sys.stderr)
        return 2
    stop = {"requested": False, "interruptible": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["requested"] = True
        if stop["interruptible"]:
            stop["interruptible"] = False
            raise _Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = executor = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        autostart = node.has_parameter("autostart") and node.get_parameter("autostart").value
        if autostart and not stop["requested"]:
            stop["interruptible"] = True
            try:
                if node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not stop["requested"]:
                    node.trigger_activate()
                elif not stop["requested"]:
                    node.get_logger().error("autostart: configure failed; the node stays unconfigured")
            finally:
                stop["interruptible"] = False
        spin_guarded(node, executor, lambda: stop["requested"])
    except (_Interrupted, KeyboardInterrupt):
        if node is not None:
            node.get_logger().info("interrupted during start-up: shutting down")
    finally:
        stop["interruptible"] = False
        if node is not None:
            node.destroy_node()
        if executor is not None:
            executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
