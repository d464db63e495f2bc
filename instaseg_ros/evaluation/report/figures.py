"""The report's figures as PNG bytes: per-class AP bars, the precision-recall curve, latency plots and
example overlays. matplotlib's Agg canvas directly (no pyplot state, no display needed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from instaseg_ros.evaluation.records import Example
from instaseg_ros.evaluation.report.text import fmt_ap, per_class_ap

BOX_COLOR, MASK_COLOR, DROP_COLOR = "#4c72b0", "#dd8452", "#c44e52"


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


def per_class_ap_figure(s: dict[str, Any]) -> Any | None:
    """Grouped horizontal bars: box and mask AP per ground-truth category (a matplotlib Figure).

    A category without ground truth in the scored frames has no bar and the label "n/a" (its AP
    is undefined, not 0).
    """
    rows = per_class_ap(s)
    if not rows:
        return None
    fig = _figure(6.2, 0.45 * len(rows) + 1.4)
    ax = fig.add_subplot(111)
    y = np.arange(len(rows))
    for k, (off, color, label) in enumerate(((-0.2, BOX_COLOR, "box AP"), (0.2, MASK_COLOR, "mask AP"))):
        vals = [r[1 + k] for r in rows]
        ax.barh(y + off, [0.0 if v is None else v * 100 for v in vals], height=0.38, color=color, label=label)
        for yi, v in zip(y, vals):
            text, shade = ("n/a", "#777777") if v is None else (f"{v * 100:.1f}", "black")
            ax.text(
                (0.0 if v is None else v * 100) + 0.8, yi + off, text, va="center", fontsize=8, color=shade
            )
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 108)
    ax.set_xlabel("AP (IoU 0.50:0.95), %")
    ax.set_title("Per-class AP")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def per_class_ap_png(s: dict[str, Any]) -> bytes | None:
    """:func:`per_class_ap_figure` as PNG bytes (None without accuracy)."""
    fig = per_class_ap_figure(s)
    return None if fig is None else _fig_png(fig)


def pr_curve_png(s: dict[str, Any]) -> bytes | None:
    """Class-averaged precision vs recall at IoU 0.5, box and mask."""
    acc = s.get("accuracy")
    if not acc:
        return None
    fig = _figure(4.6, 3.9)
    ax = fig.add_subplot(111)
    drawn = 0
    for iou, color, label in (("bbox", BOX_COLOR, "box"), ("segm", MASK_COLOR, "mask")):
        pr = acc[iou].get("pr_curve_iou50")
        if pr:
            drawn += 1
            ax.plot(
                pr["recall"],
                pr["precision"],
                color=color,
                lw=2,
                label=f"{label} (AP50 {fmt_ap(acc[iou]['AP50'])})",
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
    ax.hist(lat, bins=min(40, max(5, len(lat) // 3)), color=BOX_COLOR, alpha=0.85)
    for p, ls in (("p50", "-"), ("p95", "--")):
        v = s["latency_ms"][p]
        ax.axvline(v, color="k", ls=ls, lw=1, label=f"{p} {v:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title("Latency histogram")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(122)
    t = np.array([f["t_s"] for f in done])
    ax2.plot(t, lat, ".-", color=BOX_COLOR, ms=3, lw=0.8, label="processed")
    dropped = [f for f in frames if f["sent"] and not f["processed"] and f["t_s"] is not None]
    if dropped:
        ax2.plot(
            [f["t_s"] for f in dropped],
            np.zeros(len(dropped)),
            "|",
            color=DROP_COLOR,
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


def depth_error_png(s: dict[str, Any]) -> bytes | None:
    """3D centre error (left) and size error (right) of each matched instance vs its distance, with
    the per-bin medians."""
    d = s.get("depth_3d")
    if not d or not d.get("instances"):
        return None
    rows = d["instances"]
    z = np.array([r["distance_m"] for r in rows])
    fig = _figure(10.0, 3.6)
    for k, (key, title) in enumerate((("centre_error_m", "Centre error"), ("size_error_m", "Size error"))):
        ax = fig.add_subplot(1, 2, k + 1)
        e = np.maximum(np.array([r[key] for r in rows]) * 100.0, 0.05)  # log axis: floor at 0.5 mm
        ax.plot(z, e, ".", color=BOX_COLOR, ms=4, alpha=0.6, label="matched instance")
        mids, meds = [], []
        for b in d["by_distance"]:
            sel = (z >= b["from_m"]) & (z < b["to_m"])
            if sel.any():
                mids.append(float(np.median(z[sel])))
                meds.append(float(np.median(e[sel])))
        ax.plot(mids, meds, "o-", color=MASK_COLOR, lw=1.5, label="median per distance bin")
        if key == "centre_error_m":
            ax.axhline(5.0, color="k", ls="--", lw=0.8, label="5 cm")
        ax.set_xlabel("ground-truth distance z (m)")
        ax.set_ylabel(f"{title.lower()} (cm, log)")
        ax.set_yscale("log")  # cm-level errors next to the odd wrong-object estimate of metres
        ax.set_title(f"3D {title.lower()} vs distance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _fig_png(fig)
