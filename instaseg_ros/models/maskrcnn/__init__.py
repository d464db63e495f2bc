"""Mask R-CNN through torchvision's implementation, behind the ``Segmenter`` interface.

The network is torchvision's ``MaskRCNN`` (not rewritten here): ``maskrcnn_resnet50_fpn(weights=None,
weights_backbone=None, num_classes=C+1)`` for the ResNet-50 FPN of the Mask R-CNN fine-tuning
work, or the same
detector on a
smaller ResNet-18/34 (or ResNet-101) FPN built by ``resnet_fpn_backbone`` for CPU use. Nothing is
downloaded: every build starts from random weights and checkpoints are loaded by path.

Checkpoints (all read with ``torch.load(..., weights_only=True)``):

* torchvision format: a plain ``state_dict`` of a torchvision Mask R-CNN, or ``{"model": state_dict, ...}``
  (the torchvision reference scripts' layout); a ``module.`` prefix (DDP) is stripped. The class count
  (``roi_heads.box_predictor.cls_score.weight`` [C+1, 1024]) and the backbone (ResNet block type and
  depth) are read from the keys. Backbones saved with ``FrozenBatchNorm2d`` (no ``num_batches_tracked``)
  load into our ``BatchNorm2d`` backbone unchanged.
* our own: ``{"format": "instaseg_ros.maskrcnn", "format_version": 1, "config": {...}, "state_dict": ...}``
  written by :func:`save_checkpoint`, which also stores the class names and transform sizes.

Class indices: torchvision label 0 is the background, so ``Instances.class_ids = label - 1``.

Stage split (the project's ``preprocess -> forward_raw -> postprocess`` contract), as far as torchvision
allows:

* ``preprocess``: BGR uint8 -> RGB float [0, 1] -> torchvision's ``GeneralizedRCNNTransform``
  (normalisation, aspect-preserving resize to ``min_size``/``max_size``, zero padding to a multiple of 32)
  -> ``[B, 3, H', W']`` (not square: Mask R-CNN keeps the aspect ratio) + metas (original and resized sizes).
* ``forward_raw(tensor, image_sizes)``: backbone + RPN + RoI heads. torchvision's RoI heads already apply
  the per-class score threshold, per-class NMS and the top-k, so those three knobs of ``InferenceParams``
  are written into ``model.roi_heads`` before the call (``_segment`` does it; direct callers can use
  :meth:`MaskRcnnSegmenter.apply_params`). Output: per-image detections in resized-image pixels with
  28 x 28 mask probabilities.
* ``postprocess``: torchvision's box rescaling and mask pasting to the original image, then the class
  filter, optional cross-class NMS, the top-k and the mask threshold -> ``Instances``.

``model.eval()`` BatchNorm uses running statistics, so results are exactly those of torchvision's own
``model(images)`` for the same weights and transform sizes (tested).

Layout: ``config`` (MaskRcnnConfig), ``network`` (torchvision model building), ``segmenter``
(MaskRcnnSegmenter, building from files).
Checkpoint reading: :mod:`instaseg_ros.weights.torchvision_maskrcnn`.
"""

from instaseg_ros.models.maskrcnn.config import CHECKPOINT_FORMAT, DEFAULT_CLASSES, MaskRcnnConfig
from instaseg_ros.models.maskrcnn.network import build_model, freeze_backbone, replace_heads
from instaseg_ros.models.maskrcnn.segmenter import (
    MaskRcnnSegmenter,
    build_maskrcnn,
    load_model,
    load_state_dict_into,
    save_checkpoint,
)
from instaseg_ros.weights.torchvision_maskrcnn import (
    BACKBONES,
    infer_config,
    read_checkpoint,
    torchvision_coco_names,
)

__all__ = [
    "BACKBONES",
    "CHECKPOINT_FORMAT",
    "DEFAULT_CLASSES",
    "MaskRcnnConfig",
    "MaskRcnnSegmenter",
    "build_maskrcnn",
    "build_model",
    "freeze_backbone",
    "infer_config",
    "load_model",
    "load_state_dict_into",
    "read_checkpoint",
    "replace_heads",
    "save_checkpoint",
    "torchvision_coco_names",
]
