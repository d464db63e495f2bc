"""``instaseg weights``: the official COCO checkpoints we load, and a verified, resumable download of one.

instaseg weights list [--json]
instaseg weights download NAME [--dir DIR] [--url URL] [--no-progress]

NAME is a file name from the list (the extension may be left out). DIR defaults to
$XDG_CACHE_HOME/instaseg_ros/weights (~/.cache/instaseg_ros/weights). An interrupted download resumes where
it stopped when the same command runs again. --url fetches the same file from a mirror (checked the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path


def default_dir() -> Path:
    """Where downloads go unless --dir says otherwise."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "instaseg_ros" / "weights"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "weights",
        help="list the official COCO checkpoints, download one (verified, resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION")
    ls = sub.add_parser("list", help="size, checksum, source, licence, classes and our config for each")
    ls.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    ls.set_defaults(func=run_list)
    dl = sub.add_parser("download", help="download one checkpoint and verify it")
    dl.add_argument("name", metavar="NAME", help="a name from `instaseg weights list`")
    dl.add_argument("--dir", type=Path, default=None, help=f"target folder (default {default_dir()})")
    dl.add_argument("--url", default=None, help="download from this URL instead (a mirror of the same file)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds to connect and per read")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.set_defaults(func=run_download)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def _block(entry) -> str:
    from instaseg_ros.hub import NOT_PUBLISHED

    sha = entry.sha256 or NOT_PUBLISHED
    if entry.sha256 and len(entry.sha256) < 64:
        sha = f"{entry.sha256}... ({entry.sha256_source})"
    use = f"{entry.params_file} with model.weights = this file"
    if entry.config:
        optional = "" if entry.config_needed else " (optional: read from the file)"
        use += f"; model.config: {entry.config}{optional}"
    rows = [
        ("", entry.description),
        ("size", entry.size),
        ("sha256", sha),
        ("source", entry.url),
        ("licence", entry.licence),
        ("classes", entry.classes),
        ("use", use if entry.loadable else "not loadable by this version"),
    ]
    if entry.notes:
        rows.append(("note", entry.notes))
    width = 110
    lines = [entry.name]
    for key, value in rows:
        lines += textwrap.wrap(value, width, initial_indent=f"  {key:<8} ", subsequent_indent=" " * 11,
                               break_long_words=False, break_on_hyphens=False)  # fmt: skip
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    from instaseg_ros.hub import CATALOG

    if args.json:
        print(json.dumps([e.to_dict() for e in CATALOG], indent=1))
        return 0
    print("\n\n".join(_block(e) for e in CATALOG))
    print(f"\nDownload: instaseg weights download NAME [--dir DIR]   (default DIR: {default_dir()})")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"instaseg weights download: error: {message}", file=sys.stderr)
    return code


def run_download(args: argparse.Namespace) -> int:
    from instaseg_ros.hub import DownloadError, download, find

    try:
        entry = find(args.name)
    except KeyError as exc:
        return _fail(exc.args[0], 2)
    folder = (args.dir or default_dir()).expanduser()
    url = args.url or entry.url
    try:
        result = download(url, folder / entry.name, sha256=entry.sha256, size=entry.size_bytes,
                          timeout=args.timeout, progress=not args.no_progress)  # fmt: skip
    except DownloadError as exc:
        return _fail(str(exc))
    except OSError as exc:  # the target folder or file cannot be written
        return _fail(f"{exc.filename or folder}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return _fail("interrupted: run the same command again to resume", 130)
    how = {
        "sha256": "sha256 verified",
        "sha256 prefix": f"sha256 prefix {entry.sha256} verified",
        "size": f"size verified ({result.size} bytes; no checksum is published)",
        "none": "no checksum or exact size is published: nothing to verify against",
    }[result.verified]
    state = (
        "already downloaded"
        if result.already_present
        else (f"resumed at {result.resumed_from} bytes" if result.resumed_from else "downloaded")
    )
    print(f"{result.path}  ({state}, {result.size} bytes, {how})")
    print(f"  sha256 {result.sha256}")
    if entry.loadable:
        params = (
            ""
            if entry.params_file == "config/yolact.yaml"
            else (f" params_file:=$(ros2 pkg prefix instaseg_ros)/share/instaseg_ros/{entry.params_file}")
        )
        print(
            f"  launch: ros2 launch instaseg_ros instaseg.launch.py image:=<topic>{params} "
            f"weights:={result.path}"
        )
        if entry.config_needed:
            print(f"  model.config: set it to {entry.config} in your copy of {entry.params_file}")
    if entry.notes:
        print(f"  note: {entry.notes}")
    return 0
