"""SOLOv2: segmenting objects by locations, with dynamic mask kernels and Matrix NMS (written here).

Wang et al., "SOLO: Segmenting Objects by Locations" (2020) and "SOLOv2: Dynamic and Fast Instance
Segmentation" (2020); the SOLO write-up the package follows (ResNet-50 FPN, S x S grids per
level, focal + dice losses).

Configuration chosen, and why:

* **SOLOv2 with dynamic 1x1 kernels** rather than SOLO v1: v1's mask branch predicts S^2 full-resolution
  masks per level (40^2 = 1600 channels at the finest level), v2 predicts one E-dimensional kernel per
  grid cell and a single shared E-channel mask feature map at stride 4, so memory and CPU time do not
  grow with S^2 - the right trade for robots. Targets and losses are the seed's: a grid cell is
  positive when it lies in the centre region (``sigma`` = 0.2 of the box, at most 3 x 3 cells around the
  centre of mass) of an instance whose scale sqrt(w h) falls in that level's range (ranges overlap, so
  an instance can train two levels); category branch: sigmoid focal loss (alpha 0.25, gamma 2) over all
  cells, normalised by the positives; mask branch: dice loss on positive cells, weight 3.
* **Matrix NMS** (Gaussian decay, sigma 2, class-aware) instead of greedy mask NMS: one matrix product
  instead of a sequential loop, and decayed scores instead of hard removals (better AP at equal speed).
  ``nms: mask`` in the config selects greedy mask-IoU NMS (``InferenceParams.nms_threshold``; the seed's
  IoU threshold is 0.3) for comparison; with Matrix NMS ``nms_threshold`` is not used.
* **Backbone**: the project's shared :class:`~instaseg_ros.models.backbones.resnet.ResNetBackbone`
  (ResNet-18/34/50/101; ResNet-50 as in the seed, ResNet-18 for the CPU-trained synthetic model), FPN
  P2..P6 (P6 = max-pool of P5). Grid levels use (P2 at 1/2 scale, P3, P4, P5, P6 resized to P5), i.e.
  strides 8, 8, 16, 32, 32, with the official grids 40, 36, 24, 16, 12 and scale ranges
  (1-96, 48-192, 96-384, 192-768, 384-2048) px at an 800 px input, rescaled to ``input_size``.
* **Input**: square ``input_size`` (multiple of 32) bilinear resize like YOLACT, so batches need no
  padding and the contract's ``[B, 3, S, S]`` holds; masks are resized back to each original image.
* Inference thresholds: category threshold ``pre_nms_threshold`` (0.1, SOLOv2's; the seed's 0.2 is
  stricter), mask threshold ``InferenceParams.mask_threshold`` (seed: 0.5), score threshold after
  Matrix NMS ``InferenceParams.score_threshold``.

Raw outputs of ``SoloV2.forward(x)`` (same in train and eval mode), with ``G = sum_l S_l^2`` cells:

* ``cate`` [B, G, C] category logits (sigmoid), levels concatenated row-major,
* ``kernel`` [B, G, E] dynamic 1x1 mask kernels,
* ``mask_feat`` [B, E, S/4, S/4] the unified mask features; the mask of cell g is
  ``sigmoid(kernel[g] . mask_feat)``.

Checkpoint: ``{"format": "instaseg_ros.solo", "format_version": 1, "config": {...}, "state_dict": ...}``.

Layout: ``config`` (SoloConfig), ``network`` (SoloV2, target assignment), ``segmenter`` (SoloSegmenter,
checkpoints, building). Matrix NMS and mask NMS live in :mod:`instaseg_ros.ops.nms`.
"""

from instaseg_ros.models.solo.config import (
    BASE_SCALE_RANGES,
    CHECKPOINT_FORMAT,
    DEFAULT_CLASSES,
    LEVEL_STRIDES,
    SoloConfig,
)
from instaseg_ros.models.solo.network import (
    MaskFeatureBranch,
    SoloFPN,
    SoloHead,
    SoloV2,
    assign_targets,
    cell_strides,
    coord_channels,
    dynamic_masks,
)
from instaseg_ros.models.solo.segmenter import (
    SoloSegmenter,
    build_solo,
    load_model,
    load_state_dict_into,
    points_nms,
    preprocess_images,
    read_checkpoint,
    save_checkpoint,
)
from instaseg_ros.ops.nms import mask_nms, matrix_nms

__all__ = [
    "BASE_SCALE_RANGES",
    "CHECKPOINT_FORMAT",
    "DEFAULT_CLASSES",
    "LEVEL_STRIDES",
    "MaskFeatureBranch",
    "SoloConfig",
    "SoloFPN",
    "SoloHead",
    "SoloSegmenter",
    "SoloV2",
    "assign_targets",
    "build_solo",
    "cell_strides",
    "coord_channels",
    "dynamic_masks",
    "load_model",
    "load_state_dict_into",
    "mask_nms",
    "matrix_nms",
    "points_nms",
    "preprocess_images",
    "read_checkpoint",
    "save_checkpoint",
]
