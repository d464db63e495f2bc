"""``instaseg export``: the raw network(s) to ONNX (or a TensorRT engine), then a parity check.

instaseg export --model yolact --weights W [--config C] --format onnx --out model.onnx
                [--dynamic-batch | --batch-size N] [--opset 17] [--exporter torchscript|dynamo]
instaseg export --model yolact --weights W --format tensorrt --out model.engine
                [--precision fp16|fp32|int8 --calib DIR_OR_COCO_JSON] [--max-batch N]

The validation step runs the exported model and PyTorch on the same images (``--images`` files or
folders, else generated synthetic scenes) and prints the largest raw-output differences and the
per-image detection agreement (matched classes, box difference in px, smallest mask IoU). It exits
with status 1 when detections disagree (boxes > 1 px apart or a mask IoU <= 0.98).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX or a TensorRT engine and check it against PyTorch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model family (yolact, yolo_fcn)")
    p.add_argument(
        "--weights", default=None, help="checkpoint (default: random init, if the config allows it)"
    )
    p.add_argument("--config", default=None, help="model config YAML")
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    p.add_argument("--out", required=True, help="output file (.onnx, or .engine for tensorrt)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension (ONNX)")
    p.add_argument("--batch-size", type=int, default=1, help="fixed batch when not --dynamic-batch")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT precision")
    p.add_argument("--calib", default=None, help="INT8 calibration images: a folder or a COCO JSON")
    p.add_argument("--calib-images", type=int, default=256, help="INT8: at most this many calibration images")
    p.add_argument("--max-batch", type=int, default=8, help="TensorRT: largest batch of the engine profile")
    p.add_argument("--device", default="cuda:0", help="TensorRT: CUDA device")
    p.add_argument("--images", nargs="*", default=None, help="validation images (files or folders)")
    p.add_argument("--num-images", type=int, default=4, help="validation images (synthetic when none given)")
    p.add_argument("--score-threshold", type=float, default=None, help="validation score threshold")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check")
    p.set_defaults(func=run)
    return p


def _fail(msg: str) -> int:
    print(f"instaseg export: {msg}", file=sys.stderr)
    return 2


def validate(seg, fast, images, params) -> bool:
    """Print raw-output differences and detection agreement of ``fast`` vs ``seg``; True when they agree."""
    from instaseg_ros.runtime.networks import network_specs
    from instaseg_ros.runtime.parity import compare_instances, raw_differences

    x, _ = seg.preprocess(images)
    diffs = raw_differences(seg.forward_raw(x), fast.forward_raw(x))
    specs = network_specs(seg)
    names = specs[0].output_names
    if list(diffs) == [str(i) for i in range(len(names))]:  # tuple outputs: use the graph's names
        diffs = dict(zip(names, diffs.values()))
    for spec in specs[1:]:  # second networks (YOLO+FCN mask head) on a few sample inputs
        sample = spec.sample_input(4).to(seg.device)
        d = raw_differences(seg.mask_head_raw(sample), fast.mask_head_raw(sample))
        diffs.update({f"{spec.name}.{n}": v for n, v in zip(spec.output_names, d.values())})
    print(f"largest |exported - pytorch| per raw output (batch of {len(images)}):")
    for k, v in diffs.items():
        print(f"  {k:<10} {v:.3g}")
    ref = seg.segment(images, params)
    test = fast.segment(images, params)
    ok = True
    print(f"detections (score >= {params.score_threshold}):")
    print("  image  pytorch  exported  matched  max box diff px  min mask IoU  max score diff")
    for i, (a, b) in enumerate(zip(ref, test)):
        c = compare_instances(a, b, params.score_threshold, top_k=params.top_k)
        good = c.ok()
        ok &= good
        print(
            f"  {i:>5}  {c.n_ref:>7}  {c.n_test:>8}  {len(c.matched):>7}  {c.max_box_diff:>15.3g}"
            f"  {c.min_mask_iou:>12.4f}  {c.max_score_diff:>14.3g}  {'ok' if good else 'MISMATCH'}"
        )
    return ok


def run(args: argparse.Namespace) -> int:
    from instaseg_ros.evaluation.benchmark import sample_images
    from instaseg_ros.models.loading import ModelLoadError, load_model
    from instaseg_ros.runtime import BackendUnavailableError, create_backend, wrap_segmenter
    from instaseg_ros.runtime.onnx_export import export_onnx

    out = Path(args.out)
    if args.opset < 17:
        return _fail(f"--opset must be >= 17, got {args.opset}")
    if args.batch_size < 1:
        return _fail(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.format == "tensorrt":
        from instaseg_ros.runtime.tensorrt import tensorrt_problems

        problems = tensorrt_problems(args.device)
        if problems:
            return _fail("--format tensorrt cannot run here: " + "; ".join(problems))
        if args.precision == "int8" and not args.calib:
            return _fail("--precision int8 needs --calib <folder of images or COCO JSON>")
    device = args.device if args.format == "tensorrt" else "cpu"
    try:
        seg = load_model(args.model, args.weights, args.config, device=device)
    except ModelLoadError as e:
        return _fail(str(e))
    onnx_path = out if args.format == "onnx" else out.with_suffix(".onnx")
    dynamic = args.dynamic_batch or args.format == "tensorrt"
    res = export_onnx(seg, onnx_path, args.opset, dynamic, args.batch_size, args.exporter)
    for name, f in res.files.items():
        batch = "dynamic" if res.metadata[name]["dynamic_batch"] == "1" else res.metadata[name]["batch_size"]
        print(f"wrote {f} ({name}, opset {res.opset}, batch {batch}, {f.stat().st_size / 1e6:.1f} MB)")
    print(f"export took {res.seconds:.1f} s")
    try:
        if args.format == "onnx":
            backend = create_backend("onnxruntime", seg, onnx=onnx_path)
        else:
            backend = create_backend(
                "tensorrt",
                seg,
                onnx=onnx_path,
                precision=args.precision,
                device=args.device,
                engine_dir=out.parent,
                max_batch=args.max_batch,
                calib=args.calib,
                calib_images=args.calib_images,
            )
            for name, eng in backend.engines.items():
                target = (
                    out if name == "main" else out.with_name(f"{out.stem}.{name}{out.suffix or '.engine'}")
                )
                if Path(eng).resolve() != target.resolve():
                    target.unlink(missing_ok=True)
                    try:
                        os.link(eng, target)
                    except OSError:
                        shutil.copyfile(eng, target)
                    shutil.copyfile(str(eng) + ".json", str(target) + ".json")
                print(f"wrote {target} (TensorRT {args.precision}, {name}; cached as {Path(eng).name})")
    except BackendUnavailableError as e:
        return _fail(str(e))
    if args.no_validate:
        return 0
    images = sample_images(args.images, args.num_images)
    params = seg.params
    if args.score_threshold is not None:
        params = params.updated(score_threshold=args.score_threshold)
    ok = validate(seg, wrap_segmenter(seg, backend), images, params)
    print("validation:", "PASS" if ok else "FAIL (detections differ beyond 1 px / mask IoU 0.98)")
    return 0 if ok else 1
