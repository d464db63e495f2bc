"""Scene generator settings and the class list of the synthetic indoor scenes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from instaseg_ros.core.labels import INDOOR_CLASSES

#: The five annotated classes, in label order (0-based): person, chair, couch, dining table, toilet.
CLASS_NAMES: list[str] = INDOOR_CLASSES

# Bumped whenever the same seed renders different pixels or masks; written into every COCO
# ``info`` so caches rendered by an older generator can be detected (CocoDataset warns).
GENERATOR_VERSION = 2

# real-world height range (m) per class
_HEIGHT_M = {0: (1.5, 1.9), 1: (0.8, 1.0), 2: (0.75, 0.95), 3: (0.72, 0.8), 4: (0.7, 0.8)}
_MAX_ASPECT = {0: 0.46, 1: 0.62, 2: 2.8, 3: 2.5, 4: 0.62}  # largest width/height each drawer makes


@dataclass
class SynthConfig:
    """Scene generator settings.

    Attributes:
        width, height: output image size in pixels.
        min_objects, max_objects: number of annotated objects attempted per scene.
        class_weights: sampling weight per class (same order as ``CLASS_NAMES``).
        size_range: (min, max) object pixel height as a fraction of the image height,
            sampled log-uniformly (0.042 * 480 = 20 px; large objects may be cut by the frame).
        min_object_px: lower bound on the object pixel height whatever the image size, so
            small images (320x240) do not get unlearnably tiny objects.
        max_width_fraction: cap on an object's width as a fraction of the image width.
        min_visible_fraction: an instance is kept only if at least this fraction of its
            full (unoccluded, unclipped) area stays visible.
        min_visible_area: instances with fewer visible pixels are dropped
            (0 = automatic: image area / 3000, i.e. ~100 px at 640x480).
        max_distractors: up to this many non-annotated clutter objects.
        decorations: draw windows, doors, pictures and rugs.
        noise: std of the sensor noise added to the image (0 disables).
        min_visible_objects: every scene (every frame of a sequence) must keep at least this
            many annotated instances; scenes that do not are drawn again from the same
            random stream (deterministic), up to ``MAX_ATTEMPTS`` times.
        required_classes: class names that every scene (every frame of a sequence) must
            show; each is put among the sampled objects, and scenes without it are drawn again.
        depth: also render metric depth, the true camera and 3D ground truth (geometry only:
            the colour image and masks are the same with and without).
        hfov_deg: horizontal field of view of the synthetic camera (sets the focal length;
            for a sequence, the field of view of its widest frame).
    """

    width: int = 640
    height: int = 480
    min_objects: int = 1
    max_objects: int = 6
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    size_range: tuple[float, float] = (0.042, 0.8)
    min_object_px: int = 20
    max_width_fraction: float = 0.75
    min_visible_fraction: float = 0.4
    min_visible_area: int = 0
    max_distractors: int = 3
    decorations: bool = True
    noise: float = 3.0
    min_visible_objects: int = 0
    required_classes: tuple[str, ...] = ()
    depth: bool = False
    hfov_deg: float = 69.4

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"SynthConfig: image size {self.width}x{self.height} is below 32x32")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"SynthConfig: need 0 <= min_objects <= max_objects, got "
                f"{self.min_objects}, {self.max_objects}"
            )
        if len(self.class_weights) != len(CLASS_NAMES) or sum(self.class_weights) <= 0:
            raise ValueError(
                f"SynthConfig: class_weights needs {len(CLASS_NAMES)} non-negative "
                f"weights with a positive sum, got {self.class_weights}"
            )
        if not 0 <= self.min_visible_objects <= self.max_objects:
            raise ValueError(
                f"SynthConfig: need 0 <= min_visible_objects <= max_objects, got "
                f"{self.min_visible_objects}, {self.max_objects}"
            )
        unknown = [c for c in self.required_classes if c not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"SynthConfig: required_classes {unknown} are not among {CLASS_NAMES}")
        if len(set(self.required_classes)) > self.max_objects:
            raise ValueError(
                f"SynthConfig: {len(set(self.required_classes))} required classes do not fit in "
                f"max_objects={self.max_objects}"
            )
        if not 10.0 <= self.hfov_deg <= 150.0:
            raise ValueError(f"SynthConfig: hfov_deg must lie in [10, 150], got {self.hfov_deg}")
        lo, hi = self.size_range
        if not 0 < lo < hi <= 2.0:
            raise ValueError(
                f"SynthConfig: size_range must satisfy 0 < min < max <= 2, got {self.size_range}"
            )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SynthConfig:
        """Build from a YAML mapping; unknown keys raise a ValueError naming them."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"SynthConfig: unknown keys {unknown} (known: {sorted(cls.__dataclass_fields__)})"
            )
        for k in ("class_weights", "size_range", "required_classes"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    @property
    def min_area(self) -> int:
        """Minimum visible area in pixels."""
        return self.min_visible_area or max(8, (self.width * self.height) // 3000)

    @property
    def required_labels(self) -> list[int]:
        """0-based class indices of ``required_classes`` (no repeats, in class order)."""
        return sorted({CLASS_NAMES.index(c) for c in self.required_classes})

    def accepts(self, labels: np.ndarray) -> bool:
        """Whether a scene or frame whose visible instances have ``labels`` ([N] int) meets
        ``min_visible_objects`` and ``required_classes``."""
        return len(labels) >= self.min_visible_objects and all(c in labels for c in self.required_labels)


#: Renderings tried for one scene or sequence before :class:`SynthConfig`'s requirements
#: (``min_visible_objects``, ``required_classes``) are declared unreachable.
MAX_ATTEMPTS = 50


def demo_stream_config(width: int = 640, height: int = 480) -> SynthConfig:
    """The demo's camera stream: 3 to 6 annotated objects in every frame, a person among them."""
    return SynthConfig(
        width=width,
        height=height,
        min_objects=4,
        max_objects=6,
        min_visible_objects=3,
        required_classes=("person",),
    )
