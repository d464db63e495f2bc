"""Reading torchvision Mask R-CNN state dicts (plain, wrapped, ours); inferring backbone and classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from instaseg_ros.weights.torch_io import MASKRCNN_FORMAT as CHECKPOINT_FORMAT
from instaseg_ros.weights.torch_io import load_torch_file, strip_module_prefix

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


# keys every torchvision Mask R-CNN state dict has, whatever the backbone
REQUIRED_KEYS = (
    "backbone.body.conv1.weight",
    "backbone.fpn.inner_blocks.0.0.weight",
    "rpn.head.cls_logits.weight",
    "roi_heads.box_predictor.cls_score.weight",
    "roi_heads.box_predictor.bbox_pred.weight",
    "roi_heads.mask_predictor.mask_fcn_logits.weight",
)


_CLS_KEY = "roi_heads.box_predictor.cls_score.weight"


_MASK_KEY = "roi_heads.mask_predictor.mask_fcn_logits.weight"


def torchvision_coco_names() -> list[str]:
    """torchvision's 90 COCO category names (index = label - 1, "N/A" for unused ids)."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    return list(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"][1:])


# ----------------------------------------------------------------------------------------- checkpoints
def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Load a Mask R-CNN checkpoint -> (state_dict, stored config or None).

    Accepts our format, ``{"model": state_dict}`` and a plain state dict. Raises ``FileNotFoundError``
    or ``ValueError`` naming the file and the missing keys.
    """
    p = Path(path)
    obj = load_torch_file(p, "Mask R-CNN weights")
    if not isinstance(obj, dict):
        raise ValueError(f"{p}: expected a state dict (mapping), got {type(obj).__name__}")
    stored = None
    if "format" in obj:
        if obj["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"{p}: checkpoint format {obj['format']!r} is not a Mask R-CNN checkpoint "
                             f"({CHECKPOINT_FORMAT!r}); load it with its own family")  # fmt: skip
        sd, stored = obj.get("state_dict"), obj.get("config")
    elif isinstance(obj.get("model"), dict):
        sd = obj["model"]
    elif isinstance(obj.get("state_dict"), dict):
        sd = obj["state_dict"]
    else:
        sd = obj
    if not isinstance(sd, dict):
        raise ValueError(f"{p}: the checkpoint holds no state dict")
    sd = strip_module_prefix(sd)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{p}: not a state dict: entries {bad[:5]} are not tensors")
    missing = [k for k in REQUIRED_KEYS if k not in sd]
    if missing:
        some = sorted(sd)[:6]
        raise ValueError(
            f"{p}: not a torchvision Mask R-CNN state dict: missing keys {missing} (file has {len(sd)} "
            f"keys, e.g. {some})"
        )
    return sd, stored


def infer_config(sd: dict[str, torch.Tensor], source: str = "state dict") -> dict[str, Any]:
    """Backbone and class count of a torchvision Mask R-CNN state dict (``class_names`` are placeholders)."""
    k = int(sd[_CLS_KEY].shape[0])
    if int(sd[_MASK_KEY].shape[0]) != k:
        raise ValueError(f"{source}: box predictor has {k} classes but mask predictor "
                         f"{int(sd[_MASK_KEY].shape[0])} ({_CLS_KEY} vs {_MASK_KEY})")  # fmt: skip
    bottleneck = "backbone.body.layer1.0.conv3.weight" in sd
    n3 = 1 + max(int(key.split(".")[3]) for key in sd if key.startswith("backbone.body.layer3."))
    table = {(True, 6): "resnet50", (True, 23): "resnet101", (False, 2): "resnet18", (False, 6): "resnet34"}
    backbone = table.get((bottleneck, n3))
    if backbone is None:
        raise ValueError(f"{source}: unsupported backbone ({'bottleneck' if bottleneck else 'basic'} blocks, "
                         f"{n3} blocks in layer3); supported: {list(BACKBONES)}")  # fmt: skip
    if k == 91:
        names = torchvision_coco_names()
    else:
        names = [f"class_{i}" for i in range(1, k)]
    return {"backbone": backbone, "class_names": names}
