"""``instaseg predict``: run any model family on image files or folders.

instaseg predict IMAGE_OR_DIR [...] --model yolact [--weights W] [--config C.yaml]
                 [--score-threshold 0.3] [--nms-threshold 0.5] [--top-k 100] [--classes a,b]
                 [--cross-class-nms] [--device cpu] [--backend torch] [--precision fp32]
                 [--out DIR] [--no-overlay]

Writes ``DIR/results.json`` (COCO results: bbox xywh and RLE masks in original-image pixels,
``category_id = class index + 1``), ``DIR/images.json`` (the COCO ``images`` and ``categories``
those ids refer to) and ``DIR/overlays/<name>.png`` (masks, boxes, names, scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from instaseg_ros.core.images import IMAGE_SUFFIXES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="segment image files/folders with any model family -> COCO JSON + overlays",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders (searched non-recursively)")
    p.add_argument("--model", default="yolact", help="model family (yolact, yolo_fcn, solo, maskrcnn)")
    p.add_argument("--weights", default=None, help="checkpoint file (ours, or an official YOLACT .pth)")
    p.add_argument("--config", default=None, help="model config YAML (optional with our checkpoints)")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--nms-threshold", type=float, default=0.5)
    p.add_argument("--mask-threshold", type=float, default=0.5)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--classes", default="", help="comma-separated class names to keep (default all)")
    p.add_argument("--cross-class-nms", action="store_true")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--backend", default="torch", help="torch, onnxruntime or tensorrt")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--out", default="predictions", help="output folder (created)")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs")
    p.add_argument(
        "--format",
        choices=("coco", "labelstudio"),
        default="coco",
        help="labelstudio: also DIR/tasks.json (predictions) + DIR/labeling_config.xml, image URLs for "
        "Label Studio's local files under the current folder (see `instaseg label-studio predict`)",
    )
    p.set_defaults(func=run)
    return p


def collect_images(inputs: list[str]) -> list[Path]:
    """Files as given plus the image files of given folders (sorted); ``FileNotFoundError`` for bad paths."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out += sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    if not out:
        raise FileNotFoundError(f"no image files found in {inputs}")
    return out


def run(args: argparse.Namespace) -> int:
    import cv2

    from instaseg_ros.core.draw import draw_instances
    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.coco_eval import instances_to_coco
    from instaseg_ros.models.loading import ModelLoadError, load_model
    from instaseg_ros.runtime.base import BackendUnavailableError

    try:
        files = collect_images(args.inputs)
        params = InferenceParams(
            score_threshold=args.score_threshold,
            nms_threshold=args.nms_threshold,
            top_k=args.top_k,
            class_filter=[c.strip() for c in args.classes.split(",") if c.strip()],
            mask_threshold=args.mask_threshold,
            cross_class_nms=args.cross_class_nms,
        )
        seg = load_model(
            args.model,
            weights=args.weights,
            config=args.config,
            backend=args.backend,
            device=args.device,
            precision=args.precision,
            params=params,
        )
    except (FileNotFoundError, ValueError, ModelLoadError, BackendUnavailableError) as e:
        print(f"instaseg predict: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    results, images, tasks = [], [], []
    for image_id, f in enumerate(files, start=1):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            print(f"instaseg predict: error: cannot read image {f}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        try:
            inst = seg.segment([img], params)[0]
        except ValueError as e:
            print(f"instaseg predict: error: {f}: {e}", file=sys.stderr)
            return 2
        dt = time.perf_counter() - t0
        results += instances_to_coco(inst, image_id)
        if args.format == "labelstudio":
            from instaseg_ros.web import labelstudio as ls

            try:
                url = ls.local_files_url(f, Path.cwd())
            except ValueError as e:
                print(f"instaseg predict: error: {e}; use `instaseg label-studio predict`", file=sys.stderr)
                return 2
            from instaseg_ros.web.inference import ModelKey, model_version

            version = model_version(ModelKey(args.model, args.weights or "", args.backend, args.device))
            tasks.append(ls.make_task(url, inst, version))
        images.append({"id": image_id, "file_name": str(f), "height": img.shape[0], "width": img.shape[1]})
        if not args.no_overlay:
            cv2.imwrite(str(out / "overlays" / f"{f.stem}.png"), draw_instances(img, inst))
        names = ", ".join(f"{inst.class_name(i)} {inst.scores[i]:.2f}" for i in range(min(len(inst), 5)))
        print(
            f"{f}: {len(inst)} instances in {dt * 1000:.0f} ms"
            + (f" ({names}{', ...' if len(inst) > 5 else ''})" if len(inst) else "")
        )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(seg.class_names)]
    (out / "results.json").write_text(json.dumps(results))
    if args.format == "labelstudio":
        from instaseg_ros.web.labelstudio import write_tasks

        write_tasks(out, tasks, seg.class_names)
        print(f"wrote Label Studio tasks and labeling_config.xml to {out}/")
    (out / "images.json").write_text(json.dumps({"images": images, "categories": categories}, indent=1))
    print(
        f"wrote {len(results)} detections for {len(files)} images to {out}/results.json"
        + ("" if args.no_overlay else f" and overlays to {out}/overlays/")
    )
    return 0
