"""``python -m instaseg_ros.data.coco``: validate a COCO file and print its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instaseg_ros.data.coco.dataset import CocoDataset


def main(argv: list[str] | None = None) -> int:
    """``python -m instaseg_ros.data.coco ANN.json [--images DIR] [--classes A,B] [--report OUT.json]``:
    validate a COCO file, print the report; exit 0 if clean, 1 if problems were found, 2 if the
    file cannot be used at all (missing, not JSON, no ``images``/``categories``: one line on stderr)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m instaseg_ros.data.coco", description=main.__doc__)
    ap.add_argument("annotations")
    ap.add_argument("--images", default=None, help="image root (default: the JSON's folder)")
    ap.add_argument("--classes", default=None, help="comma-separated class names or a label-map file")
    ap.add_argument("--decode", action="store_true", help="also read every image and decode every mask")
    ap.add_argument("--report", default=None, help="write the report as JSON here")
    args = ap.parse_args(argv)
    classes: Any = args.classes
    if classes and not Path(classes).is_file():
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    try:
        ds = CocoDataset(args.annotations, image_root=args.images, class_names=classes, on_error="none")
    except (OSError, ValueError) as e:
        print(f"python -m instaseg_ros.data.coco: {e}", file=sys.stderr)
        return 2
    if args.decode:
        for i in range(len(ds)):
            ds[i]
    print(f"classes: {ds.class_names} (category ids {ds.category_ids})")
    print(ds.validation_report)
    if args.report:
        ds.validation_report.write(args.report)
    return 0 if ds.validation_report.ok else 1
