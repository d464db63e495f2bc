"""``instaseg web`` in a real headless Chromium: upload, segment, read the table, download the COCO JSON,
and bad uploads that end as a message in the page while the server keeps serving."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from web_helpers import png_with_header

from instaseg_ros.core.masks import decode_rle

pytestmark = pytest.mark.slow

CLASSES = {"person", "chair", "couch", "dining table", "toilet"}


def _wait(drv, cond, timeout: float = 120.0, what: str = "condition"):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.3).until(cond)
    except TimeoutException:
        status = drv.find_element("css selector", "#status").text
        pytest.fail(f"timed out waiting for {what}; status: {status!r}")


def _open(drv, url: str) -> None:
    drv.get(url + "/")
    _wait(drv, lambda d: d.find_elements("css selector", "#image-files input[type=file]"), 60, "the page")


def _upload_and_run(drv, paths: list[Path]) -> str:
    """Upload ``paths`` into the Images input, press Segment, wait for a new status; returns it."""
    before = drv.find_element("css selector", "#status").text
    inp = drv.find_element("css selector", "#image-files input[type=file]")
    inp.send_keys("\n".join(str(p) for p in paths))
    names = [p.name for p in paths]
    _wait(
        drv,
        lambda d: all(
            n.rsplit(".", 1)[0] in d.find_element("css selector", "#image-files").text for n in names
        ),
        60,
        "the upload to finish",
    )
    drv.find_element("css selector", "#run").click()

    def done(d):
        text = d.find_element("css selector", "#status").text
        # every result starts "Run N:", so a new one differs from the last; "processing" is Gradio's progress
        return text if text != before and text.startswith("Run ") and "processing" not in text else False

    return _wait(drv, done, 180, "the segmentation result")


def _table_rows(drv) -> list[list[str]]:
    rows = []
    # Gradio's data frame is a virtual grid: rows are [role=row][data-index], cells [role=gridcell]
    for tr in drv.find_elements("css selector", "#instances [role=row][data-index]"):
        cells = [td.text.strip() for td in tr.find_elements("css selector", "[role=gridcell]")]
        if any(cells):
            rows.append(cells)
    return rows


def _clear_upload(drv) -> None:
    for b in drv.find_elements("css selector", "#image-files button[aria-label='Clear']"):
        b.click()


def test_upload_segment_table_and_coco_download(web_server, browser, synthetic_frame, tmp_path):
    drv = browser
    t0 = time.monotonic()
    _open(drv, web_server.url)
    status = _upload_and_run(drv, [synthetic_frame])
    assert "Error" not in status, status
    rows = _wait(drv, lambda d: _table_rows(d) or False, 30, "table rows")
    # the overlay image is in the gallery and was decoded by the browser
    img = _wait(drv, lambda d: d.find_elements("css selector", "#overlays img"), 30, "the overlay")[0]
    _wait(
        drv,
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img),
        30,
        "the overlay to load",
    )
    assert drv.execute_script("return arguments[0].naturalWidth", img) == 640
    assert rows and all(r[0] == synthetic_frame.name for r in rows), rows
    assert {r[2] for r in rows} <= CLASSES
    ids = [int(r[1]) for r in rows]
    assert ids == list(range(1, len(rows) + 1))
    shot = tmp_path / "web_app.png"
    drv.save_screenshot(str(shot))
    if os.environ.get("INSTASEG_WEB_SCREENSHOT"):  # refresh docs/web_app.png from a real run
        shutil.copy(shot, os.environ["INSTASEG_WEB_SCREENSHOT"])

    # download the COCO JSON by clicking its link, as a person would
    link = drv.find_element("css selector", "#coco-json a[download]")
    link.click()
    target = Path(browser.download_dir) / "coco_results.json"
    _wait(drv, lambda d: target.is_file() and target.stat().st_size > 0, 30, "the download")
    coco = json.loads(target.read_text())
    anns = coco["annotations"]
    assert len(anns) == len(rows)
    assert coco["images"][0]["width"] == 640 and coco["images"][0]["height"] == 480
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    for a, r in zip(anns, rows):
        m = decode_rle(a["segmentation"])
        assert m.shape == (480, 640)
        assert int(m.sum()) == a["area"] == int(r[8])  # area column = mask pixels
        assert cats[a["category_id"]] == r[2]
        assert abs(a["score"] - float(r[3])) < 1e-3
    print(f"\nbrowser: page, upload, segment, table and download in {time.monotonic() - t0:.1f} s")


def test_bad_uploads_give_messages_and_the_server_keeps_serving(
    web_server, browser, synthetic_frame, tmp_path
):
    drv = browser
    _open(drv, web_server.url)
    text_file = tmp_path / "notes.png"
    text_file.write_text("this is not an image\n")
    huge = png_with_header(tmp_path / "huge.png", 30000, 30000)
    status = _upload_and_run(drv, [text_file, huge])
    assert "Error" in status
    assert "notes.png: not an image file" in status, status
    assert "huge.png: 30000x30000" in status and "pixel limit" in status, status
    assert "Traceback" not in drv.page_source
    assert _table_rows(drv) == []
    # the same page, a good image next: the server is still serving
    _clear_upload(drv)
    status = _upload_and_run(drv, [synthetic_frame])
    assert "instance(s)" in status and "Error" not in status, status
    assert _wait(drv, lambda d: _table_rows(d) or False, 30, "table rows")
    assert web_server.proc.poll() is None
    assert "Traceback" not in web_server.log.read_text()


def test_overlay_image_shows_the_masks(web_server, browser, synthetic_frame, tmp_path):
    """The overlay the browser received differs from the input exactly where the instance-id PNG has
    instances (mask blending), i.e. what the page shows is the model's masks."""
    import urllib.request

    import cv2

    drv = browser
    _open(drv, web_server.url)
    _upload_and_run(drv, [synthetic_frame])
    img = _wait(drv, lambda d: d.find_elements("css selector", "#overlays img"), 30, "the overlay")[0]
    link = _wait(drv, lambda d: d.find_elements("css selector", "#id-pngs a[download]"), 30, "the id PNG")[0]
    got = {}
    for key, url in (("overlay", img.get_attribute("src")), ("ids", link.get_attribute("href"))):
        with urllib.request.urlopen(url, timeout=30) as r:
            got[key] = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    ids, overlay = got["ids"], got["overlay"]
    assert ids.dtype == np.uint16 and ids.shape == (480, 640)
    n = len(_table_rows(drv))
    assert set(np.unique(ids).tolist()) == set(range(n + 1))
    src = cv2.imread(str(synthetic_frame))
    changed = np.abs(overlay[:, :, :3].astype(int) - src.astype(int)).sum(axis=2) > 0
    fg = ids > 0
    # masks are blended (alpha 0.45): nearly every instance pixel changes; outside, only boxes/labels do
    assert changed[fg].mean() > 0.95
    assert changed[~fg].mean() < 0.1


def test_threshold_control_reruns_without_reload(web_server, browser, synthetic_frame):
    """Typing a score threshold into the slider's box re-runs the last images with the cached model."""
    from selenium.webdriver.common.keys import Keys

    drv = browser
    _open(drv, web_server.url)
    _upload_and_run(drv, [synthetic_frame])
    before = _wait(drv, lambda d: _table_rows(d) or False, 30, "table rows")
    loads = re.search(r"models loaded since start: (\d+)", drv.find_element("css selector", "#status").text)
    box = drv.find_element("css selector", "#score input[type=number]")
    box.clear()
    box.send_keys("0.95")
    box.send_keys(Keys.TAB)

    def rerun(d):
        text = d.find_element("css selector", "#status").text
        return text if "score >= 0.95" in text else False

    def new_table(d):
        rows = _table_rows(d)
        return rows if rows != before else False

    status = _wait(drv, rerun, 120, "the re-run at 0.95")
    rows = _wait(drv, new_table, 30, "the new table")
    assert [r for r in before if float(r[3]) >= 0.95] == rows
    assert f"models loaded since start: {loads.group(1)}" in status


def test_webcam_stream_gives_overlays(web_server, browser):
    """Chromium's fake camera streams into the Webcam tab; every frame comes back as an overlay."""
    drv = browser
    _open(drv, web_server.url)
    next(t for t in drv.find_elements("css selector", "button[role=tab]") if t.text == "Webcam").click()

    def shown(selector):
        return lambda d: [b for b in d.find_elements("css selector", selector) if b.is_displayed()]

    _wait(drv, shown("#webcam button"), 30, "the webcam panel")[0].click()
    record = _wait(drv, shown("#webcam button[aria-label='capture photo']"), 30, "the camera")[0]
    record.click()
    seen = set()

    def frames(d):
        t = d.find_element("css selector", "#status").text
        if re.fullmatch(r"\d+ instance\(s\), \d+ ms", t):
            seen.add(t)
        return len(seen) >= 2

    _wait(drv, frames, 120, "two streamed results")
    img = _wait(drv, lambda d: d.find_elements("css selector", "#webcam-overlay img"), 30, "the overlay")[0]
    _wait(drv, lambda d: d.execute_script("return arguments[0].naturalWidth", img), 30, "the overlay to load")
    for b in drv.find_elements("css selector", "#webcam button"):
        if b.is_displayed() and b.text.strip() == "Stop":
            b.click()
    assert web_server.proc.poll() is None
