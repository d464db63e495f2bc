"""Map-style dataset of generated scenes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from instaseg_ros.data.synthetic.config import CLASS_NAMES, SynthConfig
from instaseg_ros.data.synthetic.export import scenes_to_coco
from instaseg_ros.data.synthetic.scene import SyntheticScene, generate_scene


class SyntheticDataset:
    """Map-style dataset of generated scenes; sample ``i`` is ``generate_scene((seed, i))``.

    ``dataset[i] -> (image [H,W,3] uint8 BGR, target)`` with the project's target contract;
    ``image_id`` is ``i + 1``. ``transform(image, target) -> (image, target)`` is applied
    when given (for example :func:`instaseg_ros.data.augment.build_transform`).
    ``cache=True`` keeps rendered scenes in memory (~1.5 MB per 640x480 image).
    """

    def __init__(
        self,
        num_images: int,
        seed: int = 0,
        config: SynthConfig | None = None,
        transform: Callable | None = None,
        cache: bool = False,
    ) -> None:
        if num_images < 0:
            raise ValueError(f"SyntheticDataset: num_images must be >= 0, got {num_images}")
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.config = config or SynthConfig()
        self.transform = transform
        self.class_names = list(CLASS_NAMES)
        self.category_ids = [i + 1 for i in range(len(CLASS_NAMES))]  # COCO ids used by coco_gt()
        self._cache: dict[int, SyntheticScene] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> SyntheticScene:
        """The rendered scene of sample ``index``."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"SyntheticDataset index {index} out of range [0, {self.num_images})")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sc = generate_scene((self.seed, index), self.config)
        if self._cache is not None:
            self._cache[index] = sc
        return sc

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        sc = self.scene(index)
        image, target = sc.image.copy(), sc.target(image_id=index + 1)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def coco_gt(self) -> dict[str, Any]:
        """Ground truth of all samples as a COCO dict (category ids 1..5), for ``evaluate_coco``."""
        return scenes_to_coco((self.scene(i) for i in range(self.num_images)), start_id=1)
