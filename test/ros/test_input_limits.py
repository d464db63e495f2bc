"""Hostile compressed and raw images are refused before decoding (issue 23, items 3 and 4).

Size bombs are refused from the JPEG SOF / PNG IHDR header alone; a JPEG cut short and closed with an
end marker, a truncated or bit-flipped PNG, images over OpenCV's limit and images with a side below
the minimum raise ``ValueError`` (the node counts them as ``rejected``) and print nothing on stderr.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 messages not importable: source env.sh")

import cv2  # noqa: E402
from hostile_inputs import jpeg, jpeg_header_bomb, msg, png, png_chunk, png_of_size, smooth  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from instaseg_ros.ros import conversions as conv  # noqa: E402


def test_header_dimensions_are_read_without_decoding():
    img = smooth(48, 80)
    assert conv.jpeg_dimensions(jpeg(img)) == (80, 48)
    assert conv.jpeg_dimensions(jpeg(img, progressive=True)) == (80, 48)
    assert conv.png_dimensions(png(img)) == (80, 48)
    info = conv.check_compressed(msg(jpeg(img)))
    assert (info.kind, info.width, info.height) == ("jpeg", 80, 48)


def test_jpeg_header_bomb_is_refused_from_its_header():
    data = jpeg_header_bomb()
    assert len(data) < 8000
    with pytest.raises(ValueError, match="32000x32000 has 1024000000 pixels, more than max_input_pixels"):
        conv.check_compressed(msg(data), max_pixels=4096 * 4096)
    with pytest.raises(ValueError, match="more than max_input_pixels"):
        conv.compressed_to_bgr8(msg(data), max_pixels=4096 * 4096)


def test_png_size_bomb_is_refused_from_its_header():
    data = png_of_size(30000, 3000)  # the bomb is 30000 x 30000; 1/10 of it keeps the test fast
    assert conv.png_dimensions(data) == (30000, 3000)
    with pytest.raises(ValueError, match="30000x3000 has 90000000 pixels"):
        conv.check_compressed(msg(data, "png"), max_pixels=4096 * 4096)


def test_over_opencv_limit_is_a_value_error():
    """Images above OpenCV's own pixel limit, decoded without our limit: refused with a ValueError
    (counted as rejected by the node), never a cv2.error (counted as an error), for JPEG and PNG; and
    OpenCV's error itself is turned into a ValueError."""
    with pytest.raises(ValueError, match="over the decoders' limit"):
        conv.compressed_to_bgr8(msg(jpeg_header_bomb(40000, 40000)), max_pixels=None)
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    lying = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(999)))
    with pytest.raises(ValueError, match="over the decoders' limit"):
        conv.compressed_to_bgr8(msg(lying + png_chunk(b"IEND", b""), "png"), max_pixels=None)
    info = conv.CompressedInfo("png", 16, 16)  # a header that lies low: OpenCV's own check refuses it
    with pytest.raises(ValueError, match="OpenCV refused it"):
        conv.compressed_to_bgr8(msg(lying + png_chunk(b"IEND", b""), "png"), info)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5, 0.65, 0.8])
def test_truncated_jpeg_with_an_end_marker_is_refused(fraction, progressive):
    data = jpeg(smooth(240, 320, seed=int(fraction * 100)), progressive)
    cut = data[: int(len(data) * fraction)] + b"\xff\xd9"
    conv.check_compressed(msg(cut))  # the structure up to the scan looks fine ...
    with pytest.raises(ValueError, match="corrupt JPEG"):
        conv.compressed_to_bgr8(msg(cut))  # ... the decoder's warning gives it away


def test_intact_jpeg_and_png_decode_exactly():
    img = smooth(60, 90)
    assert np.array_equal(conv.compressed_to_bgr8(msg(png(img), "png")), img)
    dec = conv.compressed_to_bgr8(msg(jpeg(img)))
    assert dec.shape == img.shape and np.array_equal(dec, cv2.imdecode(np.frombuffer(jpeg(img), np.uint8), 1))
    grey = cv2.imencode(".jpg", img[..., 0])[1].tobytes()
    assert conv.compressed_to_bgr8(msg(grey)).shape == (60, 90, 3)


def test_truncated_or_bit_flipped_png_is_refused():
    data = png(smooth(60, 90))
    iend = png_chunk(b"IEND", b"")
    for fraction in (0.2, 0.5, 0.8):
        cut = data[: int(len(data) * fraction)] + iend
        with pytest.raises(ValueError, match="corrupt PNG"):
            conv.check_compressed(msg(cut, "png"))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(ValueError, match="CRC mismatch"):
        conv.check_compressed(msg(bytes(flipped), "png"))


def test_decoder_noise_does_not_reach_stderr(capfd):
    data = jpeg(smooth(120, 160))
    bad = [data[: len(data) // 2] + b"\xff\xd9", png(smooth(40, 40))[:300] + png_chunk(b"IEND", b"")]
    for d in bad * 5:
        with pytest.raises(ValueError):
            conv.compressed_to_bgr8(msg(d))
    out, err = capfd.readouterr()
    assert "Corrupt JPEG" not in err and "libpng" not in err and err == ""


@pytest.mark.parametrize("h, w", [(1, 640), (480, 1), (1000, 2), (1, 1), (15, 640)])
def test_tiny_images_are_refused_with_a_reason(h, w):
    with pytest.raises(ValueError, match=f"image {w}x{h} is too small: both sides must be at least 16"):
        conv.check_size(w, h, 4096 * 4096)
    info = conv.check_compressed(msg(png(np.zeros((h, w, 3), np.uint8)), "png"))
    assert (info.width, info.height) == (w, h)  # the node then applies check_size to the header's size
    conv.check_size(16, 16, 4096 * 4096)


def test_raw_image_over_the_limit_is_refused_before_conversion():
    m = Image(height=5000, width=5000, encoding="mono8", step=5000)
    with pytest.raises(ValueError, match="more than max_input_pixels=16777216"):
        conv.check_size(int(m.width), int(m.height), 4096 * 4096)
