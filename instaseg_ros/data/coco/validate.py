"""The validation report of a COCO file: problem kinds, :class:`Problem`, :class:`ValidationReport`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# problem kinds
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
SIZE_MISMATCH = "image_size_mismatch"
BAD_IMAGE_ENTRY = "bad_image_entry"
BAD_CATEGORY_ENTRY = "bad_category_entry"
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
