"""Building a serialized TensorRT engine from an ONNX file for one :class:`EngineKey`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instaseg_ros.runtime.tensorrt.cache import EngineKey

log = logging.getLogger(__name__)


def build_engine(
    trt: Any,
    onnx_path: Path,
    key: EngineKey,
    calibrator: Any = None,
    int8_modules: Sequence[str] = (),
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine for ``key`` (profile, precision)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(key.workspace_mib) << 20)
    inp = network.get_input(0)
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, key.min_shape, key.opt_shape, key.max_shape)
    config.add_optimization_profile(profile)
    if key.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if key.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if calibrator is None:
            raise ValueError(
                "INT8 engine requested without a calibrator (give calib=<image folder or COCO JSON>)"
            )
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
        if int8_modules:
            kept = 0
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if any(m in layer.name for m in int8_modules):
                    kept += 1
                    continue
                outs = [layer.get_output(j) for j in range(layer.num_outputs)]
                if not outs or any(o.dtype not in (trt.float32, trt.float16) for o in outs):
                    continue  # shape/index computations keep their types
                layer.precision = trt.float16
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            log.info(
                "INT8 allowed in %d of %d layers (%s), FP16 elsewhere", kept, network.num_layers, int8_modules
            )
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {onnx_path} ({key.precision}); see the log above"
        )
    log.info(
        "built TensorRT %s engine from %s in %.1f s", key.precision, onnx_path.name, time.perf_counter() - t0
    )
    return bytes(serialized)
