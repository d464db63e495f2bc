"""``instaseg web``: the browser interface (Gradio) to try a model without ROS.

  instaseg web [--host 127.0.0.1] [--port 7860] [--report-root DIR] [--max-pixels N] [--share]

Serves on 127.0.0.1 by default: only this machine can open it. To reach it from another machine,
forward the port over SSH (``ssh -L 7860:127.0.0.1:7860 host``) rather than binding 0.0.0.0: the page
runs models on uploaded files and reads eval-bag reports under --report-root, with no login.
--share (a public Gradio tunnel) is off unless asked for.
"""

from __future__ import annotations

import argparse
import sys

INSTALL_HINT = "pip install -r requirements/web.txt (or: pip install 'gradio>=6,<7')"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "web",
        help="browser interface (Gradio): images, video, webcam, eval-bag reports, Label Studio tasks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--report-root", default=".", help="eval-bag report folders must lie inside this folder")
    p.add_argument("--work-dir", default=None, help="folder for per-run outputs (default: a temp folder)")
    p.add_argument("--max-pixels", type=int, default=40_000_000, help="largest upload decoded, in pixels")
    p.add_argument(
        "--share", action="store_true", help="also open a public Gradio share link (off by default)"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print(f"instaseg web: error: gradio is not installed; {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"instaseg web: error: --port {args.port} is not in 1..65535", file=sys.stderr)
        return 2
    if args.max_pixels < 256:
        print(f"instaseg web: error: --max-pixels {args.max_pixels} is below 256", file=sys.stderr)
        return 2
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from instaseg_ros.web.app import WebApp, launch

    try:
        app = WebApp(work_dir=args.work_dir, report_root=args.report_root, max_pixels=args.max_pixels)
    except OSError as e:
        print(f"instaseg web: error: {e}", file=sys.stderr)
        return 2
    print(f"instaseg web: serving on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    try:
        launch(host=args.host, port=args.port, app=app, share=args.share)
    except OSError as e:
        print(f"instaseg web: error: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
