"""Shared builders for the eval-bag tests: a small synthetic bag with ground truth, a tiny random YOLACT."""

from __future__ import annotations

from pathlib import Path

from instaseg_ros.data.synthetic import CLASS_NAMES

TOPIC = "/camera/color/image_raw"


def make_bag(
    out: Path, num_frames: int = 6, seed: int = 11, size: tuple[int, int] = (160, 120), rate: float = 10.0
) -> tuple[Path, Path]:
    """A synthetic mcap bag (bgr8 frames, ``rate`` Hz) + ground truth with ``stamp_ns`` + PNG frames."""
    from instaseg_ros.data.synthetic import BagSpec, SynthConfig, write_synthetic_bag

    cfg = SynthConfig(width=size[0], height=size[1], min_objects=2, max_objects=4, max_distractors=1)
    spec = BagSpec(num_frames=num_frames, rate=rate, sequence_length=3, write_images=True)
    return write_synthetic_bag(out, seed=seed, config=cfg, spec=spec)


def make_yolact_checkpoint(path: Path, input_size: int = 96) -> Path:
    """A randomly initialised ResNet-18 YOLACT-SE for the synthetic classes, saved with save_checkpoint."""
    import torch

    from instaseg_ros.models.yolact import YolactConfig, YolactSE, save_checkpoint

    torch.manual_seed(0)
    cfg = YolactConfig(
        backbone="resnet18",
        num_classes=len(CLASS_NAMES),
        class_names=list(CLASS_NAMES),
        input_size=input_size,
        fpn_channels=64,
        num_prototypes=8,
    )
    save_checkpoint(path, YolactSE(cfg).eval(), cfg)
    return path
