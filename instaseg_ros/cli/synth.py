"""``instaseg synth``: write a synthetic indoor data set (COCO JSON + images) or a rosbag2.

instaseg synth --out DIR --num-images N --seed S [--size WxH] [--jpeg]
instaseg synth --out DIR --num-images N --seed S --bag [--rate HZ] [--sequence-length L]
               [--depth 16UC1|32FC1] [--ideal-depth]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 640x480, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"--size must be at least 32x32, got {text!r}")
    return w, h


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth",
        help="generate synthetic indoor scenes (COCO or rosbag2)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num-images", type=int, default=100, help="images (or bag frames) to write")
    p.add_argument("--seed", type=int, default=0, help="generator seed (same seed = same data)")
    p.add_argument("--size", type=_size, default=(640, 480), help="image size WxH (default 640x480)")
    p.add_argument("--jpeg", action="store_true", help="write JPEG instead of PNG images (COCO mode)")
    p.add_argument("--max-objects", type=int, default=None, help="max annotated objects per scene")
    p.add_argument("--bag", action="store_true", help="write a rosbag2 (mcap) of camera-motion sequences")
    p.add_argument("--rate", type=float, default=10.0, help="bag frame rate in Hz")
    p.add_argument("--sequence-length", type=int, default=30, help="frames per camera-motion sequence")
    p.add_argument("--with-images", action="store_true", help="bag mode: also write the frames as PNG")
    p.add_argument(
        "--compressed",
        choices=["jpeg", "png"],
        default=None,
        help="bag mode: write sensor_msgs/CompressedImage on <topic>/compressed instead of raw bgr8",
    )
    p.add_argument(
        "--depth",
        choices=["16UC1", "32FC1"],
        default=None,
        help="bag mode: add registered depth (16UC1 mm or 32FC1 m) with CameraInfo and 3D ground truth",
    )
    p.add_argument(
        "--ideal-depth", action="store_true", help="bag mode: depth without the structured-light noise"
    )
    p.add_argument("--overwrite", action="store_true", help="bag mode: replace an existing OUT/bag")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from instaseg_ros.data.synthetic import (
        BagSpec,
        DepthNoise,
        SynthConfig,
        generate_scene,
        write_coco,
        write_synthetic_bag,
    )

    if args.num_images < 1:
        print(f"instaseg synth: --num-images must be >= 1, got {args.num_images}", file=sys.stderr)
        return 2
    w, h = args.size
    kw = {"width": w, "height": h}
    if args.max_objects is not None:
        kw["max_objects"] = args.max_objects
        kw["min_objects"] = min(1, args.max_objects)
    try:
        cfg = SynthConfig(**kw)
    except ValueError as e:
        print(f"instaseg synth: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.bag:
        if args.rate <= 0 or args.sequence_length < 1:
            print("instaseg synth: --rate must be > 0 and --sequence-length >= 1", file=sys.stderr)
            return 2
        spec = BagSpec(
            num_frames=args.num_images,
            rate=args.rate,
            sequence_length=args.sequence_length,
            write_images=args.with_images,
            compressed=args.compressed,
            depth=args.depth,
            depth_noise=None if args.ideal_depth else DepthNoise(),
        )
        if args.overwrite and (Path(args.out) / "bag").is_dir():
            shutil.rmtree(Path(args.out) / "bag")
        try:
            bag, gt = write_synthetic_bag(args.out, seed=args.seed, config=cfg, spec=spec)
        except FileExistsError as e:
            print(f"instaseg synth: {e} (use --overwrite)", file=sys.stderr)
            return 2
        with_depth = f" with {args.depth} depth" if args.depth else ""
        print(
            f"wrote {args.num_images} frames{with_depth} at {args.rate:g} Hz to {bag} and ground truth {gt} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        return 0
    scenes = (generate_scene((args.seed, i), cfg) for i in range(args.num_images))
    path = write_coco(args.out, scenes, image_ext=".jpg" if args.jpeg else ".png")
    print(f"wrote {args.num_images} images and {path} in {time.perf_counter() - t0:.1f} s")
    return 0
