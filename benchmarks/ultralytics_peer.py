"""Peer side of ``bench_ultralytics.py``: Ultralytics YOLO11-seg, run in its own virtual environment.

Ultralytics is AGPL-3.0: this file is the only one that imports it, it is never imported by the
``instaseg_ros`` package or by the benchmark's main process, and it runs only as a child process of
``bench_ultralytics.py`` in the separate virtual environment that script creates.

Protocol: one JSON object per line on stdin, one JSON answer per line on the original stdout (anything
Ultralytics prints goes to stderr). Operations:

* ``{"op": "load", "key", "imgsz", "backend": "torch"|"onnxruntime"|"onnxruntime_int8", "seed", "nc",
  "retina", "cls_mean", "cls_q999", "calib"}``: build YOLO11n-seg from ``yolo11n-seg.yaml`` with random
  weights (seeded, then calibrated in the spirit of our ``decisive_random_model``, see
  :func:`_calibrate_random`), optionally export it to ONNX (INT8: ``quantize=8`` calibrated on the ``calib``
  folder) with Ultralytics' own exporter and load that file; answers the parameter count and the network
  input shape.
* ``{"op": "count", "key", "conf", "index"}``: number of detections on image ``index`` at ``conf`` (for
  calibrating the threshold).
* ``{"op": "run", "key", "index", "conf"}``: one end-to-end ``YOLO.predict`` on image ``index`` (as
  yolo_ros calls it: letterbox pre-processing, network, NMS, masks) plus conversion of the result to
  NumPy (boxes, scores, classes, boolean masks); answers wall and process-CPU milliseconds.
* ``{"op": "quit"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _protocol_stdout():
    """A private copy of stdout for answers; fd 1 then points at stderr so library prints stay out."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _limit_onnxruntime_threads(threads: int) -> None:
    """Ultralytics' AutoBackend opens ``onnxruntime.InferenceSession(w, providers=...)`` without session
    options, i.e. with all cores; inject ``intra_op_num_threads = threads`` (as our backend sets)."""
    import onnxruntime as ort

    base = ort.InferenceSession

    class OneThreadSession(base):  # type: ignore[misc, valid-type]
        def __init__(self, path_or_bytes: Any, sess_options: Any = None, *args: Any, **kw: Any) -> None:
            opts = sess_options or ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            super().__init__(path_or_bytes, opts, *args, **kw)

    ort.InferenceSession = OneThreadSession


def _letterbox(img: np.ndarray, imgsz: int):
    """BGR [H, W, 3] -> RGB [3, h, w] float in [0, 1]: resized to fit ``imgsz``, padded (114) to a multiple of
    32, as Ultralytics' PyTorch predictor does."""
    import cv2
    import torch

    h, w = img.shape[:2]
    s = imgsz / max(h, w)
    nw, nh = int(round(w * s)), int(round(h * s))
    pw, ph = -(-nw // 32) * 32 - nw, -(-nh // 32) * 32 - nh
    im = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    im = cv2.copyMakeBorder(im, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT,
                            value=(114, 114, 114))  # fmt: skip
    return torch.from_numpy(im[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255


def _calibrate_random(
    model: Any, images: list[np.ndarray], imgsz: int, seed: int, cls_mean: float, cls_q999: float
) -> None:
    """Make random YOLO11-seg outputs look like a trained model's (as our ``decisive_random_model`` does).

    A freshly initialised YOLO11 gives outputs that hardly vary across positions (BatchNorm with unit
    statistics after random convolutions), so: random BatchNorm affine parameters, then running
    statistics taken from the benchmark ``images`` (one forward pass of the batch in training mode), then
    each head level's outputs mapped linearly: class logits with median -> ``cls_mean`` and 99.9th
    percentile -> ``cls_q999`` (they are heavy-tailed; a std-based scale saturates thousands of scores at
    1.0), DFL box logits to std 2, mask coefficients to std 1 with mean 0.15 (so masks are not empty).
    """
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    x = torch.stack([_letterbox(im, imgsz) for im in images])
    with torch.no_grad():
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.weight.uniform_(0.3, 0.7, generator=g)
            m.bias.uniform_(-0.1, 0.1, generator=g)
            m.reset_running_stats()
            m.momentum = 1.0  # running statistics := this image's
        model.train()(x)
        model.eval()
        for m in bns:
            m.momentum = 0.03
        head = model.model[-1]
        layers = {
            "cls": [s[-1] for s in head.cv3],
            "box": [s[-1] for s in head.cv2],
            "coef": [s[-1] for s in head.cv4],
        }
        cap: dict[str, list[torch.Tensor]] = {k: [] for k in layers}
        hooks = [
            conv.register_forward_hook(lambda m, i, o, k=k: cap[k].append(o))
            for k, convs in layers.items()
            for conv in convs
        ]
        model(x)
        for hk in hooks:
            hk.remove()
        targets = {"box": (2.0, 0.0), "coef": (1.0, 0.15)}
        for k, convs in layers.items():  # per level: the initial biases differ by stride
            for conv, o in zip(convs, cap[k]):
                if k == "cls":  # heavy-tailed: median -> cls_mean, 99.9th percentile -> cls_q999
                    q50, q999 = torch.quantile(o.flatten(), torch.tensor([0.5, 0.999])).tolist()
                    f, centre, mean_t = (cls_q999 - cls_mean) / (q999 - q50), q50, cls_mean
                else:
                    std_t, mean_t = targets[k]
                    f, centre = std_t / float(o.std()), float(o.mean())
                conv.weight.mul_(f)
                conv.bias.copy_((conv.bias - centre) * f + mean_t)


class Peer:
    def __init__(self, images: list[np.ndarray], workdir: Path, threads: int) -> None:
        self.images = images
        self.workdir = workdir
        self.threads = threads
        self.models: dict[str, dict[str, Any]] = {}

    def load(self, key: str, imgsz: int, backend: str, seed: int, nc: int, retina: bool,
             cls_mean: float, cls_q999: float, calib: str | None = None, weights: str | None = None,
             max_det: int = 300) -> dict[str, Any]:  # fmt: skip
        """``weights`` (a trained ``.pt``): load it instead of random calibrated weights (``nc``, ``seed``,
        ``cls_*`` unused)."""
        import torch
        from ultralytics import YOLO
        from ultralytics.nn.tasks import SegmentationModel

        torch.manual_seed(seed)
        if weights:
            yolo = YOLO(weights, task="segment")
            nc = len(yolo.model.names)
        else:
            yolo = YOLO("yolo11n-seg.yaml", task="segment")
            if nc != len(yolo.model.names):
                yolo.model = SegmentationModel("yolo11n-seg.yaml", nc=nc, verbose=False)
            _calibrate_random(yolo.model, self.images, imgsz, seed, cls_mean, cls_q999)
        params = sum(p.numel() for p in yolo.model.parameters())
        info: dict[str, Any] = {"params": params, "nc": nc}
        if backend in ("onnxruntime", "onnxruntime_int8"):
            t = time.perf_counter()
            opts: dict[str, Any] = {}
            if backend == "onnxruntime_int8":  # Ultralytics' own static INT8 (ONNX Runtime quantize_static)
                opts = {"quantize": 8, "data": self._calib_yaml(calib, nc)}
            path = Path(
                yolo.export(format="onnx", imgsz=imgsz, device="cpu", simplify=True, verbose=False, **opts)
            )
            dest = self.workdir / f"{key}.onnx"
            shutil.move(str(path), dest)
            info["export_s"] = time.perf_counter() - t
            info["onnx"] = str(dest)
            yolo = YOLO(str(dest), task="segment")
        self.models[key] = {"yolo": yolo, "imgsz": imgsz, "retina": retina, "max_det": max_det}
        self._predict(key, self.images[0], 0.5)  # builds the predictor (and its warm-up)
        pred = yolo.predictor
        info["input_shape"] = list(pred.preprocess([self.images[0]]).shape)
        session = getattr(pred.model, "session", None)
        if session is not None:
            info["ort_intra_op_threads"] = session.get_session_options().intra_op_num_threads
            info["ort_providers"] = session.get_providers()
        return info

    def _calib_yaml(self, folder: str | None, nc: int) -> str:
        """A dataset YAML whose train/val images are the calibration ``folder`` (no labels needed)."""
        if not folder:
            raise ValueError("backend onnxruntime_int8 needs calib (an image folder)")
        names = ", ".join(f"{i}: class{i}" for i in range(nc))
        path = self.workdir / "int8_calibration.yaml"
        path.write_text(f"path: {folder}\ntrain: .\nval: .\nnames: {{{names}}}\n")
        return str(path)

    def _predict(self, key: str, img: np.ndarray, conf: float):
        m = self.models[key]
        r = m["yolo"].predict(
            img, imgsz=m["imgsz"], conf=conf, retina_masks=m["retina"], device="cpu", verbose=False,
            max_det=m["max_det"],
        )[0]
        boxes = r.boxes.xyxy.cpu().numpy()
        scores = r.boxes.conf.cpu().numpy()
        classes = r.boxes.cls.cpu().numpy().astype(np.int64)
        if r.masks is not None:
            masks = r.masks.data.cpu().numpy() > 0.5
        else:
            masks = np.zeros((0, *img.shape[:2]), bool)
        return r, boxes, scores, classes, masks

    def count(self, key: str, conf: float, index: int) -> dict[str, Any]:
        return {"dets": len(self._predict(key, self.images[index], conf)[1])}

    def run(self, key: str, index: int, conf: float) -> dict[str, Any]:
        img = self.images[index]
        c, t = time.process_time(), time.perf_counter()
        r, boxes, _, _, masks = self._predict(key, img, conf)
        wall = (time.perf_counter() - t) * 1000
        cpu = (time.process_time() - c) * 1000
        return {"wall_ms": wall, "cpu_ms": cpu, "dets": len(boxes), "mask_shape": list(masks.shape),
                "speed": dict(r.speed)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", required=True, help="folder of the benchmark images (read sorted)")
    ap.add_argument("--workdir", required=True, help="where ONNX exports are written")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    out = _protocol_stdout()
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    _limit_onnxruntime_threads(args.threads)
    from ultralytics import __version__ as ul_version
    from ultralytics import settings

    settings.update({"sync": False})
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".png", ".jpg"))
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    peer = Peer(images, workdir, args.threads)
    hello = {"ok": True, "ultralytics": ul_version, "torch": torch.__version__, "images": len(images),
             "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0]}  # fmt: skip
    try:
        import onnxruntime

        hello["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    out.write(json.dumps(hello) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop("op")
        if op == "quit":
            break
        try:
            res = getattr(peer, op)(**req)
            out.write(json.dumps({"ok": True, **res}) + "\n")
        except Exception as e:  # answered, so the main process can report it and stop cleanly
            out.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
