"""The ``instaseg`` command: one entry point, one module per subcommand.

Each module in ``SUBCOMMANDS`` defines ``add_parser(subparsers)`` which adds
its parser and sets ``func`` (a callable taking the parsed args and returning
an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = [
    "predict",
    "train",
    "export",
    "benchmark",
    "eval_bag",
    "bag_extract",
    "synth",
    "demo",
    "weights",
    "web",
    "label_studio",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every installed subcommand."""
    parser = argparse.ArgumentParser(prog="instaseg", description="instaseg_ros command-line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        modname = f"instaseg_ros.cli.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``instaseg``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
