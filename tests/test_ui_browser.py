"""Real-browser tests of the web app (headless Chromium through dash[testing]'s ``dash_duo``).

Kept few and lean (the CI machine has two cores): one app per test, a small synthetic image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _browser import GD, canvas_ready, overlay_source, stroke, until, upload
from PIL import Image

from segapp.config import Settings
from segapp.ui import create_app

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ui_app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


@pytest.fixture
def disk_png(tmp_path) -> Path:
    """A 160x120 grey image: bright disk on a dark noisy background."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:120, :160]
    img = 30 + 30 * rng.random((120, 160))
    img[np.hypot(yy - 60, xx - 80) < 35] += 150
    path = tmp_path / "disk.png"
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def test_page_loads_without_errors_and_bad_uploads_show_their_message(dash_duo, tmp_path):
    dash_duo.start_server(create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                                              max_upload_mb=1)))
    dash_duo.wait_for_element("#class-list .class-row", timeout=20)
    dash_duo.wait_for_contains_text("#status-text", "no model yet", timeout=20)
    assert dash_duo.get_logs() == [], "console errors on page load"
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    upload(dash_duo, "#upload-images", bad)
    dash_duo.wait_for_contains_text(".toasts", "notes.png", timeout=20)
    assert "not a recognised image" in dash_duo.find_element(".toasts").text
    big = tmp_path / "huge.tif"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))
    upload(dash_duo, "#upload-images", big)                                      # stopped in the browser
    dash_duo.wait_for_contains_text("#client-alert", "huge.tif is 2 MB", timeout=20)
    assert "No images yet" in dash_duo.find_element("#thumbnails").text
    assert dash_duo.get_logs() == []


def test_paint_two_classes_segment_and_download_a_model_the_cli_reads(dash_duo, ui_app, disk_png, tmp_path):
    dash_duo.start_server(ui_app)
    dash_duo.wait_for_element("#class-list .class-row", timeout=20)
    upload(dash_duo, "#upload-images", disk_png)
    canvas_ready(dash_duo)
    stroke(dash_duo, [(5, 5), (60, 8), (150, 6), (154, 60), (150, 115)])        # class 1 (active at start)
    dash_duo.find_element("body").send_keys("2")                                # key 2 -> class 2
    until(lambda: "active" in dash_duo.find_element("#class-list .class-row:nth-child(2)").get_attribute("class"),
          what="class 2 active")
    stroke(dash_duo, [(70, 60), (80, 55), (90, 62)])
    first = until(lambda: overlay_source(dash_duo), timeout=60, what="the segmentation overlay")
    names = dash_duo.driver.execute_script(f"return {GD}.layout.shapes.map(function(s){{return s.name;}})")
    assert names == ["class=1;width=5", "class=2;width=5"]
    stroke(dash_duo, [(75, 75), (85, 72)])                                       # a later stroke: Patch update
    until(lambda: overlay_source(dash_duo) not in (None, first) or
          "v3" in dash_duo.find_element("#status-text").text, timeout=30, what="an updated overlay")
    assert dash_duo.get_logs() == []

    dash_duo.driver.execute_script("document.getElementById('dl-model').click()")
    download = Path(dash_duo.download_path)
    model = until(lambda: next(iter(download.glob("*.segapp")), None), what="the model download")
    out = tmp_path / "pred"
    run = subprocess.run([sys.executable, "-m", "segapp", "predict", "--model", str(model), "--out-dir", str(out),
                          str(disk_png)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    pred = np.asarray(Image.open(out / "disk.png"))
    assert pred.shape == (120, 160) and pred[60, 80] == 2 and pred[5, 5] == 1


def test_two_browser_sessions_do_not_see_each_others_images(dash_duo, ui_app, disk_png):
    dash_duo.start_server(ui_app)
    dash_duo.wait_for_element("#class-list .class-row", timeout=20)
    upload(dash_duo, "#upload-images", disk_png)
    dash_duo.wait_for_contains_text("#thumbnails", "disk.png", timeout=20)
    first = dash_duo.driver.execute_script("return localStorage.getItem('session-id')")
    assert len(json.loads(first)) >= 32

    dash_duo.driver.execute_script("localStorage.clear()")                     # a second browser profile
    dash_duo.driver.refresh()
    dash_duo.wait_for_contains_text("#thumbnails", "No images yet", timeout=20)
    second = until(lambda: dash_duo.driver.execute_script("return localStorage.getItem('session-id')"))
    assert second != first

    dash_duo.driver.execute_script("localStorage.setItem('session-id', arguments[0])", first)
    dash_duo.driver.refresh()                                                     # reload loses nothing
    dash_duo.wait_for_contains_text("#thumbnails", "disk.png", timeout=20)
    dash_duo.wait_for_contains_text("#canvas-info", "disk.png", timeout=20)
