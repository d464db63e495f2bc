"""Backend selection by name, option checking, unavailable-backend errors, the torch backend, wrapping."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from instaseg_ros.core.segmenter import InferenceParams, Segmenter
from instaseg_ros.data.synthetic import SynthConfig, generate_scene
from instaseg_ros.models import build_segmenter
from instaseg_ros.runtime import (
    BackendSegmenter,
    BackendUnavailableError,
    available_backends,
    create_backend,
    wrap_segmenter,
)
from instaseg_ros.runtime.onnxruntime_backend import resolve_providers
from instaseg_ros.runtime.tensorrt import tensorrt_problems
from instaseg_ros.runtime.torch_backend import TorchBackend

YOLACT_CFG = dict(backbone="resnet18", num_classes=5, input_size=96)


@pytest.fixture(scope="module")
def seg():
    torch.manual_seed(0)
    return build_segmenter("yolact", config=YOLACT_CFG)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return generate_scene(3, SynthConfig(width=128, height=96)).image


def test_unknown_backend_name(seg):
    with pytest.raises(
        ValueError, match=r"unknown backend 'openvino'; known: \['torch', 'onnxruntime', 'tensorrt'\]"
    ):
        create_backend("openvino", seg)


def test_unknown_option_is_named(seg):
    with pytest.raises(ValueError, match=r"backend 'onnxruntime': unknown option\(s\) \['thread'\]"):
        create_backend("onnxruntime", seg, thread=2)


def test_aliases_select_the_same_backend(seg):
    assert create_backend("PyTorch", seg).name == "torch"
    assert isinstance(create_backend("torch", seg), TorchBackend)


def test_torch_backend_is_the_segmenter_itself(seg, image):
    params = InferenceParams(score_threshold=0.2, top_k=10)
    wrapped = wrap_segmenter(seg, "torch")
    assert isinstance(wrapped, BackendSegmenter) and isinstance(wrapped, Segmenter)
    assert wrapped.backend.name == "torch" and wrapped.device == "cpu" and wrapped.precision == "fp32"
    a, b = seg.segment([image], params)[0], wrapped.segment([image], params)[0]
    assert len(a) > 0
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.masks, b.masks)
    # family attributes come through, params are shared
    assert wrapped.cfg is seg.cfg and wrapped.params is seg.params


def test_torch_backend_refuses_a_device_or_precision_the_segmenter_lacks(seg):
    with pytest.raises(ValueError, match="built on device 'cpu' but device 'cuda:0' was requested"):
        create_backend("torch", seg, device="cuda:0")
    with pytest.raises(ValueError, match="built with precision 'fp32' but 'fp16' was requested"):
        create_backend("torch", seg, precision="fp16")
    assert create_backend("torch", seg, device="cpu", precision="fp32").device == "cpu"


def test_wrapped_segmenter_validates_input(seg):
    wrapped = wrap_segmenter(seg, "torch")
    with pytest.raises(ValueError, match="expected dtype uint8"):
        wrapped.segment([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match="unknown classes"):
        wrapped.segment([np.zeros((10, 10, 3), np.uint8)], InferenceParams(class_filter=["giraffe"]))


def test_backend_of_another_segmenter_is_rejected(seg):
    other = build_segmenter("yolact", config=YOLACT_CFG)
    with pytest.raises(ValueError, match="different segmenter"):
        wrap_segmenter(seg, create_backend("torch", other))


def test_onnxruntime_missing_module_says_how_to_install(seg, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail for real
    with pytest.raises(
        BackendUnavailableError, match=r"'onnxruntime' is not installed.*pip install onnxruntime"
    ):
        create_backend("onnxruntime", seg)


def test_onnxruntime_missing_provider_names_what_exists():
    with pytest.raises(
        BackendUnavailableError, match=r"'CUDAExecutionProvider' is not available.*onnxruntime-gpu"
    ):
        resolve_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="TensorrtExecutionProvider"):
        resolve_providers(["tensorrt", "cpu"], ["CPUExecutionProvider", "CUDAExecutionProvider"])
    assert resolve_providers("auto", ["CPUExecutionProvider"], "cuda:0") == ["CPUExecutionProvider"]
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:0") == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert resolve_providers("cpu", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_onnxruntime_settings_are_validated(seg):
    with pytest.raises(ValueError, match="optimization must be one of"):
        create_backend("onnxruntime", seg, optimization="max")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        create_backend("onnxruntime", seg, threads=0)
    with pytest.raises(ValueError, match="fp16 needs the TensorRT execution provider"):
        create_backend("onnxruntime", seg, precision="fp16")


@pytest.mark.skipif(not tensorrt_problems(), reason="TensorRT and CUDA are available here")
def test_tensorrt_unavailable_names_what_is_missing_and_how_to_install(seg):
    with pytest.raises(BackendUnavailableError) as err:
        create_backend("tensorrt", seg)
    msg = str(err.value)
    assert msg.startswith("backend 'tensorrt' cannot run here: ")
    for problem in tensorrt_problems():
        assert problem in msg
    assert "use backend 'onnxruntime'" in msg
    assert available_backends()["tensorrt"] == "; ".join(tensorrt_problems())


def test_tensorrt_missing_module_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    problems = tensorrt_problems()
    assert any("'tensorrt' is not installed" in p and "requirements/gpu.txt" in p for p in problems)
    assert any("'.[tensorrt]'" in p for p in problems)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_tensorrt_without_cuda_names_the_missing_device():
    problems = tensorrt_problems()
    assert any("no CUDA device" in p or "CPU-only build" in p for p in problems)


def test_tensorrt_bad_settings_fail_before_anything_is_built(seg):
    with pytest.raises(ValueError, match="precision must be one of"):
        create_backend("tensorrt", seg, precision="int4")
    with pytest.raises(ValueError, match="int8 needs calibration images"):
        create_backend("tensorrt", seg, precision="int8")


def test_available_backends_reports_every_name():
    av = available_backends()
    assert set(av) == {"torch", "onnxruntime", "tensorrt"}
    assert av["torch"] is None and av["onnxruntime"] is None


def test_load_model_wraps_the_segmenter_on_the_requested_backend(image, tmp_path):
    from instaseg_ros.models.loading import load_model

    torch.manual_seed(0)
    params = InferenceParams(top_k=5)
    s = load_model(
        "yolact",
        config=YOLACT_CFG,
        backend="ORT",
        params=params,
        backend_options={"cache_dir": tmp_path, "threads": 1},
    )
    assert isinstance(s, BackendSegmenter) and s.backend.name == "onnxruntime"
    assert s.params.top_k == 5 and s.inner.params is s.params  # one params object for both
    assert s.backend.specs.keys() == {"main"} and not s.backend.has_mask_head
    assert len(s.segment([image])) == 1
