"""Locating the package's own files (configs, shipped models) in a source checkout or an install."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "instaseg_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_dir(package: str = PACKAGE) -> Path | None:
    """The ament share directory of ``package`` when the ament index knows it, else None."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except (ImportError, LookupError, ValueError):
        return None


def package_file(rel: str | Path) -> Path:
    """``rel`` (e.g. ``config/fastdds_large_images.xml``) in the installed share directory, else in the
    source checkout. Raises ``FileNotFoundError`` naming both places looked in."""
    places = [d / rel for d in (share_dir(), SOURCE_ROOT) if d is not None]
    for p in places:
        if p.exists():
            return p
    raise FileNotFoundError(f"{rel} is not in the package (looked in {', '.join(str(p) for p in places)})")


def resolve_path(path: str) -> str:
    """``package://<pkg>/rel`` -> a file in that package's share directory (for instaseg_ros in a
    source checkout: the checkout root); ``~`` is expanded; other paths pass through unchanged.

    Raises:
        FileNotFoundError: ``package://`` names an unknown package, or a file the package lacks.
    """
    if not path.startswith("package://"):
        return os.path.expanduser(path)
    pkg, _, rel = path[len("package://") :].partition("/")
    if pkg == PACKAGE:
        try:
            return str(package_file(rel))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"cannot resolve {path!r}: {e}") from None
    d = share_dir(pkg)
    if d is None:
        raise FileNotFoundError(f"cannot resolve {path!r}: package {pkg!r} is not in the ament index")
    return str(d / rel)
