"""The catalogue of public COCO checkpoints that instaseg_ros loads (or, for YOLACT++, recognises).

Every fact here comes from the publisher or is derived and says so; nothing is guessed:

* YOLACT / YOLACT++: file names, download links, speeds and COCO test-dev mask mAP from the authors' README
  (github.com/dbolya/yolact @ 902073d, 2025-09-08); MIT licence (LICENSE there, and the Hugging Face model
  cards). No checksum is published. Sizes: yolact_base as listed by Hugging Face; the others computed from the
  official state-dict shapes (test/fixtures/yolact_official_keys_*.json) and marked "about".
* YOLOv3 / YOLOv3-tiny: links from the Darknet site; exact sizes follow from the network layout (20-byte
  header + float32 parameters, checked against our parser in test/test_darknet_weights.py); the "YOLO
  LICENSE" of github.com/pjreddie/darknet (public domain). No checksum is published.
* Mask R-CNN R50-FPN: torchvision's ``MaskRCNN_ResNet50_FPN_Weights.COCO_V1`` (URL, 169.84 MiB, box/mask
  mAP 37.9/34.6 on COCO val2017); torchvision puts the first 8 hex digits of the file's sha256 in its name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

NOT_PUBLISHED = "not published"


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint.

    Attributes:
        name: file name, also the ``instaseg weights download NAME`` argument.
        family: our model family that loads it (``model.family``).
        description: network, input size and the publisher's accuracy.
        url: the publisher's download link.
        size_bytes: exact size when known (verified after download when no checksum is published), else None.
        size: human-readable size and where it comes from.
        sha256: the published sha256 (64 hex digits) or published prefix of it (torchvision: 8), else None.
        sha256_source: where the checksum comes from, or "not published".
        licence: licence of the weights and who states it.
        classes: what it detects.
        params_file: our node parameter file to launch it with.
        config: our model config matching it (None: everything is read from the checkpoint).
        config_needed: whether ``model.config`` must name it (else it is read from the checkpoint and the
            file only documents / overrides the values).
        notes: what else is needed, or why it does not load.
        loadable: whether this version of instaseg_ros loads it.
    """

    name: str
    family: str
    description: str
    url: str
    size_bytes: int | None
    size: str
    sha256: str | None
    sha256_source: str
    licence: str
    classes: str
    params_file: str
    config: str | None
    notes: str = ""
    loadable: bool = True
    config_needed: bool = False

    def to_dict(self) -> dict:
        """Plain-JSON form (``instaseg weights list --json``)."""
        return asdict(self)


_YOLACT_README = "https://github.com/dbolya/yolact"
_YOLACT_LICENCE = "MIT (github.com/dbolya/yolact LICENSE; Hugging Face model card); trained on COCO 2017"
_COCO80 = "80 COCO classes"


def _hf(repo: str, name: str) -> str:
    return f"https://huggingface.co/dbolya/{repo}/resolve/main/{name}?download=true"


def _yolact(name: str, repo: str, what: str, size: str, config: str | None, **kw) -> WeightsEntry:
    return WeightsEntry(
        name=name, family="yolact", description=what, url=_hf(repo, name), size_bytes=None, size=size,
        sha256=None, sha256_source=NOT_PUBLISHED, licence=_YOLACT_LICENCE, classes=_COCO80,
        params_file="config/yolact.yaml", config=config, **kw,
    )  # fmt: skip


_YOLO_LICENCE = "YOLO LICENSE v2: public domain (github.com/pjreddie/darknet); trained on COCO trainval"
_YOLO_NOTES = (
    "Detector only: YOLO+FCN also needs a mask head, fcn_weights in the model config (an FCN checkpoint from "
    "`instaseg train --config config/train/fcn_synthetic.yaml`, or the shipped models/fcn_r18_indoor.pth)."
)


def _darknet(name: str, net: str, accuracy: str, floats: int, cfg: str, config: str, note: str
             ) -> WeightsEntry:  # fmt: skip
    """A public Darknet file: a 20-byte header (version 0.2) then ``floats`` float32 parameters."""
    size = 20 + 4 * floats
    return WeightsEntry(
        name=name, family="yolo_fcn", url=f"https://pjreddie.com/media/files/{name}",
        description=f"{net} Darknet detector (boxes; masks from our FCN head), {accuracy}",
        size_bytes=size, size=f"{size:,} bytes (20-byte header + {floats:,} float32, {cfg})",
        sha256=None, sha256_source=NOT_PUBLISHED, licence=_YOLO_LICENCE, classes=_COCO80,
        params_file="config/yolo_fcn.yaml", config=config, config_needed=True, notes=f"{_YOLO_NOTES} {note}",
    )  # fmt: skip


_PLUS_NOTES = (
    "YOLACT++: deformable convolutions (DCNv2, run by torchvision's deform_conv2d: the authors' CUDA "
    "extension is not needed) and the mask re-scoring head; the configuration is read from the file, "
    "so no model config is needed."
)

CATALOG: tuple[WeightsEntry, ...] = (
    _yolact("yolact_base_54_800000.pth", "yolact-base",
            "YOLACT ResNet-101-FPN, 550 px: 29.8 mask mAP (COCO test-dev), 33.5 fps on a Titan Xp (authors)",
            "204 MB (Hugging Face file listing)", "config/models/yolact_base.yaml"),
    _yolact("yolact_resnet50_54_800000.pth", "yolact-resnet50",
            "YOLACT ResNet-50-FPN, 550 px: 28.2 mask mAP, 42.5 fps on a Titan Xp (authors); the CPU choice",
            "about 125 MB (31.2 M float32 tensors in the official state dict)",
            "config/models/yolact_resnet50.yaml"),
    _yolact("yolact_darknet53_54_800000.pth", "yolact-darknet53",
            "YOLACT Darknet-53-FPN, 550 px: 28.7 mask mAP, 40.0 fps on a Titan Xp (authors)",
            "about 191 MB (47.8 M float32 tensors in the official state dict)",
            "config/models/yolact_darknet53.yaml"),
    _yolact("yolact_im700_54_800000.pth", "yolact-im700",
            "YOLACT ResNet-101-FPN, 700 px: 31.2 mask mAP, 23.6 fps on a Titan Xp (authors)",
            "about 204 MB (the same tensors as yolact_base)", "config/models/yolact_im700.yaml",
            notes="Keep the file name: 'im700' in it selects the 700 px input."),
    _yolact("yolact_plus_base_54_800000.pth", "yolact-plus-base",
            "YOLACT++ ResNet-101-FPN, 550 px: 34.6 mask mAP, 27.3 fps on a Titan Xp (authors)",
            "about 207 MB (yolact_base plus ~3 MB of DCNv2 offsets and re-scoring head, from layer shapes)",
            None,
            notes=_PLUS_NOTES),
    _yolact("yolact_plus_resnet50_54_800000.pth", "yolact-plus-resnet50",
            "YOLACT++ ResNet-50-FPN, 550 px: 34.1 mask mAP, 33.5 fps on a Titan Xp (authors)",
            "about 135 MB (33.8 M float32 tensors in the official state dict)", None, notes=_PLUS_NOTES),
    _darknet("yolov3.weights", "YOLOv3-416", "55.3 AP50 on COCO test-dev (paper)", 62_001_757, "yolov3.cfg",
             "config/models/yolo_fcn_coco.yaml",
             "For five indoor classes use config/models/yolo_fcn_indoor.yaml."),
    _darknet("yolov3-tiny.weights", "YOLOv3-tiny-416", "33.1 AP50 on COCO test-dev (Darknet site)", 8_858_734,
             "yolov3-tiny.cfg", "config/models/yolo_fcn_yolov3tiny_indoor.yaml",
             "That config keeps five indoor classes; set classes: null there for all 80."),
    WeightsEntry(
        name="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", family="maskrcnn",
        description="torchvision Mask R-CNN ResNet-50-FPN: 37.9 box / 34.6 mask mAP on COCO val2017 "
                    "(torchvision), for GPUs (44.4 M parameters, 800 px shorter side)",
        url="https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        size_bytes=None, size="169.84 MiB (torchvision weights metadata)",
        sha256="bf2d0c1e",
        sha256_source="first 8 hex digits, in torchvision's file name; torch.hub checks the same",
        licence="BSD-3-Clause (torchvision); trained on COCO 2017, whose terms torchvision says may apply",
        classes="90 COCO category ids (80 used) + background, names read from the checkpoint",
        params_file="config/maskrcnn.yaml", config=None,
        notes="Leave model.config empty: backbone and COCO names come from the checkpoint "
              "(config/models/maskrcnn_r50_fpn.yaml is for 5-class fine-tuning). Also found in "
              "~/.cache/torch/hub/checkpoints/ if torchvision downloaded it before.",
    ),
)  # fmt: skip


def names() -> list[str]:
    """Every catalogue name, in catalogue order."""
    return [e.name for e in CATALOG]


def find(name: str) -> WeightsEntry:
    """The entry called ``name``: the file name, with or without its extension, or a prefix of just one name
    (``yolact_resnet50`` -> ``yolact_resnet50_54_800000.pth``).

    Raises:
        KeyError: with a one-line message listing the candidates.
    """
    for entry in CATALOG:
        if name in (entry.name, entry.name.rsplit(".", 1)[0]):
            return entry
    matches = [e for e in CATALOG if name and e.name.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise KeyError(f"{name!r} is ambiguous: {', '.join(e.name for e in matches)}")
    raise KeyError(f"unknown weights {name!r}; known: {', '.join(names())}")
