"""Messages of the 3D outputs: depth/CameraInfo in, Detection3DArray, PointCloud2, MarkerArray and
the mono8 ``~/semantic_confidence`` out (no cv_bridge, no sensor_msgs_py: NumPy structured arrays).

Headers: every 3D message carries the colour image's stamp and the depth CameraInfo's
``frame_id`` (the REP-103 optical frame: x right, y down, z forward, metres), see
:func:`header_3d`. Instance ``k`` of the id image (``~/instance_mask``) is described by
row ``k`` of an :class:`IdTable`, so 2D and 3D outputs share ``id = str(k)``.

Message packages are imported lazily: this module imports without ROS.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np

from instaseg_ros.core.draw import instance_color
from instaseg_ros.core.instances import Instances
from instaseg_ros.core.masks import lookup
from instaseg_ros.geometry.depth import Intrinsics, check_depth_encoding
from instaseg_ros.geometry.objects import Objects3D

_DEPTH_DTYPES = {"16UC1": np.uint16, "32FC1": np.float32}
# x y z float32, instance_id class_id uint16: 16 bytes per point, no padding
POINT_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("instance_id", "<u2"), ("class_id", "<u2")]
)
MARKER_NS_BOX = "instaseg_boxes"
MARKER_NS_LABEL = "instaseg_labels"
_MIN_MARKER_SIZE = 0.01  # metres: RViz draws nothing for a zero scale


def depth_image_to_numpy(msg) -> np.ndarray:
    """A read-only view of a depth ``sensor_msgs/Image`` (16UC1 mm or 32FC1 m; no copy).

    Returns:
        [H, W] uint16 or float32 (byte order from ``is_bigendian``; row padding skipped by strides).

    Raises:
        ValueError: unsupported encoding, zero size, ``step`` too small or ``data`` too short.
    """
    enc = msg.encoding
    check_depth_encoding(enc)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ValueError(f"zero-size depth image: width={w} height={h}")
    dtype = np.dtype(_DEPTH_DTYPES[enc]).newbyteorder(">" if msg.is_bigendian else "<")
    if step < w * dtype.itemsize:
        raise ValueError(f"depth image step {step} is smaller than width*bytes = {w}*{dtype.itemsize}")
    need = step * h
    if len(msg.data) < need:
        raise ValueError(f"depth image data has {len(msg.data)} bytes, shorter than step*height = {need}")
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=need)
    view = np.ndarray((h, w), dtype=dtype, buffer=buf, strides=(step, dtype.itemsize))
    view.flags.writeable = False
    return view


def intrinsics_from_camera_info(info, depth_shape: tuple[int, int] | None = None) -> Intrinsics:
    """``sensor_msgs/CameraInfo`` -> :class:`Intrinsics` of its image.

    A CameraInfo without width/height (0) is taken to describe ``depth_shape`` ([H, W]).

    Raises:
        ValueError: missing or zero intrinsics, or no image size at all.
    """
    w, h = int(info.width), int(info.height)
    if (w == 0 or h == 0) and depth_shape is not None:
        h, w = int(depth_shape[0]), int(depth_shape[1])
    return Intrinsics.from_k(list(info.k), w, h)


def header_3d(colour_header, depth_frame_id: str):
    """The header of the 3D outputs: the colour image's stamp, the depth camera's optical frame."""
    from std_msgs.msg import Header

    if not depth_frame_id:
        raise ValueError("depth CameraInfo has an empty frame_id: the 3D outputs need the optical frame")
    out = Header()
    out.stamp = colour_header.stamp
    out.frame_id = depth_frame_id
    return out


@dataclass
class IdTable:
    """Per instance id (row ``k`` for id ``k``; row 0 = background) what the messages need.

    Attributes:
        class_text: [K + 1] class id strings of the hypotheses (name or wire index as text).
        class_index: [K + 1] uint16 wire class index (``class_id + 1``; 0 = background).
        score: [K + 1] float32 confidence (0 for background).
        name: [K + 1] class names for labels.
    """

    class_text: list[str]
    class_index: np.ndarray
    score: np.ndarray
    name: list[str]

    @classmethod
    def from_instances(
        cls, inst: Instances, ids: np.ndarray | None = None, class_id_format: str = "name"
    ) -> IdTable:
        """Row ``ids[i]`` (default ``i + 1``, as in the instance mask) describes ``inst[i]``."""
        if class_id_format not in ("name", "index"):
            raise ValueError(f"class_id_format must be 'name' or 'index', got {class_id_format!r}")
        n = len(inst)
        ids = np.arange(1, n + 1) if ids is None else np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != n or (n and ids.min() < 1):
            raise ValueError(f"ids must be {n} values >= 1 (one per instance), got {ids.tolist()}")
        size = int(ids.max()) + 1 if n else 1
        text, name = [""] * size, ["background"] + [""] * (size - 1)
        index = np.zeros(size, np.uint16)
        score = np.zeros(size, np.float32)
        for i, k in enumerate(ids):
            name[k] = inst.class_name(i)
            index[k] = int(inst.class_ids[i]) + 1
            text[k] = name[k] if class_id_format == "name" else str(int(index[k]))
            score[k] = float(inst.scores[i])
        return cls(text, index, score, name)


def _published(ids: np.ndarray | None, k: int) -> int:
    """The published id of frame index ``k`` (1-based): ``ids[k - 1]`` (track ids), else ``k``."""
    return k if ids is None else int(ids[k - 1])


def detections_3d(objs: Objects3D, table: IdTable, header, ids: np.ndarray | None = None):
    """:class:`Objects3D` -> ``vision_msgs/Detection3DArray`` (every Detection3D carries ``header``).

    Per instance: ``id = str(k)`` (``str(ids[k - 1])`` when ``ids`` [M] maps the frame's indices to
    published ids, e.g. track ids: the same as the 2D detection's), one hypothesis (class text,
    score), ``bbox.center`` = robust centre (identity orientation: axis-aligned in the optical
    frame), ``bbox.size`` = extent.
    """
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    out = Detection3DArray()
    out.header = header
    centers, sizes = objs.centers.astype(np.float64), objs.sizes.astype(np.float64)
    dets = []
    for j, k in enumerate(objs.ids.tolist()):
        det = Detection3D()
        det.header = header
        det.id = str(_published(ids, k))
        pos = det.bbox.center.position
        pos.x, pos.y, pos.z = (float(v) for v in centers[j])
        sz = det.bbox.size
        sz.x, sz.y, sz.z = (float(v) for v in sizes[j])
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = table.class_text[k]
        hyp.hypothesis.score = float(table.score[k])
        hp = hyp.pose.pose.position
        hp.x, hp.y, hp.z = pos.x, pos.y, pos.z
        det.results = [hyp]
        dets.append(det)
    out.detections = dets
    return out


def point_cloud(objs: Objects3D, table: IdTable, header, ids: np.ndarray | None = None):
    """The instances' points -> ``sensor_msgs/PointCloud2`` (x y z float32, instance_id class_id uint16).

    One unorganised row (height 1), 16-byte little-endian points, ``is_dense`` (no NaN);
    ``instance_id`` is the published id (``ids``, see :func:`detections_3d`).
    """
    from sensor_msgs.msg import PointCloud2, PointField

    n = len(objs.points)
    rec = np.empty(n, POINT_DTYPE)
    if n:
        rec["x"], rec["y"], rec["z"] = objs.points[:, 0], objs.points[:, 1], objs.points[:, 2]
        if ids is None:
            rec["instance_id"] = objs.point_ids
        else:
            lut = np.zeros(len(ids) + 1, np.uint16)
            lut[1:] = ids
            rec["instance_id"] = lut[objs.point_ids]
        rec["class_id"] = table.class_index[objs.point_ids]
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, n
    fields = []
    for name in POINT_DTYPE.names:
        dt, offset = POINT_DTYPE.fields[name]
        f = PointField()
        f.name, f.offset, f.count = name, int(offset), 1
        f.datatype = PointField.FLOAT32 if dt.kind == "f" else PointField.UINT16
        fields.append(f)
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = POINT_DTYPE.itemsize
    msg.row_step = POINT_DTYPE.itemsize * n
    data = array.array("B")
    data.frombytes(rec.tobytes())
    msg.data = data
    msg.is_dense = True
    return msg


def point_cloud_to_numpy(msg) -> np.ndarray:
    """A ``PointCloud2`` written by :func:`point_cloud` -> [N] ``POINT_DTYPE`` records (for tests/tools).

    Raises:
        ValueError: a different field layout or a big-endian cloud.
    """
    from sensor_msgs.msg import PointField

    layout = [(f.name, int(f.offset), int(f.datatype)) for f in msg.fields]
    kinds = {"f": PointField.FLOAT32, "u": PointField.UINT16}
    want = [(n, int(POINT_DTYPE.fields[n][1]), kinds[POINT_DTYPE[n].kind]) for n in POINT_DTYPE.names]
    if layout != want or msg.point_step != POINT_DTYPE.itemsize or msg.is_bigendian:
        raise ValueError(f"unexpected PointCloud2 layout {layout} step {msg.point_step}; expected {want}")
    return np.frombuffer(bytes(msg.data), POINT_DTYPE, count=int(msg.width) * int(msg.height))


def markers(
    objs: Objects3D, table: IdTable, header, text_height: float = 0.12, ids: np.ndarray | None = None
):
    """``visualization_msgs/MarkerArray``: DELETEALL, then per instance a CUBE and a TEXT_VIEW_FACING label.

    Boxes (ns ``instaseg_boxes``) and labels (ns ``instaseg_labels``) use marker id = the published
    instance id (``ids``, see :func:`detections_3d`); the label reads "#id name score";
    colour = the class colour of the debug image; the label ("name 0.87") floats above the box
    (optical frame: -y is up).
    """
    from visualization_msgs.msg import Marker, MarkerArray

    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    out = [clear]
    for j, k in enumerate(objs.ids.tolist()):
        cx, cy, cz = (float(v) for v in objs.centers[j])
        sx, sy, sz = (max(float(v), _MIN_MARKER_SIZE) for v in objs.sizes[j])
        b, g, r = instance_color(int(table.class_index[k]) - 1)
        box = Marker()
        pid = _published(ids, k)
        box.header, box.ns, box.id = header, MARKER_NS_BOX, pid
        box.type, box.action = Marker.CUBE, Marker.ADD
        box.pose.position.x, box.pose.position.y, box.pose.position.z = cx, cy, cz
        box.scale.x, box.scale.y, box.scale.z = sx, sy, sz
        box.color.r, box.color.g, box.color.b, box.color.a = r / 255.0, g / 255.0, b / 255.0, 0.4
        label = Marker()
        label.header, label.ns, label.id = header, MARKER_NS_LABEL, pid
        label.type, label.action = Marker.TEXT_VIEW_FACING, Marker.ADD
        label.pose.position.x, label.pose.position.z = cx, cz
        label.pose.position.y = cy - 0.5 * sy - text_height
        label.scale.z = text_height
        label.color.r = label.color.g = label.color.b = label.color.a = 1.0
        label.text = f"#{pid} {table.name[k]} {float(table.score[k]):.2f}"
        out += [box, label]
    msg = MarkerArray()
    msg.markers = out
    return msg


def confidence_image(id_image: np.ndarray, table: IdTable) -> np.ndarray:
    """[H, W] instance ids -> [H, W] uint8 ``round(score * 255)`` of the owning instance (0 = background).

    The ``~/semantic_confidence`` image the Nav2 semantic segmentation layer reads next to
    ``~/semantic_mask``.
    """
    lut = np.clip(np.rint(table.score * 255.0), 0, 255).astype(np.uint8)
    lut[0] = 0
    if len(lut) <= int(id_image.max(initial=0)):
        raise ValueError(f"id image holds id {int(id_image.max())} but the table has {len(lut) - 1} rows")
    return lookup(lut, id_image)
