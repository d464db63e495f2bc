"""sensor_msgs / vision_msgs <-> NumPy without cv_bridge.

Incoming images become NumPy *views* on the message buffer wherever the
encoding allows (no copy; row padding from ``step`` and ``is_bigendian`` are
honoured through strides and a byte-ordered dtype). Every problem with a
message raises ``ValueError`` naming it, so the node can reject the frame and
keep running.

Outgoing messages: ``Instances`` -> ``vision_msgs/Detection2DArray``, a mono16
instance-id image, a mono8 semantic image and ``vision_msgs/LabelInfo``.
Class indices on the wire (semantic mask, LabelInfo, numeric class ids) are
``class_id + 1`` with 0 reserved for background.

vision_msgs is imported lazily so this module imports without it.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import lookup, resolve_overlaps, semantic_from_ids

# encoding -> (dtype, channels)
_ENCODINGS: dict[str, tuple[type, int]] = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "8UC1": (np.uint8, 1),
    "8UC3": (np.uint8, 3),
    "16UC1": (np.uint16, 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BACKGROUND_NAME = "background"


def image_to_numpy(msg) -> np.ndarray:
    """A read-only view of a ``sensor_msgs/Image``'s pixels (no copy).

    Returns:
        [H, W] for one-channel encodings, [H, W, C] otherwise; dtype uint8 or
        uint16 (big-endian dtype when ``is_bigendian`` is set). Row padding
        (``step`` > width * channels * bytes) is skipped through strides.

    Raises:
        ValueError: unsupported encoding, zero size, ``step`` too small, or
            ``data`` shorter than ``step * height``.
    """
    enc = msg.encoding
    if enc not in _ENCODINGS:
        raise ValueError(f"unsupported image encoding {enc!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    base, ch = _ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ValueError(f"zero-size image: width={w} height={h}")
    dtype = np.dtype(base).newbyteorder(">" if msg.is_bigendian else "<")
    row = w * ch * dtype.itemsize
    if step < row:
        raise ValueError(
            f"image step {step} is smaller than width*channels*bytes = {w}*{ch}*{dtype.itemsize} = {row} "
            f"for encoding {enc!r}"
        )
    need = step * h
    n = len(msg.data)
    if n < need:
        raise ValueError(f"image data has {n} bytes, shorter than step*height = {step}*{h} = {need}")
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=need)
    shape = (h, w) if ch == 1 else (h, w, ch)
    strides = (step, dtype.itemsize) if ch == 1 else (step, ch * dtype.itemsize, dtype.itemsize)
    view = np.ndarray(shape=shape, dtype=dtype, buffer=buf, strides=strides)
    view.flags.writeable = False
    return view


def to_bgr8(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Pixels as decoded by :func:`image_to_numpy` -> [H, W, 3] uint8 BGR.

    bgr8/8UC3 come back unchanged (still a view); other encodings are converted
    (one copy). 16-bit mono keeps its high byte (``v >> 8``), a fixed linear map.
    """
    import cv2

    if encoding in ("bgr8", "8UC3"):
        return pixels
    if encoding == "rgb8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if encoding == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)
    if encoding == "bgra8":
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if encoding in ("mono16", "16UC1"):
        return cv2.cvtColor((pixels >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    raise ValueError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")


def image_to_bgr8(msg) -> np.ndarray:
    """``sensor_msgs/Image`` -> [H, W, 3] uint8 BGR (a view for bgr8, else one conversion copy)."""
    return to_bgr8(image_to_numpy(msg), msg.encoding)


DECODER_MAX_PIXELS = 1 << 30
"""OpenCV's own limit (CV_IO_MAX_IMAGE_PIXELS), applied to every decoder."""
MIN_INPUT_SIDE = 16
"""Images with a side below this many pixels are refused (the models' mask paste needs >= 8 px)."""

# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic): not DHT/JPG/DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers that stand alone (no length field): TEM, RST0-7, SOI
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


@dataclass(frozen=True)
class CompressedInfo:
    """What :func:`check_compressed` read from a compressed image's header (nothing decoded)."""

    kind: str  # "jpeg" or "png"
    width: int
    height: int


def check_size(
    width: int,
    height: int,
    max_pixels: int | None = None,
    what: str = "image",
    min_side: int = MIN_INPUT_SIDE,
) -> None:
    """Refuse an image before it is decoded or converted.

    Raises:
        ValueError: a side below ``min_side``, or more than ``max_pixels`` pixels.
    """
    if width < min_side or height < min_side:
        raise ValueError(
            f"{what} {width}x{height} is too small: both sides must be at least {min_side} pixels"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(
            f"{what} {width}x{height} has {width * height} pixels, more than max_input_pixels={max_pixels}"
        )


def jpeg_dimensions(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment, walking the marker segments before it.

    Raises:
        ValueError: no SOI, a broken marker structure, a scan or the end before any frame header, or a
            frame header without a height (DNL).
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ValueError("corrupt JPEG: no start-of-image marker")
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ValueError(f"corrupt JPEG: expected a marker at byte {i}, found 0x{data[i]:02x}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if marker == 0xD9:
            raise ValueError("corrupt JPEG: end-of-image before any frame header")
        if marker == 0xDA:
            raise ValueError("corrupt JPEG: scan data before any frame header")
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            raise ValueError(f"corrupt JPEG: marker 0x{marker:02x} at byte {i} has length {length}")
        if marker in _JPEG_SOF:
            if i + 9 > n or length < 8:
                raise ValueError("corrupt JPEG: truncated frame header")
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            if height == 0 or width == 0:
                raise ValueError(f"corrupt JPEG: frame header says {width}x{height}")
            return width, height
        i += 2 + length
    raise ValueError(f"corrupt JPEG: no frame header in {n} bytes")


def png_dimensions(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking every chunk's length and CRC and that
    the image data ends with IEND (a truncated or bit-flipped PNG is refused without decoding).

    Raises:
        ValueError: naming the broken chunk.
    """
    import zlib

    n = len(data)
    if n < 33 or bytes(data[:8]) != _PNG_MAGIC:
        raise ValueError(f"corrupt PNG: {n} bytes without a PNG signature and header")
    i, size, seen_idat = 8, None, False
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        ctype = bytes(data[i + 4 : i + 8])
        end = i + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise ValueError(f"corrupt PNG: chunk {ctype!r} at byte {i} runs past the end (truncated?)")
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[i + 4 : end - 4]) != crc:
            raise ValueError(f"corrupt PNG: CRC mismatch in chunk {ctype!r} at byte {i}")
        if size is None:
            if ctype != b"IHDR" or length != 13:
                raise ValueError("corrupt PNG: the first chunk is not a 13-byte IHDR")
            size = (int.from_bytes(data[i + 8 : i + 12], "big"), int.from_bytes(data[i + 12 : i + 16], "big"))
            if size[0] == 0 or size[1] == 0:
                raise ValueError(f"corrupt PNG: IHDR says {size[0]}x{size[1]}")
        elif ctype == b"IDAT":
            seen_idat = True
        elif ctype == b"IEND":
            if not seen_idat:
                raise ValueError("corrupt PNG: no image data (IDAT) before IEND")
            return size
        i = end
    raise ValueError(f"corrupt PNG: no IEND chunk in {n} bytes (truncated?)")


def check_compressed(msg, max_pixels: int | None = None) -> CompressedInfo:
    """Checks of a ``sensor_msgs/CompressedImage`` before decoding: format, signature, header
    dimensions (JPEG SOF / PNG IHDR) against ``max_pixels``, a JPEG's end marker, a PNG's chunks.

    Raises:
        ValueError: empty data, a format or signature that is neither JPEG nor PNG, a broken header or
            chunk, a JPEG without its end-of-image marker, or a size :func:`check_size` refuses.
    """
    fmt = msg.format.lower()
    if fmt and not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise ValueError(f"unsupported compressed image format {msg.format!r}; supported: jpeg, png")
    data = msg.data
    n = len(data)
    if n == 0:
        raise ValueError("compressed image has no data (0 bytes)")
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    head = bytes(view[:8])
    if head.startswith(_JPEG_MAGIC):
        tail = bytes(view[-64:]).rstrip(b"\x00")
        if not tail.endswith(b"\xff\xd9"):
            raise ValueError(f"corrupt JPEG: {n} bytes without end-of-image marker (truncated?)")
        width, height = jpeg_dimensions(view)
        kind = "jpeg"
    elif head == _PNG_MAGIC:
        width, height = png_dimensions(view)
        kind = "png"
    else:
        raise ValueError(
            f"corrupt compressed image: {n} bytes that are neither JPEG nor PNG (first bytes "
            f"{head[:4].hex()}, format {msg.format!r})"
        )
    check_size(width, height, max_pixels, f"{kind.upper()} image", min_side=1)
    return CompressedInfo(kind, width, height)


def strict_jpeg_available() -> bool:
    """True when simplejpeg (libjpeg-turbo, warnings as errors) is installed for JPEG decoding."""
    import importlib.util

    return importlib.util.find_spec("simplejpeg") is not None


def _decode_jpeg_strict(buf: np.ndarray) -> np.ndarray | None:
    """libjpeg-turbo through simplejpeg with warnings as errors: a JPEG cut short and closed with an
    end marker ("premature end of data segment") is refused instead of decoded to grey. None when
    simplejpeg is not installed."""
    try:
        import simplejpeg
    except ImportError:
        return None
    try:
        return simplejpeg.decode_jpeg(buf, colorspace="BGR", strict=True)
    except ValueError as e:
        raise ValueError(f"corrupt JPEG: {e}") from None


def compressed_to_bgr8(msg, info: CompressedInfo | None = None, max_pixels: int | None = None) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG or PNG) -> [H, W, 3] uint8 BGR.

    JPEG: decoded strictly (simplejpeg, when installed; else OpenCV, which decodes a truncated JPEG to
    grey). PNG: OpenCV, after :func:`png_dimensions` checked every chunk. The decoded size must equal
    the header's.

    Raises:
        ValueError: see :func:`check_compressed`, or the decoder rejects the data.
    """
    import cv2

    info = info or check_compressed(msg, max_pixels)
    if info.width * info.height > DECODER_MAX_PIXELS:
        raise ValueError(
            f"{info.kind.upper()} image {info.width}x{info.height} is over the decoders' limit of "
            f"{DECODER_MAX_PIXELS} pixels"
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    img = _decode_jpeg_strict(buf) if info.kind == "jpeg" else None
    if img is None:
        try:
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        except cv2.error as e:
            reason = str(e).strip().splitlines()[-1] if str(e).strip() else "cv2.error"
            raise ValueError(f"corrupt {info.kind.upper()}: OpenCV refused it: {reason}") from None
    if img is None or img.size == 0:
        raise ValueError(f"corrupt {info.kind.upper()}: cv2.imdecode could not decode {len(buf)} bytes")
    if img.shape[:2] != (info.height, info.width):
        raise ValueError(
            f"corrupt {info.kind.upper()}: decoded {img.shape[1]}x{img.shape[0]}, header says "
            f"{info.width}x{info.height}"
        )
    return img


def quiet_decoders() -> None:
    """Silence OpenCV's own log lines (decode problems become ``ValueError`` messages instead)."""
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # builds without cv2.utils.logging
        pass


def _data_array(pixels: np.ndarray) -> array.array:
    """Contiguous pixels -> ``array.array('B')`` holding their bytes (one copy)."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(pixels)).cast("B"))
    return out


def numpy_to_image(pixels: np.ndarray, encoding: str, header=None):
    """[H, W] or [H, W, C] array -> ``sensor_msgs/Image`` with ``encoding`` (native byte order).

    Raises:
        ValueError: the array's dtype or channel count does not fit ``encoding``.
    """
    from sensor_msgs.msg import Image

    if encoding not in _ENCODINGS:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    base, ch = _ENCODINGS[encoding]
    got_ch = 1 if pixels.ndim == 2 else (pixels.shape[2] if pixels.ndim == 3 else -1)
    if pixels.dtype.type is not np.dtype(base).type or got_ch != ch:
        raise ValueError(
            f"array of dtype {pixels.dtype} and shape {pixels.shape} does not fit encoding {encoding!r} "
            f"({np.dtype(base).name}, {ch} channel(s))"
        )
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    order = pixels.dtype.byteorder
    msg.is_bigendian = int(pixels.itemsize > 1 and (order == ">" or (order == "=" and _NATIVE_BIG_ENDIAN)))
    msg.step = msg.width * ch * pixels.itemsize
    msg.data = _data_array(pixels)
    return msg


class ImageBuffer:
    """A reused ``sensor_msgs/Image`` pixel buffer: render into :meth:`pixels`, publish :meth:`message`.

    The message's ``data`` *is* the buffer (an ``array.array('B')``, which the message field stores as
    given), so an image rendered into the view is published without the copy :func:`numpy_to_image`
    makes. Publishing copies the bytes out synchronously, so the buffer may be overwritten by the next
    frame once ``publish`` has returned; a message must not be kept past that.
    """

    def __init__(self, encoding: str) -> None:
        if encoding not in _ENCODINGS:
            raise ValueError(
                f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
            )
        self.encoding = encoding
        base, self.channels = _ENCODINGS[encoding]
        self.dtype = np.dtype(base)
        self._data = array.array("B")
        self._view: np.ndarray | None = None

    def pixels(self, height: int, width: int) -> np.ndarray:
        """The writable [H, W] (or [H, W, C]) view for this frame (reallocated when the size changes)."""
        shape = (height, width) if self.channels == 1 else (height, width, self.channels)
        if self._view is None or self._view.shape != shape:
            self._view = None  # release the export before the array is replaced
            self._data = array.array("B", bytes(height * width * self.channels * self.dtype.itemsize))
            self._view = np.frombuffer(self._data, self.dtype).reshape(shape)
        return self._view

    def message(self, header=None):
        """``sensor_msgs/Image`` over the buffer (the size and pixels of the last :meth:`pixels`)."""
        from sensor_msgs.msg import Image

        if self._view is None:
            raise ValueError("ImageBuffer.message before any pixels()")
        msg = Image()
        if header is not None:
            msg.header = header
        msg.height, msg.width = int(self._view.shape[0]), int(self._view.shape[1])
        msg.encoding = self.encoding
        msg.is_bigendian = int(self.dtype.itemsize > 1 and _NATIVE_BIG_ENDIAN)
        msg.step = msg.width * self.channels * self.dtype.itemsize
        msg.data = self._data
        return msg


def bgr8_to_compressed(image_bgr: np.ndarray, fmt: str = "jpeg", header=None, quality: int = 90):
    """[H, W, 3] uint8 BGR -> ``sensor_msgs/CompressedImage`` (jpeg or png)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    if fmt not in ("jpeg", "png"):
        raise ValueError(f"unsupported compressed format {fmt!r}; supported: jpeg, png")
    ext, opts = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if fmt == "jpeg" else (".png", [])
    ok, enc = cv2.imencode(ext, image_bgr, opts)
    if not ok:
        raise ValueError(f"cv2.imencode failed for {fmt} with an image of shape {image_bgr.shape}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = _data_array(enc)
    return msg


@dataclass
class Rendered:
    """The per-frame output arrays, ready to be wrapped into messages.

    Attributes:
        source: the instances given to :func:`render_outputs`.
        keep: [M] indices into ``source`` of the instances that own at least one pixel, in score order.
        instance_ids: [H, W] uint16 published instance mask: 0 background, ``ids[k]`` for ``source[keep[k]]``.
        semantic: [H, W] uint8, 0 background, ``class_id + 1`` (None when not rendered).
        ids: [M] uint16 published id of each kept instance (its track id, or ``k + 1`` untracked).
        index_image: [H, W] uint8/uint16, 0 background, ``k + 1`` for ``source[keep[k]]`` (the frame's
            own numbering, which the 3D step and ``~/semantic_confidence`` index by).
    """

    source: Instances
    keep: np.ndarray
    instance_ids: np.ndarray
    semantic: np.ndarray | None
    ids: np.ndarray
    index_image: np.ndarray

    @cached_property
    def instances(self) -> Instances:
        """The visible instances (``source[keep]``; selected on first use: it copies their masks)."""
        return self.source if len(self.keep) == len(self.source) else self.source.select(self.keep)


def visible_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """[n] bool: which of the ids 1..n occur in ``ids`` ([H, W] uint8/uint16 id image), exactly.

    A sample of every 4th pixel in each direction (1/16 of them) settles most ids at once; only the
    ids it misses are looked for in the full image (all at once when many are missing)."""
    import cv2

    seen = np.zeros(n + 1, bool)
    sample = np.ascontiguousarray(ids[::4, ::4])
    seen[np.flatnonzero(np.bincount(sample.reshape(-1), minlength=n + 1)[: n + 1])] = True
    missing = np.flatnonzero(~seen[1:]) + 1
    if len(missing) > 4:  # a full histogram (cv2's, exact for integer ids) beats several passes
        return cv2.calcHist([ids], [0], None, [n + 1], [0, n + 1]).ravel()[1:] > 0
    for v in missing:
        seen[v] = bool((ids == v).any())
    return seen[1:]


def render_outputs(
    inst: Instances,
    track_ids: np.ndarray | None = None,
    semantic: bool = True,
    instance_out: np.ndarray | None = None,
) -> Rendered:
    """Resolve overlaps (higher score owns a pixel) and drop instances left without pixels.

    ``semantic=False`` skips the class-index image (``Rendered.semantic`` is None): the node renders it
    only while ``~/semantic_mask`` has subscribers. ``instance_out`` ([H, W] uint16, e.g. a view on a
    reused message buffer, see :class:`ImageBuffer`) receives the published instance mask, which is then
    ``Rendered.instance_ids`` (no extra copy).

    Dropping invisible instances keeps Detection2D ids and ``~/instance_mask``
    values a one-to-one match. ``track_ids`` ([N] ids in 1..65535, unique, aligned with
    ``inst``) become the mask values and ids; without them the survivors are numbered 1..M.
    """
    import cv2

    want_semantic = semantic
    n = len(inst)
    if instance_out is not None and (
        instance_out.shape != tuple(inst.image_size) or instance_out.dtype != np.uint16
    ):
        raise ValueError(
            f"render_outputs: instance_out must be {inst.image_size} uint16, got "
            f"{instance_out.shape} {instance_out.dtype}"
        )
    if track_ids is not None:
        track_ids = np.asarray(track_ids).reshape(-1)
        if len(track_ids) != n:
            raise ValueError(f"render_outputs: {len(track_ids)} track ids for {n} instances")
    # 8-bit ids while they fit: painting, counting and look-ups move half the bytes
    ids = resolve_overlaps(inst.masks, inst.scores, inst.image_size, np.uint8 if n < 256 else np.uint16)
    keep = np.arange(n)
    class_ids = inst.class_ids
    if n:
        present = visible_ids(ids, n)
        if not present.all():
            keep = np.flatnonzero(present)
            renumber = np.zeros(n + 1, ids.dtype)
            renumber[1 + keep] = np.arange(1, len(keep) + 1)
            ids = lookup(renumber, ids)
            class_ids = class_ids[keep]
    semantic = semantic_from_ids(ids, class_ids) if want_semantic else None
    if track_ids is None:
        published = np.arange(1, len(keep) + 1, dtype=np.uint16)
        if instance_out is None:
            index = ids.astype(np.uint16, copy=False)
        else:
            np.copyto(instance_out, ids, casting="unsafe")
            index = instance_out
        return Rendered(inst, keep, index, semantic, published, ids)
    published = track_ids[keep].astype(np.uint16)
    lut = np.zeros(256 if ids.dtype == np.uint8 else len(keep) + 1, np.uint16)
    lut[1 : len(keep) + 1] = published
    if ids.dtype == np.uint8:  # cv2.LUT: 8-bit ids through a 256-entry uint16 table, ~4x np.take
        index = cv2.LUT(ids, lut, dst=instance_out)
    else:
        index = np.take(lut, ids, out=instance_out)
    return Rendered(inst, keep, index, semantic, published, ids)


def instances_to_detections(inst: Instances, header, class_id_format: str = "name", keep=None, ids=None):
    """``Instances`` -> ``vision_msgs/Detection2DArray`` (every Detection2D carries ``header``).

    ``keep`` ([M] indices, default all) selects and orders the instances; the k-th kept
    one gets ``id = str(ids[k])`` (default ``k + 1``; its value in the instance mask), the box centre/size in
    input pixels and one hypothesis: the class name (``class_id_format="name"``) or the
    wire class index ``class_id + 1`` as text (``"index"``), with the score.
    """
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    if class_id_format not in ("name", "index"):
        raise ValueError(f"class_id_format must be 'name' or 'index', got {class_id_format!r}")
    out = Detection2DArray()
    out.header = header
    boxes = inst.boxes.astype(np.float64)
    dets = []
    for k, i in enumerate(range(len(inst)) if keep is None else keep):
        x1, y1, x2, y2 = boxes[i]
        det = Detection2D()
        det.header = header
        det.id = str(k + 1 if ids is None else int(ids[k]))
        det.bbox.center.position.x = float((x1 + x2) * 0.5)
        det.bbox.center.position.y = float((y1 + y2) * 0.5)
        det.bbox.size_x = float(x2 - x1)
        det.bbox.size_y = float(y2 - y1)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = (
            inst.class_name(i) if class_id_format == "name" else str(int(inst.class_ids[i]) + 1)
        )
        hyp.hypothesis.score = float(inst.scores[i])
        det.results = [hyp]
        dets.append(det)
    out.detections = dets
    return out


def label_info(class_names: list[str], header=None, threshold: float = 0.0):
    """Class names -> ``vision_msgs/LabelInfo``: id 0 = background, ``k + 1`` = ``class_names[k]``."""
    from vision_msgs.msg import LabelInfo, VisionClass

    msg = LabelInfo()
    if header is not None:
        msg.header = header
    classes = []
    for cid, name in enumerate([BACKGROUND_NAME, *class_names]):
        vc = VisionClass()
        vc.class_id = cid
        vc.class_name = name
        classes.append(vc)
    msg.class_map = classes
    msg.threshold = float(threshold)
    return msg

