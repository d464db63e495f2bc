"""The result type every model family returns: ``Instances``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instances:
    """Instance segmentation result for one image, in original-image pixels.

    Instances are sorted by descending score, and instance ``i`` has the id
    ``i + 1`` in :meth:`instance_id_image` (0 is background).

    Attributes:
        boxes: [N, 4] float32, xyxy in original-image pixels.
        scores: [N] float32 in [0, 1].
        class_ids: [N] int64, 0-based indices into ``class_names``.
        masks: [N, H, W] bool, full resolution of the original image.
        image_size: (H, W) of the original image.
        class_names: names of the model's classes (index = class id).
        mask_scores: [N] float32 mask quality scores where the model predicts them (YOLACT++: box
            score x predicted mask IoU, the authors' ``rescore_mask``), else None. ``scores`` stay
            the box/class scores (thresholds and ordering use them); COCO segmentation results
            and the semantic confidence image use ``mask_scores`` when present.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray
    image_size: tuple[int, int]
    class_names: list[str] = field(default_factory=list)
    mask_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_size)
        self.image_size = (h, w)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        self.masks = np.asarray(self.masks, dtype=bool).reshape(-1, h, w)
        n = len(self.scores)
        if self.mask_scores is not None:
            self.mask_scores = np.asarray(self.mask_scores, dtype=np.float32).reshape(-1)
            if len(self.mask_scores) != n:
                raise ValueError(f"Instances: {len(self.mask_scores)} mask_scores for {n} instances")
        if not (len(self.boxes) == n == len(self.class_ids) == len(self.masks)):
            raise ValueError(
                f"Instances fields disagree in length: boxes={len(self.boxes)}, "
                f"scores={n}, class_ids={len(self.class_ids)}, masks={len(self.masks)}"
            )
        if n > 1 and np.any(np.diff(self.scores) > 0):
            order = np.argsort(-self.scores, kind="stable")
            self.boxes = self.boxes[order]
            self.scores = self.scores[order]
            self.class_ids = self.class_ids[order]
            self.masks = self.masks[order]
            if self.mask_scores is not None:
                self.mask_scores = self.mask_scores[order]

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, image_size: tuple[int, int], class_names: list[str] | None = None) -> Instances:
        """An empty result for an image of ``image_size`` (H, W)."""
        h, w = image_size
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            class_ids=np.zeros((0,), np.int64),
            masks=np.zeros((0, h, w), bool),
            image_size=(h, w),
            class_names=list(class_names or []),
        )

    def class_name(self, i: int) -> str:
        """Name of instance ``i``'s class (its index as text if unnamed)."""
        cid = int(self.class_ids[i])
        return self.class_names[cid] if 0 <= cid < len(self.class_names) else str(cid)

    def select(self, keep: np.ndarray) -> Instances:
        """A new ``Instances`` with only the rows selected by ``keep`` (bool mask or indices)."""
        return Instances(
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            class_ids=self.class_ids[keep],
            masks=self.masks[keep],
            image_size=self.image_size,
            class_names=self.class_names,
            mask_scores=None if self.mask_scores is None else self.mask_scores[keep],
        )

    def instance_id_image(self) -> np.ndarray:
        """[H, W] uint16: 0 background, ``i + 1`` where instance ``i`` owns the pixel.

        Overlaps go to the higher-scoring instance.
        """
        from instaseg_ros.core.masks import resolve_overlaps

        return resolve_overlaps(self.masks, self.scores, self.image_size)

    def semantic_image(self) -> np.ndarray:
        """[H, W] uint8: 0 background, ``class_id + 1`` of the pixel's owning instance."""
        from instaseg_ros.core.masks import semantic_from_ids

        return semantic_from_ids(self.instance_id_image(), self.class_ids)
