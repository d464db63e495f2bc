"""Read and write Darknet ``.weights`` files.

Layout (little endian):

* header: ``major, minor, revision`` as int32, then ``seen`` (images seen in
  training) as uint64 when ``major * 10 + minor >= 2`` (and both < 1000), else as
  uint32. ``yolov3.weights`` is version 0.2.0 with a 64-bit ``seen`` (20 bytes).
* then float32 values per convolution, in network order:
  with batch norm: BN beta (bias), gamma (weight), running mean, running
  variance, then the conv weights [out, in, k, k]; without batch norm: the conv
  bias, then the conv weights.

The model is anything with ``darknet_layers() -> [(nn.Conv2d, nn.BatchNorm2d | None), ...]``
(see ``instaseg_ros.models.yolo_fcn.detector.Darknet``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass
class DarknetHeader:
    """The ``.weights`` header: version and the training ``seen`` counter."""

    major: int = 0
    minor: int = 2
    revision: int = 0
    seen: int = 0

    @property
    def seen_is_64bit(self) -> bool:
        return (self.major * 10 + self.minor) >= 2 and self.major < 1000 and self.minor < 1000

    @property
    def nbytes(self) -> int:
        return 12 + (8 if self.seen_is_64bit else 4)


def _layers(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    if not hasattr(model, "darknet_layers"):
        raise TypeError(f"{type(model).__name__} has no darknet_layers(); cannot map Darknet weights")
    return model.darknet_layers()


def _tensors(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> list[torch.Tensor]:
    """The tensors of one convolution in Darknet file order."""
    if bn is not None:
        return [bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight]
    if conv.bias is None:
        raise ValueError("a convolution without batch norm needs a bias to match the Darknet layout")
    return [conv.bias, conv.weight]


def darknet_float_count(model: nn.Module) -> int:
    """Number of float32 values a ``.weights`` file for ``model`` holds after its header."""
    return sum(t.numel() for conv, bn in _layers(model) for t in _tensors(conv, bn))


def read_darknet_header(path: str | Path) -> DarknetHeader:
    """Read only the header of a ``.weights`` file."""
    with open(path, "rb") as f:
        return _read_header(f.read(20), str(path))


def _read_header(buf: bytes, source: str) -> DarknetHeader:
    if len(buf) < 12:
        raise ValueError(
            f"{source}: {len(buf)} bytes is too short for a Darknet .weights header (>= 16 bytes)"
        )
    major, minor, revision = struct.unpack("<3i", buf[:12])
    h = DarknetHeader(major, minor, revision)
    if len(buf) < h.nbytes:
        raise ValueError(f"{source}: truncated Darknet header (version {major}.{minor}.{revision})")
    h.seen = struct.unpack("<Q" if h.seen_is_64bit else "<I", buf[12 : h.nbytes])[0]
    return h


def load_darknet_weights(model: nn.Module, path: str | Path, strict: bool = True) -> DarknetHeader:
    """Load a Darknet ``.weights`` file into ``model`` in place.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` when the
    file holds a different number of floats than the model needs (the message
    gives the expected and found counts; with ``strict=False`` extra trailing
    floats are allowed, as Darknet itself does).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Darknet weights file not found: {path}")
    buf = path.read_bytes()
    header = _read_header(buf, str(path))
    body = len(buf) - header.nbytes
    layers = _layers(model)
    expected = sum(t.numel() for conv, bn in layers for t in _tensors(conv, bn))
    if body % 4:
        raise ValueError(f"{path}: the weight data is {body} bytes, not a whole number of float32 values")
    found = body // 4
    if found < expected or (strict and found != expected):
        raise ValueError(
            f"{path}: size mismatch: the model needs {expected} float32 values after the "
            f"{header.nbytes}-byte header ({len(layers)} convolutions), the file holds {found}"
            + (
                " (truncated file or a different cfg/class count?)"
                if found < expected
                else " (the file belongs to a larger network, e.g. another cfg or class count)"
            )
        )
    data = np.frombuffer(buf, dtype="<f4", count=expected, offset=header.nbytes)
    pos = 0
    with torch.no_grad():
        for conv, bn in layers:
            for t in _tensors(conv, bn):
                n = t.numel()
                t.copy_(torch.from_numpy(data[pos : pos + n].copy()).view_as(t).to(t.dtype))
                pos += n
    return header


def save_darknet_weights(model: nn.Module, path: str | Path, header: DarknetHeader | None = None) -> int:
    """Write ``model`` as a Darknet ``.weights`` file; returns the number of floats written."""
    header = header or DarknetHeader()
    chunks = []
    for conv, bn in _layers(model):
        for t in _tensors(conv, bn):
            chunks.append(t.detach().float().cpu().reshape(-1).numpy())
    data = np.concatenate(chunks).astype("<f4") if chunks else np.zeros(0, "<f4")
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", header.major, header.minor, header.revision))
        f.write(struct.pack("<Q" if header.seen_is_64bit else "<I", header.seen))
        f.write(data.tobytes())
    return int(data.size)
