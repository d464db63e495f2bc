"""Whether native TensorRT can run here, and importing it with a message that says what is missing."""

from __future__ import annotations

from typing import Any

import torch

from instaseg_ros.runtime.base import BackendUnavailableError, module_available

INSTALL_TENSORRT = (
    "install TensorRT 10 with `pip install -r requirements/gpu.txt` (tensorrt-cu13 < 11; or "
    "`pip install '.[tensorrt]'` from the instaseg_ros source tree); on a Jetson it ships with JetPack "
    "(`apt install python3-libnvinfer`)"
)


def tensorrt_problems(device: str | None = None) -> list[str]:
    """What prevents native TensorRT from running here ([] = nothing). Imports nothing heavy."""
    problems = []
    if not module_available("tensorrt"):
        problems.append(f"the Python module 'tensorrt' is not installed ({INSTALL_TENSORRT})")
    if torch.version.cuda is None:
        problems.append(
            f"torch {torch.__version__} is a CPU-only build; TensorRT needs a CUDA build of torch "
            "(https://pytorch.org/get-started/locally/) for its GPU buffers"
        )
    elif not torch.cuda.is_available():
        problems.append(
            "no CUDA device: torch.cuda.is_available() is False (no NVIDIA GPU or driver visible to this "
            "process; check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
        )
    elif device is not None and str(device).startswith("cuda"):
        idx = torch.device(device).index or 0
        if idx >= torch.cuda.device_count():
            problems.append(f"CUDA device {device!r} does not exist ({torch.cuda.device_count()} visible)")
    return problems


def require_tensorrt(device: str | None = None) -> Any:
    """``import tensorrt`` after checking CUDA; :class:`BackendUnavailableError` naming what is missing."""
    problems = tensorrt_problems(device)
    if problems:
        raise BackendUnavailableError(
            "backend 'tensorrt' cannot run here: "
            + "; ".join(problems)
            + ". On a machine without an NVIDIA GPU use backend 'onnxruntime' (CPU) or 'torch'."
        )
    import tensorrt as trt

    major = int(str(trt.__version__).split(".")[0])
    minor = int(str(trt.__version__).split(".")[1])
    if major >= 11:
        raise BackendUnavailableError(
            f"backend 'tensorrt': TensorRT {trt.__version__} removed the FP16/INT8 builder flags and the "
            f"INT8 calibrator API this backend uses; {INSTALL_TENSORRT}"
        )
    if (major, minor) < (8, 6):
        raise BackendUnavailableError(
            f"backend 'tensorrt': TensorRT {trt.__version__} is too old (need >= 8.6 for the tensor-name "
            f"API); {INSTALL_TENSORRT}"
        )
    return trt


DEFORM_CONV_TENSORRT = (10, 1)  # the TensorRT ONNX parser implements DeformConv from 10.1 on


def check_deformable_support(trt_version: str, model: Any) -> None:
    """A model with DCNv2 (YOLACT++) needs TensorRT >= 10.1: refuse older versions at configure time."""
    from instaseg_ros.ops.deform import uses_deformable

    version = tuple(int(v) for v in str(trt_version).split(".")[:2])
    if uses_deformable(model) and version < DEFORM_CONV_TENSORRT:
        need = ".".join(str(v) for v in DEFORM_CONV_TENSORRT)
        raise BackendUnavailableError(
            f"backend 'tensorrt': the model has deformable convolutions (YOLACT++ DCNv2, ONNX operator "
            f"DeformConv), which TensorRT {trt_version} cannot parse (needs TensorRT >= {need}); upgrade "
            f"TensorRT or use backend 'onnxruntime' or 'torch'"
        )
