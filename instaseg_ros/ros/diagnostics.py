"""``diagnostic_msgs/DiagnosticStatus`` for the segmentation node (rate, latency, drops, rejects)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from instaseg_ros.ros.scheduler import StatsSnapshot


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def node_status(
    name: str,
    snapshot: StatsSnapshot,
    info: Mapping[str, object],
    problems: list[str],
    hardware_id: str = "",
    errors: list[str] | None = None,
) -> DiagnosticStatus:
    """One status: OK, WARN when ``problems`` lists anything since the last report, ERROR when the
    node has no model (``info["state"]`` is "unconfigured" and ``problems`` is non-empty) or when
    ``errors`` (exceptions caught in callbacks or the worker since the last report) is non-empty.

    Keys: every ``info`` item (state, backend, device, ...) then every ``StatsSnapshot`` field: the
    counters, ``rate_hz``, ``latency_ms_p50/p95`` (receipt to publish) and ``inference_ms_p50/p95``.
    """
    st = DiagnosticStatus()
    st.name = name
    st.hardware_id = hardware_id
    state = str(info.get("state", ""))
    if errors:
        st.level, st.message = DiagnosticStatus.ERROR, "; ".join([*errors, *problems])
    elif problems and state == "unconfigured":
        st.level, st.message = DiagnosticStatus.ERROR, "; ".join(problems)
    elif problems:
        st.level, st.message = DiagnosticStatus.WARN, "; ".join(problems)
    else:
        st.level = DiagnosticStatus.OK
        st.message = f"{state}: {snapshot.rate_hz:.1f} Hz" if state == "active" else state
    values = {**info, **asdict(snapshot)}
    st.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
    return st
