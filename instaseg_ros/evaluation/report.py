"""Reports of an ``eval-bag`` run: a self-contained HTML page, a Markdown summary and a JSON of every number.

The HTML embeds every figure as a base64 PNG (no external files, scripts or fonts), so it can be mailed,
attached to a CI run or opened offline: summary and accuracy tables, per-class AP bars, the
precision-recall curve at IoU 0.5, a latency histogram, latency over time (with dropped frames
marked) and a strip of example frames with predicted vs ground-truth masks. Plots use matplotlib's
Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.evaluation.bag_eval import EvalOutcome, Example

STAT_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
_BOX, _MASK, _DROP = "#4c72b0", "#dd8452", "#c44e52"


# --------------------------------------------------------------------------- formatting
def _f(v: Any, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and v < 0:  # pycocotools: -1 = undefined (no ground truth of that size/class)
        return "n/a"
    return f"{v * scale:.{digits}f}{unit}"


def _ap(v: Any) -> str:
    return _f(v, 1, 100.0)


def key_numbers(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the headline table."""
    acc = s.get("accuracy") or {}
    fr, lat, mem = s["frames"], s["latency_ms"], s["memory"]
    rows = [
        (
            "mode",
            s["mode"]
            + (f" (x{s['live']['rate_multiplier']:g} recorded rate)" if s["mode"] == "live" else ""),
        ),
        ("model", f"{s['model']['family']} ({s['model'].get('weights') or 'no weights file'})"),
        ("device", f"{s['model'].get('device')} {s['model'].get('precision')}"),
        ("mask AP / AP50", f"{_ap(acc.get('segm', {}).get('AP'))} / {_ap(acc.get('segm', {}).get('AP50'))}"),
        ("box AP / AP50", f"{_ap(acc.get('bbox', {}).get('AP'))} / {_ap(acc.get('bbox', {}).get('AP50'))}"),
    ]
    drops = s.get("accuracy_counting_drops")
    if drops:
        rows.append(("mask AP counting dropped frames as misses", _ap(drops["segm"]["AP"])))
    rows += [
        (
            "frames in bag / sent / processed / dropped",
            f"{fr['in_bag']} / {fr['sent']} / {fr['processed']} / {fr['dropped']}",
        ),
        ("drop rate", _f(s["drop_rate"], 1, 100.0, " %")),
        (
            "ground-truth images matched / scored",
            f"{fr['gt_matched']} of {fr['gt_images']} / {fr['gt_processed']} "
            f"(tolerance {fr['stamp_tolerance_ms']:g} ms)",
        ),
        (
            "latency p50 / p95 / p99 / max",
            " / ".join(_f(lat.get(k), 1, unit=" ms") for k in ("p50", "p95", "p99", "max")),
        ),
        ("throughput", _f(s["throughput_fps"], 2, unit=" frames/s")),
        ("peak memory (RSS)", f"{_f(mem['peak_rss_mb'], 0, unit=' MB')} ({mem['peak_rss_of']})"),
        ("peak CUDA memory allocated", _f(mem.get("cuda_max_allocated_mb"), 0, unit=" MB")),
    ]
    diag = (s.get("live") or {}).get("node_diagnostics") or {}
    if diag:
        rows += [
            (
                "node's own count: received / processed / dropped (newest-frame mailbox)",
                " / ".join(diag.get(k, "?") for k in ("received", "processed", "dropped")),
            ),
            (
                "node's inference time p50 / p95",
                f"{diag.get('inference_ms_p50', '?')} / {diag.get('inference_ms_p95', '?')} ms",
            ),
        ]
    return rows


# --------------------------------------------------------------------------- figures
def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _fig_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def per_class_ap_png(s: dict[str, Any]) -> bytes | None:
    """Grouped horizontal bars: box and mask AP per ground-truth category."""
    acc = s.get("accuracy")
    if not acc:
        return None
    names = list(s["classes"]["ground_truth"])
    fig = _figure(6.2, 0.45 * len(names) + 1.4)
    ax = fig.add_subplot(111)
    y = np.arange(len(names))
    for off, iou, color, label in ((-0.2, "bbox", _BOX, "box AP"), (0.2, "segm", _MASK, "mask AP")):
        vals = [max(0.0, acc[iou]["per_class"].get(n, 0.0)) * 100 for n in names]
        ax.barh(y + off, vals, height=0.38, color=color, label=label)
        for yi, v in zip(y, vals):
            ax.text(v + 0.8, yi + off, f"{v:.1f}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 108)
    ax.set_xlabel("AP (IoU 0.50:0.95), %")
    ax.set_title("Per-class AP")
    ax.legend(loc="lower right", fontsize=8)
    return _fig_png(fig)


def pr_curve_png(s: dict[str, Any]) -> bytes | None:
    """Class-averaged precision vs recall at IoU 0.5, box and mask."""
    acc = s.get("accuracy")
    if not acc:
        return None
    fig = _figure(4.6, 3.9)
    ax = fig.add_subplot(111)
    drawn = 0
    for iou, color, label in (("bbox", _BOX, "box"), ("segm", _MASK, "mask")):
        pr = acc[iou].get("pr_curve_iou50")
        if pr:
            drawn += 1
            ax.plot(
                pr["recall"],
                pr["precision"],
                color=color,
                lw=2,
                label=f"{label} (AP50 {_ap(acc[iou]['AP50'])})",
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall, IoU 0.5")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no detections on the scored frames", ha="center", va="center", color="#777")
    return _fig_png(fig)


def latency_png(s: dict[str, Any]) -> bytes | None:
    """Left: latency histogram with p50/p95; right: latency over time, dropped frames marked."""
    frames = s["per_frame"]
    done = [f for f in frames if f["processed"] and f["latency_ms"] is not None]
    if not done:
        return None
    lat = np.array([f["latency_ms"] for f in done])
    fig = _figure(10.0, 3.6)
    ax = fig.add_subplot(121)
    ax.hist(lat, bins=min(40, max(5, len(lat) // 3)), color=_BOX, alpha=0.85)
    for p, ls in (("p50", "-"), ("p95", "--")):
        v = s["latency_ms"][p]
        ax.axvline(v, color="k", ls=ls, lw=1, label=f"{p} {v:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title("Latency histogram")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(122)
    t = np.array([f["t_s"] for f in done])
    ax2.plot(t, lat, ".-", color=_BOX, ms=3, lw=0.8, label="processed")
    dropped = [f for f in frames if f["sent"] and not f["processed"] and f["t_s"] is not None]
    if dropped:
        ax2.plot(
            [f["t_s"] for f in dropped],
            np.zeros(len(dropped)),
            "|",
            color=_DROP,
            ms=12,
            mew=1.5,
            label=f"dropped ({len(dropped)})",
        )
    from matplotlib.ticker import MaxNLocator

    ax2.xaxis.set_major_locator(MaxNLocator(6))
    ax2.set_xlabel("time since start (s)")
    ax2.set_ylabel("latency (ms)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Latency over time")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="upper right")
    return _fig_png(fig)


def _png(image_bgr: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image_bgr.shape}")
    return buf.tobytes()


def example_pngs(ex: Example, min_width: int = 320, max_width: int = 480) -> tuple[bytes, bytes]:
    """(prediction overlay, ground-truth overlay) PNGs of one example, scaled to a width in
    [``min_width``, ``max_width``] (upscaled nearest, downscaled by area) to keep the page light."""
    import cv2

    from instaseg_ros.core.draw import draw_instances

    pred = draw_instances(ex.image, ex.prediction, color_by_class=True)
    gt = draw_instances(ex.image, ex.ground_truth, color_by_class=True)
    w = ex.image.shape[1]
    target = min(max(w, min_width), max_width)
    if target != w:
        f = target / w
        interp = cv2.INTER_NEAREST if f > 1 else cv2.INTER_AREA
        pred = cv2.resize(pred, None, fx=f, fy=f, interpolation=interp)
        gt = cv2.resize(gt, None, fx=f, fy=f, interpolation=interp)
    return _png(pred), _png(gt)


# --------------------------------------------------------------------------- documents
def _img_tag(png: bytes | None, alt: str, cls: str = "fig") -> str:
    if png is None:
        return f'<p class="muted">({html.escape(alt)}: no data)</p>'
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def accuracy_rows(acc: dict[str, Any] | None) -> list[list[str]]:
    """Rows ``[box|mask, AP, AP50, ...]`` in percent."""
    if not acc:
        return []
    return [
        [label] + [_ap(acc[iou].get(k)) for k in STAT_COLUMNS]
        for iou, label in (("bbox", "box"), ("segm", "mask"))
    ]


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


def _bag_title(bag: str) -> str:
    p = Path(bag).resolve()
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def render_html(outcome: EvalOutcome) -> str:
    """The self-contained HTML report (every image inline as base64 PNG)."""
    s = outcome.summary
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>instaseg eval-bag: {esc(_bag_title(s['bag']))} ({esc(s['mode'])})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Rosbag evaluation: {esc(_bag_title(s['bag']))}</h1>",
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
        "<h2>Latency</h2>",
        _latency_table(s),
        _img_tag(latency_png(s), "latency histogram and latency over time"),
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


def _latency_table(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    keys = ["count", "mean", "min", "p50", "p90", "p95", "p99", "max"]
    what = (
        "publish -> both outputs received, over DDS"
        if s["mode"] == "live"
        else "model call per frame (pre-processing, network, post-processing)"
    )
    row = [str(lat["count"])] + [_f(lat[k], 1) for k in keys[1:]]
    return f"<p class='muted'>Milliseconds; {esc_str(what)}.</p>" + _table(keys, [row])


def esc_str(text: str) -> str:
    return html.escape(text)


def notes(s: dict[str, Any]) -> list[str]:
    """Caveats worth reading next to the numbers."""
    out = []
    fr, cl = s["frames"], s["classes"]
    if fr["gt_unmatched"]:
        out.append(
            f"{fr['gt_unmatched']} ground-truth image(s) match no bag frame within "
            f"{fr['stamp_tolerance_ms']:g} ms and are not scored (ids {s['unmatched_gt_image_ids'][:10]})."
        )
    if cl["model_classes_not_in_gt"]:
        out.append(
            f"Detections of model classes absent from the ground truth are ignored: "
            f"{cl['model_classes_not_in_gt'][:20]}."
        )
    if cl["gt_categories_not_in_model"]:
        out.append(
            f"Ground-truth categories the model cannot predict (AP 0): {cl['gt_categories_not_in_model']}."
        )
    if s["mode"] == "live":
        lv = s["live"]
        out.append(
            f"Live replay at x{lv['rate_multiplier']:g} the recorded rate to the node over DDS "
            f"({lv.get('transport', 'raw')} images); a frame is dropped when no result arrived within "
            f"{lv.get('drain_timeout_s', '?')} s after the last frame was sent."
        )
        got = (lv.get("node_diagnostics") or {}).get("received", "")
        if got.isdigit() and int(got) < fr["sent"]:
            out.append(
                f"{fr['sent'] - int(got)} of {fr['sent']} frames never reached the node (lost in "
                "transport: best-effort input QoS with large images). Try --large-image-profile (Fast DDS "
                "shared-memory segment for camera-sized messages) or --node-param "
                "qos_reliability:=reliable, whichever matches the robot."
            )
    out.append(
        f"Matched frames are those whose header stamp is within {fr['stamp_tolerance_ms']:g} ms of a "
        f"ground-truth stamp_ns (largest offset {fr['max_stamp_offset_ms']:.3f} ms)."
    )
    return out


def render_markdown(s: dict[str, Any]) -> str:
    """A Markdown summary (tables of the headline numbers and accuracy)."""
    lines = [f"# Rosbag evaluation: {_bag_title(s['bag'])} ({s['mode']})", "", "| | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in key_numbers(s)]
    lines += [
        "",
        "## Accuracy (COCO, %)",
        "",
        "| | " + " | ".join(STAT_COLUMNS) + " |",
        "|---" * (len(STAT_COLUMNS) + 1) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in accuracy_rows(s.get("accuracy"))]
    acc = s.get("accuracy")
    if acc:
        lines += ["", "## Per-class AP (%)", "", "| class | box AP | mask AP |", "|---|---|---|"]
        for n in s["classes"]["ground_truth"]:
            lines.append(
                f"| {n} | {_ap(acc['bbox']['per_class'].get(n))} | {_ap(acc['segm']['per_class'].get(n))} |"
            )
    lat = s["latency_ms"]
    lines += [
        "",
        "## Latency (ms)",
        "",
        "| count | mean | p50 | p90 | p95 | p99 | max |",
        "|---|---|---|---|---|---|---|",
        f"| {lat['count']} | "
        + " | ".join(_f(lat[k]) for k in ("mean", "p50", "p90", "p95", "p99", "max"))
        + " |",
        "",
        "## Notes",
        "",
    ]
    lines += [f"- {n}" for n in notes(s)]
    return "\n".join(lines) + "\n"


def write_report(outcome: EvalOutcome, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.html``, ``summary.md`` and ``metrics.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "summary.md", "json": out / "metrics.json"}
    paths["json"].write_text(json.dumps(outcome.summary, indent=1))
    paths["markdown"].write_text(render_markdown(outcome.summary))
    paths["html"].write_text(render_html(outcome))
    return paths
