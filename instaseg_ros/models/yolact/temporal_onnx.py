"""Temporal reuse on ONNX Runtime: :class:`OnnxTemporalYolact` runs the exported key and non-key
sub-graphs (:func:`~instaseg_ros.models.yolact.temporal.export_temporal_onnx`) with the same key-frame
policy, statistics and pre/post-processing as the PyTorch :class:`TemporalYolact`.

Per frame: a key frame runs ``key.onnx`` (the plain model's outputs and the key state: P4', P5', the C3
lateral and its flow-net reduction, kept as NumPy arrays); a non-key frame runs ``nonkey.onnx`` on the
image and that state. The non-key graph computes the whole non-key frame at once, so with the adaptive
policy a rejected candidate (scene change or large flow) costs one non-key pass before its key pass;
the interval policy never wastes one.

Outputs agree with the PyTorch runner within the export tolerance (max relative error < 1e-4), not
bit for bit; prototype reuse (``reuse_prototypes``) is not part of the graphs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instaseg_ros.models.yolact.temporal import (
    RAW_NAMES,
    FeatFlowNet,
    KeyframePolicyConfig,
    KeyGraph,
    NonKeyGraph,
    TemporalSettings,
    TemporalYolact,
    export_temporal_onnx,
    flow_magnitude,
    load_flow_net,
    relative_change,
)


class OnnxTemporalYolact(TemporalYolact):
    """:class:`TemporalYolact` whose network passes are the two ONNX graphs on ONNX Runtime's CPU provider.

    Args:
        segmenter: the torch YOLACT segmenter (pre/post-processing, priors; exported when no graphs given).
        flow_net: its flow net (exported with it).
        policy: key-frame policy settings.
        onnx_dir: folder for ``key.onnx`` / ``nonkey.onnx``: used when both exist, else written there;
            None: exported into a temporary folder, removed once the sessions hold the graphs.
        threads: intra-op threads (default: torch's thread count).
    Raises:
        BackendUnavailableError: onnxruntime is not installed.
    """

    def __init__(self, segmenter: Any, flow_net: FeatFlowNet, onnx_dir: str | Path | None = None,
                 policy: KeyframePolicyConfig | None = None, threads: int | None = None) -> None:  # fmt: skip
        from instaseg_ros.runtime.onnxruntime_backend import import_onnxruntime

        super().__init__(segmenter, flow_net, policy, reuse_prototypes=False)
        ort = import_onnxruntime()
        if onnx_dir is None:
            with tempfile.TemporaryDirectory(prefix="instaseg_temporal_") as tmp:
                self._open(ort, export_temporal_onnx(segmenter, flow_net, tmp), threads)
            self.paths: tuple[Path, Path] | None = None
            return
        d = Path(onnx_dir)
        paths = (d / "key.onnx", d / "nonkey.onnx")
        if not all(p.is_file() for p in paths):
            paths = export_temporal_onnx(segmenter, flow_net, d)
        self._open(ort, paths, threads)
        self.paths = paths

    def _open(self, ort: Any, paths: tuple[Path, Path], threads: int | None) -> None:
        from instaseg_ros.runtime.onnxruntime_backend import default_threads

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or default_threads())
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        cpu = ["CPUExecutionProvider"]
        self.key_session = ort.InferenceSession(str(paths[0]), so, providers=cpu)
        self.nonkey_session = ort.InferenceSession(str(paths[1]), so, providers=cpu)
        for sess, names in ((self.key_session, KeyGraph.output_names),
                            (self.nonkey_session, NonKeyGraph.output_names)):  # fmt: skip
            got = [o.name for o in sess.get_outputs()]
            if got != list(names):
                raise ValueError(f"ONNX graph outputs {got}, expected {list(names)} (re-export)")

    def configure(self, policy: KeyframePolicyConfig, reuse_prototypes: bool | None = None) -> None:
        if reuse_prototypes:
            raise ValueError("reuse_prototypes is not available with the ONNX Runtime graphs")
        super().configure(policy, None)

    def _raw(self, outs: dict[str, np.ndarray]) -> dict[str, Any]:
        seg = self.seg
        raw: dict[str, Any] = {k: torch.from_numpy(outs[k]).to(seg.device) for k in RAW_NAMES}
        raw["priors"] = seg.model.priors
        return raw

    def _infer(self, x: torch.Tensor, reason: str | None) -> tuple[dict[str, Any], str | None, float, float]:
        xn = np.ascontiguousarray(x.float().cpu().numpy())
        change = flow = float("nan")
        if reason is None:
            key = self._key
            assert key is not None
            feeds = {"input": xn, "key_p4": key["key_p4"], "key_p5": key["key_p5"],
                     "key_reduced": key["key_reduced"]}  # fmt: skip
            outs = dict(zip(NonKeyGraph.output_names, self.nonkey_session.run(None, feeds)))
            change = relative_change(torch.from_numpy(outs["lateral"]), torch.from_numpy(key["key_lateral"]))
            reason = self.policy.check_change(change)
            if reason is None:
                flow = flow_magnitude(torch.from_numpy(outs["flow4"]), 16)
                reason = self.policy.check_flow(flow)
            if reason is None:
                return self._raw(outs), None, change, flow
        outs = dict(zip(KeyGraph.output_names, self.key_session.run(None, {"input": xn})))
        self._key = {k: outs[k] for k in ("key_p4", "key_p5", "key_lateral", "key_reduced")}
        return self._raw(outs), reason, change, flow


def build_runner(settings: TemporalSettings, segmenter: Any) -> TemporalYolact:
    """The stream runner of ``settings`` for ``segmenter``: a YOLACT on the torch backend
    (:meth:`TemporalSettings.build`) or on the onnxruntime backend (fp32, CPU: :class:`OnnxTemporalYolact`
    on the inner torch segmenter, with the backend's thread count).

    Raises:
        ValueError: another family or backend, onnxruntime with fp16/int8, a GPU or ``reuse_prototypes``,
            or a flow net that does not fit the detector.
        FileNotFoundError: no flow-net file.
    """
    from instaseg_ros.core.resources import resolve_path

    backend = getattr(getattr(segmenter, "backend", None), "name", "torch")
    if backend != "onnxruntime":
        return settings.build(segmenter)
    if settings.reuse_prototypes or segmenter.precision != "fp32" or str(segmenter.device) != "cpu":
        raise ValueError(
            "temporal reuse on onnxruntime runs fp32 on the CPU without reuse_prototypes, got "
            f"{segmenter.precision} on {segmenter.device}, reuse_prototypes={settings.reuse_prototypes}"
        )
    fn, _ = load_flow_net(resolve_path(settings.flow_weights))
    threads = getattr(segmenter.backend, "threads", None)
    return OnnxTemporalYolact(segmenter.inner, fn, None, settings.policy_config(), threads=threads)
