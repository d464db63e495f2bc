"""Loading YOLACT weights: the official ``.pth`` files and our own checkpoints.

Official files (``yolact_base_54_800000.pth``, ``yolact_resnet50_54_800000.pth``,
``yolact_darknet53_54_800000.pth``, ``yolact_im700_54_800000.pth``) are plain state dicts;
they are read with ``torch.load(..., weights_only=True)`` (no code execution) and the model
config is inferred from key names and shapes:

* backbone: ``backbone._preconv.*`` -> darknet53; otherwise ResNet with bottleneck blocks
  (``conv3`` present) or basic blocks, depth from the number of blocks in stage 3;
* classes: ``prediction_layers.0.conf_layer.weight`` rows / anchors - 1 (background);
* prototypes: ``proto_net.10.weight`` rows; semantic head: ``semantic_seg_conv.*`` present;
* input size: from the file name (``im700`` -> 700, ``im400`` -> 400), else 550.

The channel-attention keys (``backbone.attention.*``) are absent from official files; they
are reported as missing and keep their identity initialisation.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from instaseg_ros.ops.deform import dcn_uses
from instaseg_ros.weights.torch_io import YOLACT_FORMAT, load_torch_file

log = logging.getLogger(__name__)

CONF_KEY = "prediction_layers.0.conf_layer.weight"
BBOX_KEY = "prediction_layers.0.bbox_layer.weight"
REQUIRED_KEYS = (CONF_KEY, BBOX_KEY, "prediction_layers.0.mask_layer.weight", "fpn.lat_layers.0.weight")


@dataclass
class LoadReport:
    """What :func:`load_state_dict_into` did: attention keys left at init, keys dropped on purpose."""

    missing_attention: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a checkpoint file -> (state_dict, stored config dict or None for official files).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not loadable with ``weights_only=True``, or not a YOLACT state dict.
    """
    p = Path(path)
    obj = load_torch_file(p, "YOLACT weights")
    if isinstance(obj, dict) and obj.get("format") == YOLACT_FORMAT:
        if "state_dict" not in obj or "config" not in obj:
            raise ValueError(f"{p}: instaseg checkpoint without 'state_dict'/'config' entries")
        return dict(obj["state_dict"]), dict(obj["config"])
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):  # tolerate common wrappers around an official dict
            inner = obj.get(wrapper)
            if isinstance(inner, dict) and CONF_KEY in inner:
                obj = inner
                break
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}  # saved from a DataParallel wrapper
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{p}: not a YOLACT checkpoint (expected a state dict of tensors, got {type(obj).__name__})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        sample = sorted(obj)[:5]
        raise ValueError(f"{p}: not a YOLACT checkpoint: missing keys {missing} (file has e.g. {sample})")
    return dict(obj), None


def _count_blocks(sd: dict[str, torch.Tensor], stage: int) -> int:
    pat = re.compile(rf"^backbone\.layers\.{stage}\.(\d+)\.")
    ids = {int(m.group(1)) for k in sd if (m := pat.match(k))}
    return max(ids) + 1 if ids else 0


def infer_backbone(sd: dict[str, torch.Tensor]) -> str:
    """Backbone name from state-dict keys; ``ValueError`` if it matches none we build."""
    if any(k.startswith("backbone._preconv.") for k in sd):
        return "darknet53"
    counts = [_count_blocks(sd, i) for i in range(4)]
    bottleneck = "backbone.layers.0.0.conv3.weight" in sd
    table = {
        (True, (3, 4, 6, 3)): "resnet50",
        (True, (3, 4, 23, 3)): "resnet101",
        (False, (2, 2, 2, 2)): "resnet18",
        (False, (3, 4, 6, 3)): "resnet34",
    }
    name = table.get((bottleneck, tuple(counts)))
    stem = sd.get("backbone.conv1.weight")
    if name == "resnet18" and stem is not None and stem.shape[0] == 32:
        name = "resnet18_slim"
    if name is None:
        raise ValueError(
            f"unsupported YOLACT backbone: blocks per stage {counts} "
            f"({'bottleneck' if bottleneck else 'basic'} blocks, from keys backbone.layers.<stage>.<block>.*)"
        )
    return name


def infer_config_from_state_dict(
    sd: dict[str, torch.Tensor], path: str | Path | None = None
) -> dict[str, Any]:
    """Config mapping (for ``YolactConfig.from_dict``) of an official-layout state dict."""
    num_anchors = sd[BBOX_KEY].shape[0] // 4
    conf_rows = sd[CONF_KEY].shape[0]
    if num_anchors == 0 or conf_rows % num_anchors:
        raise ValueError(f"{CONF_KEY} has {conf_rows} rows, not a multiple of {num_anchors} anchors")
    num_classes = conf_rows // num_anchors - 1
    proto_keys = sorted(
        (k for k in sd if re.match(r"^proto_net\.\d+\.weight$", k)), key=lambda k: int(k.split(".")[1])
    )
    num_prototypes = (
        sd[proto_keys[-1]].shape[0]
        if proto_keys
        else sd["prediction_layers.0.mask_layer.weight"].shape[0] // num_anchors
    )
    name = Path(str(path)).name if path is not None else ""
    m = re.search(r"im(\d{3,4})", name)
    input_size = int(m.group(1)) if m else 550
    downs = {int(k.split(".")[2]) for k in sd if k.startswith("fpn.downsample_layers.")}
    plus = infer_yolact_plus(sd, num_anchors, input_size)
    return {
        "backbone": infer_backbone(sd),
        "num_classes": num_classes,
        "input_size": input_size,
        "num_prototypes": int(num_prototypes),
        "attention": any(".attention." in k for k in sd),
        "semantic_head": "semantic_seg_conv.weight" in sd,
        "fpn_num_downsample": min(len(downs), 2) if downs else 0,
        "anchor_aspect_ratios": [1.0, 0.5, 2.0] if num_anchors == 3 else [1.0] * num_anchors,
        "square_anchors": True,
        **plus,
    }


# YOLACT++ anchors: three octave scales per level and aspect ratios 1, 1/2, 2 (non-square), 9 per cell
PLUS_SCALE_STEPS = 3


def infer_dcn_layout(sd: dict[str, torch.Tensor]) -> tuple[list[int], int]:
    """(dcn_layers, dcn_interval) reproducing which bottlenecks hold DCNv2 (``conv2.conv_offset_mask``)."""
    pat = re.compile(r"^backbone\.layers\.(\d)\.(\d+)\.conv2\.conv_offset_mask\.weight$")
    used = [set() for _ in range(4)]
    for k in sd:
        if m := pat.match(k):
            used[int(m.group(1))].add(int(m.group(2)))
    if not any(used):
        return [0, 0, 0, 0], 1
    counts = [_count_blocks(sd, i) for i in range(4)]
    for interval in range(1, max(counts) + 1):
        layers = []
        for stage, n in enumerate(counts):
            fits = [
                d for d in range(n + 1) if {i for i in range(n) if dcn_uses(i, n, d, interval)} == used[stage]
            ]
            if not fits:
                break
            layers.append(fits[0])
        if len(layers) == 4:
            return layers, interval
    raise ValueError(
        f"deformable convolutions in blocks {[sorted(u) for u in used]} match no dcn_layers/interval"
    )


def infer_yolact_plus(sd: dict[str, torch.Tensor], num_anchors: int, input_size: int) -> dict[str, Any]:
    """The YOLACT++ settings of a state dict: DCN layout, mask re-scoring head, anchors (empty for YOLACT)."""
    out: dict[str, Any] = {}
    dcn_layers, dcn_interval = infer_dcn_layout(sd)
    if any(dcn_layers):
        out.update(dcn_layers=dcn_layers, dcn_interval=dcn_interval)
    convs = sorted(
        (k for k in sd if re.match(r"^maskiou_net\.maskiou_net\.\d+\.weight$", k)),
        key=lambda k: int(k.split(".")[2]),
    )
    if convs:
        out.update(mask_rescoring=True, maskiou_channels=[int(sd[k].shape[0]) for k in convs[:-1]])
    if num_anchors == 3 * PLUS_SCALE_STEPS:
        base = [s * input_size / 550 for s in (24, 48, 96, 192, 384)]
        out.update(
            anchor_scales=[[b * 2 ** (j / PLUS_SCALE_STEPS) for j in range(PLUS_SCALE_STEPS)] for b in base],
            anchor_aspect_ratios=[1.0, 0.5, 2.0],
            square_anchors=False,
        )
    return out


def _is_attention(key: str) -> bool:
    return key.startswith("backbone.attention.")


def load_state_dict_into(
    model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str = "checkpoint"
) -> LoadReport:
    """Load ``sd`` into ``model`` strictly, except: missing attention keys (kept at identity init),
    missing BN ``num_batches_tracked``, and the official loader's legacy keys (old ``backbone.layerN``
    names, FPN downsample layers beyond the model's). Any other mismatch raises ``ValueError``
    naming the keys, with a diagnosis for wrong class counts and wrong backbones.
    """
    report = LoadReport()
    own = model.state_dict()
    n_down = len(getattr(getattr(model, "fpn", None), "downsample_layers", []))
    sd = dict(sd)
    for k in list(sd):
        legacy_layer = k.startswith("backbone.layer") and not k.startswith("backbone.layers")
        extra_down = k.startswith("fpn.downsample_layers.") and int(k.split(".")[2]) >= n_down
        if (legacy_layer or extra_down) and k not in own:
            report.ignored.append(k)
            del sd[k]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    report.missing_attention = [k for k in missing if _is_attention(k)]
    missing = [k for k in missing if not _is_attention(k) and not k.endswith("num_batches_tracked")]
    shape_bad = [
        (k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own if k in sd and sd[k].shape != own[k].shape
    ]

    problems = []
    cfg = getattr(model, "cfg", None)
    if any(k == CONF_KEY for k, _, _ in shape_bad):
        a = sd[BBOX_KEY].shape[0] // 4 if BBOX_KEY in sd else 1
        got = sd[CONF_KEY].shape[0] // max(a, 1) - 1
        problems.append(
            f"wrong class count: {CONF_KEY} has shape {tuple(sd[CONF_KEY].shape)} "
            f"= {got} classes + background, "
            f"config asks for num_classes={getattr(cfg, 'num_classes', '?')}"
        )
    backbone_keys = [k for k in missing + unexpected if k.startswith("backbone.")]
    backbone_keys += [k for k, _, _ in shape_bad if k.startswith("backbone.")]
    if backbone_keys:
        try:
            found = infer_backbone(sd)
        except ValueError as e:
            found = f"unknown ({e})"
        wanted = getattr(cfg, "backbone", "?")
        if found == wanted:
            problems.append(
                f"backbone blocks differ: both are {found}, but the checkpoint's and the config's blocks do "
                f"not match (deformable convolutions of YOLACT++ in one and not the other?); "
                f"offending keys e.g. "
                f"{sorted(backbone_keys)[:6]}"
            )
        else:
            problems.append(
                f"wrong backbone: checkpoint backbone is {found}, config asks for {wanted}; "
                f"offending keys e.g. {sorted(backbone_keys)[:6]}"
            )
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:10]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:10]}")
    if shape_bad:
        problems.append("shape mismatches (key, checkpoint, model): " + str(shape_bad[:6]))
    if problems:
        raise ValueError(f"{source}: cannot load YOLACT weights: " + "; ".join(problems))

    model.load_state_dict(sd, strict=False)
    if report.missing_attention:
        log.info(
            "%s: %d channel-attention keys not in the checkpoint (official YOLACT weights); "
            "attention blocks stay at their identity initialisation",
            source,
            len(report.missing_attention),
        )
    if report.ignored:
        log.info("%s: ignored legacy keys %s", source, report.ignored[:10])
    return report
