"""Reports of an ``eval-bag`` run: a self-contained HTML page, a Markdown summary and a JSON of every number.

The HTML (:mod:`.html`) embeds every figure (:mod:`.figures`) as a base64 PNG: summary and accuracy
tables, per-class AP bars, the precision-recall curve at IoU 0.5, a latency histogram, latency over
time (with dropped frames marked) and a strip of example frames with predicted vs ground-truth
masks. :mod:`.markdown` writes the summary tables; :mod:`.text` holds what both say. A class with
no ground truth in the scored frames shows "n/a" (its AP is undefined), not a 0.0 bar.
"""

from __future__ import annotations

import json
from pathlib import Path

from instaseg_ros.evaluation.records import EvalOutcome
from instaseg_ros.evaluation.report.html import render_html
from instaseg_ros.evaluation.report.markdown import render_markdown

__all__ = ["render_html", "render_markdown", "write_report"]


def write_report(outcome: EvalOutcome, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.html``, ``summary.md`` and ``metrics.json`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "summary.md", "json": out / "metrics.json"}
    paths["json"].write_text(json.dumps(outcome.summary, indent=1))
    paths["markdown"].write_text(render_markdown(outcome.summary))
    paths["html"].write_text(render_html(outcome))
    return paths
