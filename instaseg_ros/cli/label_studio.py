"""``instaseg label-studio``: pre-annotate frames for Label Studio and bring its COCO export back.

  instaseg label-studio predict IMAGE_OR_DIR [...] --model yolact [--weights W] --out DIR
                        [--document-root ROOT | --url-prefix PREFIX] [--score-threshold 0.3]
      -> DIR/tasks.json (tasks with predictions: polygons, per-region scores, model_version)
         DIR/labeling_config.xml (the project's labeling config for the model's classes)
  instaseg label-studio coco EXPORT.zip --images ROOT [--images ROOT2] --out DIR
      -> DIR/result.json: the COCO export with absolute image paths (for CocoDataset / instaseg train)

Image URLs: with --document-root (default: the current folder) each image becomes
``/data/local-files/?d=<path relative to ROOT>``, served by a Label Studio started with
LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=ROOT and a
local-files storage on the folder; --url-prefix PREFIX gives ``PREFIX<file name>`` instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "label-studio",
        help="Label Studio pre-annotations (tasks + labeling config) and its COCO export back",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="ls_command", metavar="ACTION")
    pr = sub.add_parser("predict", help="segment images -> tasks.json with predictions + labeling_config.xml")
    pr.add_argument("inputs", nargs="+", help="image files and/or folders (searched non-recursively)")
    pr.add_argument("--model", default="yolact", help="model family")
    pr.add_argument("--weights", default=None, help="checkpoint (default: the family's shipped model)")
    pr.add_argument("--config", default=None, help="model config YAML")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--backend", default="torch")
    pr.add_argument("--score-threshold", type=float, default=0.3)
    pr.add_argument("--top-k", type=int, default=100)
    pr.add_argument("--min-area", type=int, default=16, help="drop mask parts smaller than this (pixels)")
    pr.add_argument("--epsilon", type=float, default=0.0, help="polygon simplification tolerance (pixels)")
    g = pr.add_mutually_exclusive_group()
    g.add_argument("--document-root", default=None, help="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default .)")
    g.add_argument("--url-prefix", default=None, help="image URL = PREFIX + file name")
    pr.add_argument("--out", required=True, help="output folder (created)")
    pr.set_defaults(func=run_predict)
    co = sub.add_parser("coco", help="a Label Studio COCO export -> result.json with absolute image paths")
    co.add_argument("export", help="the export .zip (or its unpacked folder)")
    co.add_argument("--images", action="append", default=[], help="folder the images lie under (repeatable)")
    co.add_argument("--out", required=True, help="output folder (created)")
    co.set_defaults(func=run_coco)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def _fail(msg: str) -> int:
    print(f"instaseg label-studio: error: {msg}", file=sys.stderr)
    return 2


def run_predict(args: argparse.Namespace) -> int:
    import cv2

    from instaseg_ros.cli.predict import collect_images
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.models.loading import ModelLoadError, load_model
    from instaseg_ros.runtime.base import BackendUnavailableError
    from instaseg_ros.web import inference as wi
    from instaseg_ros.web import labelstudio as ls

    try:
        files = collect_images(args.inputs)
        weights = args.weights or wi.resolve_weights(args.model, None, None, None)
        params = InferenceParams(score_threshold=args.score_threshold, top_k=args.top_k)
        seg = load_model(
            args.model, weights, args.config, backend=args.backend, device=args.device, params=params
        )
    except (FileNotFoundError, ValueError, ModelLoadError, BackendUnavailableError) as e:
        return _fail(str(e))
    version = wi.model_version(wi.ModelKey(args.model, str(weights), args.backend, args.device))
    root = Path(args.document_root or ".")
    tasks = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            return _fail(f"cannot read image {f}")
        try:
            url = args.url_prefix + f.name if args.url_prefix is not None else ls.local_files_url(f, root)
        except ValueError as e:
            return _fail(f"{e} (pass --document-root or --url-prefix)")
        inst = seg.segment([img], params)[0]
        tasks.append(ls.make_task(url, inst, version, min_area=args.min_area, epsilon=args.epsilon))
        print(f"{f}: {len(inst)} instances, {len(tasks[-1]['predictions'][0]['result'])} regions")
    tasks_path, config_path = ls.write_tasks(args.out, tasks, seg.class_names)
    print(f"wrote {len(tasks)} tasks to {tasks_path} and the labeling config to {config_path} ({version})")
    return 0


def run_coco(args: argparse.Namespace) -> int:
    from instaseg_ros.web.labelstudio import resolve_coco_export

    try:
        dst = resolve_coco_export(args.export, args.images, args.out)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(str(e))
    print(f"wrote {dst}")
    return 0
