"""What is this weights file? Ours (per family), official YOLACT / YOLACT++, Darknet, torchvision.

Used by the single loader (:func:`instaseg_ros.models.loading.load_model`) to say "this is a SOLO
checkpoint, not YOLACT" instead of a key mismatch deep inside a family's reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from instaseg_ros.weights.torch_io import (
    OUR_FORMATS,
    check_readable_file,
    load_torch_file,
    strip_module_prefix,
)

YOLACT_KEY = "prediction_layers.0.conf_layer.weight"
MASKRCNN_KEY = "roi_heads.mask_predictor.mask_fcn_logits.weight"


@dataclass(frozen=True)
class WeightsKind:
    """``kind``: ours | official_yolact | official_yolact_plus | darknet | torchvision_maskrcnn | unknown;
    ``family``: the family that reads it ("" when none does); ``detail``: one line for messages."""

    kind: str
    family: str
    detail: str


def is_yolact_plus(keys: list[str] | set[str]) -> bool:
    """Official YOLACT++ state dicts have DCNv2 offsets in the backbone and the mask re-scoring head."""
    return any(".conv_offset_mask." in k or k.startswith("maskiou_net.") for k in keys)


def identify_weights(path: str | Path) -> WeightsKind:
    """Recognise ``path`` by content (raises like :func:`load_torch_file` for unreadable files)."""
    p = check_readable_file(path)
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK" and p.suffix.lower() not in (".pt", ".pth", ".ckpt"):
        return WeightsKind("darknet", "yolo_fcn", f"{p.name}: Darknet .weights (YOLOv3 detector)")
    obj = load_torch_file(p)
    if isinstance(obj, dict) and obj.get("format") in OUR_FORMATS:
        fam = OUR_FORMATS[obj["format"]]
        return WeightsKind("ours", fam.split(" ")[0], f"{p.name}: instaseg_ros {fam} checkpoint")
    sd = obj
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), dict):
                sd = obj[wrapper]
                break
    if not isinstance(sd, dict):
        return WeightsKind("unknown", "", f"{p.name}: a {type(obj).__name__}, not a state dict")
    keys = set(strip_module_prefix(sd))
    if YOLACT_KEY in keys:
        if is_yolact_plus(keys):
            return WeightsKind("official_yolact_plus", "yolact", f"{p.name}: official YOLACT++ state dict")
        return WeightsKind("official_yolact", "yolact", f"{p.name}: official YOLACT state dict")
    if MASKRCNN_KEY in keys:
        return WeightsKind("torchvision_maskrcnn", "maskrcnn", f"{p.name}: torchvision Mask R-CNN state dict")
    sample = sorted(k for k in keys if isinstance(k, str))[:4]
    return WeightsKind("unknown", "", f"{p.name}: a state dict no family knows (keys e.g. {sample})")
