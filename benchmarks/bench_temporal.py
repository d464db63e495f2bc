"""Temporal reuse (YolactEdge partial feature transform) on synthetic camera-motion streams, CPU.

One run, three key-frame policies on the same frames, interleaved per sequence so machine load
hits them alike:

* ``every``: every frame a key frame (the plain model; key frames are bit-identical to it),
* ``interval5``: a key frame every 5 frames (YolactEdge),
* ``interval5_copy``: the same with an untrained (identity) flow net: non-key frames copy the key
  frame's P4/P5 (what the trained flow net has to beat),
* ``interval5_proto``: ``interval5``, and non-key frames also warp the key frame's prototypes instead of
  running the prototype net (beyond YolactEdge; ``TemporalYolact(reuse_prototypes=True)``),
* ``adaptive``: a key frame when the C3 laterals change or the predicted flow grows past the
  thresholds, at the latest every ``--max-interval`` frames.

Streams: ``--sequences`` synthetic camera-motion sequences (``generate_sequence``, 640x480, lengths
drawn from ``--min-length``..``--max-length`` frames, so the camera speed varies) at 30 fps, played

* ``bags``: each sequence a recording of its own (stamps restart, so every policy starts it with a
  key frame: the issue's "synthetic camera-motion bags"), and
* ``cuts``: back to back as one stream: every sequence boundary is a scene cut without a time jump,
  which only the adaptive policy can notice ("mask AP cut" = the first 4 frames after each cut).

Models:

1. the shipped YOLACT-SE (``models/yolact_se_r18_indoor.pth``, 256 px) with the shipped flow net
   (``models/flownet_yolact_se_r18_indoor.pth``): latency per kind, throughput and COCO box/mask AP
   (``evaluate_coco``; ground truth from the sequence frames) of all frames, of the frames right
   after a cut (the first 4 of each sequence) and of the non-key frames of ``interval5``;
2. ResNet-50 YOLACT at 550 (no attention, 80 classes) with **random weights** and a FeatFlowNet of
   the authors' widths (256 -> reduce 64, encode 64) at its identity initialisation: timing only
   (key vs non-key latency; weights do not change the cost of a dense network, and with random
   weights almost nothing passes the score threshold, so post-processing is minimal), ``interval5``
   and ``interval5_proto`` over ``--r50-frames`` frames.

A stage breakdown (one frame, median of repeats) shows where a non-key frame still spends its time.

    python benchmarks/bench_temporal.py                    # everything (~10 min on 1 thread)
    python benchmarks/bench_temporal.py --sequences 4 --r50-frames 10 --out /tmp/t.json   # quick

Prints tables and writes JSON (default benchmarks/results/temporal_cpu.json).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "yolact_se_r18_indoor.pth"
FLOWNET = ROOT / "models" / "flownet_yolact_se_r18_indoor.pth"
CUT_FRAMES = 4


def _pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v), q)) if v else float("nan")


def _stream(args: argparse.Namespace) -> list[list[Any]]:
    from instaseg_ros.data.synthetic import SynthConfig, generate_sequence

    rng = np.random.default_rng(args.seed)
    cfg = SynthConfig(width=640, height=480)
    return [generate_sequence((args.seed, k), int(rng.integers(args.min_length, args.max_length + 1)), cfg)
            for k in range(args.sequences)]  # fmt: skip


def _policies(args: argparse.Namespace) -> dict[str, Any]:
    from instaseg_ros.models.yolact.temporal import KeyframePolicyConfig

    return {
        "every": (KeyframePolicyConfig(keyframe_interval=1), False, False),
        "interval5": (KeyframePolicyConfig(keyframe_interval=5), False, False),
        "interval5_copy": (KeyframePolicyConfig(keyframe_interval=5), False, True),
        "interval5_proto": (KeyframePolicyConfig(keyframe_interval=5), True, False),
        "adaptive": (KeyframePolicyConfig(mode="adaptive", max_interval=args.max_interval,
                                          change_threshold=args.change_threshold,
                                          flow_threshold=args.flow_threshold), False, False),
    }  # fmt: skip


def _kind_stats(records: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    key = [r["ms"] for r in records if r["key"]]
    non = [r["ms"] for r in records if not r["key"]]
    out = {
        "frames": len(records), "key_frames": len(key), "key_ratio": len(key) / max(1, len(records)),
        "key_ms_median": _pct(key, 50), "key_ms_p95": _pct(key, 95),
        "nonkey_ms_median": _pct(non, 50), "nonkey_ms_p95": _pct(non, 95),
        "all_ms_median": _pct(key + non, 50), "throughput_fps": len(records) / max(wall_s, 1e-9),
    }  # fmt: skip
    out["nonkey_over_key"] = out["nonkey_ms_median"] / out["key_ms_median"] if key and non else float("nan")
    return out


def run_stream(seg: Any, flow_net: Any, policies: dict[str, Any], sequences: list[list[Any]],
               params: Any, with_ap: bool, bags: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every policy over the whole stream (interleaved per sequence) -> stats (+ AP) per policy.

    ``bags``: every sequence is its own recording (stamps restart at 0, so the policy sees a
    backwards time jump and starts with a key frame); else one continuous stream with scene cuts.
    """
    import copy

    from instaseg_ros.data.synthetic import scenes_to_coco
    from instaseg_ros.evaluation.coco_eval import evaluate_coco, instances_to_coco
    from instaseg_ros.models.yolact.temporal import FeatFlowNet, TemporalYolact

    runners = {name: TemporalYolact(seg, FeatFlowNet(flow_net.cfg) if identity else copy.deepcopy(flow_net),
                                    pol, reuse)
               for name, (pol, reuse, identity) in policies.items()}  # fmt: skip
    records: dict[str, list[dict[str, Any]]] = {n: [] for n in policies}
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in policies}
    wall = dict.fromkeys(policies, 0.0)
    scenes, cut_ids = [], []
    t = 0
    for seq in sequences:
        for name, runner in runners.items():
            for i, sc in enumerate(seq):
                t0 = time.perf_counter()
                stamp = i / 30.0 if bags else (t + i) / 30.0
                r = runner.segment_frame(sc.image, stamp=stamp, params=params)
                wall[name] += time.perf_counter() - t0
                image_id = t + i + 1
                records[name].append({"id": image_id, "key": r.key, "reason": r.reason, "ms": r.latency_ms,
                                      "change": r.change, "flow": r.flow})  # fmt: skip
                if with_ap:
                    results[name] += instances_to_coco(r.instances, image_id)
        cut_ids += [t + i + 1 for i in range(min(CUT_FRAMES, len(seq)))]
        scenes += seq
        t += len(seq)
        print(f"  sequence of {len(seq)} frames done ({t} frames)", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    gt = scenes_to_coco(scenes, start_id=1) if with_ap else None
    nonkey_ids = [r["id"] for r in records.get("interval5", []) if not r["key"]]
    for name in policies:
        st = _kind_stats(records[name], wall[name])
        st["reasons"] = {}
        for r in records[name]:
            if r["key"]:
                st["reasons"][r["reason"]] = st["reasons"].get(r["reason"], 0) + 1
        ch = [r["change"] for r in records[name] if np.isfinite(r["change"])]
        fl = [r["flow"] for r in records[name] if np.isfinite(r["flow"])]
        st["change_median"], st["flow_median"] = _pct(ch, 50), _pct(fl, 50)
        if with_ap:
            for label, ids in (("all", None), ("after_cut", cut_ids), ("interval5_nonkey", nonkey_ids)):
                if ids is not None and not ids:
                    continue
                m = evaluate_coco(gt, results[name], image_ids=ids)
                st[f"ap_{label}"] = {"box": m["bbox"]["AP"], "mask": m["segm"]["AP"],
                                     "mask_AP50": m["segm"]["AP50"], "images": m["num_images"]}  # fmt: skip
        out[name] = st
    return out


#: stages of each kind of frame (names of :func:`stage_breakdown`)
_SHARED = ("preprocess", "stem", "backbone_stage1", "backbone_stage2_C3")
KEY_STAGES = (*_SHARED, "backbone_stage3_C4", "backbone_stage4_C5", "fpn_phase1", "fpn_phase2", "proto_net",
              "head", "postprocess")  # fmt: skip
NONKEY_STAGES = (*_SHARED, "lateral_C3", "flow_net", "warp+P3", "fpn_phase2", "proto_net", "head",
                 "postprocess")  # fmt: skip


def stage_breakdown(seg: Any, flow_net: Any, image: np.ndarray, repeats: int) -> dict[str, Any]:
    """Per stage of one frame: median ms over ``repeats`` and GMAC (multiply-adds counted by
    ``torch.utils.flop_counter``, load-independent), for the key path and the non-key path piece by piece,
    with each path's sums and the non-key / key ratios (``floor_gmac_ratio``: what the non-key frame
    must still compute, as a share of the key frame's work)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from instaseg_ros.models.yolact.temporal import key_pass, transformed_levels, warp_prototypes

    net = seg._net
    bb = net.backbone
    fn = flow_net.to(seg.device).eval()
    times: dict[str, list[float]] = {}
    gmac: dict[str, float] = {}

    def timed(name: str, f: Any) -> Any:
        if name not in gmac:
            with FlopCounterMode(display=False) as fc:
                f()
            gmac[name] = fc.get_total_flops() / 2e9
        t0 = time.perf_counter()
        out = f()
        times.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        return out

    with torch.inference_mode():
        for _ in range(repeats + 1):
            x, metas = timed("preprocess", lambda: seg.preprocess([image]))
            x = x.contiguous(memory_format=torch.channels_last)
            if hasattr(bb, "_preconv"):  # Darknet: its pre-conv as the stem
                h = timed("stem", lambda x=x: bb._preconv(x))
            else:
                h = timed("stem", lambda x=x: bb.maxpool(bb.relu(bb.bn1(bb.conv1(x)))))
            feats: list[Any] = []
            names = ["backbone_stage1", "backbone_stage2_C3", "backbone_stage3_C4", "backbone_stage4_C5"]
            for i in range(len(bb.layers)):
                name = names[i] if len(bb.layers) == 4 else f"backbone_stage{i + 1}"
                feats = timed(name, lambda f=feats, h=h, i=i: net.backbone_resume(f, h, i + 1))
            c345 = [feats[i] for i in net.selected_layers]
            lat = timed("lateral_C3", lambda c=c345: net.fpn.lat_layers[-1](c[0]))
            merged, _ = timed("fpn_phase1", lambda c=c345: net.fpn.lateral_phase(c))
            p = timed("fpn_phase2", lambda m=merged: net.fpn.output_phase(m))
            timed("proto_net", lambda p=p: net.proto_net(p[0]))
            timed("head", lambda p=p: [net.prediction_layers[0](f) for f in p])
            raw = net.heads(p)
            timed("postprocess", lambda r=raw, m=metas: seg.postprocess(r, m))
            _, key, _ = key_pass(net, x)
            key.reduced = fn.reduce(key.lateral)
            flows = timed("flow_net", lambda k=key, la=lat: fn(la, k.reduced, key_reduced=True))
            timed("warp+P3", lambda k=key, la=lat, f=flows: transformed_levels(la, k, f))
            timed("warp_proto", lambda k=key, f=flows: warp_prototypes(k.proto, f[0][0]))
    ms = {k: float(np.median(v[1:])) for k, v in times.items()}
    out: dict[str, Any] = {"ms": ms, "gmac": gmac}
    for kind, stages in (("key", KEY_STAGES), ("nonkey", NONKEY_STAGES)):
        present = [k for k in stages if k in ms]
        out[f"{kind}_ms_sum"] = sum(ms[k] for k in present)
        out[f"{kind}_gmac_sum"] = sum(gmac[k] for k in present)
    out["sum_ms_ratio"] = out["nonkey_ms_sum"] / out["key_ms_sum"]
    out["floor_gmac_ratio"] = out["nonkey_gmac_sum"] / out["key_gmac_sum"]
    return out


def onnx_timing(seg: Any, flow_net: Any, images: list[np.ndarray], threads: int) -> dict[str, float]:
    """ONNX Runtime (CPU EP, ``threads`` intra-op threads) key vs non-key graph latency (ms), alternating on
    ``images`` (preprocessing and post-processing not included)."""
    import tempfile

    import onnxruntime as ort

    from instaseg_ros.models.yolact.temporal import export_temporal_onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        key_path, nonkey_path = export_temporal_onnx(seg, flow_net, tmp)
        key = ort.InferenceSession(str(key_path), so, providers=["CPUExecutionProvider"])
        nonkey = ort.InferenceSession(str(nonkey_path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in key.get_outputs()]
    times: dict[str, list[float]] = {"key": [], "nonkey": []}
    state: dict[str, np.ndarray] = {}
    for i, image in enumerate(images):
        x = seg.preprocess([image])[0].cpu().numpy()
        t0 = time.perf_counter()
        if i % 2 == 0:
            state = dict(zip(names, key.run(None, {"input": x})))
            times["key"].append((time.perf_counter() - t0) * 1e3)
        else:
            nonkey.run(None, {"input": x, "key_p4": state["key_p4"], "key_p5": state["key_p5"],
                              "key_reduced": state["key_reduced"]})  # fmt: skip
            times["nonkey"].append((time.perf_counter() - t0) * 1e3)
    out = {f"{k}_ms_median": _pct(v[1:], 50) for k, v in times.items()}  # first of each: warm-up
    out.update({f"{k}_ms_p95": _pct(v[1:], 95) for k, v in times.items()})
    out["nonkey_over_key"] = out["nonkey_ms_median"] / out["key_ms_median"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=16)
    ap.add_argument("--min-length", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=45)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--r50-frames", type=int, default=60)
    ap.add_argument("--skip-r50", action="store_true")
    ap.add_argument("--onnx", type=int, default=0, metavar="N",
                    help="R50: also time the exported key / non-key graphs on ONNX Runtime over N frames")
    ap.add_argument("--skip-shipped", action="store_true")
    ap.add_argument("--flownet", default=str(FLOWNET), help="flow net of the shipped model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-interval", type=int, default=10)
    ap.add_argument("--change-threshold", type=float, default=None, help="default: the policy's")
    ap.add_argument("--flow-threshold", type=float, default=None, help="default: the policy's")
    ap.add_argument("--score-threshold", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=5, help="stage breakdown repeats")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "temporal_cpu.json"))
    args = ap.parse_args(argv)

    import torch

    from instaseg_ros.core.segmenter import InferenceParams
    from instaseg_ros.evaluation.benchmark.machine import machine_info
    from instaseg_ros.evaluation.benchmark.tables import write_results
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.models.yolact.temporal import (
        FeatFlowNet,
        FlowNetConfig,
        KeyframePolicyConfig,
        load_flow_net,
    )

    torch.set_num_threads(args.threads)
    defaults = KeyframePolicyConfig()
    if args.change_threshold is None:
        args.change_threshold = defaults.change_threshold
    if args.flow_threshold is None:
        args.flow_threshold = defaults.flow_threshold
    payload: dict[str, Any] = {"machine": machine_info(), "args": vars(args), "results": {}}
    params = InferenceParams(score_threshold=args.score_threshold, top_k=100)
    t_start = time.time()
    sequences = _stream(args) if not args.skip_shipped else []

    if not args.skip_shipped:
        if not Path(args.flownet).exists():
            print(f"missing {args.flownet} (config/train/flownet_*.yaml)", file=sys.stderr)
            return 1
        seg = load_model("yolact", str(SHIPPED))
        fn, _ = load_flow_net(args.flownet)
        print(f"shipped YOLACT-SE: {sum(len(s) for s in sequences)} frames x 5 policies", file=sys.stderr)
        for mode in ("bags", "cuts"):
            print(f"  stream: {mode}", file=sys.stderr)
            res = run_stream(seg, fn, _policies(args), sequences, params, with_ap=True, bags=mode == "bags")
            if mode == "bags":
                res["stages"] = stage_breakdown(seg, fn, sequences[0][0].image, args.repeats)
            payload["results"][f"yolact_se_r18_indoor_256_{mode}"] = res

    if not args.skip_r50:
        from instaseg_ros.data.synthetic import SynthConfig, generate_sequence

        cfg = {"backbone": "resnet50", "num_classes": 80, "input_size": 550, "attention": False}
        torch.manual_seed(0)
        seg = load_model("yolact", None, cfg)
        fn = FeatFlowNet(FlowNetConfig(256, 64, 64))
        n = args.r50_frames
        vga = SynthConfig(width=640, height=480)
        seqs = [generate_sequence((args.seed, 1000 + k), min(30, n - 30 * k), vga)
                for k in range((n + 29) // 30)]
        print(f"R50 YOLACT 550 (random weights): {n} frames, interval 5", file=sys.stderr)
        pol = {"interval5": (KeyframePolicyConfig(keyframe_interval=5), False, False),
               "interval5_proto": (KeyframePolicyConfig(keyframe_interval=5), True, False)}  # fmt: skip
        res = run_stream(seg, fn, pol, seqs, InferenceParams(), with_ap=False)
        res["stages"] = stage_breakdown(seg, fn, seqs[0][0].image, args.repeats)
        res["weights"] = "random (timing only)"
        if args.onnx:
            print("R50 YOLACT 550: ONNX Runtime key / non-key graphs", file=sys.stderr)
            res["onnxruntime"] = onnx_timing(seg, fn, [f.image for f in seqs[0][: args.onnx]], args.threads)
        payload["results"]["yolact_r50_550_random"] = res

    payload["seconds"] = time.time() - t_start
    payload["machine"]["loadavg_end"] = list(__import__("os").getloadavg())
    print_tables(payload)
    path = write_results(args.out, payload)
    print(f"wrote {path}")
    return 0


def print_tables(payload: dict[str, Any]) -> None:
    m = payload["machine"]
    print(f"CPU: {m['cpu']}, torch threads {m['torch_threads']}, load {m['loadavg']} -> {m['loadavg_end']}")
    for model, res in payload["results"].items():
        print(f"\n{model}")
        print(f"{'policy':<16} {'key%':>5} {'key ms med/p95':>16} {'non-key ms med/p95':>19} {'ratio':>6} "
              f"{'fps':>6} {'box AP':>7} {'mask AP':>8} {'mask AP cut':>11} {'mask AP nk':>10}")  # fmt: skip
        for name, st in res.items():
            if not isinstance(st, dict) or "frames" not in st:
                continue
            a = st.get("ap_all", {})
            c = st.get("ap_after_cut", {})
            nk = st.get("ap_interval5_nonkey", {})
            nan = float("nan")
            print(f"{name:<16} {100 * st['key_ratio']:5.1f} "
                  f"{st['key_ms_median']:7.1f}/{st['key_ms_p95']:<8.1f} "
                  f"{st['nonkey_ms_median']:9.1f}/{st['nonkey_ms_p95']:<9.1f} {st['nonkey_over_key']:6.2f} "
                  f"{st['throughput_fps']:6.2f} {a.get('box', nan):7.3f} {a.get('mask', nan):8.3f} "
                  f"{c.get('mask', nan):11.3f} {nk.get('mask', nan):10.3f}")  # fmt: skip
        stages = res.get("stages", {})
        if stages:
            print(f"{'stage':<20} {'ms':>8} {'GMAC':>7}  on key / non-key frames")
            for k, v in stages["ms"].items():
                kinds = "/".join(n for n, ss in (("key", KEY_STAGES), ("non-key", NONKEY_STAGES)) if k in ss)
                print(f"{k:<20} {v:8.1f} {stages['gmac'][k]:7.2f}  {kinds or '(prototype reuse only)'}")
            print(f"sum key {stages['key_ms_sum']:.1f} ms / {stages['key_gmac_sum']:.2f} GMAC, non-key "
                  f"{stages['nonkey_ms_sum']:.1f} ms / {stages['nonkey_gmac_sum']:.2f} GMAC: ratio "
                  f"{stages['sum_ms_ratio']:.2f} (time), {stages['floor_gmac_ratio']:.2f} (GMAC)")
        o = res.get("onnxruntime")
        if o:
            print(f"ONNX Runtime graphs: key {o['key_ms_median']:.1f} ms, "
                  f"non-key {o['nonkey_ms_median']:.1f} ms (ratio {o['nonkey_over_key']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
