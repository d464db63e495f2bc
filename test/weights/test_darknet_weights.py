"""Darknet .weights reading/writing and the YOLOv3 cfg definition."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from instaseg_ros.models.yolo_fcn.detector import (
    Darknet,
    blocks_to_cfg,
    build_yolov3,
    parse_cfg,
    yolov3_blocks,
)
from instaseg_ros.weights.darknet import (
    DarknetHeader,
    darknet_float_count,
    load_darknet_weights,
    read_darknet_header,
    save_darknet_weights,
)

TINY = dict(num_classes=80, input_size=64, width=0.25, depth=(1, 1, 1, 1, 1))


def _tiny(seed: int) -> Darknet:
    torch.manual_seed(seed)
    return build_yolov3(**TINY).init_weights(seed).eval()


def test_builtin_yolov3_matches_yolov3_cfg_layout():
    """107 layers, 75 convs, YOLO layers and routes where yolov3.cfg has them, and the
    62,001,757 floats of the public yolov3.weights (248,007,048 bytes - 20-byte header)."""
    model = build_yolov3()
    assert len(model.layers) == 107
    assert len(model.darknet_layers()) == 75
    assert model.yolo_indices == [82, 94, 106]
    assert model._routes == {83: [79], 86: [85, 61], 95: [91], 98: [97, 36]}
    assert darknet_float_count(model) == (248_007_048 - 20) // 4 == 62_001_757
    strides = [model.layers[i].stride for i in model.yolo_indices]
    assert strides == [32, 16, 8]
    anchors = [model.layers[i].anchors.view(-1, 2).tolist() for i in model.yolo_indices]
    assert anchors[0] == [[116, 90], [156, 198], [373, 326]]
    assert anchors[2] == [[10, 13], [16, 30], [33, 23]]


def test_builtin_yolov3_tiny_matches_yolov3_tiny_cfg_layout():
    """24 layers, 13 convs, heads at strides 32/16 with masks 3,4,5 / 1,2,3, and the 8,858,734 floats
    of the public yolov3-tiny.weights (35,434,956 bytes - 20-byte header)."""
    model = build_yolov3(variant="yolov3-tiny")
    assert len(model.layers) == 24 and len(model.darknet_layers()) == 13
    assert model.yolo_indices == [16, 23] and model._routes == {17: [13], 20: [19, 8]}
    assert darknet_float_count(model) == (35_434_956 - 20) // 4 == 8_858_734
    assert [model.layers[i].stride for i in model.yolo_indices] == [32, 16]
    assert model.layers[23].anchors.view(-1, 2).tolist() == [[23, 27], [37, 58], [81, 82]]
    with pytest.raises(ValueError, match="unknown detector variant"):
        build_yolov3(variant="yolov9")


def test_darknet_maxpool_semantics():
    """size 2 / stride 1 keeps the size, taking max(x[i], x[i+1]) with the edge repeated (Darknet)."""
    from instaseg_ros.models.yolo_fcn.detector import MaxPoolSame

    x = torch.tensor([[[[1.0, 5.0, 2.0], [0.0, -1.0, 3.0], [4.0, 0.0, -2.0]]]])
    y = MaxPoolSame(2, 1)(x)
    assert y.tolist() == [[[[5.0, 5.0, 3.0], [4.0, 3.0, 3.0], [4.0, 0.0, -2.0]]]]
    assert MaxPoolSame(2, 2)(torch.rand(1, 1, 13, 13)).shape[-1] == 7  # Darknet: (13 + 1 - 2) / 2 + 1


def test_weights_round_trip_gives_identical_outputs(tmp_path):
    src, dst = _tiny(0), _tiny(1)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = src(x)
        assert not torch.equal(dst(x)[1], before[1])  # different init
    path = tmp_path / "tiny.weights"
    header = DarknetHeader(0, 2, 0, seen=123_456_789_012)
    n = save_darknet_weights(src, path, header)
    assert n == darknet_float_count(src)
    assert path.stat().st_size == 20 + 4 * n
    got = load_darknet_weights(dst, path)
    assert (got.major, got.minor, got.revision, got.seen) == (0, 2, 0, 123_456_789_012)
    with torch.no_grad():
        after = dst(x)
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])


def test_file_layout_is_darknet_order(tmp_path):
    """Floats follow BN beta, gamma, mean, var, conv weights; the head conv has bias then weights."""
    model = _tiny(2)
    path = tmp_path / "m.weights"
    save_darknet_weights(model, path)
    data = np.frombuffer(path.read_bytes(), "<f4", offset=20)
    conv, bn = model.darknet_layers()[0]
    c = conv.out_channels
    expect = [bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight]
    pos = 0
    for t in expect:
        np.testing.assert_array_equal(data[pos : pos + t.numel()], t.detach().reshape(-1).numpy())
        pos += t.numel()
    assert pos == 4 * c + conv.weight.numel()
    head, head_bn = model.darknet_layers()[-1]
    assert head_bn is None
    tail = head.bias.numel() + head.weight.numel()
    np.testing.assert_array_equal(data[-tail : -head.weight.numel()], head.bias.detach().numpy())
    np.testing.assert_array_equal(data[-head.weight.numel() :], head.weight.detach().reshape(-1).numpy())


def test_32bit_seen_header(tmp_path):
    model = _tiny(0)
    path = tmp_path / "old.weights"
    save_darknet_weights(model, path, DarknetHeader(0, 1, 0, seen=77))
    assert path.stat().st_size == 16 + 4 * darknet_float_count(model)
    with open(path, "rb") as f:
        assert struct.unpack("<3iI", f.read(16)) == (0, 1, 0, 77)
    h = read_darknet_header(path)
    assert (h.minor, h.seen, h.nbytes) == (1, 77, 16)
    load_darknet_weights(_tiny(1), path)


def test_truncated_file_fails_with_counts(tmp_path):
    model = _tiny(0)
    path = tmp_path / "cut.weights"
    n = save_darknet_weights(model, path)
    path.write_bytes(path.read_bytes()[: 20 + 4 * (n - 10)])
    with pytest.raises(ValueError, match=rf"needs {n} float32 values.*holds {n - 10}.*truncated"):
        load_darknet_weights(_tiny(1), path)


def test_oversized_file_strict_and_lenient(tmp_path):
    model = _tiny(0)
    path = tmp_path / "big.weights"
    n = save_darknet_weights(model, path)
    path.write_bytes(path.read_bytes() + b"\0" * 40)
    with pytest.raises(ValueError, match=rf"needs {n} float32 values.*holds {n + 10}"):
        load_darknet_weights(_tiny(1), path)
    load_darknet_weights(_tiny(1), path, strict=False)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.weights"):
        load_darknet_weights(_tiny(0), tmp_path / "nothere.weights")
    short = tmp_path / "short.weights"
    short.write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match="too short"):
        load_darknet_weights(_tiny(0), short)
    odd = tmp_path / "odd.weights"
    odd.write_bytes(struct.pack("<3iQ", 0, 2, 0, 0) + b"\0" * 7)
    with pytest.raises(ValueError, match="not a whole number"):
        load_darknet_weights(_tiny(0), odd)


def test_cfg_parser_reads_darknet_style_text():
    text = """
[net]
# Testing
batch=1
width= 96
height = 96
channels=3

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 0,1,2
anchors = 10,14,  23,27,  37,58
classes=2
num=3
jitter=.3
"""
    blocks = parse_cfg(text)
    assert [b["type"] for b in blocks] == ["net", "convolutional", "maxpool", "convolutional", "yolo"]
    assert blocks[0]["width"] == "96" and blocks[5 - 1]["anchors"].startswith("10,14")
    model = Darknet(blocks).eval()
    # 16*(4) + 16*3*3*3, then bias 21 + 21*16
    assert darknet_float_count(model) == 16 * 4 + 16 * 27 + 21 + 21 * 16
    with torch.no_grad():
        boxes, scores = model(torch.rand(1, 3, 96, 96))
    assert boxes.shape == (1, 48 * 48 * 3, 4) and scores.shape == (1, 48 * 48 * 3, 2)


def test_cfg_file_round_trip_builds_the_same_network(tmp_path):
    blocks = yolov3_blocks(**{k: v for k, v in TINY.items() if k != "num_classes"}, num_classes=80)
    path = tmp_path / "tiny.cfg"
    path.write_text(blocks_to_cfg(blocks))
    assert parse_cfg(path) == blocks
    assert parse_cfg(blocks_to_cfg(yolov3_blocks())) == yolov3_blocks()
    src = _tiny(0)
    from_cfg = build_yolov3(num_classes=80, input_size=64, cfg=str(path)).eval()
    weights = tmp_path / "w.weights"
    save_darknet_weights(src, weights)
    load_darknet_weights(from_cfg, weights)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x)[1], from_cfg(x)[1])


def test_cfg_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.cfg"):
        parse_cfg(str(tmp_path / "missing.cfg"))
    with pytest.raises(ValueError, match=r"must start with a \[net\]"):
        parse_cfg("[convolutional]\nfilters=3\n")
    with pytest.raises(ValueError, match="unsupported Darknet section"):
        Darknet(parse_cfg("[net]\nwidth=32\n[sam]\nfrom=-1\n"))
    with pytest.raises(ValueError, match="needs 255 input channels"):
        Darknet(
            parse_cfg(
                "[net]\n[convolutional]\nfilters=8\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=80\n"
            )
        )
    path = tmp_path / "y.cfg"
    path.write_text(
        blocks_to_cfg(yolov3_blocks(num_classes=80, input_size=64, width=0.25, depth=(1, 1, 1, 1, 1)))
    )
    with pytest.raises(ValueError, match="predict 80 classes, the configuration expects 5"):
        build_yolov3(num_classes=5, input_size=64, cfg=str(path))
