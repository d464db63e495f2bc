"""The report's words and numbers: value formatting, the headline rows, accuracy and per-class rows,
the notes printed next to the numbers. Shared by the HTML page and the Markdown summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STAT_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def fmt(v: Any, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    """``v * scale`` with ``digits`` decimals and ``unit``; "n/a" for None and for pycocotools' -1."""
    if v is None:
        return "n/a"
    if isinstance(v, float) and v < 0:  # pycocotools: -1 = undefined (no ground truth of that size/class)
        return "n/a"
    return f"{v * scale:.{digits}f}{unit}"


def fmt_ap(v: Any) -> str:
    """An AP in [0, 1] as a percentage with one decimal ("n/a" when undefined)."""
    return fmt(v, 1, 100.0)


def key_numbers(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the headline table."""
    acc = s.get("accuracy") or {}
    fr, lat, mem = s["frames"], s["latency_ms"], s["memory"]
    model = s["model"]
    rows = [
        (
            "mode",
            s["mode"]
            + (f" (x{s['live']['rate_multiplier']:g} recorded rate)" if s["mode"] == "live" else ""),
        ),
        ("model", f"{s['model']['family']} ({s['model'].get('weights') or 'no weights file'})"),
        (
            "backend / device",
            f"{model.get('backend', 'torch')} / {model.get('device')} {model.get('precision')}",
        ),
        (
            "mask AP / AP50",
            f"{fmt_ap(acc.get('segm', {}).get('AP'))} / {fmt_ap(acc.get('segm', {}).get('AP50'))}",
        ),
        (
            "box AP / AP50",
            f"{fmt_ap(acc.get('bbox', {}).get('AP'))} / {fmt_ap(acc.get('bbox', {}).get('AP50'))}",
        ),
    ]
    drops = s.get("accuracy_counting_drops")
    if drops:
        rows.append(("mask AP counting dropped frames as misses", fmt_ap(drops["segm"]["AP"])))
    rows += [
        (
            "frames in bag / sent / processed / dropped",
            f"{fr['in_bag']} / {fr['sent']} / {fr['processed']} / {fr['dropped']}",
        ),
        ("drop rate", fmt(s["drop_rate"], 1, 100.0, " %")),
        (
            "ground-truth images matched / scored",
            f"{fr['gt_matched']} of {fr['gt_images']} / {fr['gt_processed']} "
            f"(tolerance {fr['stamp_tolerance_ms']:g} ms)",
        ),
        (
            "latency p50 / p95 / p99 / max",
            " / ".join(fmt(lat.get(k), 1, unit=" ms") for k in ("p50", "p95", "p99", "max")),
        ),
        ("throughput", fmt(s["throughput_fps"], 2, unit=" frames/s")),
        ("peak memory (RSS)", f"{fmt(mem['peak_rss_mb'], 0, unit=' MB')} ({mem['peak_rss_of']})"),
        ("peak CUDA memory allocated", fmt(mem.get("cuda_max_allocated_mb"), 0, unit=" MB")),
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
    tmp = (s.get(s["mode"]) or {}).get("temporal")
    if tmp:  # YOLACT temporal reuse (evaluation/offline.py, live/run.py)
        rows.append((
            "temporal reuse: key / non-key frames (key ratio); latency p50 key / non-key",
            f"{tmp['key_frames']} / {tmp['nonkey_frames']} ({fmt(tmp['key_ratio'], 2)}); "
            f"{fmt(tmp['key_ms_median'], 1, unit=' ms')} / {fmt(tmp['nonkey_ms_median'], 1, unit=' ms')}",
        ))  # fmt: skip
    return rows


def per_class_ap(s: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """(class, box AP, mask AP) per ground-truth category, AP in [0, 1]; None where AP is undefined:
    the category has no ground-truth instance in the scored frames (pycocotools says -1), so
    "n/a", not 0. Empty without accuracy."""
    acc = s.get("accuracy")
    if not acc:
        return []
    counts = s["classes"].get("gt_instances") or {}

    def value(iou: str, name: str) -> float | None:
        v = acc[iou]["per_class"].get(name)
        if v is None or v < 0 or counts.get(name, 1) == 0:
            return None
        return float(v)

    return [(n, value("bbox", n), value("segm", n)) for n in s["classes"]["ground_truth"]]


def per_class_rows(s: dict[str, Any]) -> list[list[str]]:
    """Rows ``[class, box AP %, mask AP %]`` ("n/a" for classes absent from the ground truth)."""
    return [[n, fmt_ap(b), fmt_ap(m)] for n, b, m in per_class_ap(s)]


def accuracy_rows(acc: dict[str, Any] | None) -> list[list[str]]:
    """Rows ``[box|mask, AP, AP50, ...]`` in percent."""
    if not acc:
        return []
    return [
        [label] + [fmt_ap(acc[iou].get(k)) for k in STAT_COLUMNS]
        for iou, label in (("bbox", "box"), ("segm", "mask"))
    ]


def bag_title(bag: str) -> str:
    """``folder/bag`` of a bag path (the page title)."""
    p = Path(bag).resolve()
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


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
    absent = [n for n, b, m in per_class_ap(s) if b is None and m is None]
    if absent:
        out.append(f"No ground truth of {absent} in the scored frames: their AP is undefined (n/a).")
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


TRACKING_COLUMNS = ["method", "MOTA", "IDF1", "ID switches", "per 100 frames", "fragmentations", "recall",
                    "precision"]  # fmt: skip


def _pct(v: float | None) -> str:
    """A ratio in % with one decimal; negative values stay (MOTA < 0 is meaningful), None = n/a."""
    return "n/a" if v is None else f"{100.0 * v:.1f}"


def tracking_rows(s: dict[str, Any]) -> list[list[str]]:
    """Overall MOT numbers of the tracker and the IoU baseline (MOTA/IDF1/recall/precision in %)."""
    t = s.get("tracking")
    if not t:
        return []
    rows = []
    for key, name in (("tracker", "tracker"), ("iou_baseline", "IoU baseline")):
        o = t[key]["overall"]
        rows.append([name, _pct(o["mota"]), _pct(o["idf1"]), str(o["id_switches"]),
                     f"{o['id_switches_per_100_frames']:.1f}", str(o["fragmentations"]),
                     _pct(o["recall"]), _pct(o["precision"])])  # fmt: skip
    return rows


def tracking_sequence_rows(s: dict[str, Any]) -> list[list[str]]:
    """Per sequence: frames, objects, tracker and baseline IDF1 (%) and ID switches."""
    t = s.get("tracking")
    if not t:
        return []
    rows = []
    for name, tr in t["tracker"]["sequences"].items():
        b = t["iou_baseline"]["sequences"][name]
        rows.append([name, str(tr["num_frames"]), str(tr["num_gt_tracks"]), _pct(tr["idf1"]),
                     _pct(b["idf1"]), str(tr["id_switches"]), str(b["id_switches"])])  # fmt: skip
    return rows


DEPTH_COLUMNS = ["distance (m)", "instances", "centre error median (cm)", "centre p90 (cm)",
                 "size error median (cm)"]  # fmt: skip


def depth_rows(s: dict[str, Any]) -> list[list[str]]:
    """3D errors per distance bin, then 1-4 m and overall (centimetres)."""
    d = s.get("depth_3d")
    if not d:
        return []

    def row(label: str, b: dict[str, Any]) -> list[str]:
        return [label, str(b["count"]), fmt(b["centre_median_m"], 1, 100), fmt(b["centre_p90_m"], 1, 100),
                fmt(b["size_median_m"], 1, 100)]  # fmt: skip

    rows = [row(f"{b['from_m']:g}-{b['to_m']:g}", b) for b in d["by_distance"] if b["count"]]
    return rows + [row("1-4", d["range_1_4m"]), row("all", d["overall"])]
