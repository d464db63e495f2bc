"""FeatFlowNet training for YOLACT temporal reuse (:mod:`instaseg_ros.models.yolact.temporal`).

Self-supervised on synthetic camera-motion sequences (:func:`~instaseg_ros.data.synthetic.generate_sequence`):
each sample is a (key, current) frame pair ``gap`` frames apart (1..``max_gap``, either order). The
detector is frozen (BatchNorm folded, eval mode, no gradients); the target is the full network's
features of the current frame. The flow net warps the key frame's phase-1 P4/P5 features with its
flow, scale and bias, P3 is rebuilt from the current frame's C3 lateral, and the loss compares

* the transformed phase-1 P4', P5' with the current frame's (YolactEdge's "L" location) and
* the FPN outputs P3..P7 after the frozen 3x3 convs (their "P" location; gradients pass through
  the frozen convs),

each as a relative L1 error ``mean |pred - target| / mean |target|``. ``copy`` (logged, not trained)
is the same error of copying the key frame's P4'/P5' unchanged, the baseline the flow net has to beat.

Validation: COCO box/mask AP of :class:`~instaseg_ros.models.yolact.temporal.TemporalYolact` with a
key frame every ``val_keyframe_interval`` frames over whole validation sequences (the metric the
flow net exists for); the every-frame AP of the same frames is reported next to it.

``model:`` of a ``task: flownet`` config (:class:`FlowTaskConfig`): the detector checkpoint, the flow
net widths and the pair sampling. ``data.train`` / ``data.val`` must be ``kind: synthetic``
(``num_images`` = pairs for training, sequences for validation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from instaseg_ros.training.config import ConfigError, ExperimentConfig, check_fields
from instaseg_ros.training.tasks.base import BaseTask, write_atomic

log = logging.getLogger(__name__)


@dataclass
class FlowTaskConfig:
    """``model:`` of a flow-net run.

    Attributes:
        detector: the YOLACT checkpoint whose features the flow net transforms (frozen).
        reduce_channels, encode_channels: FeatFlowNet widths (:class:`FlowNetConfig`).
        sequence_length: [min, max] frames of a training sequence (shorter = faster camera motion).
        max_gap: key and current frame are 1..max_gap frames apart.
        val_sequence_length: frames of a validation sequence.
        val_keyframe_interval: key-frame interval of validation.
    """

    detector: str = "models/yolact_se_r18_indoor.pth"
    reduce_channels: int = 16
    encode_channels: int = 16
    sequence_length: list[int] = field(default_factory=lambda: [20, 60])
    max_gap: int = 6
    val_sequence_length: int = 30
    val_keyframe_interval: int = 5


@dataclass
class FlowLossConfig:
    """``loss:`` of a flow-net run: weights of the phase-1 (P4', P5') and output (P3..P7) terms."""

    phase1_weight: float = 1.0
    output_weight: float = 1.0


def _relative_l1(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).abs().mean() / target.abs().mean().clamp(min=1e-6)


class PairDataset:
    """``dataset[i]`` -> ((key BGR, current BGR), {"gap": signed gap}): frames of the synthetic
    sequence ``(seed, i)``, deterministic from ``(seed, i)``."""

    def __init__(self, num: int, seed: int, synth: Any, lengths: list[int], max_gap: int) -> None:
        self.num, self.seed, self.synth = int(num), int(seed), synth
        self.lengths, self.max_gap = lengths, int(max_gap)

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, int]]:
        from instaseg_ros.data.synthetic import generate_sequence

        rng = np.random.default_rng((self.seed, i, 7))
        length = int(rng.integers(self.lengths[0], self.lengths[1] + 1))
        gap = int(rng.integers(1, min(self.max_gap, length - 1) + 1))
        t0 = int(rng.integers(0, length - gap))
        frames = generate_sequence((self.seed, i), length, self.synth)
        a, b = frames[t0].image, frames[t0 + gap].image
        if rng.random() < 0.5:
            return (b, a), {"gap": -gap}
        return (a, b), {"gap": gap}


class SequenceSet:
    """Validation: ``num`` synthetic sequences of ``length`` frames (rendered once)."""

    def __init__(self, num: int, seed: int, synth: Any, length: int) -> None:
        from instaseg_ros.data.synthetic import generate_sequence

        self.sequences = [generate_sequence((seed, k), length, synth) for k in range(num)]

    def __len__(self) -> int:
        return sum(len(s) for s in self.sequences)


class FlowTrainModule(nn.Module):
    """The frozen detector (BatchNorm folded, always in eval mode) and the trainable flow net."""

    def __init__(self, detector: nn.Module, flow_net: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.flow_net = flow_net
        for p in self.detector.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FlowTrainModule:
        super().train(mode)
        self.detector.eval()
        return self


class FlowNetTask(BaseTask):
    """FeatFlowNet on a frozen YOLACT detector."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        from instaseg_ros.models.fuse import inference_copy
        from instaseg_ros.models.yolact.segmenter import YolactSegmenter
        from instaseg_ros.models.yolact.segmenter import load_model as load_yolact
        from instaseg_ros.models.yolact.temporal import FeatFlowNet, FlowNetConfig

        super().__init__(cfg)
        self.task_cfg = _build(FlowTaskConfig, cfg.model, "model")
        self.loss_cfg = _build(FlowLossConfig, cfg.loss, "loss")
        tc = self.task_cfg
        if len(tc.sequence_length) != 2 or not 2 <= tc.sequence_length[0] <= tc.sequence_length[1]:
            raise ConfigError(f"model.sequence_length: expected [min, max] with 2 <= min <= max, "
                              f"got {tc.sequence_length}")  # fmt: skip
        if tc.max_gap < 1 or tc.val_keyframe_interval < 1 or tc.val_sequence_length < 2:
            raise ConfigError("model.max_gap, model.val_keyframe_interval must be >= 1, "
                              "model.val_sequence_length >= 2")  # fmt: skip
        for split in ("train", "val"):
            spec = getattr(cfg.data, split)
            if spec is not None and spec.kind != "synthetic":
                raise ConfigError(f"data.{split}.kind: a flownet run trains on synthetic camera-motion "
                                  f"sequences; got {spec.kind!r}")  # fmt: skip
        det_path = Path(tc.detector)
        try:
            model, ycfg = load_yolact(str(det_path))
        except (OSError, ValueError) as e:
            raise ConfigError(f"model.detector: {e}") from None
        self.detector_file = det_path
        self.segmenter = YolactSegmenter(model, ycfg, optimize=True)
        fcfg = FlowNetConfig(ycfg.fpn_channels, tc.reduce_channels, tc.encode_channels)
        self.module = FlowTrainModule(inference_copy(model, channels_last=False), FeatFlowNet(fcfg))
        self._every_frame: dict[str, Any] | None = None

    # ------------------------------------------------------------------ data
    def _synth(self, spec: Any) -> Any:
        from instaseg_ros.data.synthetic import SynthConfig

        try:
            return SynthConfig(**{**spec.synth, "width": spec.width, "height": spec.height})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data.synth: {e}") from None

    def train_dataset(self) -> PairDataset:
        if self._train_ds is None:
            spec, tc = self.cfg.data.train, self.task_cfg
            self._train_ds = PairDataset(spec.num_images, spec.seed, self._synth(spec), tc.sequence_length,
                                         tc.max_gap)  # fmt: skip
        return self._train_ds

    def val_dataset(self) -> SequenceSet | None:
        spec = self.cfg.data.val
        if self._val_ds is None and spec is not None:
            self._val_ds = SequenceSet(spec.num_images, spec.seed, self._synth(spec),
                                       self.task_cfg.val_sequence_length)  # fmt: skip
        return self._val_ds

    def data_reports(self) -> dict[str, Any]:
        return {}

    def collate(self, samples: list) -> dict[str, Tensor]:
        keys = [s[0][0] for s in samples]
        curs = [s[0][1] for s in samples]
        pre = self.segmenter.preprocess
        return {"key": pre(keys)[0].cpu(), "cur": pre(curs)[0].cpu()}

    # ------------------------------------------------------------------ objective
    def loss(self, module: nn.Module, batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
        from instaseg_ros.models.yolact.temporal import KeyState, transformed_levels

        m = getattr(module, "module", module)  # DDP-wrapped or not
        det = m.detector
        with torch.no_grad():
            phase1, lateral = [], []
            for x in (batch["key"].to(device), batch["cur"].to(device)):
                feats = det.backbone_features(x)
                merged, lats = det.fpn.lateral_phase([feats[i] for i in det.selected_layers])
                phase1.append(merged)
                lateral.append(lats[0])
            target_out = det.fpn.output_phase(phase1[1])
        key = KeyState(merged=phase1[0][1:], lateral=lateral[0])
        flows = m.flow_net(lateral[1], lateral[0])
        pred = transformed_levels(lateral[1], key, flows)
        out = det.fpn.output_phase(pred)
        l1 = sum(_relative_l1(pred[i], phase1[1][i]) for i in (1, 2)) / 2
        lo = sum(_relative_l1(a, b) for a, b in zip(out, target_out)) / len(out)
        with torch.no_grad():
            copy = sum(_relative_l1(phase1[0][i], phase1[1][i]) for i in (1, 2)) / 2
        total = self.loss_cfg.phase1_weight * l1 + self.loss_cfg.output_weight * lo
        return {"total": total, "phase1": l1.detach(), "output": lo.detach(), "copy": copy}

    # ------------------------------------------------------------------ validation
    def evaluate(self, dataset: Any, device: torch.device, max_images: int = 0) -> dict[str, Any]:
        """Mask/box AP of interval-``val_keyframe_interval`` temporal inference (and, once, every frame)."""
        from instaseg_ros.models.yolact.temporal import KeyframePolicyConfig, TemporalYolact

        interval = self.task_cfg.val_keyframe_interval
        metrics = sequence_metrics(
            lambda: TemporalYolact(self.segmenter, self.module.flow_net,
                                   KeyframePolicyConfig(keyframe_interval=interval)),
            dataset.sequences, self.eval_params(),
        )  # fmt: skip
        if self._every_frame is None:
            self._every_frame = sequence_metrics(
                lambda: TemporalYolact(self.segmenter, self.module.flow_net,
                                       KeyframePolicyConfig(keyframe_interval=1)),
                dataset.sequences, self.eval_params(),
            )  # fmt: skip
            log.info("every-frame reference: box AP %.4f mask AP %.4f", self._every_frame["bbox"]["AP"],
                     self._every_frame["segm"]["AP"])  # fmt: skip
        metrics["every_frame"] = {k: {"AP": self._every_frame[k]["AP"]} for k in ("bbox", "segm")}
        self.module.train()
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def save_inference(self, path: Path, fp16: bool = False, **extra: Any) -> None:
        """The flow net with its detector's name and SHA-256 and the training facts."""
        from instaseg_ros.hub.download import file_sha256
        from instaseg_ros.models.yolact.temporal import save_flow_net

        det = {"file": self.detector_file.name, "sha256": file_sha256(self.detector_file)}
        write_atomic(path, lambda tmp: save_flow_net(tmp, self.module.flow_net, fp16, detector=det,
                                                     training=extra))  # fmt: skip

    def load_inference(self, path: Path) -> None:
        from instaseg_ros.models.yolact.temporal import load_flow_net

        net, _ = load_flow_net(path)
        self.module.flow_net.load_state_dict(net.state_dict())


def sequence_metrics(make_runner: Any, sequences: list[list[Any]], params: Any) -> dict[str, Any]:
    """COCO AP over every frame of ``sequences`` (a fresh ``make_runner()`` per sequence, stamps at
    30 fps); also the key-frame ratio."""
    from instaseg_ros.data.synthetic import scenes_to_coco
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco

    results: list[dict[str, Any]] = []
    scenes = []
    keys = 0
    with torch.inference_mode():
        for seq in sequences:
            runner = make_runner()
            for t, sc in enumerate(seq):
                image_id = len(scenes) + 1
                r = runner.segment_frame(sc.image, stamp=t / 30.0, params=params)
                keys += int(r.key)
                results += instances_to_coco(r.instances, image_id)
                scenes.append(sc)
    metrics = evaluate_coco(scenes_to_coco(scenes, start_id=1), results)
    metrics["key_ratio"] = keys / max(1, len(scenes))
    return metrics


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    d = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    check_fields(d, cls, where)
    return cls(**d)
