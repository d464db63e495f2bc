"""Mask R-CNN configuration (YAML <-> dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field

from instaseg_ros.core.labels import INDOOR_CLASSES
from instaseg_ros.models.config import FamilyConfigMixin, check_bounds
from instaseg_ros.weights.torch_io import MASKRCNN_FORMAT
from instaseg_ros.weights.torchvision_maskrcnn import BACKBONES

CHECKPOINT_FORMAT = MASKRCNN_FORMAT


DEFAULT_CLASSES = list(INDOOR_CLASSES)


MASKRCNN_BOUNDS = {
    "class_names": (1, 1000), "min_size": (32, 2048), "max_size": (32, 4096), "input_size": (0, 2048),
    "rpn_pre_nms_top_n_test": (1, 100000), "rpn_post_nms_top_n_test": (1, 100000),
    "rpn_batch_size_per_image": (1, 100000), "box_batch_size_per_image": (1, 100000),
}  # fmt: skip


@dataclass
class MaskRcnnConfig(FamilyConfigMixin):
    """Mask R-CNN settings.

    Attributes:
        class_names: [C] foreground classes (torchvision's ``num_classes`` is C + 1).
        backbone: "resnet50" (torchvision's ``maskrcnn_resnet50_fpn``), or "resnet18"/"resnet34"/
            "resnet101" FPN (``resnet_fpn_backbone``) - ResNet-18 is the CPU option.
        min_size, max_size: torchvision transform sizes (shorter side resized to ``min_size`` unless the
            longer would exceed ``max_size``).
        input_size: shortcut for the node's ``model.input_size``: sets ``min_size`` and
            ``max_size = round(input_size * 1333 / 800)`` (0 = use min_size/max_size).
        trainable_backbone_layers: 0..5 backbone stages left trainable when fine-tuning.
        rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test: RPN proposals at inference (torchvision:
            1000/1000; fewer is faster on CPU).
        rpn_batch_size_per_image, box_batch_size_per_image: sampled anchors / RoIs per image in training.
        pixel_mean, pixel_std: RGB normalisation in [0, 1] units (torchvision's ImageNet defaults).
    """

    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    backbone: str = "resnet50"
    min_size: int = 800
    max_size: int = 1333
    input_size: int = 0
    trainable_backbone_layers: int = 5
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        check_bounds(self, MASKRCNN_BOUNDS, "MaskRcnnConfig")
        self.class_names = [str(c) for c in self.class_names]
        if not self.class_names:
            raise ValueError("MaskRcnnConfig: class_names is empty")
        if self.backbone not in BACKBONES:
            raise ValueError(f"MaskRcnnConfig: unknown backbone {self.backbone!r}; known: {list(BACKBONES)}")
        if self.input_size > 0:
            self.min_size = int(self.input_size)
            self.max_size = int(round(self.input_size * 1333 / 800))
        if self.min_size < 32 or self.max_size < self.min_size:
            raise ValueError(f"MaskRcnnConfig: need 32 <= min_size <= max_size, got {self.min_size}, "
                             f"{self.max_size}")  # fmt: skip
        if not 0 <= self.trainable_backbone_layers <= 5:
            raise ValueError(f"MaskRcnnConfig: trainable_backbone_layers must be in [0, 5], "
                             f"got {self.trainable_backbone_layers}")  # fmt: skip
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    @property
    def num_classes(self) -> int:
        """torchvision's class count (foreground + background)."""
        return len(self.class_names) + 1
