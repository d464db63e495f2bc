"""``GroundTruthSegmenter``: a "model" that answers with the ground truth itself (tests the evaluator).

It looks an image up by its exact content (SHA-1 of shape + pixels) and returns that image's ground
truth with score 1; unknown images give no instances. With it, ``eval-bag`` must report AP = 1.0, in
offline mode and through the real node in live mode, which checks stamp matching, the rebuild of
instances from the node's topics and the metric wiring without depending on a trained model.

Family name ``oracle``: ``build_segmenter("oracle", weights=GT.json)`` (importing this module
registers it). ``weights`` is a stamp-keyed ground-truth JSON whose ``file_name`` entries point to
lossless images of the frames (PNG, relative to the JSON's folder), as ``write_synthetic_bag(...,
spec=BagSpec(write_images=True))`` writes. Torch-free, so a node running it starts fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.evaluation.gt_tools import GroundTruthError, StampedGroundTruth, load_ground_truth
from instaseg_ros.models.registry import register_family


def image_key(image: np.ndarray) -> str:
    """Content key of an image: SHA-1 over shape and bytes."""
    a = np.ascontiguousarray(image)
    return hashlib.sha1(repr((a.shape, a.dtype.str)).encode() + a.tobytes()).hexdigest()


class GroundTruthSegmenter(Segmenter):
    """Returns the stored ground truth of an image found by content.

    Args:
        table: image key (:func:`image_key`) -> ``Instances``.
        class_names: the ground truth's category names (index = class id).
    """

    family = "oracle"

    def __init__(
        self, table: dict[str, Instances], class_names: list[str], params: InferenceParams | None = None
    ) -> None:
        super().__init__(params)
        self.table = table
        self.class_names = list(class_names)
        self.device = "cpu"
        self.precision = "fp32"

    @classmethod
    def from_frames(
        cls,
        gt: StampedGroundTruth,
        frames: Iterable[tuple[int, np.ndarray]],
        params: InferenceParams | None = None,
    ) -> GroundTruthSegmenter:
        """From ``(image_id, image)`` pairs: each image answers with its ground truth."""
        table = {image_key(img): gt.instances(iid) for iid, img in frames}
        return cls(table, gt.category_names, params)

    @classmethod
    def from_image_files(
        cls, gt_path: str | Path, params: InferenceParams | None = None
    ) -> GroundTruthSegmenter:
        """From a ground-truth JSON whose ``file_name`` entries are lossless images next to it."""
        import cv2

        gt = load_ground_truth(gt_path)
        root = Path(gt_path).parent
        pairs = []
        for iid, im in gt.images.items():
            f = root / str(im.get("file_name", ""))
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise GroundTruthError(f"oracle: image {f} of ground truth {gt_path} cannot be read")
            pairs.append((iid, img))
        return cls.from_frames(gt, pairs, params)

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[list[str], list[tuple[int, int]]]:
        """Images -> (content keys [B], image sizes (H, W) [B]): the "input tensor" is the lookup key."""
        return [image_key(img) for img in images], [tuple(img.shape[:2]) for img in images]

    def forward_raw(self, tensor: list[str]) -> list[Instances | None]:
        """Keys -> the stored ground truth of each image (None: an image it does not know)."""
        return [self.table.get(k) for k in tensor]

    def postprocess(
        self, raw: list[Instances | None], metas: list[tuple[int, int]], params: InferenceParams | None = None
    ) -> list[Instances]:
        """Score threshold (>=), class filter and top-k on the stored instances; unknown images: none."""
        p = params or self.params
        keep_ids = self.class_filter_ids(p)
        out = []
        for inst, size in zip(raw, metas):
            if inst is None:
                out.append(Instances.empty(size, self.class_names))
                continue
            keep = inst.scores >= p.score_threshold
            if keep_ids is not None:
                keep &= np.isin(inst.class_ids, keep_ids)
            out.append(inst.select(np.flatnonzero(keep)[: p.top_k]))
        return out


def build_oracle(
    weights: str | None = None, config: Any = None, params: InferenceParams | dict | None = None, **_: Any
) -> GroundTruthSegmenter:
    """Registry builder: ``weights`` (or ``config``) is the ground-truth JSON path."""
    path = weights or (config if isinstance(config, (str, Path)) else None)
    if not path:
        raise ValueError("oracle family needs the ground-truth JSON as weights")
    if isinstance(params, dict):
        params = InferenceParams(**params)
    return GroundTruthSegmenter.from_image_files(path, params)


register_family("oracle", build_oracle)
