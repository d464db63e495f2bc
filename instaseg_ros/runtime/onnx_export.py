"""ONNX export of a segmenter's raw network(s), with metadata, caching and parity validation.

What is exported (see :mod:`instaseg_ros.runtime.networks`): the network only. YOLACT priors and
YOLO anchors/grids are constants (YOLACT's priors are a precomputed buffer re-attached after the
graph; the YOLO grid decoding is inside the graph). Softmax, box decoding, Fast NMS and mask
assembly stay in our post-processing: they run on a few hundred candidates after the score
threshold and cost far less than the network (the benchmark's ``post`` column measures them),
while keeping them out of the graph keeps the run-time ``InferenceParams`` (thresholds, top-k,
class filter) changeable without re-export and the graph TensorRT-friendly.

Files: ``out.onnx`` for ``main`` and, for families with a mask head (YOLO+FCN), a sibling
``out.mask_head.onnx``. Both carry ``metadata_props`` (``instaseg.*``: family, network, input
shape, outputs, class names, weights hash, opset, batch mode) that the backends check.

Default: opset 17 through the TorchScript-based exporter (fast, stable for these graphs, read by
TensorRT 8.6+ and ONNX Runtime 1.14+); ``exporter="dynamo"`` uses ``torch.export`` (opset >= 18).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from instaseg_ros.ops.deform import DEFORM_CONV_OPSET, register_onnx_symbolic, uses_deformable
from instaseg_ros.runtime.networks import MAIN, MASK_HEAD, NetworkSpec, cpu_fp32_copy, network_specs

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET = 17
EXPORT_FORMAT_VERSION = 1
META_PREFIX = "instaseg."


@dataclass
class OnnxExport:
    """Result of :func:`export_onnx`.

    Attributes:
        family: model family.
        files: network name ("main", "mask_head") -> ONNX file.
        opset: opset the files declare (default domain).
        dynamic_batch: whether ``main`` has a dynamic batch dimension.
        batch_size: the fixed batch of ``main`` when not dynamic.
        seconds: export wall time.
    """

    family: str
    files: dict[str, Path]
    opset: int
    dynamic_batch: bool
    batch_size: int
    seconds: float
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def main(self) -> Path:
        return self.files[MAIN]


def mask_head_path(main: str | Path) -> Path:
    """Sibling file of the mask-head network: ``x.onnx`` -> ``x.mask_head.onnx``."""
    p = Path(main)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    return p.with_name(f"{stem}.{MASK_HEAD}.onnx")


def default_cache_dir() -> Path:
    """``$INSTASEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/instaseg_ros``, else ``~/.cache/instaseg_ros``."""
    env = os.environ.get("INSTASEG_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "instaseg_ros"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _export_one(spec: NetworkSpec, path: Path, opset: int, dynamic: bool, batch: int, exporter: str) -> None:
    module = cpu_fp32_copy(spec.module).eval()
    x = spec.sample_input(batch)
    if uses_deformable(module):  # YOLACT++: DCNv2 -> ONNX DeformConv, opset 19
        register_onnx_symbolic()
        if opset < DEFORM_CONV_OPSET:
            log.info("DCNv2: opset %d raised to %d (ONNX DeformConv)", opset, DEFORM_CONV_OPSET)
            opset = DEFORM_CONV_OPSET
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {spec.input_name: {0: "batch"}, **{n: {0: "batch"} for n in spec.output_names}}
    kwargs: dict[str, Any] = dict(
        input_names=[spec.input_name],
        output_names=list(spec.output_names),
        opset_version=opset,
        dynamic_axes=dynamic_axes,
    )
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if exporter == "torchscript":
            torch.onnx.export(module, (x,), str(path), dynamo=False, do_constant_folding=True, **kwargs)
        elif exporter == "dynamo":
            torch.onnx.export(module, (x,), str(path), dynamo=True, external_data=False, **kwargs)
        else:
            raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")


def _declared_opset(model: Any) -> int:
    return max((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def export_onnx(
    segmenter: Any,
    out: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    batch_size: int = 1,
    exporter: str = "torchscript",
) -> OnnxExport:
    """Export the raw network(s) of ``segmenter`` to ``out`` (+ ``out.mask_head.onnx``).

    Args:
        segmenter: a YolactSegmenter / YoloFcnSegmenter (any device/precision: exported as fp32 CPU).
        out: main ONNX file (parent folders are created).
        opset: ONNX opset, >= 17 (the dynamo exporter needs >= 18 and is raised to 18).
        dynamic_batch: dynamic batch dimension for ``main`` (the mask head is always dynamic).
        batch_size: the fixed batch of ``main`` when not ``dynamic_batch``.
        exporter: "torchscript" (default) or "dynamo".
    Raises:
        ValueError: bad opset/batch; NotImplementedError: family without an export description.
    """
    import onnx

    if opset < MIN_OPSET:
        raise ValueError(
            f"opset must be >= {MIN_OPSET} (bilinear Resize, LayerNorm-free graphs), got {opset}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if exporter == "dynamo" and opset < 18:
        log.info("dynamo exporter: opset %d raised to 18 (its lowest implemented opset)", opset)
        opset = 18
    t0 = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    specs = network_specs(segmenter)
    files: dict[str, Path] = {}
    metas: dict[str, dict[str, str]] = {}
    for spec in specs:
        path = out if spec.name == MAIN else mask_head_path(out)
        dyn = dynamic_batch or spec.dynamic_batch
        _export_one(spec, path, opset, dyn, 2 if spec.dynamic_batch else batch_size, exporter)
        model = onnx.load(str(path))
        meta = {
            "format_version": str(EXPORT_FORMAT_VERSION),
            "family": str(getattr(segmenter, "family", "")),
            "network": spec.name,
            "input_name": spec.input_name,
            "input_shape": json.dumps(list(spec.input_shape)),
            "output_names": json.dumps(list(spec.output_names)),
            "class_names": json.dumps(list(getattr(segmenter, "class_names", []))),
            "weights_sha256": spec.weights_hash(),
            "dynamic_batch": "1" if dyn else "0",
            "batch_size": "0" if dyn else str(batch_size),
            "opset": str(_declared_opset(model)),
            "exporter": exporter,
            "torch_version": torch.__version__,
        }
        if spec.name == MAIN and any(s.name == MASK_HEAD for s in specs):
            meta["mask_head_file"] = mask_head_path(out).name
        del model.metadata_props[:]
        for k, v in meta.items():
            p = model.metadata_props.add()
            p.key, p.value = META_PREFIX + k, v
        model.producer_name = "instaseg_ros"
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        files[spec.name] = path
        metas[spec.name] = meta
    return OnnxExport(
        family=str(getattr(segmenter, "family", "")),
        files=files,
        opset=int(metas[MAIN]["opset"]),
        dynamic_batch=dynamic_batch,
        batch_size=batch_size,
        seconds=time.perf_counter() - t0,
        metadata=metas,
    )


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``instaseg.*`` metadata of an ONNX file (prefix removed); {} for foreign files."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from e
    return {p.key[len(META_PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def check_onnx_matches(path: str | Path, spec: NetworkSpec, segmenter: Any) -> dict[str, str]:
    """Check that ONNX ``path`` is ``spec``'s network for ``segmenter``; returns its metadata.

    Raises ``ValueError`` naming the file and the mismatch (family, network, input shape, classes).
    A different weights hash is only logged: the file may come from the same weights re-saved.
    """
    meta = read_metadata(path)
    if not meta:
        log.warning("%s has no instaseg metadata; assuming it is the %s network", path, spec.name)
        return meta
    family = str(getattr(segmenter, "family", ""))
    if meta.get("family") != family:
        raise ValueError(f"{path}: exported for family {meta.get('family')!r}, the segmenter is {family!r}")
    if meta.get("network") != spec.name:
        raise ValueError(f"{path}: holds network {meta.get('network')!r}, expected {spec.name!r}")
    shape = json.loads(meta.get("input_shape", "[]"))
    if shape and tuple(shape) != tuple(spec.input_shape):
        raise ValueError(
            f"{path}: exported for input {shape} but the segmenter expects {list(spec.input_shape)} "
            "(different input_size/crop_size); re-export with `instaseg export`"
        )
    names = json.loads(meta.get("class_names", "[]"))
    seg_names = list(getattr(segmenter, "class_names", []))
    if spec.name == MAIN and names and names != seg_names:
        raise ValueError(f"{path}: exported for classes {names}, the segmenter has {seg_names}")
    if meta.get("weights_sha256") and meta["weights_sha256"] != spec.weights_hash():
        log.warning("%s was exported from different weights than the segmenter's (hash mismatch)", path)
    return meta


def export_cache_key(segmenter: Any, opset: int, dynamic_batch: bool, exporter: str) -> str:
    """Identity of an export: family, networks (weights hash, input shape), opset, batch mode, torch."""
    specs = network_specs(segmenter)
    ident = {
        "format_version": EXPORT_FORMAT_VERSION,
        "family": str(getattr(segmenter, "family", "")),
        "class_names": list(getattr(segmenter, "class_names", [])),
        "networks": {s.name: [s.weights_hash(), list(s.input_shape)] for s in specs},
        "opset": opset,
        "dynamic_batch": bool(dynamic_batch),
        "exporter": exporter,
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def cached_export(
    segmenter: Any,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    exporter: str = "torchscript",
) -> Path:
    """Main ONNX file of ``segmenter`` in ``cache_dir/onnx`` (exported once per weights/settings)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = export_cache_key(segmenter, opset, dynamic_batch, exporter)
    family = str(getattr(segmenter, "family", "model"))
    folder = cache / "onnx"
    main = folder / f"{family}-{key[:16]}.onnx"
    needed = [main] + ([mask_head_path(main)] if len(network_specs(segmenter)) > 1 else [])
    if all(p.is_file() for p in needed):
        log.info("using cached ONNX export %s", main)
        return main
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        log.info("exporting %s to ONNX (opset %d) into the cache %s", family, opset, folder)
        res = export_onnx(segmenter, Path(tmp) / main.name, opset, dynamic_batch, 1, exporter)
        for name, f in sorted(res.files.items(), key=lambda kv: kv[0] == MAIN):  # main last
            target = main if name == MAIN else mask_head_path(main)
            shutil.move(str(f), str(target))  # same filesystem: atomic rename
    return main


@dataclass
class ExportedNetworks:
    """The ONNX file of each network of a segmenter, checked against it.

    Attributes:
        files: network name (``main``, ``mask_head``) -> ONNX file.
        specs: network name -> its :class:`NetworkSpec`.
        metadata: the ``instaseg.*`` metadata of the main file.
    """

    files: dict[str, Path]
    specs: dict[str, NetworkSpec]
    metadata: dict[str, str]


def exported_networks(
    segmenter: Any,
    onnx: str | Path | None = None,
    cache_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> ExportedNetworks:
    """ONNX files of ``segmenter``'s networks: ``onnx`` and its mask-head sibling, or an export
    into ``cache_dir``/onnx when ``onnx`` is None (see :func:`cached_export`).

    Raises:
        FileNotFoundError: the main file, or the mask-head file a family needs, is missing.
        ValueError: a file does not hold the segmenter's network (see :func:`check_onnx_matches`).
    """
    specs = {s.name: s for s in network_specs(segmenter)}
    if onnx is None:
        onnx = cached_export(segmenter, cache_dir, opset, dynamic_batch)
    onnx = Path(onnx)
    meta = read_metadata(onnx)
    files: dict[str, Path] = {MAIN: onnx}
    if MASK_HEAD in specs:
        mh = onnx.with_name(meta["mask_head_file"]) if meta.get("mask_head_file") else mask_head_path(onnx)
        if not mh.is_file():
            raise FileNotFoundError(
                f"{onnx}: the {getattr(segmenter, 'family', '')} mask-head network {mh} is missing "
                "(`instaseg export` writes it next to the main file)"
            )
        files[MASK_HEAD] = mh
    for name, path in files.items():
        check_onnx_matches(path, specs[name], segmenter)
    return ExportedNetworks(files, specs, meta)
