"""Temporal reuse on video for YOLACT / YOLACT-SE (YolactEdge's partial feature transform).

YolactEdge (Liu et al., "YolactEdge: Real-time Instance Segmentation on the Edge", ICRA 2021)
runs the whole network only on key frames. On the other frames it runs the backbone up to C3
(stride 8; the authors' ``partial_backbone`` = ResNet ``layers[:2]``), computes C3's FPN lateral,
predicts flow from the two frames' laterals with a small network (FeatFlowNet) and warps the key
frame's *phase-1* FPN features of P4 and P5 (the lateral + top-down sums before the 3x3 convs,
the authors' ``warp_layers: P4P5``) into the current frame, with a per-pixel, per-channel scale and
bias the flow network also predicts. P3 is rebuilt as ``lateral(C3) + upsample(warped P4)``, and the
3x3 FPN convs, P6/P7, prototypes and prediction head run as usual.

Why P4/P5 (the authors' reasoning, which holds here): C4/C5 are where most of the backbone's
multiply-adds are and high-level features move little between nearby frames, so warping them is
both the largest saving and the smallest error; P3 feeds the prototypes (the masks' detail) and its
C3 input is computed anyway for the flow, so it stays exact.

Pieces:

* :class:`FeatFlowNet` (the authors' ``FlowNetMini`` shape: shared 3x3 reduction of each lateral,
  a stride-1/2/2 encoder on their concatenation, prediction at P5 and, refined, at P4), initialised
  to the identity transform (zero flow, scale 1, bias 0) so an untrained net copies the key features;
* :func:`warp_features`: bilinear backward warping by a flow in pixels of the map, border clamped;
  zero flow returns the input exactly;
* :class:`KeyframePolicy`: a fixed interval (YolactEdge) or an adaptive policy that forces a key
  frame when the lateral features change or the flow grows beyond a threshold; both reset on a
  backwards time jump, a forward gap, a frame-size change and :meth:`TemporalYolact.reset`;
* :class:`TemporalYolact`: the stream runner around a :class:`YolactSegmenter` (torch backend),
  with per-kind latency statistics. A key frame runs exactly the plain model's operations (outputs
  bit-identical to ``YolactSegmenter.segment``).

Flow-net checkpoints: ``{format: "instaseg_ros.featflownet", format_version, config, state_dict,
detector}`` (:func:`save_flow_net` / :func:`load_flow_net`, read with ``weights_only=True``).

The module is over 500 lines because these pieces form one mechanism that is only tested and
exported together (network, warp, policy, runner, checkpoint); splitting it is a candidate for later.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from instaseg_ros.core.instances import Instances
from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.models.config import ConfigMixin

FLOWNET_FORMAT = "instaseg_ros.featflownet"


# ------------------------------------------------------------------------------------ flow network
@dataclass
class FlowNetConfig(ConfigMixin):
    """FeatFlowNet shape (YolactEdge's R50 video config: reduce 64, encode 64, FPN 256).

    Attributes:
        in_channels: FPN width of the detector (its lateral features' channels).
        reduce_channels: width of the shared 3x3 reduction applied to each frame's lateral.
        encode_channels: base width of the encoder (x1 at P3, x2 at P4, x4 at P5 resolution).
    """

    in_channels: int = 256
    reduce_channels: int = 64
    encode_channels: int = 64

    def __post_init__(self) -> None:
        for k in ("in_channels", "reduce_channels", "encode_channels"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"FlowNetConfig.{k} must be >= 1, got {getattr(self, k)}")


def _conv_lrelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1, inplace=True))


class FlowPred(nn.Module):
    """x [B, Cin, h, w] -> (flow [B, 2, h, w] (dx, dy) in pixels of this level, scale [B, C, h, w],
    bias [B, C, h, w]). Zero-initialised: flow 0, scale 1, bias 0 (the identity transform)."""

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.flow = nn.Conv2d(cin, 2, 3, padding=1, bias=False)
        self.scale = nn.Conv2d(cin, channels, 1)
        self.bias = nn.Conv2d(cin, channels, 1)
        for conv in (self.flow, self.scale, self.bias):
            nn.init.zeros_(conv.weight)
        nn.init.ones_(self.scale.bias)
        nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.flow(x), self.scale(x), self.bias(x)


class FeatFlowNet(nn.Module):
    """Flow between two frames' C3 laterals, predicted at P4 and P5 resolution.

    ``forward(cur [B, Cin, h3, w3], key [B, Cin, h3, w3])`` -> ``[(flow, scale, bias) at P4,
    (flow, scale, bias) at P5]``; ``key`` may be given already reduced (``key_reduced=True``, from
    :meth:`reduce`) so the key frame's half is computed once per key frame.
    """

    def __init__(self, cfg: FlowNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, r, e = cfg.in_channels, cfg.reduce_channels, cfg.encode_channels
        self.pre = _conv_lrelu(c, r)
        self.conv1 = nn.Sequential(_conv_lrelu(2 * r, e), _conv_lrelu(e, e))
        self.conv2 = nn.Sequential(_conv_lrelu(e, 2 * e, stride=2), _conv_lrelu(2 * e, 2 * e))
        self.conv3 = nn.Sequential(_conv_lrelu(2 * e, 4 * e, stride=2), _conv_lrelu(4 * e, 4 * e))
        self.pred5 = FlowPred(4 * e, c)
        self.upfeat5 = nn.Conv2d(4 * e, 2 * e, 3, padding=1, bias=False)
        self.upflow5 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.pred4 = FlowPred(4 * e + 2, c)
        for m in (self.pre, self.conv1, self.conv2, self.conv3):
            for conv in m.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.kaiming_normal_(conv.weight, 0.1, mode="fan_in")
                    nn.init.zeros_(conv.bias)
        nn.init.kaiming_normal_(self.upfeat5.weight, 0.1, mode="fan_in")
        with torch.no_grad():  # upsampled flow passes through unchanged at the start
            self.upflow5.weight.zero_()
            self.upflow5.weight[0, 0, 1, 1] = 1.0
            self.upflow5.weight[1, 1, 1, 1] = 1.0

    def reduce(self, lateral: torch.Tensor) -> torch.Tensor:
        """[B, Cin, h3, w3] -> [B, reduce_channels, h3, w3]."""
        return self.pre(lateral)

    def forward(
        self, cur: torch.Tensor, key: torch.Tensor, key_reduced: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        a = self.pre(cur)
        b = key if key_reduced else self.pre(key)
        x1 = self.conv1(torch.cat((a, b), 1))
        x2 = self.conv2(x1)
        x3 = self.conv3(x2)
        flow5, scale5, bias5 = self.pred5(x3)
        size4 = x2.shape[-2:]
        up_feat = self.upfeat5(F.interpolate(x3, size=size4, mode="bilinear", align_corners=False))
        up_flow = self.upflow5(F.interpolate(flow5, size=size4, mode="bilinear", align_corners=False))
        flow4, scale4, bias4 = self.pred4(torch.cat((x2, up_feat, up_flow), 1))
        return [(flow4, scale4, bias4), (flow5, scale5, bias5)]


def warp_features(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[b, :, y, x] = feat[b, :, y + flow_y, x + flow_x]`` (bilinear).

    Args:
        feat: [B, C, H, W] features of the key frame.
        flow: [B, 2, H, W] (dx, dy) in pixels of this map; sampling positions are clamped to the map
            (border replication: at the image edge the nearest key feature is the best guess).
    Returns:
        [B, C, H, W] (channels-last memory). With zero flow the bilinear weights are exactly 0 and 1, so
        the output equals ``feat`` exactly.

    The four taps are whole-pixel row copies out of a channels-last [B*H*W, C] view (``index_select``;
    the network runs channels-last, where a per-channel ``gather`` first copies the map) blended with
    ``torch.lerp``. ``grid_sample`` would be faster still but rescales coordinates to [-1, 1] and back,
    so zero flow would no longer return the key features exactly.
    """
    b, c, h, w = feat.shape
    if flow.shape != (b, 2, h, w):
        raise ValueError(f"warp_features: flow {list(flow.shape)} does not match features {list(feat.shape)}")
    flow = flow.to(feat.dtype)
    xs = torch.arange(w, dtype=feat.dtype, device=feat.device).view(1, 1, w)
    ys = torch.arange(h, dtype=feat.dtype, device=feat.device).view(1, h, 1)
    px = (xs + flow[:, 0]).clamp(0, w - 1)  # [B, H, W]
    py = (ys + flow[:, 1]).clamp(0, h - 1)
    x0f, y0f = px.floor(), py.floor()
    wx, wy = (px - x0f).reshape(-1, 1), (py - y0f).reshape(-1, 1)  # [B*H*W, 1]
    x0, y0 = x0f.long(), y0f.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    rows = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)  # a view when feat is channels-last
    base = (torch.arange(b, device=feat.device) * (h * w)).view(b, 1, 1)

    def tap(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return rows.index_select(0, (base + yi * w + xi).reshape(-1))  # [B*H*W, C]

    # torch.lerp is exact at weights 0 and 1 (a + 0 * (b - a), b - 0 * (b - a))
    top = torch.lerp(tap(y0, x0), tap(y0, x1), wx)
    bottom = torch.lerp(tap(y1, x0), tap(y1, x1), wx)
    return torch.lerp(top, bottom, wy).view(b, h, w, c).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------- key / non-key passes
@dataclass
class KeyState:
    """What a key frame leaves for the next non-key frames.

    Attributes:
        merged: phase-1 FPN features of the warped levels [P4', P5'], [1, C, hi, wi].
        lateral: C3's lateral [1, C, h3, w3].
        reduced: ``flow_net.reduce(lateral)`` (computed once per key frame).
        proto: the key frame's prototypes [1, h, w, K] (for ``reuse_prototypes``).
    """

    merged: list[torch.Tensor]
    lateral: torch.Tensor
    reduced: torch.Tensor | None = None
    proto: torch.Tensor | None = None


def key_pass(net: nn.Module, x: torch.Tensor, feats: list[torch.Tensor] | None = None
             ) -> tuple[dict[str, Any], KeyState, list[torch.Tensor]]:  # fmt: skip
    """The whole network on a key frame, with the same operations as ``net.forward``.

    Args:
        net: a ``YolactSE`` (or its inference copy).
        x: [B, 3, S, S] normalised input.
        feats: backbone outputs already computed for ``x`` (a prefix, e.g. up to C3), continued here.
    Returns:
        (raw output dict, KeyState, FPN levels [P3..P7]).
    """
    feats = net.backbone_resume(feats) if feats else net.backbone_features(x)
    merged, laterals = net.fpn.lateral_phase([feats[i] for i in net.selected_layers])
    p = net.fpn.output_phase(merged)
    raw = net.heads(p)
    return raw, KeyState(merged=merged[1:], lateral=laterals[0], proto=raw["proto"]), p


def partial_pass(net: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Backbone up to C3 and C3's FPN lateral: x [B, 3, S, S] -> (stage outputs, lateral [B, C, h3, w3])."""
    feats = net.backbone_features(x, stop=net.partial_stages)
    return feats, net.fpn.lat_layers[-1](feats[-1])


def transformed_levels(
    lateral: torch.Tensor, key: KeyState, flows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """Phase-1 FPN features of a non-key frame: [P3', P4', P5'].

    P4', P5' = warp(key's, flow) * scale + bias; P3' = lateral + bilinear upsampling of P4' (the
    FPN's own top-down rule).
    """
    warped = [warp_features(f, fl) * s + b for f, (fl, s, b) in zip(key.merged, flows)]
    p3 = lateral + F.interpolate(warped[0], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
    return [p3, *warped]


def warp_prototypes(proto: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Key-frame prototypes moved by a coarser flow (beyond YolactEdge, see ``reuse_prototypes``).

    Args:
        proto: [B, h, w, K] prototypes (the raw ``proto`` output).
        flow: [B, 2, hf, wf] flow in pixels of its own level (P4).
    Returns:
        [B, h, w, K]: ``proto`` warped by the flow upsampled (bilinear) and rescaled to prototype pixels.
    """
    b, h, w, _ = proto.shape
    hf, wf = flow.shape[-2:]
    up = F.interpolate(flow.to(proto.dtype), size=(h, w), mode="bilinear", align_corners=False)
    up = up * up.new_tensor([w / wf, h / hf]).view(1, 2, 1, 1)
    return warp_features(proto.permute(0, 3, 1, 2), up).permute(0, 2, 3, 1).contiguous()


def relative_change(cur: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean |cur - ref| / mean |ref| (0 = identical), the adaptive policy's feature signal."""
    return float((cur - ref).abs().mean() / ref.abs().mean().clamp(min=1e-6))


def flow_magnitude(flow: torch.Tensor, stride: int) -> float:
    """Mean flow length of [B, 2, h, w] (pixels of a stride-``stride`` map) in network-input pixels."""
    return float(flow.float().norm(dim=1).mean()) * stride


# ------------------------------------------------------------------------------ key-frame policy
POLICY_MODES = ("interval", "adaptive")


@dataclass
class KeyframePolicyConfig(ConfigMixin):
    """When a frame is a key frame.

    Attributes:
        mode: "interval" (every ``keyframe_interval``-th frame, YolactEdge) or "adaptive" (a key frame
            when the scene changes: ``change_threshold`` on the C3 laterals, ``flow_threshold`` on the
            predicted flow, and at the latest after ``max_interval`` frames).
        keyframe_interval: interval mode: frames per key frame (1 = every frame a key frame).
        max_interval: adaptive mode: at most this many frames per key frame.
        change_threshold: adaptive: key frame when mean |lat - lat_key| / mean |lat_key| exceeds it.
        flow_threshold: adaptive: key frame when the mean predicted P4 flow exceeds this many
            network-input pixels.
        max_time_gap: a key frame after a forward stamp gap longer than this (seconds; 0 = no limit).
    """

    mode: str = "interval"
    keyframe_interval: int = 5
    max_interval: int = 10
    change_threshold: float = 0.5
    flow_threshold: float = 8.0
    max_time_gap: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in POLICY_MODES:
            raise ValueError(f"keyframe policy mode must be one of {POLICY_MODES}, got {self.mode!r}")
        if self.keyframe_interval < 1 or self.max_interval < 1:
            raise ValueError(
                f"keyframe_interval and max_interval must be >= 1, got {self.keyframe_interval}, "
                f"{self.max_interval}"
            )
        if not (self.change_threshold > 0 and self.flow_threshold > 0 and self.max_time_gap >= 0):
            raise ValueError("change_threshold and flow_threshold must be > 0 and max_time_gap >= 0")


class KeyframePolicy:
    """Decides key frames; pure Python (no torch), one instance per stream.

    Per frame: :meth:`before` (forced key frame: first frame, reset, backwards time jump, forward
    gap, size change, interval) -> for adaptive non-key candidates :meth:`check_change` and
    :meth:`check_flow` -> :meth:`commit`. A reason string says why a frame is a key frame.
    """

    def __init__(self, cfg: KeyframePolicyConfig | None = None) -> None:
        self.cfg = cfg or KeyframePolicyConfig()
        self.reset("first")

    def reset(self, reason: str = "reset") -> None:
        """Forget the key frame: the next frame is a key frame with ``reason``."""
        self._pending: str | None = reason
        self._last_stamp: float | None = None
        self._size: tuple[int, int] | None = None
        self.since_key = 0  # frames since the last key frame (0 = this was the key frame)

    def before(self, stamp: float | None, size: tuple[int, int]) -> str | None:
        """Reason for a forced key frame at ``stamp`` (seconds, None = unknown) and ``size`` (H, W),
        or None when the frame may reuse the key frame."""
        c = self.cfg
        if self._pending is not None:
            return self._pending
        if self._size != tuple(size):
            return "size_change"
        if stamp is not None and self._last_stamp is not None:
            if stamp < self._last_stamp:
                return "time_jump_back"
            if c.max_time_gap > 0 and stamp - self._last_stamp > c.max_time_gap:
                return "time_gap"
        limit = c.keyframe_interval if c.mode == "interval" else c.max_interval
        if self.since_key + 1 >= limit:
            return "interval"
        return None

    def check_change(self, change: float) -> str | None:
        """Adaptive: ``"scene_change"`` when the lateral features moved more than the threshold."""
        if self.cfg.mode == "adaptive" and not change <= self.cfg.change_threshold:  # NaN -> key frame
            return "scene_change"
        return None

    def check_flow(self, magnitude: float) -> str | None:
        """Adaptive: ``"large_flow"`` when the predicted flow exceeds the threshold."""
        if self.cfg.mode == "adaptive" and not magnitude <= self.cfg.flow_threshold:
            return "large_flow"
        return None

    def commit(self, key: bool, stamp: float | None, size: tuple[int, int]) -> None:
        """Record the processed frame."""
        if key:
            self._pending = None
            self._size = tuple(size)
            self.since_key = 0
        else:
            self.since_key += 1
        if stamp is not None:
            self._last_stamp = stamp


# ------------------------------------------------------------------------------- stream runner
@dataclass
class FrameResult:
    """One processed frame: its instances and how it was computed."""

    instances: Instances
    key: bool
    reason: str  # why a key frame ("" for non-key frames)
    latency_ms: float
    change: float = float("nan")
    flow: float = float("nan")


@dataclass
class TemporalStats:
    """Counters and recent per-kind latencies (ms) of a stream."""

    key_frames: int = 0
    nonkey_frames: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    key_ms: deque = field(default_factory=lambda: deque(maxlen=500))
    nonkey_ms: deque = field(default_factory=lambda: deque(maxlen=500))

    @property
    def key_ratio(self) -> float:
        n = self.key_frames + self.nonkey_frames
        return self.key_frames / n if n else float("nan")

    def summary(self) -> dict[str, float]:
        """Key-frame ratio and median / p95 latency per kind (NaN without samples)."""

        def pct(v: deque, q: float) -> float:
            samples = tuple(v)  # one C-level copy: safe while the worker thread appends
            return float(np.percentile(samples, q)) if samples else float("nan")

        return {
            "key_frames": float(self.key_frames), "nonkey_frames": float(self.nonkey_frames),
            "key_ratio": self.key_ratio,
            "key_ms_median": pct(self.key_ms, 50), "key_ms_p95": pct(self.key_ms, 95),
            "nonkey_ms_median": pct(self.nonkey_ms, 50), "nonkey_ms_p95": pct(self.nonkey_ms, 95),
        }  # fmt: skip


class TemporalYolact:
    """Key / non-key inference on a stream of frames with a :class:`YolactSegmenter` (torch backend).

    Args:
        segmenter: the YOLACT segmenter (its network, pre- and post-processing are used as they are).
        flow_net: a :class:`FeatFlowNet` whose ``in_channels`` is the detector's FPN width.
        policy: key-frame policy settings.
        reuse_prototypes: beyond YolactEdge: non-key frames also skip the prototype network and
            warp the key frame's prototypes with the (upsampled) P4 flow. The prototype net is the
            largest dense cost after the backbone at 550 px; reusing it trades mask accuracy for
            speed (see the README's measurements).
    """

    def __init__(self, segmenter: Any, flow_net: FeatFlowNet, policy: KeyframePolicyConfig | None = None,
                 reuse_prototypes: bool = False) -> None:  # fmt: skip
        if segmenter.family != "yolact" or not hasattr(segmenter, "sync_weights"):
            raise ValueError(
                f"temporal reuse needs the torch YOLACT segmenter, got {type(segmenter).__name__}"
            )
        if flow_net.cfg.in_channels != segmenter.cfg.fpn_channels:
            raise ValueError(
                f"flow net expects {flow_net.cfg.in_channels}-channel FPN features, the detector has "
                f"{segmenter.cfg.fpn_channels}"
            )
        self.seg = segmenter
        self.flow_net = flow_net.to(segmenter.device, segmenter.dtype).eval()
        self.policy = KeyframePolicy(policy)
        self.reuse_prototypes = bool(reuse_prototypes)
        self.stats = TemporalStats()
        self._key: KeyState | None = None
        # requests from other threads (parameter callbacks), applied before the next frame
        self._requests: deque[tuple[str, Any]] = deque()

    def configure(self, policy: KeyframePolicyConfig, reuse_prototypes: bool | None = None) -> None:
        """New policy settings from any thread: the next frame is a key frame ("reconfigure")."""
        self._requests.append(("configure", (policy, reuse_prototypes)))

    def reset(self, reason: str = "reset") -> None:
        """Drop the key frame (from any thread): the next frame is a key frame with ``reason``."""
        self._requests.append(("reset", reason))

    def restart(self) -> None:
        """A new stream, from the thread that runs the frames: the next frame is a key frame ("first")
        and the statistics start from zero (e.g. after warm-up frames)."""
        self._requests.clear()
        self.policy = KeyframePolicy(self.policy.cfg)
        self._key = None
        self.stats = TemporalStats()

    def _apply_requests(self) -> None:
        while self._requests:
            kind, arg = self._requests.popleft()
            if kind == "configure":
                policy, reuse = arg
                self.policy = KeyframePolicy(policy)
                self.policy.reset("reconfigure")
                if reuse is not None:
                    self.reuse_prototypes = bool(reuse)
            else:
                self.policy.reset(arg)
            self._key = None

    def _net(self) -> nn.Module:
        seg = self.seg
        if seg.optimize and seg._weights_fingerprint() != seg._fingerprint:
            seg.sync_weights()
        return seg._net

    def _infer(self, x: torch.Tensor, reason: str | None) -> tuple[dict[str, Any], str | None, float, float]:
        """The network on one preprocessed frame x [1, 3, S, S]: a non-key candidate (``reason`` None) may
        still turn into a key frame (adaptive policy). Returns (raw outputs, key-frame reason or None,
        feature change, flow magnitude); updates the key state on key frames."""
        seg = self.seg
        net = self._net()
        x = x.to(seg.device, seg.dtype)
        if seg.optimize:
            x = x.contiguous(memory_format=torch.channels_last)
        change = flow = float("nan")
        feats = None
        if reason is None:
            feats, lateral = partial_pass(net, x)
            key = self._key
            assert key is not None
            change = relative_change(lateral, key.lateral)
            reason = self.policy.check_change(change)
            if reason is None:
                if key.reduced is None:
                    key.reduced = self.flow_net.reduce(key.lateral)
                flows = self.flow_net(lateral, key.reduced, key_reduced=True)
                flow = flow_magnitude(flows[0][0], 16)
                reason = self.policy.check_flow(flow)
                if reason is None:
                    proto = None
                    if self.reuse_prototypes and key.proto is not None:
                        proto = warp_prototypes(key.proto, flows[0][0])
                    levels = net.fpn.output_phase(transformed_levels(lateral, key, flows))
                    return net.heads(levels, proto=proto), None, change, flow
        raw, self._key, _ = key_pass(net, x, feats)
        return raw, reason, change, flow

    def segment_frame(self, image: np.ndarray, stamp: float | None = None,
                      params: InferenceParams | None = None) -> FrameResult:  # fmt: skip
        """Segment one BGR frame ([H, W, 3] uint8) of the stream at ``stamp`` (seconds)."""
        t0 = time.perf_counter()
        seg = self.seg
        p = params or seg.params
        unknown = [c for c in p.class_filter if c not in seg.class_names]
        if unknown:
            raise ValueError(f"class_filter names unknown classes {unknown}; known: {seg.class_names}")
        self._apply_requests()
        x, metas = seg.preprocess([image])
        size = tuple(int(v) for v in metas[0]["size"])
        reason = self.policy.before(stamp, size)
        if reason is None and self._key is None:
            reason = "first"
        with torch.inference_mode():
            raw, reason, change, flow = self._infer(x, reason)
            out = seg.postprocess(raw, metas, p)[0]
        is_key = reason is not None
        self.policy.commit(is_key, stamp, size)
        ms = (time.perf_counter() - t0) * 1e3
        st = self.stats
        if is_key:
            st.key_frames += 1
            st.reasons[reason] = st.reasons.get(reason, 0) + 1
            st.key_ms.append(ms)
        else:
            st.nonkey_frames += 1
            st.nonkey_ms.append(ms)
        return FrameResult(out, is_key, reason or "", ms, change, flow)


# ------------------------------------------------------------------------------- checkpoints
def save_flow_net(path: str | Path, flow_net: FeatFlowNet, fp16: bool = False, **extra: Any) -> None:
    """Write ``{format, format_version, config, state_dict, **extra}`` (plain values only)."""
    from instaseg_ros.weights.torch_io import save_our_checkpoint

    sd = {k: v.half() if fp16 and v.is_floating_point() else v for k, v in flow_net.state_dict().items()}
    save_our_checkpoint(path, FLOWNET_FORMAT, flow_net.cfg.to_dict(), sd, **extra)


def load_flow_net(path: str | Path) -> tuple[FeatFlowNet, dict[str, Any]]:
    """A FeatFlowNet from a checkpoint of :func:`save_flow_net` (fp32) and the file's other entries.

    Raises ``ValueError`` naming the file when it is not a flow-net checkpoint or does not match.
    """
    from instaseg_ros.weights.torch_io import load_torch_file

    ck = load_torch_file(path, "flow-net checkpoint")
    if not isinstance(ck, dict) or ck.get("format") != FLOWNET_FORMAT:
        fmt = ck.get("format") if isinstance(ck, dict) else type(ck).__name__
        raise ValueError(f"{path}: not a flow-net checkpoint (format {fmt!r}, expected {FLOWNET_FORMAT!r})")
    cfg = FlowNetConfig.from_dict(dict(ck["config"]), source=str(path))
    net = FeatFlowNet(cfg)
    try:
        net.load_state_dict({k: v.float() for k, v in ck["state_dict"].items()})
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        raise ValueError(f"{path}: flow-net weights do not match its config: {msg}") from None
    return net, {k: v for k, v in ck.items() if k not in ("state_dict", "config")}


def build_temporal(
    segmenter: Any, flow_weights: str | Path | None = None, policy: KeyframePolicyConfig | None = None,
    flow_config: FlowNetConfig | None = None, reuse_prototypes: bool = False,
) -> TemporalYolact:
    """A :class:`TemporalYolact` with the flow net of ``flow_weights``; without a file, a new flow net
    of ``flow_config`` (default: YolactEdge's widths for the detector's FPN) at its identity
    initialisation (non-key frames then copy the key frame's P4/P5; for timing, or before training)."""
    if flow_weights is not None:
        fn, _ = load_flow_net(flow_weights)
    else:
        c = segmenter.cfg.fpn_channels
        fn = FeatFlowNet(flow_config or FlowNetConfig(c, max(16, c // 4), max(16, c // 4)))
    return TemporalYolact(segmenter, fn, policy, reuse_prototypes)


#: the shipped flow net for the shipped YOLACT-SE (the node's ``temporal.flow_weights`` default)
DEFAULT_FLOW_WEIGHTS = "package://instaseg_ros/models/flownet_yolact_se_r18_indoor.pth"


@dataclass
class TemporalSettings:
    """The node's ``temporal.*`` parameters as one record (field = parameter name without the prefix),
    so ``eval-bag`` offline (a :class:`TemporalYolact` in the evaluator) and live (the node's parameters)
    run the same settings. Defaults equal the node's (a test keeps them in step)."""

    enabled: bool = False
    flow_weights: str = DEFAULT_FLOW_WEIGHTS
    policy: str = "interval"
    keyframe_interval: int = 5
    max_interval: int = 10
    change_threshold: float = 0.5
    flow_threshold: float = 8.0
    max_time_gap: float = 0.5
    reuse_prototypes: bool = False

    def __post_init__(self) -> None:
        self.policy_config()  # ValueError on a bad mode, interval or threshold

    def policy_config(self) -> KeyframePolicyConfig:
        return KeyframePolicyConfig(
            mode=self.policy,
            keyframe_interval=int(self.keyframe_interval),
            max_interval=int(self.max_interval),
            change_threshold=float(self.change_threshold),
            flow_threshold=float(self.flow_threshold),
            max_time_gap=float(self.max_time_gap),
        )

    def node_params(self) -> dict[str, Any]:
        """``{"temporal.<name>": value}`` for the node (``flow_weights`` resolved to an absolute path)."""
        from instaseg_ros.core.resources import resolve_path

        out = {f"temporal.{k}": v for k, v in self.__dict__.items()}
        out["temporal.flow_weights"] = str(Path(resolve_path(self.flow_weights)).resolve())
        return out

    def build(self, segmenter: Any) -> TemporalYolact:
        """The PyTorch runner for ``segmenter`` (a YOLACT on the torch backend; for any backend see
        ``temporal_onnx.build_runner``).

        Raises:
            ValueError: not a torch YOLACT, or a flow net that does not fit the detector.
            FileNotFoundError: no flow-net file.
        """
        from instaseg_ros.core.resources import resolve_path

        path = resolve_path(self.flow_weights)
        return build_temporal(segmenter, path, self.policy_config(), reuse_prototypes=self.reuse_prototypes)


# ------------------------------------------------------------------------------- ONNX export
RAW_NAMES = ("loc", "conf", "mask", "proto")


class KeyGraph(nn.Module):
    """The key-frame sub-graph: x [1, 3, S, S] -> loc, conf, mask, proto (the plain model's outputs) and
    the key state: P4', P5' (phase-1 FPN), C3 lateral, its flow-net reduction."""

    output_names = (*RAW_NAMES, "key_p4", "key_p5", "key_lateral", "key_reduced")

    def __init__(self, net: nn.Module, flow_net: FeatFlowNet) -> None:
        super().__init__()
        self.net, self.flow_net = net, flow_net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw, key, _ = key_pass(self.net, x)
        return (*(raw[k] for k in RAW_NAMES), *key.merged, key.lateral, self.flow_net.reduce(key.lateral))


class NonKeyGraph(nn.Module):
    """The non-key sub-graph: (x, key_p4, key_p5, key_reduced) -> loc, conf, mask, proto, C3 lateral and the
    P4 flow [1, 2, h4, w4] (the adaptive policy's signals)."""

    input_names = ("input", "key_p4", "key_p5", "key_reduced")
    output_names = (*RAW_NAMES, "lateral", "flow4")

    def __init__(self, net: nn.Module, flow_net: FeatFlowNet) -> None:
        super().__init__()
        self.net, self.flow_net = net, flow_net

    def forward(self, x: torch.Tensor, key_p4: torch.Tensor, key_p5: torch.Tensor,
                key_reduced: torch.Tensor) -> tuple[torch.Tensor, ...]:  # fmt: skip
        _, lateral = partial_pass(self.net, x)
        flows = self.flow_net(lateral, key_reduced, key_reduced=True)
        levels = transformed_levels(lateral, KeyState([key_p4, key_p5], lateral), flows)
        raw = self.net.heads(self.net.fpn.output_phase(levels))
        return (*(raw[k] for k in RAW_NAMES), lateral, flows[0][0])


def export_temporal_onnx(segmenter: Any, flow_net: FeatFlowNet, out_dir: str | Path,
                         opset: int = 17) -> tuple[Path, Path]:  # fmt: skip
    """Write ``key.onnx`` and ``nonkey.onnx`` (batch 1, CPU fp32, BatchNorm folded) into ``out_dir``.

    A runtime keeps the key graph's ``key_p4``, ``key_p5``, ``key_reduced`` outputs and feeds them to the
    non-key graph until the next key frame; ``loc/conf/mask/proto`` go to the segmenter's post-processing.
    """
    import copy
    import warnings

    from instaseg_ros.models.fuse import inference_copy

    if getattr(segmenter.model.cfg, "dcn_layers", [0]) and any(segmenter.model.cfg.dcn_layers):
        raise ValueError("export_temporal_onnx: YOLACT++ (DCNv2) backbones are not supported")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = inference_copy(segmenter.model, channels_last=False).float().cpu().eval()
    fn = copy.deepcopy(flow_net).float().cpu().eval()
    s = segmenter.cfg.input_size
    x = torch.zeros(1, 3, s, s)
    key_graph, nonkey_graph = KeyGraph(net, fn).eval(), NonKeyGraph(net, fn).eval()
    paths = (out / "key.onnx", out / "nonkey.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        key_out = key_graph(x)
        torch.onnx.export(key_graph, (x,), str(paths[0]), dynamo=False, input_names=["input"],
                          output_names=list(KeyGraph.output_names), opset_version=opset)  # fmt: skip
        args = (x, key_out[4], key_out[5], key_out[7])
        torch.onnx.export(nonkey_graph, args, str(paths[1]), dynamo=False,
                          input_names=list(NonKeyGraph.input_names),
                          output_names=list(NonKeyGraph.output_names), opset_version=opset)  # fmt: skip
    return paths
