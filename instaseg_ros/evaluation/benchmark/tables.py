"""Benchmark results as a printed table, a throughput summary and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from instaseg_ros.evaluation.benchmark.harness import BenchRow, Stat


def format_table(rows: Sequence[BenchRow]) -> str:
    """One table: stage medians/p95 per batch (ms), images/s, detections per image."""
    head = (
        f"{'model':<24} {'backend':<12} {'device':<7} {'prec':<5} {'batch':>5} "
        f"{'pre ms med/p95':>15} {'net ms med/p95':>17} {'post ms med/p95':>16} {'e2e ms med/p95':>17} "
        f"{'img/s':>7} {'det/img':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:

        def s(x: Stat) -> str:
            return f"{x.median_ms:.1f}/{x.p95_ms:.1f}"

        lines.append(
            f"{r.model:<24.24} {r.backend:<12} {r.device:<7.7} {r.precision:<5} {r.batch:>5} "
            f"{s(r.pre):>15} {s(r.net):>17} {s(r.post):>16} {s(r.e2e):>17} "
            f"{r.images_per_s:>7.2f} {r.detections_per_image:>7.1f}"
        )
    return "\n".join(lines)


def throughput_summary(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    """Per (model, backend): images/s at batch 1 and at the best batch."""
    groups: dict[tuple[str, str, str], list[BenchRow]] = {}
    for r in rows:
        groups.setdefault((r.model, r.backend, r.precision), []).append(r)
    out = []
    for (model, backend, prec), rs in groups.items():
        b1 = next((r for r in rs if r.batch == 1), None)
        best = max(rs, key=lambda r: r.images_per_s)
        out.append(
            {
                "model": model,
                "backend": backend,
                "precision": prec,
                "images_per_s_batch1": b1.images_per_s if b1 else None,
                "e2e_ms_batch1_median": b1.e2e.median_ms if b1 else None,
                "best_batch": best.batch,
                "images_per_s_best": best.images_per_s,
            }
        )
    return out


def format_summary(summary: Sequence[dict[str, Any]]) -> str:
    lines = [
        f"{'model':<24} {'backend':<12} {'prec':<5} {'img/s @1':>9} {'best batch':>10} {'img/s @best':>11}"
    ]
    for s in summary:
        b1 = f"{s['images_per_s_batch1']:.2f}" if s["images_per_s_batch1"] is not None else "-"
        lines.append(
            f"{s['model']:<24.24} {s['backend']:<12} {s['precision']:<5} {b1:>9} {s['best_batch']:>10} "
            f"{s['images_per_s_best']:>11.2f}"
        )
    return "\n".join(lines)


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def write_results(path: str | Path, payload: dict[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return p
