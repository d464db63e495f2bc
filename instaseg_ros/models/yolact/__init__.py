"""YOLACT-SE: YOLACT with channel attention, state-dict compatible with the official checkpoints.

Architecture (Bolya et al., "YOLACT: Real-time Instance Segmentation", 2019):

* backbone (ResNet-18/34/50/101 or Darknet-53) with an optional :class:`ChannelAttention` block
  after every stage (keys ``backbone.attention.*``, identity at initialisation);
* FPN on C3-C5 plus two strided 3x3 convolutions -> P3..P7, 256 channels (``fpn.*``);
* prototype network on P3 -> ``num_prototypes`` ReLU prototypes at 2x P3 resolution (``proto_net.*``);
* one prediction head shared by all levels: boxes, class logits (index 0 = background) and tanh
  mask coefficients (``prediction_layers.0.*``);
* a 1x1 semantic-segmentation conv on P3 used only by the training loss (``semantic_seg_conv``).

``YolactSE.forward(x)`` returns a dict of raw tensors:

* ``loc`` [B, P, 4] encoded box offsets (see :func:`instaseg_ros.ops.boxes.decode_boxes`),
* ``conf`` [B, P, C+1] class logits, index 0 = background,
* ``mask`` [B, P, K] tanh mask coefficients,
* ``priors`` [P, 4] (cx, cy, w, h) relative, a precomputed buffer,
* ``proto`` [B, h, w, K] prototypes after ReLU,

and in training mode additionally ``segm`` [B, C, h3, w3] (if ``semantic_head``), ``features``
(list of the five FPN maps P3..P7, [B, 256, hi, wi]) and, when ``cfg.embedding_dim > 0``,
``embed`` [B, embedding_dim, h3, w3] from a 1x1 conv on P3 (``embedding_head``), the hook for a
contextual/embedding loss.

Pre-processing follows the official ``FastBaseTransform``: bilinear resize (align_corners=False)
of the float BGR image to S x S, ``(x - mean) / std`` with BGR means/stds, then BGR -> RGB
(Darknet: ``x / 255``). Post-processing follows the official ``Detect`` + ``postprocess``:
softmax, confidence filter, Fast NMS, top-k, mask = sigmoid(proto @ coeffs), crop to the box
(padding 1 prototype pixel), bilinear upsampling to the original image, threshold.

Layout: ``config`` (YolactConfig), ``network`` (YolactSE and its parts), ``segmenter``
(YolactSegmenter, mask assembly, building from files).
Checkpoint files: :mod:`instaseg_ros.weights.yolact_checkpoint`.
"""

from instaseg_ros.models.yolact.config import (
    BASE_ANCHOR_SCALES,
    CHECKPOINT_FORMAT,
    IMAGENET_MEAN_BGR,
    IMAGENET_STD_BGR,
    YolactConfig,
)
from instaseg_ros.models.yolact.network import (
    FPN,
    PredictionHead,
    YolactSE,
    feature_sizes,
    make_priors,
    make_proto_net,
    priors_for_config,
)
from instaseg_ros.models.yolact.segmenter import (
    YolactSegmenter,
    assemble_masks,
    bilinear_matrix,
    build_yolact,
    config_for_checkpoint,
    load_model,
    save_checkpoint,
)

__all__ = [
    "BASE_ANCHOR_SCALES",
    "CHECKPOINT_FORMAT",
    "FPN",
    "IMAGENET_MEAN_BGR",
    "IMAGENET_STD_BGR",
    "PredictionHead",
    "YolactConfig",
    "YolactSE",
    "YolactSegmenter",
    "assemble_masks",
    "bilinear_matrix",
    "build_yolact",
    "config_for_checkpoint",
    "feature_sizes",
    "load_model",
    "make_priors",
    "make_proto_net",
    "priors_for_config",
    "save_checkpoint",
]
