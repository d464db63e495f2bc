"""INT8 vs FP32 on ONNX Runtime (CPU): speed ratio and mask AP change, measured side by side.

    python benchmarks/bench_int8.py [--runs 20] [--heldout 300] [--calib DIR] [--skip-r50]

* the shipped YOLACT-SE (models/yolact_se_r18_indoor.pth): network time on 320x240 synthetic scenes,
  FP32 and INT8 interleaved, then box/mask AP of both on the 300 held-out scenes (seed 2000);
* YOLACT R50 550 with random (calibrated) weights: network time only (no AP without training).

Calibration: ``--calib`` (a folder or COCO JSON), default 48 generated training-style scenes (seed 4242,
never the held-out seed). One thread, warm-up first; JSON to benchmarks/results/int8_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _calibration_folder(n: int = 48) -> str:
    import cv2

    from instaseg_ros.data.synthetic import SynthConfig, generate_scene

    d = Path(tempfile.mkdtemp(prefix="instaseg_calib_"))
    for i in range(n):
        cv2.imwrite(
            str(d / f"c{i:03d}.png"), generate_scene((4242, i), SynthConfig(width=320, height=240)).image
        )
    return str(d)


def _net_times(segs: dict, inputs: list, runs: int) -> dict[str, dict[str, float]]:
    """Median/p95 ms of ``forward_raw`` per segmenter, interleaved over ``inputs``."""
    times: dict[str, list[float]] = {k: [] for k in segs}
    for seg in segs.values():  # warm-up
        for _ in range(2):
            seg.forward_raw(inputs[0])
    for r in range(runs):
        x = inputs[r % len(inputs)]
        for name, seg in segs.items():
            t = time.perf_counter()
            seg.forward_raw(x)
            times[name].append((time.perf_counter() - t) * 1000)
    return {
        k: {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95))} for k, v in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--heldout", type=int, default=300, help="held-out scenes for AP (0 = skip)")
    ap.add_argument("--calib", default=None)
    ap.add_argument("--skip-r50", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/int8_cpu.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from instaseg_ros.data.synthetic import SynthConfig, generate_scene
    from instaseg_ros.evaluation.benchmark import machine_info
    from instaseg_ros.models.loading import load_model
    from instaseg_ros.training.heldout import evaluate_heldout

    calib = args.calib or _calibration_folder()
    weights = str(ROOT / "models/yolact_se_r18_indoor.pth")
    opts = {"threads": 1}
    fp32 = load_model("yolact", weights, backend="onnxruntime", backend_options=opts)
    int8 = load_model(
        "yolact", weights, backend="onnxruntime", precision="int8", backend_options={**opts, "calib": calib}
    )
    images = [generate_scene((2000, i), SynthConfig(width=320, height=240)).image for i in range(10)]
    inputs = [fp32.preprocess([im])[0] for im in images]
    doc: dict = {"benchmark": "bench_int8", "machine": machine_info(), "calibration": calib, "threads": 1}
    t = _net_times({"fp32": fp32, "int8": int8}, inputs, args.runs)
    doc["shipped"] = {"network": t, "speedup": t["fp32"]["median_ms"] / t["int8"]["median_ms"]}
    print(
        f"shipped YOLACT-SE 256: network fp32 {t['fp32']['median_ms']:.1f} ms, "
        f"int8 {t['int8']['median_ms']:.1f} ms"
        f" -> {doc['shipped']['speedup']:.2f}x"
    )
    if args.heldout:
        for name, seg in (("fp32", fp32), ("int8", int8)):
            m = evaluate_heldout(seg, args.heldout)
            doc["shipped"][f"ap_{name}"] = {"box": m["bbox"]["AP"], "mask": m["segm"]["AP"],
                                            "mask_per_class": m["segm"]["per_class"]}  # fmt: skip
        a, b = doc["shipped"]["ap_fp32"], doc["shipped"]["ap_int8"]
        doc["shipped"]["mask_ap_change_points"] = 100 * (b["mask"] - a["mask"])
        print(
            f"held-out {args.heldout} scenes: mask AP fp32 {100 * a['mask']:.1f}, "
            f"int8 {100 * b['mask']:.1f}; "
            f"box AP {100 * a['box']:.1f} -> {100 * b['box']:.1f}"
        )
    if not args.skip_r50:
        from bench_yolact import decisive_random_model, test_image

        from instaseg_ros.models.yolact import YolactConfig, YolactSegmenter
        from instaseg_ros.runtime import wrap_segmenter

        img = test_image(640, 480)
        cfg = YolactConfig(backbone="resnet50", input_size=550, attention=False)
        seg = YolactSegmenter(decisive_random_model(cfg, img), cfg)
        r50 = {
            "fp32": wrap_segmenter(seg, "onnxruntime", threads=1),
            "int8": wrap_segmenter(seg, "onnxruntime", threads=1, precision="int8", calib=calib),
        }
        t = _net_times(r50, [seg.preprocess([img])[0]], max(5, args.runs // 4))
        doc["r50_550_random"] = {"network": t, "speedup": t["fp32"]["median_ms"] / t["int8"]["median_ms"]}
        print(
            f"YOLACT R50 550 (random weights): network fp32 {t['fp32']['median_ms']:.0f} ms, "
            f"int8 {t['int8']['median_ms']:.0f} ms -> {doc['r50_550_random']['speedup']:.2f}x"
        )
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
