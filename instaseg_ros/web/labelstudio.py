"""Label Studio pre-annotations: our ``Instances`` as Label Studio tasks with ``predictions`` attached.

Regions are **polygons** (``PolygonLabels``), not brush masks, because:

* Label Studio's COCO export writes polygons either way (brush masks are converted to polygons on
  export), so brush pixel-exactness would not survive the step the loop needs (export -> train);
* polygons are plain JSON numbers (percent of the image size): no Label Studio-specific RLE codec is
  needed on our side (the brush codec lives in ``label-studio-sdk``, whose pins would downgrade our
  numpy/OpenCV), and they round-trip through Label Studio's API exactly;
* an annotator corrects a polygon by dragging vertices, which is quicker than repainting a mask.

Each connected part of a mask (OpenCV's outer contours) becomes one region, with the instance's class
and score; parts smaller than ``min_area`` pixels are dropped. Holes are not represented (COCO
polygons have none). The rasterisation tolerance is measured in ``test/web/test_label_studio.py``.

Task format (what ``POST /api/projects/<id>/import`` accepts)::

    {"data": {"image": URL},
     "predictions": [{"model_version": "yolact:...@abcd1234", "score": 0.83,
                      "result": [{"id": "i1p0", "type": "polygonlabels", "from_name": "label",
                                  "to_name": "image", "original_width": W, "original_height": H,
                                  "image_rotation": 0, "score": 0.91,
                                  "value": {"points": [[x%, y%], ...], "closed": true,
                                            "polygonlabels": ["person"]}}]}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from instaseg_ros.core.instances import Instances

FROM_NAME = "label"
TO_NAME = "image"
#: Local files served by Label Studio (``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``) are addressed
#: as this prefix + the path relative to ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def _hex_color(i: int) -> str:
    from instaseg_ros.core.draw import instance_color

    b, g, r = instance_color(i)
    return f"#{r:02x}{g:02x}{b:02x}"


def labeling_config(class_names: list[str]) -> str:
    """The labeling config XML for ``class_names`` (an image and polygon labels, one colour each)."""
    labels = "\n".join(
        f"    <Label value={quoteattr(n)} background={quoteattr(_hex_color(i))}/>"
        for i, n in enumerate(class_names)
    )
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <PolygonLabels name="{FROM_NAME}" toName="{TO_NAME}" strokeWidth="2" pointSize="small"'
        ' opacity="0.4">\n'
        f"{labels}\n"
        "  </PolygonLabels>\n"
        "</View>\n"
    )


def mask_polygons(mask: np.ndarray, min_area: int = 16, epsilon: float = 0.0) -> list[np.ndarray]:
    """Outer contours of a mask's connected parts.

    Args:
        mask: [H, W] bool.
        min_area: parts with fewer pixels are dropped.
        epsilon: Douglas-Peucker tolerance in pixels (0 keeps every contour corner).
    Returns:
        list of [K, 2] float64 (x, y) vertices in pixels, K >= 3, COCO's convention (pixel ``(c, r)``
        covers ``[c, c + 1) x [r, r + 1)``): the contour through the boundary pixels' centres (see
        :func:`polygon_offset`), so rasterising it loses about half of the boundary pixels.
    """
    import cv2

    m = np.ascontiguousarray(mask, dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    out = []
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            continue
        part = (labels == k).astype(np.uint8)
        contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        c = max(contours, key=cv2.contourArea)
        if epsilon > 0:
            c = cv2.approxPolyDP(c, epsilon, True)
        pts = c.reshape(-1, 2).astype(np.float64) + polygon_offset()
        if len(pts) >= 3:
            out.append(pts)
    return out


def polygon_offset() -> float:
    """Offset added to OpenCV contour vertices (pixel indices): 0.55 puts them on the boundary pixels'
    centres, plus 0.05 px.

    pycocotools rasterises a polygon after scaling it by 5 and rounding (``int(5 * v + 0.5)``), so a
    vertex at exactly ``k + 0.5`` sits on a rounding edge, where the ~1e-14 error of Label Studio's
    percent -> pixel conversion flips pixels. ``k + 0.55`` rounds to the same point as ``k + 0.5`` with
    a margin of 0.25 units: the exported polygons rasterise exactly like the ones we sent.
    """
    return 0.55


def instances_to_result(inst: Instances, min_area: int = 16, epsilon: float = 0.0) -> list[dict[str, Any]]:
    """One image's instances -> Label Studio ``result`` regions (polygons in percent of W/H)."""
    h, w = inst.image_size
    out = []
    for i in range(len(inst)):
        for j, pts in enumerate(mask_polygons(inst.masks[i], min_area, epsilon)):
            pct = np.stack([pts[:, 0] * 100.0 / w, pts[:, 1] * 100.0 / h], axis=1)
            out.append(
                {
                    "id": f"i{i + 1}p{j}",
                    "type": "polygonlabels",
                    "from_name": FROM_NAME,
                    "to_name": TO_NAME,
                    "original_width": int(w),
                    "original_height": int(h),
                    "image_rotation": 0,
                    "score": round(float(inst.scores[i]), 4),
                    "value": {
                        "points": [[float(x), float(y)] for x, y in pct],
                        "closed": True,
                        "polygonlabels": [inst.class_name(i)],
                    },
                }
            )
    return out


def result_polygons_px(result: list[dict[str, Any]]) -> list[tuple[str, np.ndarray]]:
    """Label Studio polygon regions -> (label, [K, 2] float64 pixel vertices) (inverse of the above)."""
    out = []
    for r in result:
        if r.get("type") != "polygonlabels":
            continue
        w, h = float(r["original_width"]), float(r["original_height"])
        pts = np.asarray(r["value"]["points"], np.float64).reshape(-1, 2)
        out.append((r["value"]["polygonlabels"][0], np.stack([pts[:, 0] * w / 100, pts[:, 1] * h / 100], 1)))
    return out


def rasterize_polygon(pts: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """[K, 2] pixel vertices -> [H, W] bool with pycocotools (the rasteriser ``CocoDataset`` uses)."""
    from pycocotools import mask as mask_util

    h, w = image_size
    rle = mask_util.frPyObjects([np.asarray(pts, np.float64).reshape(-1).tolist()], h, w)
    return mask_util.decode(mask_util.merge(rle)).astype(bool)


def make_task(image_url: str, inst: Instances, model_version: str, **kwargs: Any) -> dict[str, Any]:
    """One Label Studio task with one prediction (score: the mean instance score, 0 when empty)."""
    result = instances_to_result(inst, **kwargs)
    score = float(np.mean(inst.scores)) if len(inst) else 0.0
    return {
        "data": {TO_NAME: image_url},
        "predictions": [{"model_version": model_version, "score": round(score, 4), "result": result}],
    }


def local_files_url(image: str | Path, document_root: str | Path) -> str:
    """The URL under which Label Studio's local-files serving finds ``image`` (inside ``document_root``).

    Raises:
        ValueError: ``image`` is not inside ``document_root``.
    """
    from urllib.parse import quote

    img, root = Path(image).resolve(), Path(document_root).resolve()
    try:
        rel = img.relative_to(root)
    except ValueError:
        raise ValueError(f"image {img} is not inside the document root {root}") from None
    return LOCAL_FILES_PREFIX + quote(rel.as_posix(), safe="/")


def write_tasks(
    out_dir: str | Path, tasks: list[dict[str, Any]], class_names: list[str]
) -> tuple[Path, Path]:
    """Write ``tasks.json`` and ``labeling_config.xml`` into ``out_dir`` (created); returns both paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = d / "tasks.json", d / "labeling_config.xml"
    tasks_path.write_text(json.dumps(tasks), encoding="utf-8")
    config_path.write_text(labeling_config(class_names), encoding="utf-8")
    return tasks_path, config_path


def _find_image(file_name: str, roots: list[Path]) -> Path | None:
    """The file that an export's ``file_name`` names: itself, else its longest path suffix under a root.

    Label Studio's COCO export writes images it did not copy (local-files storage) as a path relative
    to a temporary folder of the server (``../<dirs>/frames/a.png``); the suffix after the ``..``
    parts is the file's path under some folder of ours.
    """
    p = Path(file_name)
    if p.is_absolute() and p.is_file():
        return p
    parts = [s for s in p.parts if s not in ("..", ".", "/")]
    for k in range(len(parts)):
        for root in roots:
            cand = root.joinpath(*parts[k:])
            if cand.is_file():
                return cand.resolve()
    return None


def resolve_coco_export(export: str | Path, image_roots: list[str | Path], out_dir: str | Path) -> Path:
    """A Label Studio COCO export (the ``.zip`` or its unpacked folder) -> ``out_dir/result.json`` whose
    ``file_name`` entries are absolute paths of the images (found in the export's ``images/`` or under
    ``image_roots``), loadable by :class:`instaseg_ros.data.coco.CocoDataset` and ``instaseg train``.

    Raises:
        FileNotFoundError: no ``result.json`` in the export, or an image found nowhere (all named).
    """
    import zipfile

    export, out = Path(export), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if export.is_file() and zipfile.is_zipfile(export):
        with zipfile.ZipFile(export) as z:
            z.extractall(out / "export")
        export = out / "export"
    ann = export / "result.json"
    if not ann.is_file():
        raise FileNotFoundError(f"no result.json in the Label Studio COCO export {export}")
    data = json.loads(ann.read_text(encoding="utf-8"))
    roots = [export.resolve(), *(Path(r).resolve() for r in image_roots)]
    missing = []
    for im in data.get("images", []):
        found = _find_image(str(im.get("file_name", "")), roots)
        if found is None:
            missing.append(str(im.get("file_name")))
        else:
            im["file_name"] = str(found)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} exported image(s) not found under {', '.join(map(str, roots))}: {missing[:5]}"
        )
    dst = out / "result.json"
    dst.write_text(json.dumps(data), encoding="utf-8")
    return dst
