"""Where should YOLACT's decoding and Fast NMS run: in the exported graph or in our post-processing?

Measures, for YOLACT (default ResNet-50, 550 px, 80 classes, random init) on generated images:

* the exported network through ONNX Runtime (CPU), as exported (raw logits), and with the
  per-prior softmax + max-score + box decoding of all P priors appended to the graph;
* our post-processing split into its steps: softmax/max/threshold over all priors, box decoding
  of the candidates, Fast NMS, mask assembly + ``Instances``.

Prints a table and writes JSON (machine, sizes, warm-up, runs, median, p95).

    python benchmarks/bench_yolact_postprocess_split.py [--backbone resnet50] [--size 550] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from instaseg_ros.core.segmenter import InferenceParams
from instaseg_ros.evaluation.benchmark import Stat, machine_info, sample_images
from instaseg_ros.models import build_segmenter
from instaseg_ros.models.yolact import assemble_masks
from instaseg_ros.ops.boxes import decode_boxes
from instaseg_ros.ops.nms import fast_nms
from instaseg_ros.runtime import create_backend


class _WithDecode(torch.nn.Module):
    """Graph variant: network + softmax + best score/class + decoded boxes for all priors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        p = torch.softmax(out["conf"], -1)[..., 1:]
        best, cls = p.max(-1)
        pri = out["priors"].unsqueeze(0)
        loc = out["loc"]
        cxcy = pri[..., :2] + loc[..., :2] * 0.1 * pri[..., 2:]
        wh = pri[..., 2:] * torch.exp(loc[..., 2:] * 0.2)
        boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1)
        return best, cls, p, boxes, out["mask"], out["proto"]


def timeit(fn, warmup: int, runs: int) -> Stat:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return Stat.of(ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=550)
    # random-init weights score every class ~1/81: 0.015 lets ~100 detections through (full load)
    ap.add_argument("--score-threshold", type=float, default=0.015)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/yolact_postprocess_split.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    seg = build_segmenter("yolact", config={"backbone": args.backbone, "input_size": args.size})
    params = InferenceParams(score_threshold=args.score_threshold, top_k=args.top_k)
    img = sample_images(None, 1, (640, 480))
    x, metas = seg.preprocess(img)
    h, w = metas[0]["size"]
    ort_plain = create_backend("onnxruntime", seg)
    raw = ort_plain(x)

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decode.onnx"
        torch.onnx.export(_WithDecode(seg.model).eval(), (x,), str(path), dynamo=False, opset_version=17)
        so = ort.SessionOptions()
        so.intra_op_num_threads = ort_plain.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        in_name = sess.get_inputs()[0].name
        net_plain = timeit(lambda: ort_plain(x), args.warmup, args.runs)
        net_decode = timeit(lambda: sess.run(None, {in_name: xn}), args.warmup, args.runs)

    conf, loc, pri = raw["conf"][0], raw["loc"][0], raw["priors"]
    state: dict = {}

    def s_softmax():
        p = torch.softmax(conf, -1)[:, 1:]
        best = p.max(1).values
        state["cand"] = best > params.score_threshold
        state["p"] = p

    def s_decode():
        c = state["cand"]
        state["boxes"] = decode_boxes(loc[c], pri[c])
        state["scores"] = state["p"][c].t().contiguous()
        state["coeffs"] = raw["mask"][0][c]

    def s_nms():
        idx, classes, sc = fast_nms(
            state["boxes"],
            state["scores"],
            params.nms_threshold,
            seg.cfg.nms_top_k,
            params.top_k,
            score_threshold=params.score_threshold,  # as YolactSegmenter does
        )
        keep = sc > params.score_threshold
        state["idx"] = idx[keep]

    def s_masks():
        i = state["idx"]
        if i.numel() == 0:
            return
        assemble_masks(raw["proto"][0], state["coeffs"][i], state["boxes"][i], (h, w), params.mask_threshold)

    with torch.inference_mode():
        s_softmax()
        s_decode()
        s_nms()
        stats = {
            "softmax_max_threshold_all_priors": timeit(s_softmax, args.warmup, args.runs),
            "decode_candidates": timeit(s_decode, args.warmup, args.runs),
            "fast_nms": timeit(s_nms, args.warmup, args.runs),
            "mask_assembly": timeit(s_masks, args.warmup, args.runs),
            "postprocess_total": timeit(lambda: seg.postprocess(raw, metas, params), args.warmup, args.runs),
        }
    n_cand = int(state["cand"].sum())
    n_det = int(state["idx"].numel())
    rows = {"ort_network_raw": net_plain, "ort_network_with_softmax_decode": net_decode, **stats}
    print(
        f"YOLACT {args.backbone} {args.size}, image 640x480, threads {torch.get_num_threads()}, "
        f"candidates {n_cand} of {pri.shape[0]} priors, detections {n_det}"
    )
    print(f"{'stage':<36} {'median ms':>10} {'p95 ms':>10}")
    for k, v in rows.items():
        print(f"{k:<36} {v.median_ms:>10.2f} {v.p95_ms:>10.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": machine_info(),
        "model": {"backbone": args.backbone, "input_size": args.size, "weights": None},
        "image_size": [640, 480], "warmup": args.warmup, "runs": args.runs,
        "score_threshold": args.score_threshold, "top_k": args.top_k,
        "candidates": n_cand, "priors": int(pri.shape[0]), "detections": n_det,
        "stages_ms": {k: {"median": v.median_ms, "p95": v.p95_ms} for k, v in rows.items()},
    }, indent=1) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
