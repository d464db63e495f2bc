"""YOLACT latency by stage (pre-processing, network, post-processing), optionally against the authors' code.

Default: ResNet-50, 550x550 input, 80 classes, one 640x480 image, batch 1, CPU fp32. The weights are
random (seeded) with sharpened class logits, so post-processing sees a realistic worst case (up to
``--top-k`` detections with full masks) instead of an empty result.

Variants (``--variants``): ``optimized`` (our default segmenter: BatchNorm folded into the convs,
channels-last), ``plain`` (the module as trained/loaded). With ``--official DIR`` (a checkout of
github.com/dbolya/yolact, patched to import without CUDA; never part of this repository) the authors'
pipeline (FastBaseTransform -> Yolact + Fast NMS -> postprocess) runs on the same weights and image
in the same process, interleaved with ours, and the detections are compared.

Wall time on a shared machine is noisy: the JSON also records process CPU time per stage and the
load average, which compare variants fairly when other jobs compete for the cores.

    python benchmarks/bench_yolact.py [--backbone resnet50] [--size 550] [--runs 10] [--threads 2]
    python benchmarks/bench_yolact.py --official /tmp/yolact_official
    python benchmarks/bench_yolact.py --device cuda --precisions fp32,fp16
    python benchmarks/bench_yolact.py --plus --official /tmp/yolact_official   # YOLACT++ (DCNv2, re-scoring)

For ``--plus`` the authors' ``dcn_v2`` extension must be importable; it does not build with current
PyTorch, so the peer run puts a stand-in with the extension's parameters on ``PYTHONPATH`` (a
``DCN`` subclass of :class:`instaseg_ros.ops.deform.ModulatedDeformConv2d`): the comparison then
covers everything but the deformable-convolution kernel itself (torchvision's on both sides).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.benchmark import machine_info
from instaseg_ros.models.yolact import YolactConfig, YolactSE, YolactSegmenter
from instaseg_ros.ops.deform import ModulatedDeformConv2d


def test_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Deterministic BGR image with shapes (what the parity check used)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 60).astype(np.uint8)
    for _ in range(8):
        c = tuple(int(v) for v in rng.integers(0, 255, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(img, center, int(rng.integers(20, max(21, min(width, height) // 4))), c, -1)
    return img


def decisive_random_model(cfg: YolactConfig, img: np.ndarray, seed: int = 0) -> YolactSE:
    """Random weights whose outputs look like a trained model's on ``img``.

    BN statistics are randomised, then the class, coefficient and prototype output layers are
    rescaled so that class logits have std 2.5 and coefficient/prototype pre-activations std 1
    (the same calibration the parity check with the authors' code used).
    """
    torch.manual_seed(seed)
    model = YolactSE(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.3, 0.7, generator=g)
                m.bias.uniform_(-0.1, 0.1, generator=g)
    head = model.prediction_layers[0]
    cap: dict[str, torch.Tensor] = {}
    hooks = [
        head.mask_layer.register_forward_hook(lambda m, i, o: cap.__setitem__("mask", o)),
        model.proto_net[-1].register_forward_hook(lambda m, i, o: cap.__setitem__("proto", o)),
    ]
    x, _ = YolactSegmenter(model, cfg, optimize=False).preprocess([img])
    with torch.no_grad():
        out = model(x)
        for h in hooks:
            h.remove()
        for layer, f in (
            (head.conf_layer, 2.5 / float(out["conf"].std())),
            (head.mask_layer, 1.0 / float(cap["mask"].std())),
            (model.proto_net[-1], 1.0 / float(cap["proto"].std())),
        ):
            layer.weight.mul_(f)
            layer.bias.mul_(f)
        head.mask_layer.bias.add_(0.15)
        for m in model.modules():  # YOLACT++: non-zero deformable offsets, a live re-scoring head
            if isinstance(m, ModulatedDeformConv2d):
                m.conv_offset_mask.weight.normal_(0.0, 0.01, generator=g)
        if model.maskiou_net is not None:
            last = model.maskiou_net.maskiou_net[-2]
            last.bias.uniform_(0.4, 0.9, generator=g)
    return model


def network_breakdown(seg: YolactSegmenter, x: torch.Tensor, runs: int) -> dict[str, dict[str, float]]:
    """CPU/wall ms of the optimised network's parts: backbone, FPN, protonet, prediction head."""
    net = seg._net
    x = x.contiguous(memory_format=torch.channels_last)
    timer = Timer(seg.device)
    with torch.inference_mode():
        for _ in range(runs + 1):
            feats = timer.run("backbone", net.backbone, x)
            p = timer.run("fpn", net.fpn, [feats[i] for i in net.selected_layers])
            timer.run("protonet", net.proto_net, p[0])
            timer.run("head", lambda levels: [net.prediction_layers[0](f) for f in levels], p)
    for d in (timer.wall, timer.cpu):
        for v in d.values():
            del v[0]
    return timer.stats()


class Timer:
    """Wall and process-CPU milliseconds of named stages over repeated runs."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def run(self, name: str, fn, *args):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.wall.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        self.cpu.setdefault(name, []).append((time.process_time() - c) * 1000)
        return out

    def stats(self) -> dict[str, dict[str, float]]:
        return {
            k: {
                "median_ms": float(np.median(v)),
                "p95_ms": float(np.percentile(v, 95)),
                "cpu_median_ms": float(np.median(self.cpu[k])),
            }
            for k, v in self.wall.items()
        }


def ours_runner(seg: YolactSegmenter, img: np.ndarray, params: InferenceParams, timer: Timer, batch: int):
    imgs = [img] * batch

    def once():
        x, metas = timer.run("pre", seg.preprocess, imgs)
        raw = timer.run("net", seg.forward_raw, x)
        res = timer.run("post", seg.postprocess, raw, metas, params)
        timer.wall.setdefault("e2e", []).append(sum(timer.wall[k][-1] for k in ("pre", "net", "post")))
        timer.cpu.setdefault("e2e", []).append(sum(timer.cpu[k][-1] for k in ("pre", "net", "post")))
        return res

    return once


PLUS_CONFIGS = {"resnet50": "yolact_plus_resnet50_config", "resnet101": "yolact_plus_base_config"}


def plus_config(backbone: str, size: int) -> YolactConfig:
    """The authors' YOLACT++ settings: DCNv2 in stages 2-4 (R50: every block; R101: every third),
    mask re-scoring, three octave anchor scales per level, non-square anchors."""
    base = [s * size / 550 for s in (24, 48, 96, 192, 384)]
    r50 = backbone == "resnet50"
    return YolactConfig(
        backbone=backbone,
        input_size=size,
        attention=False,
        dcn_layers=[0, 4, 6 if r50 else 23, 3],
        dcn_interval=1 if r50 else 3,
        mask_rescoring=True,
        square_anchors=False,
        anchor_scales=[[b * 2 ** (j / 3) for j in range(3)] for b in base],
    )


def official_runner(
    repo: str,
    backbone: str,
    state_dict: dict,
    img: np.ndarray,
    params: InferenceParams,
    timer: Timer,
    plus: bool = False,
):
    """The authors' pipeline as their eval.py runs it (Fast NMS, crop, score threshold)."""
    sys.path.insert(0, repo)
    from data.config import cfg, set_cfg  # type: ignore[import-not-found]

    names = {
        "resnet50": "yolact_resnet50_config",
        "resnet101": "yolact_base_config",
        "darknet53": "yolact_darknet53_config",
    }
    set_cfg(PLUS_CONFIGS[backbone] if plus else names[backbone])
    cfg.mask_proto_debug = False
    cfg.max_num_detections = params.top_k
    import yolact as official  # type: ignore[import-not-found]
    from layers.output_utils import postprocess  # type: ignore[import-not-found]
    from utils.augmentations import FastBaseTransform  # type: ignore[import-not-found]

    net = official.Yolact()
    net.load_state_dict(state_dict)
    net.eval()
    net.detect.use_fast_nms = True
    net.detect.use_cross_class_nms = False
    net.detect.conf_thresh = params.score_threshold
    h, w = img.shape[:2]
    transform = FastBaseTransform()

    def once():
        with torch.no_grad():
            c, t = time.process_time(), time.perf_counter()
            batch = transform(torch.from_numpy(img).float()[None])
            preds = net(batch)
            cls, sc, bx, mk = postprocess(
                preds, w, h, crop_masks=True, score_threshold=params.score_threshold
            )
            mask_sc = None
            if isinstance(sc, list):  # YOLACT++ re-scoring: [box scores, mask scores]
                sc, mask_sc = sc
            timer.wall.setdefault("e2e", []).append((time.perf_counter() - t) * 1000)
            timer.cpu.setdefault("e2e", []).append((time.process_time() - c) * 1000)
        order = sc.argsort(0, descending=True)[: params.top_k]
        out = cls[order].numpy(), sc[order].numpy(), bx[order].numpy(), mk[order].numpy().astype(bool)
        return out if mask_sc is None else (*out, mask_sc[order].numpy())

    return once


def compare(official_out, inst) -> dict:
    """Match every detection of the authors' code to ours (same class, nearest score, then box)."""
    cls, sc, bx, mk = official_out[:4]
    mask_sc = official_out[4] if len(official_out) > 4 else None
    used: set[int] = set()
    pairs = []
    for i in range(len(sc)):
        cands = [j for j in range(len(inst)) if j not in used and inst.class_ids[j] == cls[i]]
        if not cands:
            continue
        j = min(
            cands,
            key=lambda j: (abs(inst.scores[j] - sc[i]) > 1e-4, np.abs(np.trunc(inst.boxes[j]) - bx[i]).sum()),
        )
        used.add(j)
        pairs.append((i, j))
    ious = [
        float(np.logical_and(mk[i], inst.masks[j]).sum() / max(np.logical_or(mk[i], inst.masks[j]).sum(), 1))
        for i, j in pairs
    ]
    close = [(i, j) for i, j in pairs if abs(sc[i] - inst.scores[j]) < 1e-4]
    return {
        "n_official": int(len(sc)),
        "n_ours": int(len(inst)),
        "identical_detections": int(
            sum(
                np.abs(bx[i] - np.trunc(inst.boxes[j])).max() == 0 and np.array_equal(mk[i], inst.masks[j])
                for i, j in close
            )
        ),
        "max_score_diff": float(max((abs(sc[i] - inst.scores[j]) for i, j in close), default=0.0)),
        "max_box_diff_px": float(
            max((np.abs(bx[i] - np.trunc(inst.boxes[j])).max() for i, j in close), default=0.0)
        ),
        "min_mask_iou": min((ious[k] for k, pr in enumerate(pairs) if pr in close), default=1.0),
        "mask_ious_of_nonempty_masks_min": min(
            (ious[k] for k, (i, j) in enumerate(pairs) if (i, j) in close and mk[i].any()), default=1.0
        ),
        "max_mask_score_diff": None
        if mask_sc is None or inst.mask_scores is None
        else float(max((abs(mask_sc[i] - inst.mask_scores[j]) for i, j in close), default=0.0)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=550, help="network input side")
    ap.add_argument("--image-size", default="640x480", help="WxH of the test image")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="fp32", help="comma list; fp16 needs CUDA")
    ap.add_argument("--variants", default="optimized,plain")
    ap.add_argument("--score-threshold", type=float, default=0.05)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--plus", action="store_true", help="YOLACT++ (DCNv2 backbone, mask re-scoring)")
    ap.add_argument(
        "--with-yolact",
        action="store_true",
        help="with --plus: also time plain YOLACT (same backbone) in the same run",
    )
    ap.add_argument("--official", default=None, help="path of a dbolya/yolact checkout to run as the peer")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/yolact_<...>.json)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_start = list(os.getloadavg())
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    img = test_image(w, h)
    if args.plus:
        cfg = plus_config(args.backbone, args.size)
    else:
        cfg = YolactConfig(backbone=args.backbone, input_size=args.size, attention=False)
    model = decisive_random_model(cfg, img)
    params = InferenceParams(score_threshold=args.score_threshold, top_k=args.top_k)
    rows, runners = [], {}
    for precision in args.precisions.split(","):
        for variant in args.variants.split(","):
            seg = YolactSegmenter(
                copy.deepcopy(model),
                cfg,
                device=args.device,
                precision=precision,
                optimize=variant == "optimized",
            )
            timer = Timer(args.device)
            runners[f"ours {variant} {precision}"] = (ours_runner(seg, img, params, timer, args.batch), timer)
            if args.plus and args.with_yolact:
                plain_cfg = YolactConfig(backbone=args.backbone, input_size=args.size, attention=False)
                plain = YolactSegmenter(
                    decisive_random_model(plain_cfg, img), plain_cfg, device=args.device, precision=precision,
                    optimize=variant == "optimized",
                )  # fmt: skip
                timer = Timer(args.device)
                runners[f"yolact {variant} {precision}"] = (
                    ours_runner(plain, img, params, timer, args.batch),
                    timer,
                )
    comparison = None
    if args.official:
        if args.batch != 1:
            print("--official compares at batch 1 only", file=sys.stderr)
            return 2
        timer = Timer("cpu")
        runners["authors' code fp32"] = (
            official_runner(args.official, args.backbone, model.state_dict(), img, params, timer, args.plus),
            timer,
        )
    for fn, timer in runners.values():
        for _ in range(args.warmup):
            out = fn()
        timer.wall.clear()
        timer.cpu.clear()
    last = {}
    for _ in range(args.runs):  # interleaved so that load changes hit every variant alike
        for name, (fn, _timer) in runners.items():
            last[name] = fn()
    if args.official:
        comparison = {
            name: compare(last["authors' code fp32"], last[name][0])
            for name in runners
            if name.startswith("ours") and name.endswith("fp32")
        }
    print(
        f"\nYOLACT {args.backbone} {args.size}x{args.size}, image {w}x{h}, batch {args.batch}, "
        f"{args.device}, threads {args.threads}, warm-up {args.warmup}, runs {args.runs}"
    )
    print(f"{'variant':28s} {'stage':6s} {'median ms':>10s} {'p95 ms':>10s} {'cpu ms':>10s}")
    for name, (_fn, timer) in runners.items():
        for stage, s in timer.stats().items():
            rows.append({"variant": name, "stage": stage, **s})
            print(
                f"{name:28s} {stage:6s} {s['median_ms']:10.1f} {s['p95_ms']:10.1f} {s['cpu_median_ms']:10.1f}"
            )
    ndet = [len(r) for r in last[next(iter(runners))]]
    print(f"detections per image: {ndet}")
    if comparison:
        print("ours vs authors' code:", json.dumps(comparison))
    first = next(iter(runners))
    breakdown = None
    if "optimized" in first:
        seg0 = YolactSegmenter(copy.deepcopy(model), cfg, device=args.device)
        breakdown = network_breakdown(seg0, seg0.preprocess([img] * args.batch)[0], max(3, args.runs // 2))
        for part, st in breakdown.items():
            ms = f"{st['median_ms']:10.1f} {st['p95_ms']:10.1f} {st['cpu_median_ms']:10.1f}"
            print(f"{'  network part':28s} {part:9s}{ms}")
    info = machine_info()
    info["loadavg_start"] = load_start
    info["loadavg_end"] = list(os.getloadavg())
    doc = {
        "benchmark": "bench_yolact",
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "image_size": [h, w],
        "detections_per_image": ndet,
        "rows": rows,
        "comparison_with_authors_code": comparison,
        "network_breakdown_optimized": breakdown,
    }
    out = Path(
        args.out
        or f"benchmarks/results/yolact{'_plus' if args.plus else ''}_{args.backbone}_{args.size}_"
        f"{args.device}_b{args.batch}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
