"""Read and write camera images in rosbag2 files with ``rosbags`` (no ROS installation needed).

Reading: ``iter_bag_images(path, topic)`` yields ``(stamp_ns, frame_id, bgr)`` for every
``sensor_msgs/Image`` (bgr8, rgb8, mono8, bgra8, rgba8, mono16) or
``sensor_msgs/CompressedImage`` (jpeg, png) on ``topic``, in log order; ``stamp_ns`` is the
message header stamp in integer nanoseconds. ``path`` is a bag directory (sqlite3 or mcap)
or a single ``.mcap``/``.db3`` file. Problems raise :class:`BagError` (or its subclass
:class:`TopicNotFoundError`) naming the bag, the topic and what is wrong.

Writing: :class:`BagImageWriter` writes bgr8 ``sensor_msgs/Image`` (or CompressedImage) and
optional ``sensor_msgs/CameraInfo`` with equal header stamps into an mcap rosbag2, serialised
with the ROS 2 Jazzy type store (wire identical for Humble for these types).
"""

from __future__ import annotations

import logging
import shutil
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from instaseg_ros.core import stamps

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
_CHANNELS = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4, "mono16": 1}


class BagError(RuntimeError):
    """A rosbag2 file cannot be read as asked (missing, corrupt, truncated, bad message)."""


class TopicNotFoundError(BagError):
    """The requested topic is not in the bag."""


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def image_msg_to_bgr(msg: Any) -> np.ndarray:
    """A deserialised ``sensor_msgs/Image`` or ``CompressedImage`` -> [H, W, 3] uint8 BGR.

    Raises ValueError naming the encoding/format or the size mismatch.
    """
    if hasattr(msg, "format"):  # CompressedImage
        fmt = str(msg.format).lower()
        if "compresseddepth" in fmt:
            raise ValueError(f"CompressedImage format {msg.format!r} (depth) is not a colour image")
        buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError(f"CompressedImage ({msg.format!r}, {len(buf)} bytes) could not be decoded")
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        if img.ndim == 2:
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if img.shape[2] == 4:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        return img
    enc = str(msg.encoding).lower()
    if enc not in _CHANNELS:
        raise ValueError(f"Image encoding {msg.encoding!r} is not supported (supported: {sorted(_CHANNELS)})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    ch = _CHANNELS[enc]
    bpp = ch * (2 if enc == "mono16" else 1)
    data = np.asarray(msg.data, np.uint8).reshape(-1)
    if h <= 0 or w <= 0:
        raise ValueError(f"Image has a zero size ({w}x{h})")
    if step < w * bpp or len(data) < step * h:
        raise ValueError(
            f"Image {w}x{h} {enc}: step {step} and {len(data)} data bytes do not fit (need "
            f"step >= {w * bpp} and {step * h} bytes)"
        )
    rows = data[: step * h].reshape(h, step)[:, : w * bpp]
    if enc == "mono16":
        px = rows.reshape(h, w, 2).copy().view(">u2" if msg.is_bigendian else "<u2")[..., 0]
        return cv2.cvtColor((px >> 8).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    img = rows.reshape(h, w, ch)
    if enc == "bgr8":
        return np.ascontiguousarray(img)
    if enc == "rgb8":
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if enc == "mono8":
        return cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2BGR)
    if enc == "bgra8":
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag."""
    from rosbags.rosbag2 import Reader

    p = _check_path(path)
    try:
        with Reader(p) as reader:
            return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
    except Exception as e:  # rosbags raises several types for damaged files
        raise _open_error(p, e) from e


def _open_error(p: Path, e: Exception) -> BagError:
    text = f"{type(e).__name__}: {e}"
    if "end magic" in text:
        hint = "the mcap file has no footer: it is truncated (an interrupted recording or copy) or corrupt"
    elif "magic" in text:
        hint = "the file is not an mcap/sqlite3 rosbag2 or its header is corrupt"
    elif "metadata" in text.lower():
        hint = "the bag folder has no readable metadata.yaml (pass the .mcap/.db3 file itself instead)"
    else:
        hint = "it is corrupt, truncated or not a rosbag2"
    return BagError(f"cannot open rosbag2 {p}: {hint} ({text})")


def _check_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise BagError(f"rosbag2 not found: {p}")
    return p


def iter_bag_images(
    path: str | Path, topic: str, recover: bool = False
) -> Iterator[tuple[int, str, np.ndarray]]:
    """Yield ``(stamp_ns, header_frame_id, bgr [H,W,3] uint8)`` for each image on ``topic``.

    ``recover=True``: when an mcap bag cannot be opened (typically a recording that was
    interrupted, so the file has no summary/footer), read the intact records sequentially
    instead and stop at the first damaged one (a warning says how many frames were read).

    Raises:
        BagError: missing/unopenable/corrupt/truncated bag, or an undecodable message.
        TopicNotFoundError: ``topic`` is not in the bag (the message lists the image topics).
    """
    from rosbags.rosbag2 import Reader

    p = _check_path(path)
    ts = _typestore()
    try:
        reader = Reader(p)
        reader.open()
    except Exception as e:
        err = _open_error(p, e)
        if not recover or not _mcap_files(p):
            raise err from e
        log.warning("%s; recovering the intact messages", err)
        yield from _recover_mcap_images(p, topic, ts)
        return
    try:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            avail = sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections)
            raise TopicNotFoundError(f"topic {topic!r} is not in rosbag2 {p}; topics: {avail}")
        bad = [c.msgtype for c in conns if c.msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE)]
        if bad:
            raise BagError(
                f"topic {topic!r} in {p} has type {bad[0]}, expected {IMAGE_TYPE} or {COMPRESSED_TYPE}"
            )
        n = 0
        it = reader.messages(connections=conns)
        while True:
            try:
                conn, _t, raw = next(it)
            except StopIteration:
                break
            except Exception as e:
                raise BagError(
                    f"rosbag2 {p} is corrupt or truncated: reading failed after {n} messages on "
                    f"{topic!r}: {type(e).__name__}: {e}"
                ) from e
            try:
                msg = ts.deserialize_cdr(raw, conn.msgtype)
                img = image_msg_to_bgr(msg)
            except Exception as e:
                raise BagError(
                    f"message {n} on {topic!r} in {p} cannot be decoded: {type(e).__name__}: {e}"
                ) from e
            n += 1
            yield stamps.stamp_ns(msg.header), str(msg.header.frame_id), img
    finally:
        try:
            reader.close()
        except Exception:  # noqa: S110  closing a damaged bag may fail again; the first error matters
            pass


def _mcap_files(p: Path) -> list[Path]:
    if p.is_file():
        return [p] if p.suffix == ".mcap" else []
    return sorted(p.glob("*.mcap"))


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _mcap_records(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of the complete records in ``buf[pos:end]``; stops at a cut record."""
    while pos + 9 <= end:
        op = buf[pos]
        n = int.from_bytes(buf[pos + 1 : pos + 9], "little")
        if pos + 9 + n > end:
            return
        yield op, buf[pos + 9 : pos + 9 + n]
        pos += 9 + n


def _mcap_str(b: memoryview, o: int) -> tuple[str, int]:
    n = int.from_bytes(b[o : o + 4], "little")
    return bytes(b[o + 4 : o + 4 + n]).decode("utf-8"), o + 4 + n


def _recover_mcap_images(p: Path, topic: str, ts: Any) -> Iterator[tuple[int, str, np.ndarray]]:
    """Sequential reader for damaged mcap files: schemas, channels, messages (also in chunks)."""
    try:
        from rosbags.rosbag2.storage_mcap import DECOMPRESSORS
    except ImportError:  # pragma: no cover - rosbags internals moved
        DECOMPRESSORS = {"": lambda x, _: x}
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    count = 0
    damaged = ""
    for f in _mcap_files(p):
        buf = memoryview(f.read_bytes())
        if bytes(buf[:8]) != _MCAP_MAGIC:
            damaged = f"{f.name}: not an mcap file"
            break

        def handle(op: int, body: memoryview) -> Iterator[tuple[int, str, np.ndarray]]:
            if op == 0x03:  # schema: id u16, name, encoding, data
                schemas[int.from_bytes(body[0:2], "little")] = _mcap_str(body, 2)[0]
            elif op == 0x04:  # channel: id u16, schema id u16, topic, encoding, metadata
                cid = int.from_bytes(body[0:2], "little")
                sid = int.from_bytes(body[2:4], "little")
                channels[cid] = (_mcap_str(body, 4)[0], schemas.get(sid, ""))
            elif op == 0x05:  # message: channel u16, sequence u32, log time u64, publish time u64, data
                ch = channels.get(int.from_bytes(body[0:2], "little"))
                if ch and ch[0] == topic and ch[1] in (IMAGE_TYPE, COMPRESSED_TYPE):
                    msg = ts.deserialize_cdr(bytes(body[22:]), ch[1])
                    yield stamps.stamp_ns(msg.header), str(msg.header.frame_id), image_msg_to_bgr(msg)

        for op, body in _mcap_records(buf, 8, len(buf)):
            if op == 0x06:  # chunk: start, end, uncompressed size u64, crc u32, compression, records
                comp, o = _mcap_str(body, 28)
                n = int.from_bytes(body[o : o + 8], "little")
                usize = int.from_bytes(body[16:24], "little")
                crc = int.from_bytes(body[24:28], "little")
                try:
                    raw = memoryview(DECOMPRESSORS[comp](bytes(body[o + 8 : o + 8 + n]), usize))
                    if crc and zlib.crc32(raw) != crc:
                        raise ValueError("chunk checksum mismatch")
                except Exception as e:
                    damaged = f"{f.name}: damaged chunk ({type(e).__name__}: {e})"
                    break
                for op2, body2 in _mcap_records(raw, 0, len(raw)):
                    for item in handle(op2, body2):
                        count += 1
                        yield item
            elif op in (0x03, 0x04, 0x05):
                for item in handle(op, body):
                    count += 1
                    yield item
            elif op == 0x0F:  # data end: the rest is the summary
                break
        if damaged:
            break
    types = {m for t, m in channels.values() if t == topic}
    if not types:
        topics = sorted({f"{t} ({m})" for t, m in channels.values()})
        raise TopicNotFoundError(f"topic {topic!r} is not among the recoverable topics of {p}: {topics}")
    if not types & {IMAGE_TYPE, COMPRESSED_TYPE}:
        raise BagError(
            f"topic {topic!r} in {p} has type {sorted(types)[0]}, expected {IMAGE_TYPE} or {COMPRESSED_TYPE}"
        )
    log.warning(
        "recovered %d images on %s from %s%s", count, topic, p, f" (stopped at {damaged})" if damaged else ""
    )


@dataclass
class CameraInfoSpec:
    """Pinhole intrinsics for ``sensor_msgs/CameraInfo`` (plumb_bob, zero distortion)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


def pinhole_camera_info(width: int, height: int, hfov_deg: float = 69.4) -> CameraInfoSpec:
    """Intrinsics of an ideal pinhole camera with horizontal field of view ``hfov_deg``."""
    f = (width / 2) / np.tan(np.radians(hfov_deg) / 2)
    return CameraInfoSpec(width, height, float(f), float(f), (width - 1) / 2, (height - 1) / 2)


class BagImageWriter:
    """Write images (+ CameraInfo) into a new mcap rosbag2 directory.

    ``with BagImageWriter(path) as w: w.write(bgr, stamp_ns, frame_id, info)``. The log time
    of each message equals its header stamp. ``compressed`` writes CompressedImage (``jpeg``
    or ``png``) instead of a raw bgr8 Image.
    """

    def __init__(
        self,
        path: str | Path,
        image_topic: str = "/camera/color/image_raw",
        info_topic: str | None = "/camera/color/camera_info",
        compressed: str | None = None,
        overwrite: bool = False,
        jpeg_quality: int = 90,
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        if compressed not in (None, "jpeg", "png"):
            raise ValueError(f"BagImageWriter: compressed must be None, 'jpeg' or 'png', got {compressed!r}")
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(
                    f"BagImageWriter: {self.path} exists (pass overwrite=True to replace it)"
                )
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ts = _typestore()
        self.compressed = compressed
        self.jpeg_quality = jpeg_quality
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        itype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
        self._img_conn = self._writer.add_connection(image_topic, itype, typestore=self.ts)
        self._info_conn = (
            self._writer.add_connection(info_topic, INFO_TYPE, typestore=self.ts) if info_topic else None
        )
        self._extra_conns: dict[str, Any] = {}
        self.count = 0

    def _header(self, stamp_ns: int, frame_id: str) -> Any:
        T = self.ts.types
        sec, nanosec = stamps.split_ns(stamp_ns)
        stamp = T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
        return T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def write(
        self,
        image: np.ndarray,
        stamp_ns: int,
        frame_id: str = "camera_color_optical_frame",
        info: CameraInfoSpec | None = None,
    ) -> None:
        """Write one BGR uint8 [H,W,3] frame (and its CameraInfo when ``info`` is given)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"BagImageWriter.write: expected uint8 [H,W,3] BGR, got {image.dtype} {image.shape}"
            )
        if stamp_ns < 0:
            raise ValueError(f"BagImageWriter.write: negative stamp {stamp_ns}")
        T = self.ts.types
        header = self._header(stamp_ns, frame_id)
        h, w = image.shape[:2]
        if self.compressed:
            ext = ".jpg" if self.compressed == "jpeg" else ".png"
            params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality] if ext == ".jpg" else []
            ok, buf = cv2.imencode(ext, image, params)
            if not ok:
                raise ValueError(f"BagImageWriter.write: {self.compressed} encoding failed")
            msg = T[COMPRESSED_TYPE](
                header=header, format=f"bgr8; {self.compressed} compressed bgr8", data=buf.reshape(-1)
            )
            ctype = COMPRESSED_TYPE
        else:
            msg = T[IMAGE_TYPE](
                header=header,
                height=h,
                width=w,
                encoding="bgr8",
                is_bigendian=0,
                step=w * 3,
                data=np.ascontiguousarray(image).reshape(-1),
            )
            ctype = IMAGE_TYPE
        self._writer.write(self._img_conn, int(stamp_ns), self.ts.serialize_cdr(msg, ctype))
        if info is not None and self._info_conn is not None:
            self._writer.write(
                self._info_conn, int(stamp_ns), self.ts.serialize_cdr(self._info_msg(header, info), INFO_TYPE)
            )
        self.count += 1

    def write_raw(
        self,
        topic: str,
        data: np.ndarray,
        encoding: str,
        stamp_ns: int,
        frame_id: str,
        info_topic: str | None = None,
        info: CameraInfoSpec | None = None,
    ) -> None:
        """Write a raw ``sensor_msgs/Image`` of any encoding (e.g. ``16UC1``/``32FC1`` depth,
        [H, W] or [H, W, C], little-endian) on another ``topic``, and its CameraInfo on
        ``info_topic`` when both are given; topics are added on first use."""
        if data.ndim not in (2, 3) or data.size == 0:
            raise ValueError(
                f"BagImageWriter.write_raw: expected an [H,W] or [H,W,C] array, got {data.shape}"
            )
        T = self.ts.types
        header = self._header(stamp_ns, frame_id)
        arr = np.ascontiguousarray(data)
        h, w = arr.shape[:2]
        msg = T[IMAGE_TYPE](
            header=header,
            height=h,
            width=w,
            encoding=encoding,
            is_bigendian=0,
            step=arr.strides[0],
            data=arr.view(np.uint8).reshape(-1),
        )
        self._writer.write(
            self._conn(topic, IMAGE_TYPE), int(stamp_ns), self.ts.serialize_cdr(msg, IMAGE_TYPE)
        )
        if info_topic and info is not None:
            self._writer.write(
                self._conn(info_topic, INFO_TYPE),
                int(stamp_ns),
                self.ts.serialize_cdr(self._info_msg(header, info), INFO_TYPE),
            )

    def _conn(self, topic: str, msgtype: str) -> Any:
        if topic not in self._extra_conns:
            self._extra_conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.ts)
        return self._extra_conns[topic]

    def _info_msg(self, header: Any, c: CameraInfoSpec) -> Any:
        T = self.ts.types
        roi = T["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        k = np.array([c.fx, 0, c.cx, 0, c.fy, c.cy, 0, 0, 1], np.float64)
        p = np.array([c.fx, 0, c.cx, 0, 0, c.fy, c.cy, 0, 0, 0, 1, 0], np.float64)
        return T[INFO_TYPE](
            header=header,
            height=c.height,
            width=c.width,
            distortion_model="plumb_bob",
            d=np.zeros(5, np.float64),
            k=k,
            r=np.eye(3).reshape(-1),
            p=p,
            binning_x=0,
            binning_y=0,
            roi=roi,
        )

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagImageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_bag_images(
    path: str | Path,
    frames: Iterable[tuple[int, str, np.ndarray]],
    image_topic: str = "/camera/color/image_raw",
    info_topic: str | None = None,
    compressed: str | None = None,
    overwrite: bool = False,
) -> int:
    """Write ``(stamp_ns, frame_id, bgr)`` frames to a new mcap bag; returns the count."""
    with BagImageWriter(path, image_topic, info_topic, compressed=compressed, overwrite=overwrite) as w:
        for stamp, frame_id, img in frames:
            info = pinhole_camera_info(img.shape[1], img.shape[0]) if info_topic else None
            w.write(img, stamp, frame_id, info)
        return w.count
