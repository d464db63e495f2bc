"""The ``Segmenter`` interface every model family implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from instaseg_ros.core.instances import Instances


@dataclass
class InferenceParams:
    """Run-time knobs shared by every family (all changeable without reloading).

    Attributes:
        score_threshold: drop instances scoring below this.
        nms_threshold: IoU above which the lower-scoring box is suppressed.
        top_k: keep at most this many instances per image.
        class_filter: class names to keep; empty keeps all.
        mask_threshold: probability above which a mask pixel is foreground.
        cross_class_nms: suppress across classes instead of per class.
    """

    score_threshold: float = 0.3
    nms_threshold: float = 0.5
    top_k: int = 100
    class_filter: list[str] = field(default_factory=list)
    mask_threshold: float = 0.5
    cross_class_nms: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in (0, 1], got {self.nms_threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise ValueError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")

    def updated(self, **changes) -> InferenceParams:
        """A validated copy with ``changes`` applied."""
        return replace(self, **changes)


class Segmenter(ABC):
    """Segments every object instance in a batch of BGR images.

    Subclasses set ``class_names``, ``device`` (a torch device string) and
    ``precision`` ("fp32" or "fp16") and implement :meth:`_segment`.
    """

    family: str = ""
    class_names: list[str]
    device: str = "cpu"
    precision: str = "fp32"

    def __init__(self, params: InferenceParams | None = None) -> None:
        self.params = params or InferenceParams()

    def segment(
        self, images: Sequence[np.ndarray] | np.ndarray, params: InferenceParams | None = None
    ) -> list[Instances]:
        """Segment ``images`` ([H, W, 3] uint8 BGR each) -> one ``Instances`` per image."""
        from instaseg_ros.core.images import validate_images

        batch = validate_images(images)
        p = params or self.params
        unknown = [c for c in p.class_filter if c not in self.class_names]
        if unknown:
            raise ValueError(f"class_filter names unknown classes {unknown}; known: {self.class_names}")
        return self._segment(batch, p)

    @abstractmethod
    def _segment(self, images: list[np.ndarray], params: InferenceParams) -> list[Instances]:
        """Family-specific inference on a validated batch."""

    def class_filter_ids(self, params: InferenceParams) -> list[int] | None:
        """Class indices allowed by ``params.class_filter`` (None = all)."""
        if not params.class_filter:
            return None
        return [self.class_names.index(c) for c in params.class_filter]
