"""Reading and writing torch checkpoint files safely (``weights_only=True``: no code runs on load).

Every family's checkpoint reader goes through :func:`load_torch_file`, so a pickle with a
``__reduce__`` payload, a truncated file, a directory or ``/dev/zero`` fail the same way: a
``ValueError``/``FileNotFoundError`` naming the file and the problem.
"""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# the ``format`` value of each of our own checkpoint kinds -> family
YOLACT_FORMAT = "instaseg_ros.yolact"
SOLO_FORMAT = "instaseg_ros.solo"
MASKRCNN_FORMAT = "instaseg_ros.maskrcnn"
YOLO_FCN_FORMAT = "instaseg_yolo_fcn"
FCN_FORMAT = "instaseg_fcn"
OUR_FORMATS = {YOLACT_FORMAT: "yolact", SOLO_FORMAT: "solo", MASKRCNN_FORMAT: "maskrcnn",
               YOLO_FCN_FORMAT: "yolo_fcn", FCN_FORMAT: "yolo_fcn (FCN mask head only)"}  # fmt: skip


def check_readable_file(path: str | Path, what: str = "weights") -> Path:
    """``path`` as a Path after checking it is an existing, non-empty regular file."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {p} does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what} {p} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {p} is not a regular file (device, pipe or socket)")
    if st.st_size == 0:
        raise ValueError(f"{what} file {p} is empty")
    return p


def load_torch_file(path: str | Path, what: str = "weights") -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors naming the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a directory/device/empty file, or not loadable safely (e.g. a pickle that would run code).
    """
    p = check_readable_file(path, what)
    with open(p, "rb") as f:
        magic = f.read(2)
    if magic != b"PK" and magic[:1] != b"\x80":
        raise ValueError(f"{p}: cannot be read as a PyTorch checkpoint (neither a zip archive nor a pickle)")
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in str(e):
            why = (
                "it is not a plain checkpoint: it holds Python objects other than tensors and plain "
                "values, which are refused because loading them could run code"
            )
        else:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            why = f"truncated or corrupt: {type(e).__name__}{': ' + first if first else ''}"
        raise ValueError(f"{p}: cannot be read as a PyTorch checkpoint ({why})") from None


def strip_module_prefix(sd: dict[str, Any]) -> dict[str, Any]:
    """Keys saved from a ``DataParallel``/DDP wrapper (``module.``) -> plain keys."""
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def strict_load(
    model: torch.nn.Module,
    sd: dict[str, torch.Tensor],
    source: str,
    what: str,
    may_miss: Callable[[str], bool] = lambda k: False,
) -> None:
    """Load ``sd`` into ``model``; any shape mismatch, unexpected key or missing key (other than those
    ``may_miss`` allows) is a ``ValueError`` naming ``source``, ``what`` and the keys."""
    own = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]  # fmt: skip
    missing = [k for k in own if k not in sd and not may_miss(k)]
    unexpected = [k for k in sd if k not in own]
    if bad or missing or unexpected:
        raise ValueError(
            f"{source}: state dict does not match the {what} model: shapes {bad[:4]}, "
            f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )
    model.load_state_dict(sd, strict=False)


def read_our_checkpoint(
    path: str | Path, fmt: str, what: str
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One of our own checkpoints of format ``fmt`` -> (state_dict, config mapping)."""
    p = Path(path)
    obj = load_torch_file(p, f"{what} weights")
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format", "no 'format' key") if isinstance(obj, dict) else type(obj).__name__
        hint = (
            f" (a {OUR_FORMATS[found]} checkpoint: load it with that family)" if found in OUR_FORMATS else ""
        )
        raise ValueError(f"{p}: not a {what} checkpoint (format {found!r}, expected {fmt!r}){hint}")
    for key in ("config", "state_dict"):
        if not isinstance(obj.get(key), dict):
            raise ValueError(f"{p}: {what} checkpoint lacks its {key!r} mapping")
    return dict(obj["state_dict"]), dict(obj["config"])


def save_our_checkpoint(path: str | Path, fmt: str, config: dict[str, Any], state_dict: dict[str, Any],
                        **extra: Any) -> None:  # fmt: skip
    """Our checkpoint: ``{format, format_version, config, state_dict, **extra}`` (``extra``: plain values)."""
    torch.save({"format": fmt, "format_version": 1, "config": config, "state_dict": state_dict, **extra},
               str(path))  # fmt: skip
