"""Hostile image payloads shared by the node's tests (header bombs, valid huge PNGs, encoders)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (7, 7), 0)


def jpeg(img: np.ndarray, progressive: bool = False) -> bytes:
    ok, enc = cv2.imencode(
        ".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    )
    assert ok
    return enc.tobytes()


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def msg(data: bytes, fmt: str = "jpeg") -> CompressedImage:
    return CompressedImage(format=fmt, data=data)


def jpeg_header_bomb(width: int = 32000, height: int = 32000) -> bytes:
    """A small valid JPEG whose frame header is rewritten to ``width`` x ``height`` (~4 KB)."""
    data = bytearray(jpeg(smooth(64, 64)))
    i = 2
    while data[i + 1] not in (0xC0, 0xC2):
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def png_of_size(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` (all zero: compresses to ~1 KB per MB of pixels)."""
    comp = zlib.compressobj(9)
    row = bytes(1 + width)
    parts = [comp.compress(row) for _ in range(height)]
    idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )
