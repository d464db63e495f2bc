"""YOLOv3 decoding, the FCN mask heads and ONNX exportability of the detector graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instaseg_ros.models.yolo_fcn.detector import YoloLayer, build_yolov3
from instaseg_ros.models.yolo_fcn.fcn import FCN8s, FcnConfig, ResNetFCN, build_fcn, save_fcn_checkpoint


def test_yolo_layer_decoding_by_hand():
    anchors = torch.tensor([[10.0, 13.0], [33.0, 23.0]])
    layer = YoloLayer(anchors, num_classes=2, stride=8, input_size=32)  # 4x4 grid
    p = torch.zeros(1, 2 * 7, 4, 4)
    # anchor 1 at cell (row 2, col 3): tx=ty=0 -> centre ((3 + .5) * 8, (2 + .5) * 8); tw = ln 2 -> width x2
    p[0, 7 + 2, 2, 3] = float(np.log(2.0))
    p[0, 7 + 4, 2, 3] = 10.0  # objectness ~1
    p[0, 7 + 6, 2, 3] = 10.0  # class 1 ~1
    boxes, obj, cls = layer(p)
    assert boxes.shape == (1, 32, 4) and obj.shape == (1, 32) and cls.shape == (1, 32, 2)
    k = (2 * 4 + 3) * 2 + 1  # [H, W, A] flattening
    torch.testing.assert_close(boxes[0, k], torch.tensor([28 - 33.0, 20 - 11.5, 28 + 33.0, 20 + 11.5]))
    assert obj[0, k] > 0.99 and cls[0, k, 1] > 0.99 and cls[0, k, 0] == 0.5
    # every other prediction: sigmoid(0) objectness, anchor-sized boxes centred on their cell
    assert obj[0, 0] == 0.5
    torch.testing.assert_close(boxes[0, 0], torch.tensor([4 - 5.0, 4 - 6.5, 4 + 5.0, 4 + 6.5]))
    # another feature-map size than the buffer (e.g. other input size): grid rebuilt
    boxes2, _, _ = layer(torch.zeros(1, 14, 2, 3))
    assert boxes2.shape == (1, 12, 4)
    torch.testing.assert_close(boxes2[0, -1, :2], torch.tensor([2.5 * 8 - 16.5, 1.5 * 8 - 11.5]))


def test_detector_output_shapes_and_scores():
    torch.manual_seed(0)
    model = (
        build_yolov3(num_classes=80, input_size=96, width=0.25, depth=(1, 1, 1, 1, 1)).init_weights(0).eval()
    )
    with torch.no_grad():
        boxes, scores = model(torch.rand(2, 3, 96, 96))
        raw = model(torch.rand(2, 3, 96, 96), decode=False)
    n = 3 * (3 * 3 + 6 * 6 + 12 * 12)
    assert boxes.shape == (2, n, 4) and scores.shape == (2, n, 80)
    assert [r.shape[-1] for r in raw] == [3, 6, 12] and all(r.shape[1] == 255 for r in raw)
    assert (scores >= 0).all() and (scores <= 1).all()
    assert (boxes[..., 2:] > boxes[..., :2]).all()
    with pytest.raises(ValueError, match="multiple of the network stride 32"):
        build_yolov3(input_size=100, width=0.25, depth=(1, 1, 1, 1, 1))


@pytest.mark.parametrize(
    "cfg",
    [FcnConfig("resnet18", 0.25, 48), FcnConfig("fcn8s_vgg16", 0.125, 64, fc_channels=64)],
    ids=["resnet18", "fcn8s"],
)
def test_fcn_heads_give_one_logit_map_per_crop(cfg):
    torch.manual_seed(0)
    head = build_fcn(cfg).eval()
    crops = torch.rand(5, 3, cfg.crop_size, cfg.crop_size)
    with torch.no_grad():
        out = head(crops)
        single = head(crops[2:3])
    assert out.shape == (5, 1, cfg.crop_size, cfg.crop_size)
    # crops are independent in a batch (eval mode): batching the crops of an image changes nothing
    torch.testing.assert_close(out[2:3], single, atol=1e-5, rtol=1e-5)


def test_fcn8s_structure_and_sizes():
    head = FCN8s(width=1.0)
    n = sum(p.numel() for p in head.parameters())
    assert 134_000_000 < n < 134_500_000  # the published FCN-8s VGG16 size with a 1-channel output
    assert head.fc6.kernel_size == (7, 7) and head.upscore8.stride == (8, 8)
    small = ResNetFCN(width=0.5)
    assert sum(p.numel() for p in small.parameters()) < 3_000_000


def test_fcn_config_errors():
    with pytest.raises(ValueError, match="fcn.arch must be one of"):
        FcnConfig(arch="unet")
    with pytest.raises(ValueError, match="multiple of 32 for fcn8s_vgg16"):
        FcnConfig(arch="fcn8s_vgg16", crop_size=100)
    with pytest.raises(ValueError, match="unknown fcn config keys"):
        build_fcn({"arch": "resnet18", "depth": 3})


def test_fcn_checkpoint_loads_weights_only(tmp_path):
    cfg = FcnConfig("resnet18", 0.25, 48)
    head = build_fcn(cfg)
    save_fcn_checkpoint(tmp_path / "fcn.pt", head, cfg, epoch=3)
    obj = torch.load(tmp_path / "fcn.pt", weights_only=True)
    assert obj["format"] == "instaseg_fcn" and obj["fcn_config"]["width"] == 0.25 and obj["epoch"] == 3


def test_detector_exports_to_onnx_and_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from instaseg_ros.models.yolo_fcn import YoloDetector

    torch.manual_seed(0)
    darknet = build_yolov3(num_classes=80, input_size=64, width=0.25, depth=(1, 1, 1, 1, 1)).init_weights(0)
    det = YoloDetector(darknet, [0, 56, 57, 60, 61]).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "det.onnx"
    torch.onnx.export(
        det,
        (x,),
        str(path),
        input_names=["images"],
        output_names=["boxes", "scores"],
        opset_version=17,
        dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = det(x)
    assert scores.shape == (1, 3 * (4 + 16 + 64), 5)
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), atol=1e-2, rtol=1e-4)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "cfg",
    [FcnConfig("resnet18", 0.25, 48), FcnConfig("fcn8s_vgg16", 0.125, 64, fc_channels=64)],
    ids=["resnet18", "fcn8s"],
)
def test_mask_head_exports_to_onnx_with_dynamic_crop_count(cfg, tmp_path):
    """The crop count N varies per image: the exported mask head takes any N."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    head = build_fcn(cfg).eval()
    s = cfg.crop_size
    path = tmp_path / "fcn.onnx"
    torch.onnx.export(
        head,
        (torch.rand(2, 3, s, s),),
        str(path),
        input_names=["crops"],
        output_names=["logits"],
        dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    crops = torch.rand(5, 3, s, s, generator=torch.Generator().manual_seed(2))
    (got,) = sess.run(None, {"crops": crops.numpy()})
    with torch.no_grad():
        ref = head(crops).numpy()
    assert got.shape == (5, 1, s, s)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
