"""Input and naming health checks of the node, as pure functions of what the node observes.

* :class:`InputSilence`: a matched publisher that has delivered nothing for :data:`NO_DATA_WARN_S`
  seconds while the node is active. The usual cause between processes on one host is Fast DDS's default
  shared-memory segment (512 KiB), smaller than one camera image: the message names the package's
  large-image profile that fixes it.
* :func:`duplicate_name_warning`: another node with the same fully qualified name (both would publish
  every output; services and parameters become ambiguous).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

NO_DATA_WARN_S = 5.0
"""Warn when a matched input publisher has delivered nothing for this many seconds while active."""
DDS_PROFILE = "config/fastdds_large_images.xml"
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def profile_path() -> str:
    """The large-image Fast DDS profile of the installed package (or the source checkout)."""
    try:
        from instaseg_ros.core.resources import package_file

        return str(package_file(DDS_PROFILE))
    except FileNotFoundError:
        return f"<share>/instaseg_ros/{DDS_PROFILE}"


class InputSilence:
    """Tracks how long matched publishers have delivered nothing (monotonic seconds throughout).

    Args:
        topic: the input topic, for the message.
        active_since: when the node became active (silence is counted from then at the earliest).
    """

    def __init__(self, topic: str, active_since: float):
        self.topic = topic
        self.active_since = active_since
        self.matched_since: float | None = None

    def check(
        self, now: float, publishers: int, last_received: float, environ: Mapping[str, str] | None = None
    ) -> str | None:
        """The warning text when ``publishers`` (> 0) have delivered nothing for ``NO_DATA_WARN_S``,
        else None. ``last_received``: when the last message arrived (0 = never)."""
        if publishers <= 0:
            self.matched_since = None
            return None
        if self.matched_since is None:
            self.matched_since = now
        silent = now - max(last_received, self.matched_since, self.active_since)
        if silent < NO_DATA_WARN_S:
            return None
        environ = os.environ if environ is None else environ
        current = next((environ[v] for v in PROFILE_VARS if environ.get(v)), "")
        return (
            f"no image received on {self.topic} for {silent:.0f} s although {publishers} publisher(s) "
            f"are matched. Likely cause: Fast DDS's default shared-memory segment (512 KiB) is smaller "
            f"than one image, so large messages are lost between processes. Set "
            f"FASTRTPS_DEFAULT_PROFILES_FILE={profile_path()} in every process of the pipeline (camera "
            f"driver included) or use qos_reliability:=reliable"
            + (f" (this node uses {current})" if current else "")
        )


def duplicate_name_warning(names_and_namespaces: Iterable, name: str, namespace: str, fqn: str) -> str | None:
    """The warning text when ``(name, namespace)`` occurs more than once in the graph, else None."""
    count = sum(1 for entry in names_and_namespaces if tuple(entry[:2]) == (name, namespace))
    if count <= 1:
        return None
    return (
        f"{count} nodes are named {fqn}: each publishes every output and services and parameters are "
        f"ambiguous; give each node its own name or namespace"
    )
