"""The Markdown summary: tables of the headline numbers, accuracy, per-class AP and latency."""

from __future__ import annotations

from typing import Any

from instaseg_ros.evaluation.report.text import (
    DEPTH_COLUMNS,
    STAT_COLUMNS,
    TRACKING_COLUMNS,
    accuracy_rows,
    bag_title,
    depth_rows,
    fmt,
    key_numbers,
    notes,
    per_class_rows,
    tracking_rows,
)


def render_markdown(s: dict[str, Any]) -> str:
    """A Markdown summary (tables of the headline numbers and accuracy)."""
    lines = [f"# Rosbag evaluation: {bag_title(s['bag'])} ({s['mode']})", "", "| | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in key_numbers(s)]
    lines += [
        "",
        "## Accuracy (COCO, %)",
        "",
        "| | " + " | ".join(STAT_COLUMNS) + " |",
        "|---" * (len(STAT_COLUMNS) + 1) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in accuracy_rows(s.get("accuracy"))]
    rows = per_class_rows(s)
    if rows:
        lines += ["", "## Per-class AP (%)", "", "| class | box AP | mask AP |", "|---|---|---|"]
        lines += [f"| {n} | {b} | {m} |" for n, b, m in rows]
    lat = s["latency_ms"]
    lines += [
        "",
        "## Latency (ms)",
        "",
        "| count | mean | p50 | p90 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|",
        f"| {lat['count']} | "
        + " | ".join(fmt(lat[k]) for k in ("mean", "p50", "p90", "p95", "p99", "max"))
        + " |",
    ]
    t = tracking_rows(s)
    if t:
        head = "| " + " | ".join(TRACKING_COLUMNS) + " |"
        lines += ["", "## Tracking (MOT, %; tracker vs IoU baseline on the same detections)", "", head,
                  "|---" * len(TRACKING_COLUMNS) + "|"]  # fmt: skip
        lines += ["| " + " | ".join(r) + " |" for r in t]
    d = depth_rows(s)
    if d:
        lines += ["", "## 3D from depth (centre error, size error vs distance)", "",
                  "| " + " | ".join(DEPTH_COLUMNS) + " |", "|---" * len(DEPTH_COLUMNS) + "|"]  # fmt: skip
        lines += ["| " + " | ".join(r) + " |" for r in d]
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in notes(s)]
    return "\n".join(lines) + "\n"
