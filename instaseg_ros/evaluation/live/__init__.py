"""Live mode of ``eval-bag``: replay a bag to the real node over DDS and score what it publishes.

:func:`run_live` starts ``python -m instaseg_ros.ros.node`` in its own process (own namespace, model and
thresholds as parameters), waits until it has loaded the model and subscribed, then publishes the bag's
frames at their recorded rate (header stamps step the schedule; ``rate_multiplier`` speeds it up) with
the original header stamps and frame ids. It collects ``~/detections`` and ``~/instance_mask`` by stamp
and rebuilds ``Instances`` from them (:func:`instances_from_outputs`), so the node's published outputs
are what is scored.

Per frame: latency = our publish call -> both outputs received (one clock, this process), processed
or dropped (no result by the end of the drain wait). Peak RSS of the node process comes from
``/proc/<pid>/status`` (VmHWM); the node's own counters come from its ``/diagnostics``.
rclpy is imported inside the functions so the package imports without ROS.

Modules: :mod:`.process` (the node command line and process), :mod:`.player` (our publisher and
subscriptions), :mod:`.outputs` (messages -> ``Instances``), :mod:`.run` (start, replay, collect, score).
"""

from __future__ import annotations

from instaseg_ros.evaluation.live.outputs import class_names_from_label_info, instances_from_outputs
from instaseg_ros.evaluation.live.process import (
    NODE_NAME,
    large_image_profile,
    launch_command,
    node_arguments,
    node_command,
    node_pid,
    process_peak_rss_mb,
)
from instaseg_ros.evaluation.live.run import run_live

__all__ = [
    "NODE_NAME",
    "class_names_from_label_info",
    "instances_from_outputs",
    "large_image_profile",
    "launch_command",
    "node_arguments",
    "node_command",
    "node_pid",
    "process_peak_rss_mb",
    "run_live",
]
