"""SOLOv2 configuration (YAML <-> dataclass)."""

from __future__ import annotations

from dataclasses import dataclass, field

from instaseg_ros.core.labels import INDOOR_CLASSES
from instaseg_ros.models.backbones.resnet import RESNET_SPECS
from instaseg_ros.models.config import FamilyConfigMixin, check_bounds
from instaseg_ros.weights.torch_io import SOLO_FORMAT

CHECKPOINT_FORMAT = SOLO_FORMAT


DEFAULT_CLASSES = list(INDOOR_CLASSES)


# official SOLOv2 scale ranges (sqrt of box area, px) for ~800 px inputs
BASE_SCALE_RANGES = ((1, 96), (48, 192), (96, 384), (192, 768), (384, 2048))


LEVEL_STRIDES = (8, 8, 16, 32, 32)


SOLO_BOUNDS = {
    "class_names": (1, 1000), "input_size": (32, 2048), "fpn_channels": (1, 1024), "head_channels": (1, 1024),
    "head_convs": (0, 16), "mask_channels": (1, 1024), "mask_mid_channels": (1, 1024), "num_grids": (1, 128),
    "pre_nms_top_k": (1, 10000),
}  # fmt: skip


@dataclass
class SoloConfig(FamilyConfigMixin):
    """SOLOv2 settings (see the module docstring for the reasoning).

    Attributes:
        class_names: [C] classes.
        backbone: "resnet18" | "resnet34" | "resnet50" | "resnet101" (randomly initialised).
        input_size: square network input side, multiple of 32.
        fpn_channels: FPN width.
        head_channels, head_convs: width and depth of the shared kernel and category towers.
        mask_channels: E, channels of the mask features = length of each dynamic 1x1 kernel.
        mask_mid_channels: width of the mask-feature branch before the final 1x1.
        num_grids: S per level (5 levels).
        scale_ranges: per-level (lo, hi) of sqrt(w*h) in input pixels; None = the official ranges
            scaled by ``input_size / 800``.
        sigma: centre-region fraction of the box for positive cells.
        pre_nms_threshold: category score threshold before mask scoring / NMS.
        pre_nms_top_k: at most this many candidates enter NMS.
        nms: "matrix" (Matrix NMS) or "mask" (greedy mask-IoU NMS with ``nms_threshold``).
        matrix_kernel, matrix_sigma: Matrix NMS decay ("gaussian" or "linear").
        pixel_mean, pixel_std: RGB normalisation in 0..255 units.
    """

    class_names: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    backbone: str = "resnet50"
    input_size: int = 512
    fpn_channels: int = 256
    head_channels: int = 256
    head_convs: int = 4
    mask_channels: int = 128
    mask_mid_channels: int = 128
    num_grids: list[int] = field(default_factory=lambda: [40, 36, 24, 16, 12])
    scale_ranges: list[list[float]] | None = None
    sigma: float = 0.2
    pre_nms_threshold: float = 0.1
    pre_nms_top_k: int = 500
    nms: str = "matrix"
    matrix_kernel: str = "gaussian"
    matrix_sigma: float = 2.0
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def __post_init__(self) -> None:
        check_bounds(self, SOLO_BOUNDS, "SoloConfig")
        self.class_names = [str(c) for c in self.class_names]
        if not self.class_names:
            raise ValueError("SoloConfig: class_names is empty")
        if self.backbone not in RESNET_SPECS:
            raise ValueError(f"SoloConfig: unknown backbone {self.backbone!r}; known: {sorted(RESNET_SPECS)}")
        if self.input_size < 64 or self.input_size % 32:
            raise ValueError(
                f"SoloConfig: input_size must be a multiple of 32 and >= 64, got {self.input_size}"
            )
        self.num_grids = [int(s) for s in self.num_grids]
        if len(self.num_grids) != 5 or min(self.num_grids) < 1:
            raise ValueError(f"SoloConfig: num_grids needs 5 positive sizes, got {self.num_grids}")
        if self.scale_ranges is None:
            f = self.input_size / 800.0
            self.scale_ranges = [[lo * f if lo > 1 else 0.0, hi * f] for lo, hi in BASE_SCALE_RANGES]
        self.scale_ranges = [[float(a), float(b)] for a, b in self.scale_ranges]
        if len(self.scale_ranges) != 5:
            raise ValueError(f"SoloConfig: scale_ranges needs 5 (lo, hi) pairs, got {self.scale_ranges}")
        if self.nms not in ("matrix", "mask"):
            raise ValueError(f"SoloConfig: nms must be 'matrix' or 'mask', got {self.nms!r}")
        if self.matrix_kernel not in ("gaussian", "linear"):
            raise ValueError(f"SoloConfig: matrix_kernel must be gaussian|linear, got {self.matrix_kernel!r}")
        self.pixel_mean = tuple(float(v) for v in self.pixel_mean)
        self.pixel_std = tuple(float(v) for v in self.pixel_std)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_cells(self) -> int:
        """G = sum of S^2 over the levels."""
        return sum(s * s for s in self.num_grids)
