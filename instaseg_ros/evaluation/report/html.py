"""The self-contained HTML page: every figure inline as a base64 PNG (no external files, scripts
or fonts), so it can be mailed, attached to a CI run or opened offline."""

from __future__ import annotations

import base64
import html
from typing import Any

from instaseg_ros.evaluation.records import EvalOutcome
from instaseg_ros.evaluation.report.figures import (
    depth_error_png,
    example_pngs,
    latency_png,
    per_class_ap_png,
    pr_curve_png,
)
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
    tracking_sequence_rows,
)


def _img_tag(png: bytes | None, alt: str, cls: str = "fig") -> str:
    """An ``<img>`` with the PNG inline, or a muted "no data" line."""
    if png is None:
        return f'<p class="muted">({html.escape(alt)}: no data)</p>'
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table (every cell escaped)."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222}
h1{font-size:24px;margin-bottom:2px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.muted{color:#777;font-size:13px} table{border-collapse:collapse;margin:8px 0;font-size:14px}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:left} th{background:#f3f3f3}
.grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start} .fig{max-width:100%;border:1px solid #eee}
.ex{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:10px 0;max-width:900px}
.ex figure{margin:0} .ex img{width:100%;border:1px solid #ccc} figcaption{font-size:12px;color:#555}
"""


def render_html(outcome: EvalOutcome) -> str:
    """The self-contained HTML report (every image inline as base64 PNG)."""
    s = outcome.summary
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>instaseg eval-bag: {esc(bag_title(s['bag']))} ({esc(s['mode'])})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Rosbag evaluation: {esc(bag_title(s['bag']))}</h1>",
        f"<p class='muted'>{esc(s['mode'])} mode &middot; bag {esc(str(s['bag']))} &middot; "
        f"topic {esc(s['topic'])} &middot; ground truth "
        f"{esc(str(s['ground_truth']) or '(in memory)')} &middot; {esc(s['created_utc'])}</p>",
        "<h2>Summary</h2>",
        _table(["", "value"], [[k, v] for k, v in key_numbers(s)]),
        "<h2>Accuracy (COCO, %)</h2>",
        f"<p class='muted'>Scored on the {s['frames']['gt_processed']} ground-truth frames that were "
        "processed"
        f"{' (the node&#39;s published outputs)' if s['mode'] == 'live' else ''}.</p>",
        _table(["", *STAT_COLUMNS], accuracy_rows(s.get("accuracy"))),
    ]
    if s.get("accuracy_counting_drops"):
        parts += [
            "<p class='muted'>Counting dropped ground-truth frames as frames without detections:</p>",
            _table(["", *STAT_COLUMNS], accuracy_rows(s["accuracy_counting_drops"])),
        ]
    parts += [
        "<h2>Per-class AP and precision-recall</h2>",
        "<div class='grid'>",
        _img_tag(per_class_ap_png(s), "per-class AP bars"),
        _img_tag(pr_curve_png(s), "precision-recall curve at IoU 0.5"),
        "</div>",
        _table(["class", "box AP", "mask AP"], per_class_rows(s)),
        "<h2>Latency</h2>",
        _latency_table(s),
        _img_tag(latency_png(s), "latency histogram and latency over time"),
        *_tracking_section(s),
        *_depth_section(s),
        "<h2>Examples: prediction (left) vs ground truth (right)</h2>",
    ]
    if not outcome.examples:
        parts.append("<p class='muted'>(no processed ground-truth frame to show)</p>")
    for ex in outcome.examples:
        p_png, g_png = example_pngs(ex)
        cap = f"stamp {ex.stamp_ns} &middot; image id {ex.image_id}"
        parts.append(
            "<div class='ex'>"
            f"<figure>{_img_tag(p_png, 'prediction', 'exi')}<figcaption>prediction: {len(ex.prediction)} "
            f"instances &middot; {cap}</figcaption></figure>"
            f"<figure>{_img_tag(g_png, 'ground truth', 'exi')}<figcaption>ground truth: "
            f"{len(ex.ground_truth)} instances</figcaption></figure></div>"
        )
    parts += ["<h2>Notes</h2><ul>"] + [f"<li>{esc(n)}</li>" for n in notes(s)] + ["</ul>"]
    parts.append("<p class='muted'>Every number is in metrics.json next to this file.</p></body></html>")
    return "\n".join(parts)


def _tracking_section(s: dict[str, Any]) -> list[str]:
    """MOT metrics of the tracker vs the IoU baseline on the same detections (overall, per sequence)."""
    t = s.get("tracking")
    if not t:
        return []
    return [
        "<h2>Tracking (MOT)</h2>",
        f"<p class='muted'>Ids from {html.escape(t['tracker_source'])}; the IoU baseline matches each frame "
        "to the previous one by box IoU (same detections). motmetrics, mask IoU &ge; "
        f"{t['iou_threshold']:g}, same class. MOTA, IDF1, recall and precision in %.</p>",
        _table(TRACKING_COLUMNS, tracking_rows(s)),
        _table(["sequence", "frames", "objects", "IDF1 tracker", "IDF1 baseline", "ID sw. tracker",
                "ID sw. baseline"], tracking_sequence_rows(s)),  # fmt: skip
    ]


def _depth_section(s: dict[str, Any]) -> list[str]:
    """3D centre and size errors of matched instances vs distance (table and plot)."""
    d = s.get("depth_3d")
    if not d:
        return []
    return [
        "<h2>3D from depth</h2>",
        f"<p class='muted'>{d['matched_with_3d']} matched instances with a 3D estimate "
        f"({d['matched_without_3d']} matched without one: too few valid depth points; "
        f"{d.get('frames_without_depth', 0)} frames without depth). Ground truth: median and min-max "
        "extent of each object's visible surface (REP-103 optical frame). Size error: "
        f"{html.escape(d['size_error'])}.</p>",
        _table(DEPTH_COLUMNS, depth_rows(s)),
        _img_tag(depth_error_png(s), "3D centre and size error vs distance"),
    ]


def _latency_table(s: dict[str, Any]) -> str:
    """Latency statistics (ms) with what was timed."""
    lat = s["latency_ms"]
    keys = ["count", "mean", "min", "p50", "p90", "p95", "p99", "max"]
    what = (
        "publish -> both outputs received, over DDS"
        if s["mode"] == "live"
        else "model call per frame (pre-processing, network, post-processing)"
    )
    row = [str(lat["count"])] + [fmt(lat[k], 1) for k in keys[1:]]
    return f"<p class='muted'>Milliseconds; {html.escape(what)}.</p>" + _table(keys, [row])
