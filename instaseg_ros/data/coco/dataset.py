"""The COCO JSON + image folder dataset (:class:`CocoDataset`) and its helpers."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from instaseg_ros.core.masks import masks_to_boxes
from instaseg_ros.data.coco.labelmap import _norm, read_label_map
from instaseg_ros.data.coco.parse import _Img, parse_annotation
from instaseg_ros.data.coco.validate import (
    BAD_CATEGORY_ENTRY,
    BAD_IMAGE_ENTRY,
    DUPLICATE_IMAGE_ID,
    EMPTY_MASK,
    MISSING_IMAGE,
    SIZE_MISMATCH,
    UNREADABLE_IMAGE,
    ValidationReport,
)

log = logging.getLogger(__name__)


class CocoDataset:
    """A COCO JSON + image folder as a map-style dataset with validation.

    Args:
        ann_file: the COCO JSON.
        image_root: folder that ``file_name`` is relative to (default: the JSON's folder).
        class_names: model classes in order (list or label-map file). Categories are matched
            by (case/underscore-insensitive) name; categories not listed are left out (class
            subsetting). Default: every category, ordered by id.
        aliases: dataset category name -> class name (e.g. ``{"sofa": "couch"}``).
        transform: ``transform(image, target) -> (image, target)``, e.g. from ``augment``.
        include_crowd: keep crowd annotations (``iscrowd=1`` in the target) or drop them.
        skip_empty: drop images with no kept annotation.
        check_files: check at load time that every image file exists.
        on_error: what ``__getitem__`` does with an image that cannot be read: ``"next"``
            returns the next readable sample, ``"none"`` returns None (use
            :func:`collate_skip_none`), ``"raise"`` raises.

    Attributes:
        class_names: [C] model class names; ``labels`` index this list.
        category_ids: [C] COCO category id of each class (for ``instances_to_coco``).
        validation_report: the :class:`ValidationReport` (load- and read-time problems).
            Read-time problems found inside DataLoader worker processes stay in those
            workers (they are logged); ``python -m instaseg_ros.data.coco ANN --decode``
            finds every problem up front.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_root: str | Path | None = None,
        class_names: Sequence[str] | str | Path | None = None,
        aliases: dict[str, str] | None = None,
        transform: Callable | None = None,
        include_crowd: bool = True,
        skip_empty: bool = False,
        check_files: bool = True,
        on_error: str = "next",
    ) -> None:
        if on_error not in ("next", "none", "raise"):
            raise ValueError(f"CocoDataset: on_error must be 'next', 'none' or 'raise', got {on_error!r}")
        self.ann_file = Path(ann_file)
        self.image_root = Path(image_root) if image_root is not None else self.ann_file.parent
        self.transform = transform
        self.on_error = on_error
        self.include_crowd = include_crowd
        self.validation_report = ValidationReport(source=str(self.ann_file))
        data = self._load_json()
        self._check_provenance(data)
        self._build_label_map(data["categories"], class_names, aliases or {})
        self._images: list[_Img] = self._parse(data, check_files, skip_empty)
        self._bad_indices: set[int] = set()
        if not self.validation_report.ok:
            log.warning("%s", self.validation_report.summary())

    # ------------------------------------------------------------------ loading
    def _load_json(self) -> dict[str, Any]:
        if not self.ann_file.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.ann_file}")
        try:
            data = json.loads(self.ann_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"COCO annotation file {self.ann_file} is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"COCO annotation file {self.ann_file}: top level must be an object")
        for key in ("images", "categories"):
            if not isinstance(data.get(key), list):
                raise ValueError(f"COCO annotation file {self.ann_file}: missing or non-list key '{key}'")
        if not isinstance(data.get("annotations", []), list):
            raise ValueError(f"COCO annotation file {self.ann_file}: key 'annotations' must be a list")
        data.setdefault("annotations", [])
        return data

    def _check_provenance(self, data: dict[str, Any]) -> None:
        """Warn when the file is a synthetic set rendered by another generator version."""
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        self.generator_version: int | None = None
        if str(info.get("description", "")).startswith("instaseg_ros synthetic"):
            from instaseg_ros.data.synthetic import GENERATOR_VERSION

            self.generator_version = int(info.get("generator_version", 1))
            if self.generator_version != GENERATOR_VERSION:
                log.warning(
                    "%s was rendered by synthetic generator version %d but the current one is %d: "
                    "scenes generated now (e.g. a validation set) differ from it; delete and re-render it",
                    self.ann_file,
                    self.generator_version,
                    GENERATOR_VERSION,
                )

    def _build_label_map(self, categories: list[dict], class_names: Any, aliases: dict[str, str]) -> None:
        cats: dict[int, str] = {}
        bad: list[str] = []  # every broken category entry is reported (and skipped), not just the first
        for i, c in enumerate(categories):
            try:
                cats[int(c["id"])] = str(c["name"])
            except (KeyError, TypeError, ValueError):
                bad.append(f"categories[{i}] {c!r}"[:200])
                self.validation_report.add(BAD_CATEGORY_ENTRY, f"{bad[-1]}: needs an integer id and a name")
        if bad and not cats:
            raise ValueError(f"COCO annotation file {self.ann_file}: no usable category, every entry lacks "
                             f"an integer id or a name: {'; '.join(bad)}")
        self.categories = cats
        alias = {_norm(k): _norm(v) for k, v in aliases.items()}
        if class_names is None:
            ids = sorted(cats)
            names: list[str] = []
            self.cat_to_label: dict[int, int] = {}
            for cid in ids:  # duplicated names share one class
                n = cats[cid]
                if n not in names:
                    names.append(n)
                self.cat_to_label[cid] = names.index(n)
            self.class_names = names
        else:
            self.class_names = read_label_map(class_names)
            wanted = {_norm(n): i for i, n in enumerate(self.class_names)}
            self.cat_to_label = {}
            for cid, n in cats.items():
                key = alias.get(_norm(n), _norm(n))
                if key in wanted:
                    self.cat_to_label[cid] = wanted[key]
            found = set(self.cat_to_label.values())
            missing = [self.class_names[i] for i in range(len(self.class_names)) if i not in found]
            if missing:
                raise ValueError(
                    f"COCO annotation file {self.ann_file}: classes {missing} match no category "
                    f"(categories: {sorted(set(cats.values()))}); fix the names or add aliases"
                )
        self.category_ids = [
            min(c for c, lab in self.cat_to_label.items() if lab == i) for i in range(len(self.class_names))
        ]

    def _resolve(self, file_name: str) -> Path | None:
        """Find an image: as given under the root, absolute, then by (URL-decoded) basename
        under the root and ``root/images`` (Label Studio ``/data/upload/<project>/`` names)."""
        from urllib.parse import unquote

        fn = str(file_name).replace("\\", "/")
        base = fn.rsplit("/", 1)[-1]
        root = self.image_root
        cands = [root / fn.lstrip("/"), Path(fn), root / base, root / "images" / base]
        if unquote(base) != base:
            cands += [root / unquote(base), root / "images" / unquote(base)]
        for p in cands:
            if p.is_file():
                return p
        return None

    def _parse(self, data: dict[str, Any], check_files: bool, skip_empty: bool) -> list[_Img]:
        rep = self.validation_report
        imgs: dict[int, _Img] = {}
        rep.num_images = len(data["images"])
        rep.num_annotations = len(data["annotations"])
        for rec in data["images"]:
            try:
                iid, fn = int(rec["id"]), str(rec["file_name"])
                h, w = int(rec.get("height", 0) or 0), int(rec.get("width", 0) or 0)
            except (KeyError, TypeError, ValueError) as e:
                rep.add(BAD_IMAGE_ENTRY, f"image entry without a valid id/file_name ({e!r}): {rec!r}"[:300])
                continue
            if iid in imgs:
                rep.add(DUPLICATE_IMAGE_ID, f"image id {iid} appears twice ({fn})", image_id=iid, file=fn)
                continue
            path = self._resolve(fn) if check_files else self.image_root / fn.replace("\\", "/").lstrip("/")
            if path is None:
                rep.add(
                    MISSING_IMAGE,
                    f"image file not found: {fn} (looked under {self.image_root})",
                    image_id=iid,
                    file=fn,
                )
                imgs[iid] = None  # type: ignore[assignment]  # known id, annotations silently dropped
                continue
            if h <= 0 or w <= 0:  # Label Studio/CVAT exports carry sizes; read them when absent
                im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if im is None:
                    rep.add(UNREADABLE_IMAGE, f"cannot read image {path}", image_id=iid, file=fn)
                    imgs[iid] = None  # type: ignore[assignment]
                    continue
                h, w = im.shape[:2]
            imgs[iid] = _Img(iid, path, fn, h, w, [])
        for a in data["annotations"]:
            ann = parse_annotation(
                a, imgs, self.categories, self.cat_to_label, self.include_crowd, self.validation_report
            )
            if ann is not None:
                imgs[int(a["image_id"])].anns.append(ann)
        out = [im for im in imgs.values() if im is not None and (im.anns or not skip_empty)]
        rep.kept_images = len(out)
        rep.kept_annotations = sum(len(im.anns) for im in out)
        return out

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._images)

    def limit(self, max_images: int) -> CocoDataset:
        """Keep only the first ``max_images`` images (in file order); returns self."""
        if max_images < 0:
            raise ValueError(f"CocoDataset.limit: max_images must be >= 0, got {max_images}")
        self._images = self._images[:max_images]
        self._bad_indices = {i for i in self._bad_indices if i < max_images}
        return self

    @property
    def image_ids(self) -> list[int]:
        return [im.image_id for im in self._images]

    def image_info(self, index: int) -> dict[str, Any]:
        im = self._images[index]
        return {
            "id": im.image_id,
            "file_name": im.file_name,
            "path": str(im.path),
            "height": im.height,
            "width": im.width,
            "num_annotations": len(im.anns),
        }

    def _masks(self, im: _Img, h: int, w: int) -> np.ndarray:
        from pycocotools import mask as mask_util

        out = np.zeros((len(im.anns), h, w), np.uint8)
        for k, a in enumerate(im.anns):
            if a.kind == "poly":
                rles = mask_util.frPyObjects(a.data, h, w)
                out[k] = mask_util.decode(mask_util.merge(rles))
            elif a.kind == "rle":
                counts = a.data["counts"]
                if isinstance(counts, list):
                    rle = mask_util.frPyObjects(a.data, h, w)
                else:
                    rle = {
                        "size": [h, w],
                        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
                    }
                out[k] = mask_util.decode(rle)
            else:
                x, y, bw, bh = a.data
                x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
                x1, y1 = min(w, int(math.ceil(x + bw))), min(h, int(math.ceil(y + bh)))
                out[k, y0:y1, x0:x1] = 1
        return out

    def load(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Image and target of ``index`` without the transform; raises on an unreadable image."""
        im = self._images[index]
        image = cv2.imread(str(im.path), cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot read image {im.path} (image id {im.image_id})")
        h, w = image.shape[:2]
        if (h, w) != (im.height, im.width):
            raise OSError(
                f"image {im.path} is {w}x{h} but the annotation file says {im.width}x{im.height} "
                f"(image id {im.image_id})"
            )
        try:
            masks = self._masks(im, h, w)
        except Exception as e:  # corrupt RLE strings only show when decoded
            raise OSError(f"cannot decode the segmentations of image id {im.image_id}: {e}") from e
        keep = masks.reshape(len(masks), -1).any(axis=1) if len(masks) else np.zeros(0, bool)
        for k in np.flatnonzero(~keep):
            self.validation_report.add(
                EMPTY_MASK, "segmentation decodes to an empty mask", im.image_id, im.anns[k].ann_id
            )
        anns = [a for a, kp in zip(im.anns, keep) if kp]
        masks = masks[keep]
        target = {
            "boxes": masks_to_boxes(masks.astype(bool)),
            "labels": np.asarray([a.label for a in anns], np.int64),
            "masks": masks,
            "image_id": im.image_id,
            "iscrowd": np.asarray([a.iscrowd for a in anns], np.uint8),
        }
        return image, target

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]] | None:
        n = len(self._images)
        if not -n <= index < n:
            raise IndexError(f"CocoDataset index {index} out of range [0, {n})")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad_indices and self.on_error == "next":
                continue
            try:
                image, target = self.load(i)
            except OSError as e:
                if self.on_error == "raise":
                    raise
                if i not in self._bad_indices:
                    self._bad_indices.add(i)
                    im = self._images[i]
                    kind = SIZE_MISMATCH if "annotation file says" in str(e) else UNREADABLE_IMAGE
                    self.validation_report.add(
                        kind,
                        str(e),
                        im.image_id,
                        file=im.file_name,
                        action="replaced" if self.on_error == "next" else "skipped",
                    )
                    log.warning("skipping sample: %s", e)
                if self.on_error == "none":
                    return None
                continue
            if self.transform is not None:
                image, target = self.transform(image, target)
            return image, target
        raise RuntimeError(f"no readable image in {self.ann_file} ({n} entries)")

    def coco_gt(self) -> dict[str, Any]:
        """The kept images/annotations (classes in ``class_names`` only) as a clean COCO dict
        for ``evaluate_coco``: boxes and areas recomputed from the segmentations, category ids
        as in ``category_ids`` (use those to map predicted class indices)."""
        from pycocotools import mask as mask_util

        images, anns = [], []
        for i, im in enumerate(self._images):
            if i in self._bad_indices:
                continue
            images.append(
                {"id": im.image_id, "file_name": im.file_name, "height": im.height, "width": im.width}
            )
            h, w = im.height, im.width
            for a in im.anns:
                if a.kind == "poly":
                    rle = mask_util.merge(mask_util.frPyObjects(a.data, h, w))
                    seg: Any = a.data
                elif a.kind == "rle":
                    c = a.data["counts"]
                    rle = (
                        mask_util.frPyObjects(a.data, h, w)
                        if isinstance(c, list)
                        else {"size": [h, w], "counts": c.encode("ascii") if isinstance(c, str) else c}
                    )
                    seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
                else:
                    x, y, bw, bh = a.data
                    seg = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
                    rle = mask_util.merge(mask_util.frPyObjects(seg, h, w))
                area = float(mask_util.area(rle))
                if area <= 0:
                    continue
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": im.image_id,
                        "category_id": self.category_ids[a.label],
                        "segmentation": seg,
                        "area": area,
                        "bbox": [float(v) for v in mask_util.toBbox(rle)],
                        "iscrowd": a.iscrowd,
                    }
                )
        cats = [{"id": cid, "name": self.class_names[i]} for i, cid in enumerate(self.category_ids)]
        return {"images": images, "annotations": anns, "categories": cats}


def load_label_studio_export(export_dir: str | Path, **kwargs: Any) -> CocoDataset:
    """A Label Studio "COCO" export folder (``result.json`` + ``images/``) as a :class:`CocoDataset`."""
    d = Path(export_dir)
    for name in ("result.json", "annotations.json", "instances.json"):
        if (d / name).is_file():
            return CocoDataset(d / name, image_root=d, **kwargs)
    raise FileNotFoundError(f"no result.json in the Label Studio export folder {d}")


def collate_skip_none(batch: list) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """DataLoader ``collate_fn``: drops None samples, returns (images, targets) lists."""
    batch = [b for b in batch if b is not None]
    return [b[0] for b in batch], [b[1] for b in batch]
