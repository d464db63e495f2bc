"""Fixtures for the web tests: the real ``instaseg web`` server in its own process, a headless Chromium
driven by Selenium, and synthetic test images (helpers in ``web_helpers``).

Outside CI a missing tool (gradio, selenium, Debian's chromium/chromium-driver) skips with the reason;
in CI (``CI=true``) it fails, so these tests never skip silently there (``make setup`` installs them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import CHROMEDRIVER, CHROMIUM, REPO, WebServer, free_port, need, stop, wait_http


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """``instaseg web`` on a free 127.0.0.1 port, its own process; prints how long it took to answer."""
    import importlib.util

    need(importlib.util.find_spec("gradio") is not None, "gradio (requirements/web.txt)")
    d = tmp_path_factory.mktemp("web")
    port = free_port()
    log = d / "server.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "instaseg_ros.cli",
        "web",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--work-dir",
        str(d / "runs"),
        "--report-root",
        str(d),
    ]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        startup = wait_http(url + "/", proc, 180, log)
        print(f"\ninstaseg web answered after {startup:.1f} s")
        yield WebServer(url, proc, log, d / "runs", d, startup)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium (Debian's) through chromedriver, downloads into ``browser.download_dir``."""
    import importlib.util

    need(importlib.util.find_spec("selenium") is not None, "selenium (requirements/web.txt)")
    need(CHROMIUM is not None and CHROMEDRIVER is not None, "Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1800",
        "--no-first-run",
        "--disable-extensions",
        "--use-fake-device-for-media-stream",  # a synthetic camera (moving test pattern) for the webcam tab
        "--use-fake-ui-for-media-stream",  # grant the camera permission without a prompt
    ):
        opts.add_argument(a)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.download_dir = downloads
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="session")
def synthetic_frame(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640x480 synthetic indoor frame (the demo's stream, seed 2026) as PNG."""
    import cv2

    from instaseg_ros.data.synthetic import demo_stream_config, generate_scene

    p = tmp_path_factory.mktemp("frames") / "synthetic_2026.png"
    cv2.imwrite(str(p), generate_scene(2026, demo_stream_config()).image)
    return p
