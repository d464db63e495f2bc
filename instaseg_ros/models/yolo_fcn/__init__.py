"""YOLO+FCN (the YOLOv3 + FCN8s work): YOLOv3 boxes, an FCN binary mask per box, confidence-ordered pasting.

Pipeline and the ``Segmenter`` split:

* :meth:`YoloFcnSegmenter.preprocess`: letterbox each BGR image into an ``S x S``
  RGB [0, 1] square (aspect kept, centred, grey 0.5 padding, as Darknet does).
* :meth:`YoloFcnSegmenter.forward_raw`: the YOLOv3 network ->
  ``(boxes [B, N, 4] xyxy letterbox px, scores [B, N, K])`` where
  ``scores = objectness * class probability`` for the K configured classes (a
  class subset is a column selection, no retraining). One static graph (ONNX).
* :meth:`YoloFcnSegmenter.postprocess`: threshold, class-aware NMS
  (``torchvision.ops.batched_nms``) on the device, boxes mapped back to
  original-image pixels; then each image's box crops (from the original image,
  ``crop_and_resize``) run as one batch through the FCN
  (:meth:`YoloFcnSegmenter.mask_head_raw`, swappable by a backend), and the
  masks are pasted into the image (``instaseg_ros.ops.paste``) with overlaps
  given to the more confident instance.

Weights: ``weights=`` a Darknet ``yolov3.weights`` (plus ``fcn_weights`` in the
config) or our combined checkpoint (:meth:`YoloFcnSegmenter.save_checkpoint`:
a torch file ``{"format": "instaseg_yolo_fcn", "config", "detector", "fcn"}``
read with ``weights_only=True``).

Layout: ``config`` (YoloFcnConfig), ``detector`` (YOLOv3 / Darknet networks), ``fcn`` (FCN8s and the
ResNet FCN head), ``network`` (detector with class subset), ``segmenter`` (YoloFcnSegmenter, building).
"""

from instaseg_ros.models.yolo_fcn.config import (
    ARCHITECTURE_KEYS,
    CHECKPOINT_FORMAT,
    FCN_CHECKPOINT_FORMAT,
    INDOOR_CLASSES,
    YoloFcnConfig,
)
from instaseg_ros.models.yolo_fcn.network import YoloDetector
from instaseg_ros.models.yolo_fcn.segmenter import LetterboxMeta, YoloFcnSegmenter, build_yolo_fcn, letterbox

__all__ = [
    "ARCHITECTURE_KEYS",
    "CHECKPOINT_FORMAT",
    "FCN_CHECKPOINT_FORMAT",
    "INDOOR_CLASSES",
    "LetterboxMeta",
    "YoloDetector",
    "YoloFcnConfig",
    "YoloFcnSegmenter",
    "build_yolo_fcn",
    "letterbox",
]
