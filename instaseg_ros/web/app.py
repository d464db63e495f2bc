"""The Gradio app behind ``instaseg web``: try a model on images, a video or a webcam without ROS.

Layout: model settings (family, weights, backend, device) and run-time controls (thresholds, top-k,
class filter) on the left; tabs for images, video, webcam and an ``eval-bag`` report on the right.
Changing a run-time control re-runs the last images with the cached model (never a reload: models
are cached by family/weights/backend/device in :class:`instaseg_ros.web.inference.ModelCache`).
Every handler turns bad input into a message in the ``#status`` box and returns; the server keeps
serving.
"""

from __future__ import annotations

import functools
import html
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from instaseg_ros.web import inference as wi
from instaseg_ros.web import labelstudio as ls

BACKENDS = ["torch", "onnxruntime"]
DEVICES = ["cpu", "auto", "cuda"]
VIDEO_MAX_FRAMES = 300


def _numbered(fn: Any) -> Any:
    """Decorator: prefix the status (the last returned value) with the run number."""

    @functools.wraps(fn)
    def wrapper(self: WebApp, *args: Any, **kwargs: Any) -> tuple:
        out = fn(self, *args, **kwargs)
        return (*out[:-1], self._number(out[-1]))

    return wrapper


class WebApp:
    """State shared by the handlers: the model cache, the output folder and the server's limits.

    Args:
        work_dir: where per-run output folders are created (must be served: see ``allowed_paths``).
        report_root: ``eval-bag`` report folders must lie inside it.
        max_pixels: largest upload decoded.
    """

    def __init__(
        self,
        work_dir: str | Path | None = None,
        report_root: str | Path = ".",
        max_pixels: int = wi.DEFAULT_MAX_PIXELS,
    ) -> None:
        self.work_dir = Path(work_dir or Path(tempfile.gettempdir()) / "instaseg_web").resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.report_root = Path(report_root).resolve()
        self.max_pixels = int(max_pixels)
        self.cache = wi.ModelCache()
        self.runs = 0
        self._runs_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers
    def _number(self, status: str) -> str:
        """``Run N: status``; the number tells one result from the next in the page."""
        with self._runs_lock:
            self.runs += 1
            return f"Run {self.runs}: {status}"

    def _run_dir(self) -> Path:
        d = self.work_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        d.mkdir(parents=True)
        return d

    def _model(
        self,
        family: str,
        weights_choice: str,
        weights_path: str,
        upload: str | None,
        backend: str,
        device: str,
    ) -> tuple[Any, wi.ModelKey]:
        weights = wi.resolve_weights(family, weights_choice, weights_path, upload)
        key = wi.ModelKey(family, weights, backend, device)
        return self.cache.get(key), key

    # ------------------------------------------------------------------ images
    @_numbered
    def segment_images(
        self,
        files: list[str] | None,
        family: str,
        weights_choice: str,
        weights_path: str,
        upload: str | None,
        backend: str,
        device: str,
        score: float,
        nms: float,
        mask: float,
        top_k: float,
        classes: str,
        ls_prefix: str = ls.LOCAL_FILES_PREFIX,
    ) -> tuple[list[tuple[str, str]], list[list[Any]], str | None, list[str] | None, list[str] | None, str]:
        """Uploaded image files -> (overlays, table rows, COCO JSON, id PNGs, Label Studio files, status)."""
        empty: tuple = ([], [], None, None, None)
        if not files:
            return (*empty, "Upload one or more images, then press **Segment**.")
        try:
            seg, key = self._model(family, weights_choice, weights_path, upload, backend, device)
            params = wi.make_params(score, nms, mask, top_k, wi.parse_class_filter(classes, seg.class_names))
        except wi.WebInputError as e:
            return (*empty, f"**Error:** {e}")
        import cv2

        from instaseg_ros.core.draw import draw_instances

        out = self._run_dir()
        gallery, rows, named, id_pngs, tasks, problems = [], [], [], [], [], []
        version = wi.model_version(key)
        t0 = time.perf_counter()
        for k, f in enumerate(files):
            name = Path(f).name
            try:
                img = wi.read_image_file(f, self.max_pixels)
                inst = seg.segment([img], params)[0]
            except (wi.WebInputError, ValueError, RuntimeError) as e:  # RuntimeError: torch (memory, device)
                problems.append(str(e) if isinstance(e, wi.WebInputError) else f"{name}: {e}")
                continue
            stem = f"{k:03d}_{Path(name).stem}"
            overlay = out / f"{stem}_overlay.png"
            cv2.imwrite(str(overlay), draw_instances(img, inst))
            gallery.append((str(overlay), f"{name}: {len(inst)} instances"))
            id_pngs.append(str(wi.write_id_png(out / f"{stem}_instance_ids.png", inst)))
            rows += wi.instance_rows(name, inst)
            named.append((name, inst))
            tasks.append(ls.make_task(f"{ls_prefix}{name}", inst, version))
        dt = time.perf_counter() - t0
        if not named:
            return (*empty, "**Error:** " + "; ".join(problems))
        coco = wi.dump_json(out / "coco_results.json", wi.coco_results(named, seg.class_names, version))
        ls_files = [str(p) for p in ls.write_tasks(out, tasks, seg.class_names)]
        n_inst = sum(len(i) for _, i in named)
        status = (
            f"{len(named)} image(s), {n_inst} instance(s) in {dt:.2f} s with `{version}` "
            f"({key.backend}, {key.device}); score >= {params.score_threshold:.2f}, top-k {params.top_k}; "
            f"models loaded since start: {self.cache.loads}"
        )
        if problems:
            status += "\n\n**Error:** " + "; ".join(problems)
        return gallery, rows, str(coco), id_pngs, ls_files, status

    # ------------------------------------------------------------------ video
    @_numbered
    def segment_video(
        self,
        video: str | None,
        family: str,
        weights_choice: str,
        weights_path: str,
        upload: str | None,
        backend: str,
        device: str,
        score: float,
        nms: float,
        mask: float,
        top_k: float,
        classes: str,
        max_frames: float = 100,
    ) -> tuple[str | None, str | None, str]:
        """A video file -> (overlay video, COCO JSON of every frame, status); at most ``max_frames``."""
        if not video:
            return None, None, "Upload a video, then press **Segment video**."
        import cv2

        from instaseg_ros.core.draw import draw_instances

        try:
            seg, key = self._model(family, weights_choice, weights_path, upload, backend, device)
            params = wi.make_params(score, nms, mask, top_k, wi.parse_class_filter(classes, seg.class_names))
        except wi.WebInputError as e:
            return None, None, f"**Error:** {e}"
        name = Path(video).name
        cap = cv2.VideoCapture(str(video))
        try:
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if not ok or frame is None:
                return (
                    None,
                    None,
                    (
                        f"**Error:** {name}: cannot read the video (not a video, or a codec/container "
                        "OpenCV's FFmpeg cannot decode)"
                    ),
                )
            h, w = frame.shape[:2]
            if w * h > self.max_pixels:
                return (
                    None,
                    None,
                    f"**Error:** {name}: {w}x{h} frames exceed the {self.max_pixels} pixel limit",
                )
            fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
            fps = fps if 0 < fps < 240 else 10.0
            out = self._run_dir()
            path, writer = _open_writer(out / "overlay", fps, (w, h))
            named = []
            t0 = time.perf_counter()
            while ok and len(named) < int(max_frames):
                if frame.shape[:2] != (h, w):
                    break
                try:
                    inst = seg.segment([frame], params)[0]
                except (ValueError, RuntimeError) as e:
                    writer.release()
                    return None, None, f"**Error:** {name} frame {len(named)}: {e}"
                writer.write(draw_instances(frame, inst))
                named.append((f"{name}#{len(named)}", inst))
                ok, frame = cap.read()
            writer.release()
        finally:
            cap.release()
        dt = time.perf_counter() - t0
        version = wi.model_version(key)
        coco = wi.dump_json(out / "coco_results.json", wi.coco_results(named, seg.class_names, version))
        n_inst = sum(len(i) for _, i in named)
        return (
            str(path),
            str(coco),
            (
                f"{len(named)} frame(s) of {name}, {n_inst} instance(s) in {dt:.1f} s "
                f"({len(named) / max(dt, 1e-9):.1f} frames/s) with `{version}`"
            ),
        )

    # ------------------------------------------------------------------ webcam
    def segment_frame(
        self,
        frame: np.ndarray | None,
        family: str,
        weights_choice: str,
        weights_path: str,
        upload: str | None,
        backend: str,
        device: str,
        score: float,
        nms: float,
        mask: float,
        top_k: float,
        classes: str,
    ) -> tuple[np.ndarray | None, str]:
        """One webcam frame ([H, W, 3] RGB) -> (overlay RGB, status)."""
        if frame is None:
            return None, "Waiting for the webcam."
        from instaseg_ros.core.draw import draw_instances

        try:
            seg, key = self._model(family, weights_choice, weights_path, upload, backend, device)
            params = wi.make_params(score, nms, mask, top_k, wi.parse_class_filter(classes, seg.class_names))
            bgr = wi.rgb_to_bgr(frame)
            t0 = time.perf_counter()
            inst = seg.segment([bgr], params)[0]
        except (wi.WebInputError, ValueError, RuntimeError) as e:
            return None, f"**Error:** {e}"
        ms = (time.perf_counter() - t0) * 1000
        return draw_instances(bgr, inst)[:, :, ::-1], f"{len(inst)} instance(s), {ms:.0f} ms"

    # ------------------------------------------------------------------ eval-bag report
    @_numbered
    def open_report(self, folder: str) -> tuple[str, str, dict | None, str | None, str]:
        """An ``eval-bag`` report folder -> (summary, embedded HTML, metrics, report copy, status)."""
        if not folder or not folder.strip():
            return "", "", None, None, "Type the path of an `instaseg eval-bag --out` folder."
        d = Path(folder.strip()).expanduser().resolve()
        if d != self.report_root and self.report_root not in d.parents:
            return (
                "",
                "",
                None,
                None,
                f"**Error:** {d} is outside the report root {self.report_root} (`--report-root`)",
            )
        if not d.is_dir():
            return "", "", None, None, f"**Error:** {d} is not a folder"
        report, summary, metrics = d / "report.html", d / "summary.md", d / "metrics.json"
        if not report.is_file() and not metrics.is_file():
            return (
                "",
                "",
                None,
                None,
                f"**Error:** {d} has no report.html or metrics.json (not an eval-bag report)",
            )
        md = summary.read_text(encoding="utf-8", errors="replace") if summary.is_file() else ""
        data = None
        if metrics.is_file():
            try:
                data = json.loads(metrics.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return md, "", None, None, f"**Error:** {metrics}: not valid JSON ({e})"
        frame, copy = "", None
        if report.is_file():
            text = report.read_text(encoding="utf-8", errors="replace")
            frame = (
                f'<iframe id="report-frame" srcdoc="{html.escape(text, quote=True)}" '
                'style="width:100%;height:720px;border:1px solid #ccc"></iframe>'
            )
            copy = self._run_dir() / "report.html"
            copy.write_text(text, encoding="utf-8")
        return md, frame, data, (str(copy) if copy else None), f"Opened {d}"


def _open_writer(stem: Path, fps: float, size: tuple[int, int]) -> tuple[Path, Any]:
    """A video writer browsers can play where OpenCV's FFmpeg has the codec (VP8 WebM), else MP4."""
    import cv2

    for ext, fourcc in ((".webm", "VP80"), (".mp4", "avc1"), (".mp4", "mp4v")):
        path = stem.with_suffix(ext)
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if w.isOpened():
            return path, w
        w.release()
    raise OSError("OpenCV cannot write any video format here")


def shipped_choices() -> list[str]:
    """The shipped checkpoints present in this installation (``models/...``)."""
    from instaseg_ros.core.resources import package_file

    out = []
    for rel in wi.SHIPPED_MODELS.values():
        try:
            package_file(rel)
            out.append(rel)
        except FileNotFoundError:
            pass
    return out


def build_app(app: WebApp | None = None) -> Any:
    """The ``gradio.Blocks`` page (not launched)."""
    import gradio as gr

    from instaseg_ros.models.registry import available_families

    app = app or WebApp()
    families = available_families()
    shipped = shipped_choices()
    with gr.Blocks(title="instaseg_ros", analytics_enabled=False) as demo:
        gr.Markdown(
            "# instaseg_ros: instance segmentation\n"
            "Upload images, a video or use the webcam. Thresholds, top-k and the class filter re-run "
            "without reloading the model."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                family = gr.Dropdown(families, value="yolact", label="Model family", elem_id="family")
                weights_choice = gr.Dropdown(
                    shipped, value=shipped[0] if shipped else None, label="Shipped weights", elem_id="weights"
                )
                weights_path = gr.Textbox(label="or a checkpoint path on the server", elem_id="weights-path")
                upload = gr.File(label="or upload a checkpoint (.pth)", elem_id="ckpt-upload")
                with gr.Row():
                    backend = gr.Dropdown(BACKENDS, value="torch", label="Backend", elem_id="backend")
                    device = gr.Dropdown(DEVICES, value="cpu", label="Device", elem_id="device")
                score = gr.Slider(0.0, 1.0, value=0.3, step=0.01, label="Score threshold", elem_id="score")
                nms = gr.Slider(0.05, 1.0, value=0.5, step=0.01, label="NMS IoU threshold", elem_id="nms")
                mask = gr.Slider(0.05, 0.95, value=0.5, step=0.01, label="Mask threshold", elem_id="mask")
                top_k = gr.Slider(1, 200, value=100, step=1, label="Top-k", elem_id="topk")
                classes = gr.Textbox(label="Class filter (comma-separated; empty = all)", elem_id="classes")
            with gr.Column(scale=3):
                status = gr.Markdown("Ready.", elem_id="status")
                model_inputs = [family, weights_choice, weights_path, upload, backend, device]
                controls = [score, nms, mask, top_k, classes]
                family.change(
                    lambda f: gr.Dropdown(value=wi.SHIPPED_MODELS.get(f)),
                    inputs=[family],
                    outputs=[weights_choice],
                    api_name=False,
                )
                with gr.Tabs():
                    with gr.Tab("Images", id="images"):
                        files = gr.File(label="Images", file_count="multiple", elem_id="image-files")
                        run = gr.Button("Segment", variant="primary", elem_id="run")
                        gallery = gr.Gallery(
                            label="Overlays",
                            columns=2,
                            object_fit="contain",
                            elem_id="overlays",
                            buttons=["download"],
                        )
                        table = gr.Dataframe(
                            headers=wi.TABLE_HEADERS,
                            datatype=[
                                "str",
                                "number",
                                "str",
                                "number",
                                "number",
                                "number",
                                "number",
                                "number",
                                "number",
                            ],
                            label="Instances (id = value in the instance-id PNG)",
                            interactive=False,
                            elem_id="instances",
                        )
                        with gr.Row():
                            coco = gr.File(label="COCO results JSON (RLE masks)", elem_id="coco-json")
                            ids = gr.File(
                                label="Instance-id PNGs (mono16)", file_count="multiple", elem_id="id-pngs"
                            )
                        with gr.Accordion("Label Studio pre-annotations", open=False):
                            ls_prefix = gr.Textbox(
                                ls.LOCAL_FILES_PREFIX,
                                label="Image URL prefix (file name appended)",
                                elem_id="ls-prefix",
                            )
                            ls_files = gr.File(
                                label="tasks.json + labeling_config.xml",
                                file_count="multiple",
                                elem_id="ls-files",
                            )
                        img_args = dict(
                            fn=app.segment_images,
                            inputs=[files, *model_inputs, *controls, ls_prefix],
                            outputs=[gallery, table, coco, ids, ls_files, status],
                        )
                        run.click(api_name="segment", **img_args)
                        for c in (score, nms, mask, top_k):
                            c.change(api_name=False, trigger_mode="always_last", **img_args)
                        classes.submit(api_name=False, **img_args)
                    with gr.Tab("Video", id="video"):
                        video = gr.Video(label="Video file", sources=["upload"], elem_id="video-in")
                        max_frames = gr.Slider(1, VIDEO_MAX_FRAMES, value=100, step=1, label="Frames at most")
                        run_video = gr.Button("Segment video", variant="primary", elem_id="run-video")
                        video_out = gr.Video(label="Overlay", elem_id="video-out")
                        video_coco = gr.File(label="COCO results JSON (all frames)")
                        run_video.click(
                            app.segment_video,
                            inputs=[video, *model_inputs, *controls, max_frames],
                            outputs=[video_out, video_coco, status],
                            api_name="segment_video",
                        )
                    with gr.Tab("Webcam", id="webcam"):
                        gr.Markdown(
                            "Where the browser offers a camera (a page served on 127.0.0.1 or HTTPS)."
                        )
                        cam = gr.Image(
                            sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="webcam"
                        )
                        cam_out = gr.Image(label="Overlay", type="numpy", elem_id="webcam-overlay")
                        cam.stream(
                            app.segment_frame,
                            inputs=[cam, *model_inputs, *controls],
                            outputs=[cam_out, status],
                            stream_every=0.5,
                            concurrency_limit=1,
                            api_name=False,
                        )
                    with gr.Tab("eval-bag report", id="report"):
                        folder = gr.Textbox(
                            label=f"Report folder (inside {app.report_root})", elem_id="report-dir"
                        )
                        open_btn = gr.Button("Open report", elem_id="open-report")
                        summary = gr.Markdown(elem_id="report-summary")
                        metrics = gr.JSON(label="metrics.json")
                        report_file = gr.File(label="report.html")
                        report_html = gr.HTML(elem_id="report-html")
                        open_btn.click(
                            app.open_report,
                            inputs=[folder],
                            outputs=[summary, report_html, metrics, report_file, status],
                            api_name="open_report",
                        )
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    app: WebApp | None = None,
    share: bool = False,
    quiet: bool = False,
) -> None:
    """Build and serve the page (blocks until interrupted)."""
    app = app or WebApp()
    demo = build_app(app)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        ssr_mode=False,
        allowed_paths=[str(app.work_dir)],
        quiet=quiet,
        footer_links=["api"],
    )
