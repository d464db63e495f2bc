"""COCO-format instance segmentation datasets (COCO, Label Studio and CVAT exports).

``CocoDataset(ann_file, image_root)`` reads images + a COCO JSON with polygon or RLE
(compressed or uncompressed) segmentations, crowd flags and arbitrary category ids
(mapped to 0-based class indices, ordered by category id or by a given list of names).
Broken entries never stop training: they are collected in ``dataset.validation_report``
(one :class:`Problem` per entry, with image/annotation ids) and skipped (or fixed, when
the fix is exact, e.g. a box recomputed from a valid mask).

Label Studio note: its "COCO" export is a folder with ``result.json`` and ``images/``;
``file_name`` is ``images/<hash>-<name>.jpg`` (sometimes with Windows backslashes or an
``/data/upload/<project>/`` prefix) and category ids start at 0. Both are handled: file
names are resolved relative to the image root with basename fallbacks, and category ids
are only ever used as keys. ``load_label_studio_export(export_dir)`` wraps it.

Sample contract: ``dataset[i] -> (image [H,W,3] uint8 BGR, target)`` with ``target =
{"boxes": float32 [N,4] xyxy px, "labels": int64 [N], "masks": uint8 [N,H,W],
"image_id": int, "iscrowd": uint8 [N]}``; boxes are always recomputed from the masks.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from instaseg_ros.core.masks import masks_to_boxes

log = logging.getLogger(__name__)

# problem kinds
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
SIZE_MISMATCH = "image_size_mismatch"
BAD_IMAGE_ENTRY = "bad_image_entry"
DUPLICATE_IMAGE_ID = "duplicate_image_id"
UNKNOWN_IMAGE = "unknown_image"
UNKNOWN_CATEGORY = "unknown_category"
DEGENERATE_POLYGON = "degenerate_polygon"
BAD_SEGMENTATION = "bad_segmentation"
MISSING_SEGMENTATION = "missing_segmentation"
EMPTY_MASK = "empty_mask"
BOX_OUTSIDE_IMAGE = "box_outside_image"
DEGENERATE_BOX = "degenerate_box"


@dataclass
class Problem:
    """One broken entry of a COCO file.

    Attributes:
        kind: one of the module's problem kinds (``missing_image``, ``degenerate_polygon``, ...).
        message: what is wrong, human readable.
        image_id, ann_id: COCO ids of the entry (None when not applicable).
        file: the image file involved, if any.
        action: ``skipped`` (entry dropped), ``fixed`` (kept after an exact repair) or
            ``replaced`` (unreadable at load time; a neighbouring sample was returned).
    """

    kind: str
    message: str
    image_id: int | None = None
    ann_id: int | None = None
    file: str | None = None
    action: str = "skipped"

    def __str__(self) -> str:
        ids = []
        if self.image_id is not None:
            ids.append(f"image {self.image_id}")
        if self.ann_id is not None:
            ids.append(f"annotation {self.ann_id}")
        where = f" [{', '.join(ids)}]" if ids else ""
        return f"{self.kind}{where} ({self.action}): {self.message}"


@dataclass
class ValidationReport:
    """Problems found in a COCO file plus what was kept."""

    source: str = ""
    problems: list[Problem] = field(default_factory=list)
    num_images: int = 0
    num_annotations: int = 0
    kept_images: int = 0
    kept_annotations: int = 0

    def add(
        self,
        kind: str,
        message: str,
        image_id: int | None = None,
        ann_id: int | None = None,
        file: str | None = None,
        action: str = "skipped",
    ) -> Problem:
        p = Problem(kind, message, image_id, ann_id, file, action)
        self.problems.append(p)
        return p

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Number of problems per kind."""
        return dict(Counter(p.kind for p in self.problems))

    def of_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def summary(self) -> str:
        """One line: kept/total and problem counts."""
        c = ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items())) or "no problems"
        return (
            f"{self.source}: kept {self.kept_images}/{self.num_images} images, "
            f"{self.kept_annotations}/{self.num_annotations} annotations; {c}"
        )

    def __str__(self) -> str:
        return "\n".join([self.summary()] + [f"  - {p}" for p in self.problems])

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "num_images": self.num_images,
            "num_annotations": self.num_annotations,
            "kept_images": self.kept_images,
            "kept_annotations": self.kept_annotations,
            "counts": self.counts(),
            "problems": [asdict(p) for p in self.problems],
        }

    def write(self, path: str | Path) -> None:
        """Write the report as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))


def read_label_map(source: str | Path | Sequence[str]) -> list[str]:
    """Class names in model order from a list, or a file: ``.txt`` (one name a line),
    ``.json``/``.yaml`` (a list, ``{names: [...]}``, or ``{index: name}``)."""
    if not isinstance(source, (str, Path)):
        names = [str(n) for n in source]
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"label map file not found: {path}")
        text = path.read_text()
        if path.suffix.lower() == ".txt":
            names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        else:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
            if isinstance(data, dict) and "names" in data:
                data = data["names"]
            if isinstance(data, dict):
                data = [data[k] for k in sorted(data, key=lambda k: int(k))]
            if not isinstance(data, list):
                raise ValueError(
                    f"label map {path}: expected a list of names, {{names: [...]}} or {{index: name}}"
                )
            names = [str(n) for n in data]
    if not names:
        raise ValueError(f"label map {source!r} is empty")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ValueError(f"label map {source!r} repeats class names: {dup}")
    return names


def _norm(name: str) -> str:
    return " ".join(str(name).strip().lower().replace("_", " ").split())


def _polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@dataclass
class _Ann:
    ann_id: int | None
    label: int
    iscrowd: int
    kind: str  # "poly" | "rle" | "box"
    data: Any


@dataclass
class _Img:
    image_id: int
    path: Path
    file_name: str
    height: int
    width: int
    anns: list[_Ann]


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
        for c in categories:
            if not isinstance(c, dict) or "id" not in c or "name" not in c:
                raise ValueError(
                    f"COCO annotation file {self.ann_file}: category entry without id/name: {c!r}"
                )
            cats[int(c["id"])] = str(c["name"])
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
            ann = self._parse_ann(a, imgs)
            if ann is not None:
                imgs[int(a["image_id"])].anns.append(ann)
        out = [im for im in imgs.values() if im is not None and (im.anns or not skip_empty)]
        rep.kept_images = len(out)
        rep.kept_annotations = sum(len(im.anns) for im in out)
        return out

    def _parse_ann(self, a: dict[str, Any], imgs: dict[int, _Img | None]) -> _Ann | None:
        rep = self.validation_report
        if not isinstance(a, dict):
            rep.add(BAD_SEGMENTATION, f"annotation entry is not an object: {a!r}"[:300])
            return None
        aid = a.get("id")
        aid = int(aid) if isinstance(aid, (int, str)) and str(aid).lstrip("-").isdigit() else None
        if "image_id" not in a or "category_id" not in a:
            rep.add(BAD_SEGMENTATION, f"annotation without image_id/category_id: {a!r}"[:300], ann_id=aid)
            return None
        iid = int(a["image_id"])
        if iid not in imgs:
            rep.add(
                UNKNOWN_IMAGE,
                f"annotation refers to image id {iid}, which is not in 'images'",
                image_id=iid,
                ann_id=aid,
            )
            return None
        im = imgs[iid]
        if im is None:
            return None  # the image was already reported
        cid = int(a["category_id"])
        if cid not in self.categories:
            rep.add(
                UNKNOWN_CATEGORY,
                f"category id {cid} is not in 'categories' (known: {sorted(self.categories)})",
                image_id=iid,
                ann_id=aid,
            )
            return None
        if cid not in self.cat_to_label:
            return None  # class subsetting, not a problem
        label = self.cat_to_label[cid]
        crowd = int(bool(a.get("iscrowd", 0)))
        if crowd and not self.include_crowd:
            return None
        h, w = im.height, im.width
        box = a.get("bbox")
        box_ok = None
        if box is not None:
            try:
                x, y, bw, bh = (float(v) for v in box)
                if not all(math.isfinite(v) for v in (x, y, bw, bh)):
                    raise ValueError("non-finite")
            except (TypeError, ValueError):
                rep.add(DEGENERATE_BOX, f"bbox {box!r} is not 4 finite numbers", iid, aid, action="fixed")
                box = None
            else:
                if bw <= 0 or bh <= 0:
                    rep.add(
                        DEGENERATE_BOX, f"bbox {box} has non-positive width/height", iid, aid, action="fixed"
                    )
                    box = None
                else:
                    inside = x < w and y < h and x + bw > 0 and y + bh > 0
                    within = x >= -1 and y >= -1 and x + bw <= w + 1 and y + bh <= h + 1
                    box_ok = inside
                    if not within:
                        rep.add(
                            BOX_OUTSIDE_IMAGE,
                            f"bbox {box} leaves the {w}x{h} image" + ("" if inside else " entirely"),
                            iid,
                            aid,
                            action="pending",
                        )
        seg = a.get("segmentation")
        parsed: _Ann | None = None
        if isinstance(seg, list) and len(seg) > 0:
            polys = seg if isinstance(seg[0], (list, tuple)) else [seg]  # a flat single polygon happens
            good, why = [], []
            for k, p in enumerate(polys):
                try:
                    arr = np.asarray(p, np.float64).reshape(-1)
                except (TypeError, ValueError):
                    why.append(f"polygon {k} is not a list of numbers")
                    continue
                if len(arr) % 2 or len(arr) < 6 or not np.all(np.isfinite(arr)):
                    why.append(f"polygon {k} has {len(arr) / 2:g} points (needs >= 3 finite x,y pairs)")
                elif _polygon_area(arr.reshape(-1, 2)) <= 0.0:
                    why.append(f"polygon {k} has zero area")
                else:
                    good.append(arr.tolist())
            if not good:
                self._finish_box_problem(aid, "skipped")
                rep.add(DEGENERATE_POLYGON, "; ".join(why) + "; no usable polygon left", iid, aid)
                return None
            if why:
                rep.add(
                    DEGENERATE_POLYGON,
                    "; ".join(why) + "; dropped, other polygons kept",
                    iid,
                    aid,
                    action="fixed",
                )
            parsed = _Ann(aid, label, crowd, "poly", good)
        elif isinstance(seg, dict):
            size, counts = seg.get("size"), seg.get("counts")
            if (
                not isinstance(size, (list, tuple))
                or len(size) != 2
                or not isinstance(counts, (list, str, bytes))
                or len(counts) == 0
            ):
                self._finish_box_problem(aid, "skipped")
                rep.add(
                    BAD_SEGMENTATION,
                    f"RLE needs 'size' [h, w] and non-empty 'counts', got keys {sorted(seg)}",
                    iid,
                    aid,
                )
                return None
            if [int(size[0]), int(size[1])] != [h, w]:
                self._finish_box_problem(aid, "skipped")
                rep.add(
                    BAD_SEGMENTATION, f"RLE size {list(size)} differs from image size [{h}, {w}]", iid, aid
                )
                return None
            if isinstance(counts, list) and sum(int(c) for c in counts) != h * w:
                self._finish_box_problem(aid, "skipped")
                rep.add(
                    BAD_SEGMENTATION,
                    f"uncompressed RLE counts sum to {sum(int(c) for c in counts)}, expected {h * w}",
                    iid,
                    aid,
                )
                return None
            parsed = _Ann(aid, label, crowd, "rle", {"size": [h, w], "counts": counts})
        else:
            if box is None or not box_ok:
                self._finish_box_problem(aid, "skipped")
                rep.add(MISSING_SEGMENTATION, "no segmentation and no usable bbox", iid, aid)
                return None
            rep.add(
                MISSING_SEGMENTATION,
                "no segmentation: the bbox is used as the mask",
                iid,
                aid,
                action="fixed",
            )
            parsed = _Ann(aid, label, crowd, "box", [float(v) for v in box])
        if box_ok is False:  # a mask exists but the box is entirely outside: inconsistent entry
            self._finish_box_problem(aid, "skipped")
            return None
        self._finish_box_problem(aid, "fixed")
        return parsed

    def _finish_box_problem(self, aid: int | None, action: str) -> None:
        for p in reversed(self.validation_report.problems):
            if p.kind == BOX_OUTSIDE_IMAGE and p.ann_id == aid and p.action == "pending":
                p.action = action
                if action == "fixed":
                    p.message += "; box recomputed from the mask"
                break

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


def main(argv: list[str] | None = None) -> int:
    """``python -m instaseg_ros.data.coco ANN.json [--images DIR] [--classes A,B] [--report OUT.json]``:
    validate a COCO file, print the report; exit 0 if clean, 1 if problems were found."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m instaseg_ros.data.coco", description=main.__doc__)
    ap.add_argument("annotations")
    ap.add_argument("--images", default=None, help="image root (default: the JSON's folder)")
    ap.add_argument("--classes", default=None, help="comma-separated class names or a label-map file")
    ap.add_argument("--decode", action="store_true", help="also read every image and decode every mask")
    ap.add_argument("--report", default=None, help="write the report as JSON here")
    args = ap.parse_args(argv)
    classes: Any = args.classes
    if classes and not Path(classes).is_file():
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    ds = CocoDataset(args.annotations, image_root=args.images, class_names=classes, on_error="none")
    if args.decode:
        for i in range(len(ds)):
            ds[i]
    print(f"classes: {ds.class_names} (category ids {ds.category_ids})")
    print(ds.validation_report)
    if args.report:
        ds.validation_report.write(args.report)
    return 0 if ds.validation_report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
