"""torchvision's Mask R-CNN built for our configs: backbone choice, freezing, heads for new classes."""

from __future__ import annotations

from typing import Any

from torch import nn

from instaseg_ros.models.maskrcnn.config import MaskRcnnConfig


# ------------------------------------------------------------------------------------------ building
def build_model(cfg: MaskRcnnConfig) -> nn.Module:
    """A randomly initialised torchvision ``MaskRCNN`` for ``cfg`` (nothing is downloaded)."""
    from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    kw: dict[str, Any] = {
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "image_mean": list(cfg.pixel_mean),
        "image_std": list(cfg.pixel_std),
        "rpn_pre_nms_top_n_test": cfg.rpn_pre_nms_top_n_test,
        "rpn_post_nms_top_n_test": cfg.rpn_post_nms_top_n_test,
        "rpn_batch_size_per_image": cfg.rpn_batch_size_per_image,
        "box_batch_size_per_image": cfg.box_batch_size_per_image,
    }
    if cfg.backbone == "resnet50":
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=cfg.num_classes, **kw)
    else:
        backbone = resnet_fpn_backbone(
            backbone_name=cfg.backbone, weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5
        )
        model = MaskRCNN(backbone, num_classes=cfg.num_classes, **kw)
    freeze_backbone(model, cfg.trainable_backbone_layers)
    return model


def freeze_backbone(model: nn.Module, trainable_layers: int) -> None:
    """Leave only the last ``trainable_layers`` ResNet stages (5 = all, incl. the stem) trainable."""
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, p in model.backbone.body.named_parameters():
        p.requires_grad_(any(name.startswith(t) for t in train))


def replace_heads(model: nn.Module, num_classes: int) -> nn.Module:
    """New box and mask predictors for ``num_classes`` (incl. background), as the Mask R-CNN work does.

    Everything else (backbone, FPN, RPN, box head, mask head convolutions) keeps its weights.
    """
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    rh = model.roi_heads
    rh.box_predictor = FastRCNNPredictor(rh.box_predictor.cls_score.in_features, num_classes)
    hidden = rh.mask_predictor.conv5_mask.out_channels
    rh.mask_predictor = MaskRCNNPredictor(rh.mask_predictor.conv5_mask.in_channels, hidden, num_classes)
    return model
