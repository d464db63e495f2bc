"""YOLOv3 with a Darknet-53 backbone, built from Darknet ``.cfg`` blocks.

The network is described as a list of Darknet cfg blocks (``[convolutional]``,
``[shortcut]``, ``[route]``, ``[upsample]``, ``[maxpool]``, ``[yolo]``). The
built-in :func:`yolov3_blocks` produces exactly the layer sequence of the public
``yolov3.cfg`` (107 layers, 75 convolutions, 62,001,757 weight floats for 80
classes), :func:`yolov3_tiny_blocks` likewise ``yolov3-tiny.cfg`` (8,858,734 floats),
and :func:`parse_cfg` reads a ``.cfg`` file into the same blocks, so
Darknet ``.weights`` files load in file order (see ``instaseg_ros.weights.darknet``).

The forward pass is a fixed sequence of layers (no data-dependent Python
control flow), and the decoding grids and anchors are buffers, so the model
traces/exports to ONNX as one graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The nine COCO anchors of yolov3.cfg, (w, h) in network-input pixels.
COCO_ANCHORS: list[tuple[int, int]] = [
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326),
]  # fmt: skip
#: Anchor indices per YOLO output in yolov3.cfg order (stride 32, 16, 8).
COCO_ANCHOR_MASKS: list[list[int]] = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
#: The six anchors of yolov3-tiny.cfg, and its masks (stride 32, 16). The public
#: ``yolov3-tiny.weights`` were trained with ``1,2,3`` in the second head (not ``0,1,2``).
TINY_ANCHORS: list[tuple[int, int]] = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]
TINY_ANCHOR_MASKS: list[list[int]] = [[3, 4, 5], [1, 2, 3]]
DETECTORS = ("yolov3", "yolov3-tiny")

Block = dict[str, str]


# --------------------------------------------------------------------------- cfg text


def parse_cfg(text_or_path: str | Path) -> list[Block]:
    """Parse Darknet cfg text (or a ``.cfg`` path) into blocks.

    Returns a list of ``{"type": section, key: value, ...}`` dicts with string
    values, the ``[net]`` block first. Comments (``#``, ``;``) and blank lines are
    ignored. Raises ``ValueError`` naming the file and line on malformed input.
    """
    source = "<text>"
    if isinstance(text_or_path, Path) or (
        isinstance(text_or_path, str) and "\n" not in text_or_path and text_or_path.endswith(".cfg")
    ):
        source = str(text_or_path)
        path = Path(text_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"Darknet cfg file not found: {path}")
        text = path.read_text()
    else:
        text = str(text_or_path)
    blocks: list[Block] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"{source}:{lineno}: malformed section header {raw!r}")
            blocks.append({"type": line[1:-1].strip()})
            continue
        if "=" not in line:
            raise ValueError(f"{source}:{lineno}: expected 'key=value', got {raw!r}")
        if not blocks:
            raise ValueError(f"{source}:{lineno}: option {raw!r} before any [section]")
        key, value = line.split("=", 1)
        blocks[-1][key.strip()] = value.strip()
    if not blocks or blocks[0]["type"] not in ("net", "network"):
        raise ValueError(f"{source}: a Darknet cfg must start with a [net] section")
    return blocks


def blocks_to_cfg(blocks: Sequence[Block]) -> str:
    """Write blocks back as Darknet cfg text (inverse of :func:`parse_cfg`)."""
    parts = []
    for b in blocks:
        lines = [f"[{b['type']}]"] + [f"{k}={v}" for k, v in b.items() if k != "type"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _scaled(c: int, width: float) -> int:
    """Channel count ``c`` scaled by ``width`` (rounded to a multiple of 8, at least 8)."""
    if width == 1.0:
        return c
    return max(8, int(round(c * width / 8.0)) * 8)


def yolov3_blocks(
    num_classes: int = 80,
    input_size: int = 416,
    width: float = 1.0,
    depth: Sequence[int] = (1, 2, 8, 8, 4),
    anchors: Sequence[Sequence[float]] = COCO_ANCHORS,
) -> list[Block]:
    """The built-in YOLOv3 definition as cfg blocks.

    With the defaults this is layer-for-layer ``yolov3.cfg`` (Darknet-53 with
    1/2/8/8/4 residual blocks, three YOLO heads at strides 32/16/8, the 9 COCO
    anchors). ``width`` scales every channel count (except the head outputs) and
    ``depth`` the residual blocks per stage, for small test/CPU variants; route
    indices follow the actual layer positions.
    """
    if len(depth) != 5 or min(depth) < 1:
        raise ValueError(f"depth must be 5 stage repeats >= 1, got {list(depth)}")
    if len(anchors) != 9:
        raise ValueError(f"YOLOv3 needs 9 anchors, got {len(anchors)}")
    anchor_text = ",  ".join(f"{_fmt(w)},{_fmt(h)}" for w, h in anchors)
    blocks: list[Block] = [
        {"type": "net", "width": str(input_size), "height": str(input_size), "channels": "3"}
    ]

    def conv(filters: int, size: int, stride: int = 1, bn: bool = True, act: str = "leaky") -> None:
        b: Block = {"type": "convolutional"}
        if bn:
            b["batch_normalize"] = "1"
        b.update(filters=str(filters), size=str(size), stride=str(stride), pad="1", activation=act)
        blocks.append(b)

    def n_layers() -> int:
        return len(blocks) - 1  # [net] is not a layer

    conv(_scaled(32, width), 3)
    stage_out: list[int] = []
    for stage, repeats in enumerate(depth):
        c = 64 * 2**stage
        conv(_scaled(c, width), 3, 2)
        for _ in range(repeats):
            conv(_scaled(c // 2, width), 1)
            conv(_scaled(c, width), 3)
            blocks.append({"type": "shortcut", "from": "-3", "activation": "linear"})
        stage_out.append(n_layers() - 1)
    head_out = 3 * (5 + num_classes)
    skips = [stage_out[3], stage_out[2]]  # routes to the stride-16 and stride-8 backbone outputs
    for i, c in enumerate((512, 256, 128)):
        if i > 0:
            blocks.append({"type": "route", "layers": "-4"})
            conv(_scaled(c, width), 1)
            blocks.append({"type": "upsample", "stride": "2"})
            blocks.append({"type": "route", "layers": f"-1, {skips[i - 1]}"})
        for _ in range(3):
            conv(_scaled(c, width), 1)
            conv(_scaled(2 * c, width), 3)
        conv(head_out, 1, bn=False, act="linear")
        blocks.append(
            {
                "type": "yolo",
                "mask": ",".join(str(m) for m in COCO_ANCHOR_MASKS[i]),
                "anchors": anchor_text,
                "classes": str(num_classes),
                "num": "9",
            }
        )
    return blocks


def yolov3_tiny_blocks(
    num_classes: int = 80,
    input_size: int = 416,
    width: float = 1.0,
    anchors: Sequence[Sequence[float]] = TINY_ANCHORS,
) -> list[Block]:
    """The built-in YOLOv3-tiny definition (layer-for-layer ``yolov3-tiny.cfg``: 24 layers,
    13 convolutions, two YOLO heads at strides 32/16, 8,858,734 weight floats for 80 classes)."""
    if len(anchors) != 6:
        raise ValueError(f"YOLOv3-tiny needs 6 anchors, got {len(anchors)}")
    anchor_text = ",  ".join(f"{_fmt(w)},{_fmt(h)}" for w, h in anchors)
    blocks: list[Block] = [
        {"type": "net", "width": str(input_size), "height": str(input_size), "channels": "3"}
    ]

    def conv(filters: int, size: int, bn: bool = True, act: str = "leaky") -> None:
        b: Block = {"type": "convolutional"}
        if bn:
            b["batch_normalize"] = "1"
        b.update(filters=str(filters), size=str(size), stride="1", pad="1", activation=act)
        blocks.append(b)

    def yolo(mask: list[int]) -> None:
        blocks.append(
            {
                "type": "yolo",
                "mask": ",".join(map(str, mask)),
                "anchors": anchor_text,
                "classes": str(num_classes),
                "num": "6",
            }
        )

    for i, c in enumerate((16, 32, 64, 128, 256, 512)):
        conv(_scaled(c, width), 3)
        blocks.append({"type": "maxpool", "size": "2", "stride": "2" if i < 5 else "1"})
    conv(_scaled(1024, width), 3)
    conv(_scaled(256, width), 1)
    conv(_scaled(512, width), 3)
    conv(3 * (5 + num_classes), 1, bn=False, act="linear")
    yolo(TINY_ANCHOR_MASKS[0])
    blocks.append({"type": "route", "layers": "-4"})
    conv(_scaled(128, width), 1)
    blocks.append({"type": "upsample", "stride": "2"})
    blocks.append({"type": "route", "layers": "-1, 8"})
    conv(_scaled(256, width), 3)
    conv(3 * (5 + num_classes), 1, bn=False, act="linear")
    yolo(TINY_ANCHOR_MASKS[1])
    return blocks


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


# --------------------------------------------------------------------------- layers


class DarknetConv(nn.Module):
    """Darknet ``[convolutional]``: conv (+ BN without conv bias) + activation.

    ``conv.weight`` is [out, in, k, k]; with ``bn`` the conv has no bias (Darknet
    stores BN beta/gamma/mean/var instead), otherwise ``conv.bias`` is [out].
    """

    def __init__(self, cin: int, cout: int, size: int, stride: int, pad: int, bn: bool, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, size, stride, pad, bias=not bn)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.01) if bn else None
        if act not in ("leaky", "linear", "relu", "mish", "swish", "logistic"):
            raise ValueError(f"unsupported Darknet activation {act!r}")
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act == "leaky":
            return F.leaky_relu(x, 0.1)
        if self.act == "relu":
            return F.relu(x)
        if self.act == "mish":
            return F.mish(x)
        if self.act == "swish":
            return F.silu(x)
        if self.act == "logistic":
            return torch.sigmoid(x)
        return x


class MaxPoolSame(nn.Module):
    """Darknet ``[maxpool]``: out-of-image samples are ignored (replicate padding)."""

    def __init__(self, size: int, stride: int) -> None:
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, x: Tensor) -> Tensor:
        p = self.size - 1
        if p > 0:
            x = F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)


class YoloLayer(nn.Module):
    """Darknet ``[yolo]``: decodes one head output [B, A*(5+C), H, W].

    Returns boxes [B, H*W*A, 4] xyxy in network-input pixels, objectness
    [B, H*W*A] and class probabilities [B, H*W*A, C]. The grid offsets and the
    anchors (pixels) are buffers; ``grid`` is precomputed for ``input_size`` and
    rebuilt (a trace-time constant) only if the feature map has another size.
    """

    def __init__(self, anchors: Tensor, num_classes: int, stride: int, input_size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_anchors = int(anchors.shape[0])
        self.stride = stride
        self.register_buffer("anchors", anchors.float().view(1, 1, 1, -1, 2), persistent=False)
        g = max(1, input_size // stride)
        self.register_buffer("grid", self._make_grid(g, g), persistent=False)

    @staticmethod
    def _make_grid(h: int, w: int) -> Tensor:
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return torch.stack((xs, ys), -1).float().view(1, h, w, 1, 2)

    def forward(self, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, _, h, w = p.shape
        a, nc = self.num_anchors, self.num_classes
        # [B, A, 5+C, H, W] -> [B, H, W, A, 5+C]; decode in fp32 (exp overflows fp16)
        p = p.float().view(b, a, 5 + nc, h, w).permute(0, 3, 4, 1, 2)
        grid = self.grid
        if grid.shape[1] != h or grid.shape[2] != w:
            grid = self._make_grid(h, w).to(p.device)
        xy = (torch.sigmoid(p[..., 0:2]) + grid) * self.stride
        wh = torch.exp(p[..., 2:4]) * self.anchors
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), -1).reshape(b, -1, 4)
        obj = torch.sigmoid(p[..., 4]).reshape(b, -1)
        cls = torch.sigmoid(p[..., 5:]).reshape(b, -1, nc)
        return boxes, obj, cls


class Darknet(nn.Module):
    """A Darknet network (YOLOv3 and relatives) built from cfg blocks.

    ``forward(x [B, 3, S, S] RGB in [0, 1])`` returns ``(boxes [B, N, 4] xyxy
    input px, scores [B, N, C])`` with ``scores = objectness * class prob`` and
    ``N = sum(H_i * W_i * A_i)`` over the YOLO layers (10,647 for 416 YOLOv3).
    ``forward(x, decode=False)`` returns the raw YOLO-layer inputs instead.
    """

    def __init__(self, blocks: Sequence[Block], input_size: int | None = None) -> None:
        super().__init__()
        blocks = [dict(b) for b in blocks]
        net = blocks[0]
        if net["type"] not in ("net", "network"):
            raise ValueError("blocks must start with the [net] block")
        self.blocks = blocks
        self.input_size = int(input_size or net.get("width", 416))
        channels = [int(net.get("channels", 3))]  # channels[i + 1] = output channels of layer i
        strides = [1]
        self.layers = nn.ModuleList()
        self.num_classes = -1
        self.yolo_indices: list[int] = []
        self._routes: dict[int, list[int]] = {}
        self._shortcuts: dict[int, int] = {}
        for i, b in enumerate(blocks[1:]):
            kind = b["type"]
            cin, sin = channels[-1], strides[-1]
            if kind == "convolutional":
                size, stride = int(b.get("size", 1)), int(b.get("stride", 1))
                pad = size // 2 if int(b.get("pad", 0)) else int(b.get("padding", 0))
                cout = int(b["filters"])
                bn = bool(int(b.get("batch_normalize", 0)))
                layer: nn.Module = DarknetConv(
                    cin, cout, size, stride, pad, bn, b.get("activation", "logistic")
                )
                channels.append(cout)
                strides.append(sin * stride)
            elif kind == "shortcut":
                src = self._abs(i, int(b["from"]))
                if channels[src + 1] != cin:
                    raise ValueError(
                        f"layer {i}: shortcut from layer {src} has {channels[src + 1]} channels, not {cin}"
                    )
                if b.get("activation", "linear") != "linear":
                    raise ValueError(f"layer {i}: only linear shortcuts are supported")
                self._shortcuts[i] = src
                layer = nn.Identity()
                channels.append(cin)
                strides.append(sin)
            elif kind == "route":
                if "groups" in b:
                    raise ValueError(f"layer {i}: route 'groups' is not supported")
                srcs = [self._abs(i, int(v)) for v in b["layers"].split(",")]
                self._routes[i] = srcs
                layer = nn.Identity()
                channels.append(sum(channels[s + 1] for s in srcs))
                strides.append(strides[srcs[0] + 1])
            elif kind == "upsample":
                s = int(b.get("stride", 2))
                layer = nn.Upsample(scale_factor=s, mode="nearest")
                channels.append(cin)
                strides.append(sin // s)
            elif kind == "maxpool":
                size, stride = int(b.get("size", 2)), int(b.get("stride", 2))
                layer = MaxPoolSame(size, stride)
                channels.append(cin)
                strides.append(sin * stride)
            elif kind in ("yolo", "region"):
                if kind == "region":
                    raise ValueError(f"layer {i}: YOLOv2 [region] layers are not supported")
                nc = int(b["classes"])
                vals = [float(v) for v in b["anchors"].split(",") if v.strip()]
                all_anchors = torch.tensor(vals).view(-1, 2)
                mask = [int(v) for v in b.get("mask", ",".join(map(str, range(len(all_anchors))))).split(",")]
                if cin != len(mask) * (5 + nc):
                    raise ValueError(
                        f"layer {i}: [yolo] with {len(mask)} anchors and {nc} classes needs "
                        f"{len(mask) * (5 + nc)} input channels, the previous layer gives {cin}"
                    )
                if self.num_classes not in (-1, nc):
                    raise ValueError(f"layer {i}: YOLO layers disagree on the class count")
                self.num_classes = nc
                layer = YoloLayer(all_anchors[mask], nc, sin, self.input_size)
                self.yolo_indices.append(i)
                channels.append(cin)
                strides.append(sin)
            else:
                raise ValueError(f"layer {i}: unsupported Darknet section [{kind}]")
            self.layers.append(layer)
        if not self.yolo_indices:
            raise ValueError("the network has no [yolo] layer")
        # outputs the forward pass must keep: route/shortcut sources
        keep = set(self._shortcuts.values())
        for srcs in self._routes.values():
            keep.update(srcs)
        self._keep = keep
        self.max_stride = max(strides)

    @staticmethod
    def _abs(i: int, ref: int) -> int:
        j = i + ref if ref < 0 else ref
        if not 0 <= j < i:
            raise ValueError(f"layer {i}: reference {ref} points outside the previous layers")
        return j

    def darknet_layers(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
        """(conv, bn or None) per convolution, in ``.weights`` file order."""
        return [(m.conv, m.bn) for m in self.layers if isinstance(m, DarknetConv)]

    def forward(self, x: Tensor, decode: bool = True):
        saved: dict[int, Tensor] = {}
        raw: list[Tensor] = []
        decoded: list[tuple[Tensor, Tensor, Tensor]] = []
        for i, layer in enumerate(self.layers):
            if i in self._routes:
                srcs = self._routes[i]
                x = saved[srcs[0]] if len(srcs) == 1 else torch.cat([saved[s] for s in srcs], 1)
            elif i in self._shortcuts:
                x = x + saved[self._shortcuts[i]]
            elif isinstance(layer, YoloLayer):
                raw.append(x)
                if decode:
                    decoded.append(layer(x))
            else:
                x = layer(x)
            if i in self._keep:
                saved[i] = x
        if not decode:
            return raw
        boxes = torch.cat([d[0] for d in decoded], 1)
        obj = torch.cat([d[1] for d in decoded], 1)
        cls = torch.cat([d[2] for d in decoded], 1)
        return boxes, obj.unsqueeze(-1) * cls

    def init_weights(self, seed: int | None = None) -> Darknet:
        """Random init (He for convs, non-trivial BN statistics); head biases give low objectness."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for conv, bn in self.darknet_layers():
                fan_in = conv.weight[0].numel()
                std = math.sqrt(2.0 / fan_in) * (1.0 if bn is not None else 0.05)  # quiet head outputs
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * std)
                if bn is not None:
                    n = bn.num_features
                    bn.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=gen))
                    bn.bias.copy_(0.1 * torch.randn(n, generator=gen))
                    bn.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                    bn.running_var.copy_(1.0 + 0.1 * torch.rand(n, generator=gen))
                else:
                    conv.bias.copy_(0.01 * torch.randn(conv.bias.shape, generator=gen))
        return self


def build_yolov3(
    num_classes: int = 80,
    input_size: int = 416,
    width: float = 1.0,
    depth: Sequence[int] = (1, 2, 8, 8, 4),
    cfg: str | Path | None = None,
    anchors: Sequence[Sequence[float]] | None = None,
    variant: str = "yolov3",
) -> Darknet:
    """YOLOv3 from a ``.cfg`` file (``cfg``) or a built-in definition (``variant``:
    ``"yolov3"`` = yolov3.cfg, ``"yolov3-tiny"`` = yolov3-tiny.cfg; ``depth`` applies to yolov3 only)."""
    if cfg is not None:
        blocks = parse_cfg(cfg)
    elif variant == "yolov3":
        blocks = yolov3_blocks(num_classes, input_size, width, depth, anchors or COCO_ANCHORS)
    elif variant == "yolov3-tiny":
        blocks = yolov3_tiny_blocks(num_classes, input_size, width, anchors or TINY_ANCHORS)
    else:
        raise ValueError(f"unknown detector variant {variant!r}; known: {DETECTORS}")
    model = Darknet(blocks, input_size=input_size)
    if model.num_classes != num_classes:
        raise ValueError(
            f"{cfg}: the cfg's [yolo] layers predict {model.num_classes} classes, "
            f"the configuration expects {num_classes}"
        )
    if input_size % model.max_stride:
        raise ValueError(
            f"input_size {input_size} must be a multiple of the network stride {model.max_stride}"
        )
    return model
