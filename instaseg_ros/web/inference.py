"""What the web app does, without Gradio: read uploads safely, cache models, segment, write outputs.

Every function here raises :class:`WebInputError` (a ``ValueError``) with a message meant for the page
when the input is bad; the Gradio layer (:mod:`instaseg_ros.web.app`) shows that message and keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter

#: The shipped model of each family (relative to the package's share directory or the checkout).
SHIPPED_MODELS: dict[str, str] = {
    "yolact": "models/yolact_se_r18_indoor.pth",
    "yolo_fcn": "models/yolo_fcn_indoor.pth",
}
#: Largest upload the app decodes, in pixels (read from the file header before decoding).
DEFAULT_MAX_PIXELS = 40_000_000
#: Smallest side an upload may have (the node's rule as well).
MIN_SIDE = 16
#: Largest upload accepted, in bytes.
MAX_FILE_BYTES = 200 * 1024 * 1024
TABLE_HEADERS = ["image", "id", "class", "score", "x1", "y1", "x2", "y2", "area"]


class WebInputError(ValueError):
    """A bad upload or setting; the message is shown in the page as it is."""


@dataclass(frozen=True)
class ModelKey:
    """What identifies a loaded model: thresholds are not part of it (they never reload the model)."""

    family: str
    weights: str
    backend: str
    device: str


class ModelCache:
    """Loaded segmenters by :class:`ModelKey`, least recently used dropped beyond ``capacity``.

    Loading goes through :func:`instaseg_ros.models.loading.load_model` only. Thread-safe: Gradio
    runs handlers in worker threads.
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = max(1, int(capacity))
        self._models: OrderedDict[ModelKey, Segmenter] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was actually loaded (tests check the cache with it)

    def get(self, key: ModelKey) -> Segmenter:
        """The segmenter for ``key``, loading it on first use.

        Raises:
            WebInputError: the model cannot be loaded (wrong family, missing file, unavailable backend).
        """
        from instaseg_ros.models.loading import ModelLoadError, load_model
        from instaseg_ros.runtime.base import BackendUnavailableError

        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            try:
                seg = load_model(key.family, key.weights, backend=key.backend, device=key.device)
            except (ModelLoadError, BackendUnavailableError, FileNotFoundError, ValueError) as e:
                raise WebInputError(f"cannot load the model: {e}") from None
            self.loads += 1
            self._models[key] = seg
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return seg


def resolve_weights(family: str, choice: str | None, path: str | None, upload: str | None) -> str:
    """The checkpoint to load: an uploaded file, else a typed path, else the chosen shipped model.

    Raises:
        WebInputError: nothing given for a family without a shipped model, or a shipped file missing.
    """
    from instaseg_ros.core.resources import package_file

    if upload:
        return str(upload)
    if path and path.strip():
        return path.strip()
    rel = choice if choice and choice.startswith("models/") else SHIPPED_MODELS.get(family)
    if not rel:
        raise WebInputError(
            f"family {family!r} has no shipped model: type a checkpoint path or upload a checkpoint"
        )
    try:
        return str(package_file(rel))
    except FileNotFoundError as e:
        raise WebInputError(str(e)) from None


def parse_class_filter(text: str | list[str] | None, class_names: list[str]) -> list[str]:
    """Comma-separated names (or a list) -> the class filter; unknown names are an error."""
    if text is None:
        return []
    names = [c.strip() for c in (text.split(",") if isinstance(text, str) else text) if c and c.strip()]
    unknown = [c for c in names if c not in class_names]
    if unknown:
        raise WebInputError(f"class filter names unknown classes {unknown}; this model knows {class_names}")
    return names


def make_params(score: float, nms: float, mask: float, top_k: float, classes: list[str]) -> InferenceParams:
    """Validated :class:`InferenceParams` from the page's controls."""
    try:
        return InferenceParams(
            score_threshold=float(score),
            nms_threshold=float(nms),
            mask_threshold=float(mask),
            top_k=int(top_k),
            class_filter=list(classes),
        )
    except (TypeError, ValueError) as e:
        raise WebInputError(f"invalid setting: {e}") from None


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image from its header, nothing decoded.

    PNG and JPEG headers are checked strictly (chunk CRCs, marker structure); other formats go
    through Pillow's lazy open. Raises :class:`WebInputError` for anything that is not an image.
    """
    from instaseg_ros.ros.conversions import jpeg_dimensions, png_dimensions

    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return png_dimensions(data)
        if data[:3] == b"\xff\xd8\xff":
            return jpeg_dimensions(data)
    except ValueError as e:
        raise WebInputError(str(e)) from None
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise WebInputError("not an image file (PNG, JPEG, BMP, TIFF or WebP expected)") from None


def read_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An uploaded image file -> [H, W, 3] uint8 BGR, its size checked before decoding.

    Raises:
        WebInputError: naming the file and the problem (empty, too large, not an image, corrupt).
    """
    import cv2

    p = Path(path)
    name = p.name
    try:
        size = p.stat().st_size
        if size == 0:
            raise WebInputError(f"{name}: the file is empty")
        if size > MAX_FILE_BYTES:
            raise WebInputError(f"{name}: {size} bytes is more than the {MAX_FILE_BYTES} byte limit")
        data = p.read_bytes()
    except OSError as e:
        raise WebInputError(f"{name}: cannot read the upload ({e.strerror or e})") from None
    try:
        w, h = image_dimensions(data)
    except WebInputError as e:
        raise WebInputError(f"{name}: {e}") from None
    if w < MIN_SIDE or h < MIN_SIDE:
        raise WebInputError(f"{name}: {w}x{h} is too small (both sides must be at least {MIN_SIDE} px)")
    if w * h > max_pixels:
        raise WebInputError(
            f"{name}: {w}x{h} is {w * h} pixels, more than the {max_pixels} pixel limit of this server"
        )
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise WebInputError(f"{name}: the image data is corrupt and cannot be decoded")
    return img


def rgb_to_bgr(frame: np.ndarray) -> np.ndarray:
    """A browser frame ([H, W, 3|4] uint8 RGB(A)) -> [H, W, 3] uint8 BGR."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or frame.dtype != np.uint8:
        raise WebInputError(f"expected an RGB image, got an array of shape {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame[:, :, 2::-1])


def instance_rows(name: str, inst: Instances) -> list[list[Any]]:
    """Table rows (``TABLE_HEADERS``): id = the value in the instance-id PNG (``i + 1``)."""
    areas = inst.masks.reshape(len(inst), -1).sum(axis=1) if len(inst) else np.zeros(0, np.int64)
    rows = []
    for i in range(len(inst)):
        x1, y1, x2, y2 = (round(float(v), 1) for v in inst.boxes[i])
        rows.append(
            [name, i + 1, inst.class_name(i), round(float(inst.scores[i]), 3), x1, y1, x2, y2, int(areas[i])]
        )
    return rows


def coco_results(
    named: list[tuple[str, Instances]], class_names: list[str], model_version: str
) -> dict[str, Any]:
    """COCO results with RLE masks plus the ``images``/``categories`` their ids refer to.

    Returns ``{"info", "images", "categories", "annotations"}``: ``annotations`` are COCO result
    entries (``image_id``, ``category_id = class index + 1``, ``bbox`` xywh, ``score``,
    ``segmentation`` compressed RLE), so the file is both a results list holder and a loadable
    ground-truth-shaped JSON.
    """
    from instaseg_ros.evaluation.coco_eval import instances_to_coco

    images, anns = [], []
    for image_id, (name, inst) in enumerate(named, start=1):
        h, w = inst.image_size
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        for j, r in enumerate(instances_to_coco(inst, image_id)):
            x, y, bw, bh = r["bbox"]
            r["id"] = len(anns) + 1
            r["area"] = int(inst.masks[j].sum())
            r["iscrowd"] = 0
            r["bbox"] = [round(float(x), 2), round(float(y), 2), round(float(bw), 2), round(float(bh), 2)]
            anns.append(r)
    return {
        "info": {"description": f"instaseg_ros web predictions ({model_version})"},
        "images": images,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)],
        "annotations": anns,
    }


def write_id_png(path: str | Path, inst: Instances) -> Path:
    """The mono16 instance-id PNG (0 background, ``i + 1`` = table id ``i + 1``)."""
    import cv2

    ids = inst.instance_id_image()
    if not cv2.imwrite(str(path), ids):
        raise OSError(f"cannot write {path}")
    return Path(path)


def model_version(key: ModelKey) -> str:
    """A short, stable name of the model: family, weights file name and an 8-hex digest of its bytes."""
    p = Path(key.weights)
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        tag = digest.hexdigest()[:8]
    except OSError:
        tag = "unknown"
    return f"{key.family}:{p.name}@{tag}"


def dump_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as JSON (UTF-8) and return the path."""
    Path(path).write_text(json.dumps(obj), encoding="utf-8")
    return Path(path)
