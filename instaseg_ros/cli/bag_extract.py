"""``instaseg bag-extract``: write the frames of a bag's image topic as image files, for annotation.

  instaseg bag-extract BAG --topic /camera/color/image_raw --out frames/ [--every 10] [--format png]

Writes frames/frame_000000.png, ... (every N-th message, counted in log order) and frames/frames.json,
which maps each file name to the message's header stamp (stamp_ns) and frame_id. Annotate the images in
Label Studio or CVAT, export COCO, then
  python -m instaseg_ros.evaluation.gt_tools --export export.json --frames frames/frames.json --out gt.json
gives the ground truth `instaseg eval-bag --gt` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bag-extract",
        help="write frames of a rosbag2 image topic to files + frames.json (file <-> stamp)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bag", help="rosbag2 folder (mcap or sqlite3) or a single .mcap/.db3 file")
    p.add_argument(
        "--topic", default="/camera/color/image_raw", help="image topic (Image or CompressedImage)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--every", type=int, default=1, help="keep every N-th message (default 1 = all)")
    p.add_argument(
        "--format", choices=("png", "jpg"), default="png", help="image file format (png is lossless)"
    )
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many files (0 = no limit)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from instaseg_ros.data.bag_io import BagError, bag_topics, iter_bag_images
    from instaseg_ros.evaluation.gt_tools import write_frames_json

    def fail(msg: str) -> int:
        print(f"instaseg bag-extract: error: {msg}", file=sys.stderr)
        return 2

    if args.every < 1:
        return fail(f"--every must be >= 1, got {args.every}")
    out = Path(args.out)
    try:
        total = bag_topics(args.bag).get(args.topic, (None, None))[1]
        out.mkdir(parents=True, exist_ok=True)
        ext = ".png" if args.format == "png" else ".jpg"
        opts = [cv2.IMWRITE_PNG_COMPRESSION, 3] if ext == ".png" else [cv2.IMWRITE_JPEG_QUALITY, 95]
        frames = []
        bar = tqdm(total=total, unit="msg", desc="bag-extract", file=sys.stderr)
        try:
            for k, (stamp, frame_id, img) in enumerate(iter_bag_images(args.bag, args.topic)):
                bar.update(1)
                if k % args.every:
                    continue
                name = f"frame_{k:06d}{ext}"
                if not cv2.imwrite(str(out / name), img, opts):
                    return fail(f"could not write {out / name}")
                frames.append(
                    {
                        "file_name": name,
                        "stamp_ns": stamp,
                        "frame_id": frame_id,
                        "index": k,
                        "width": int(img.shape[1]),
                        "height": int(img.shape[0]),
                    }
                )
                if args.max_frames and len(frames) >= args.max_frames:
                    break
        finally:
            bar.close()
    except BagError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{type(e).__name__}: {e}")
    if not frames:
        return fail(f"topic {args.topic!r} in {args.bag} has no messages")
    mapping = write_frames_json(out / "frames.json", str(args.bag), args.topic, frames)
    print(f"wrote {len(frames)} frames to {out} and the stamp mapping {mapping}")
    return 0
