"""What a new user ran into (issue 9), each in a real browser: headless Chromium through ``dash_duo``,
real mouse drags for painting.  Every test failed on the code before the fix.

Kept lean for a two-core CI machine: one app per test, images of about 100 x 70 pixels.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _images import disk
from _browser import (GD, canvas_ready, click_at, overlay_source, paint_two_classes, shapes, stroke, toasts, until,
                      upload, visible)
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from segapp.config import Settings
from segapp.ui import create_app

pytestmark = pytest.mark.browser
H, W = 72, 96


def _disk(h=H, w=W, seed=1) -> np.ndarray:
    return disk(h, w, seed, base=30, noise=30)


def _pink(h=H, w=W) -> np.ndarray:
    """An H&E-like colour image: pink tissue, a purple nucleus in the middle."""
    grey = _disk(h, w).astype(float) / 255
    return np.stack([235 - 110 * grey, 160 - 110 * grey, 205 - 40 * grey], -1).astype(np.uint8)


def _save(path: Path, arr) -> Path:
    if path.suffix == ".tif":
        tifffile.imwrite(path, arr, photometric="rgb" if arr.ndim == 3 and arr.shape[-1] == 3 else "minisblack")
    else:
        Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def ui_app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def start(dash_duo, app, *paths):
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#class-list .class-row", timeout=30)
    if paths:
        upload(dash_duo, "#upload-images", *paths)
        until(lambda: len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "#thumbnails .thumb")) == len(paths),
              timeout=30, what="the thumbnails")
        until(lambda: any(p.name in dash_duo.find_element("#canvas-info").text for p in paths), what="an image shown")
        canvas_ready(dash_duo)


def status(dash_duo) -> str:
    return dash_duo.find_element("#status-text").text


def version(dash_duo) -> int:
    """The model version in the header (0 without a model)."""
    m = re.search(r"model v(\d+)", status(dash_duo))
    return int(m.group(1)) if m else 0


def open_section(dash_duo, title):
    button = next(b for b in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".sidebar .accordion-button")
                  if b.text.strip() == title)
    if "collapsed" in button.get_attribute("class"):
        dash_duo.driver.execute_script("arguments[0].click()", button)


def press(dash_duo, selector_or_element):
    """Click a button wherever it is on the page (scrolled into the middle of the view first)."""
    el = dash_duo.find_element(selector_or_element) if isinstance(selector_or_element, str) else selector_or_element
    # instant: Bootstrap makes scrolling smooth, and a click during the animation lands elsewhere
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", el)
    el.click()


def tab(dash_duo, name):
    press(dash_duo, next(t for t in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#results-tabs .nav-link")
                         if t.text == name))


def segmented(dash_duo):
    until(lambda: overlay_source(dash_duo), timeout=90, what="the segmentation overlay")
    until(lambda: "model v" in status(dash_duo), timeout=30, what="the model in the header")


def no_unexpected_errors(dash_duo):
    assert "Unexpected error" not in toasts(dash_duo)
    assert [e for e in dash_duo.get_logs() if e.get("level") == "SEVERE"] == []


def displayed_rgb(dash_duo) -> np.ndarray:
    uri = dash_duo.driver.execute_script(f"return {GD}.data[0].source")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))).convert("RGB"))


# -- 1. auto ----------------------------------------------------------------------------------------------------
def test_choosing_auto_keeps_live_training_working(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app, _save(tmp_path / "disk.png", _disk()))
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    open_section(dash_duo, "Features & classifier")
    dash_duo.find_element("#extractor").click()
    option = until(lambda: next((o for o in dash_duo.driver.find_elements(By.CSS_SELECTOR, "[role=option]")
                                 if o.text.startswith("auto")), None), what="the auto option")
    option.click()
    until(lambda: "auto chose" in dash_duo.find_element("#train-info").text or "Unexpected" in toasts(dash_duo),
          timeout=120, what="auto's choice")
    no_unexpected_errors(dash_duo)
    chosen = version(dash_duo)
    stroke(dash_duo, [(W // 2 - 3, H // 2 + 6), (W // 2 + 3, H // 2 + 6)])  # a live stroke after auto
    until(lambda: version(dash_duo) > chosen, timeout=60, what="a retrained model after the stroke")
    assert overlay_source(dash_duo) and "auto chose" in dash_duo.find_element("#train-info").text
    no_unexpected_errors(dash_duo)


# -- 2. a drag that starts on a stroke paints ---------------------------------------------------------------------
def test_a_drag_that_starts_on_a_stroke_paints_a_new_stroke(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app, _save(tmp_path / "disk.png", _disk()))
    stroke(dash_duo, [(10, 30), (50, 30), (85, 30)])
    until(lambda: len(shapes(dash_duo)) == 1 and "paint" in dash_duo.find_element("#train-info").text,
          what="the stroke, saved")
    first = shapes(dash_duo)[0]["path"]
    stroke(dash_duo, [(50, 30), (50, 45), (60, 60)])               # a drag that starts ON the stroke
    until(lambda: len(shapes(dash_duo)) == 2, timeout=20, what="a second stroke from the drag")
    click_at(dash_duo, (30, 30))                                   # a click on the stroke: no vertex handles
    handles = dash_duo.driver.execute_script(
        "return document.querySelectorAll('#canvas .outline-controllers *, #canvas .cursor-grab').length")
    assert handles == 0
    stroke(dash_duo, [(30, 30), (20, 50), (10, 60)])               # and the next drag still paints
    until(lambda: len(shapes(dash_duo)) == 3, timeout=20, what="a third stroke")
    now = shapes(dash_duo)
    assert now[0]["path"] == first and all(s.get("editable") is False for s in now)
    buttons = [b.get_attribute("data-title") for b in dash_duo.driver.find_elements(By.CSS_SELECTOR,
                                                                                    "#canvas .modebar-btn")]
    assert "Erase active shape" not in buttons
    no_unexpected_errors(dash_duo)


# -- 3. grey and colour images --------------------------------------------------------------------------------------
def test_a_grey_image_among_colour_ones_gets_its_own_model_and_the_user_is_told(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app, _save(tmp_path / "he.png", _pink()))
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    upload(dash_duo, "#upload-images", _save(tmp_path / "grey.png", _disk(seed=4)))
    dash_duo.wait_for_contains_text("#canvas-info", "grey.png", timeout=30)
    until(lambda: "Paint this kind of image" in toasts(dash_duo), timeout=30, what="the toast on the grey image")
    dash_duo.find_element("body").send_keys("1")
    paint_two_classes(dash_duo, W, H)
    until(lambda: overlay_source(dash_duo), timeout=90, what="an overlay on the grey image")
    until(lambda: "One model per kind of image" in toasts(dash_duo), what="the toast naming the switch")
    assert "for grey images" in status(dash_duo)
    no_unexpected_errors(dash_duo)


# -- 4 and 11a. progress on the canvas for every long job --------------------------------------------------------------
RECORD_BANNER = """
window.__banner = [];
new MutationObserver(function () {
  var b = document.getElementById('job-banner');
  if (!b || b.getClientRects().length === 0) return;
  var r = b.getBoundingClientRect(), c = document.querySelector('.canvas-wrap').getBoundingClientRect();
  window.__banner.push({label: document.getElementById('job-label').textContent,
                        fraction: document.getElementById('job-fraction').textContent,
                        onCanvas: r.top >= c.top && r.bottom <= c.bottom && r.bottom <= window.innerHeight});
}).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def test_every_long_job_shows_its_progress_on_the_canvas(dash_duo, ui_app, tmp_path):
    paths = [_save(tmp_path / f"img{i}.png", _disk(seed=i)) for i in range(3)]
    start(dash_duo, ui_app, *paths)
    dash_duo.driver.execute_script(RECORD_BANNER)

    def seen(prefix):
        return [b for b in dash_duo.driver.execute_script("return window.__banner") if b["label"].startswith(prefix)]

    paint_two_classes(dash_duo, W, H)                              # the first extraction
    segmented(dash_duo)
    assert seen("Computing features") and all(b["onCanvas"] for b in seen("Computing features"))
    tab(dash_duo, "All images")
    press(dash_duo, "#apply-all")                     # the batch
    until(lambda: len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "#gallery .gallery-card")) == 3, timeout=90,
          what="three results in the gallery")
    applying = until(lambda: seen("Applying the model"), what="the batch on the banner")
    assert {b["fraction"] for b in applying} <= {"", "1/3", "2/3", "3/3"} and all(b["onCanvas"] for b in applying)
    until(lambda: not visible(dash_duo, "#job-banner"), what="the banner to go once the batch is done")
    assert dash_duo.driver.execute_script(  # no empty bar or Cancel left behind anywhere
        "return Array.from(document.querySelectorAll('.progress, button')).filter(function (e) {"
        " return e.getClientRects().length && /progress|Cancel/.test(e.className + ' ' + e.textContent); }).length") == 0
    tab(dash_duo, "Objects")
    press(dash_duo, "#measure")                       # measuring
    until(lambda: dash_duo.driver.find_elements(By.CSS_SELECTOR, "#obj-table td"), timeout=60, what="the table")
    until(lambda: seen("Measuring objects"), what="measuring on the banner")
    no_unexpected_errors(dash_duo)


# -- 5 and 10. the picture looks like the file; nothing offers to send it away --------------------------------------
def test_the_canvas_shows_the_file_as_it_is_and_offers_no_cloud_upload(dash_duo, ui_app, tmp_path):
    pink = _pink()
    start(dash_duo, ui_app, _save(tmp_path / "he.png", pink))
    assert np.abs(displayed_rgb(dash_duo).astype(int) - pink).max() <= 1  # not stretched per channel
    gd = dash_duo.driver.execute_script(f"var c = {GD}._context; return [c.showSendToCloud, c.displaylogo]")
    assert gd == [False, False]
    buttons = until(lambda: dash_duo.driver.find_elements(By.CSS_SELECTOR, "#canvas .modebar-btn"), what="modebar")
    titles = " ".join(b.get_attribute("data-title") or "" for b in buttons)
    assert not re.search(r"share|cloud|studio|plotly", titles, re.I), titles
    assert dash_duo.driver.find_elements(By.CSS_SELECTOR, "a[href*='plot.ly'], a[href*='plotly.com']") == []

    rgb16 = np.zeros((H, W, 3), np.uint16)                         # a 16-bit colour image: one joint range
    rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 2000, 1000, 4000
    rgb16[: H // 2] //= 4
    upload(dash_duo, "#upload-images", _save(tmp_path / "wide.tif", rgb16))
    dash_duo.wait_for_contains_text("#canvas-info", "wide.tif", timeout=30)
    until(lambda: displayed_rgb(dash_duo).shape == (H, W, 3) and (displayed_rgb(dash_duo)[0, 0] < 60).all(),
          what="the 16-bit image on the canvas")
    shown = displayed_rgb(dash_duo)[-1, 0].astype(float)          # R, G, B of a bright pixel
    slopes = (shown[0] - shown[1]) / 1000, (shown[2] - shown[0]) / 2000  # one linear map for every channel
    assert shown[1] < shown[0] < shown[2] and abs(slopes[0] / slopes[1] - 1) < 0.05, shown
    no_unexpected_errors(dash_duo)


# -- 7. evaluate with an ordinary 0/255 mask ------------------------------------------------------------------------
def test_evaluate_with_an_ordinary_0_255_mask(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app, _save(tmp_path / "disk.png", _disk()))
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    yy, xx = np.mgrid[:H, :W]
    mask = np.where(np.hypot(yy - H / 2, xx - W / 2) < min(H, W) / 4, 255, 0).astype(np.uint8)
    tab(dash_duo, "Evaluate")
    upload(dash_duo, "#gt-upload", _save(tmp_path / "mask.png", mask))
    dash_duo.wait_for_contains_text("#eval-result", "mean IoU", timeout=30)
    text = dash_duo.find_element("#eval-result").text
    assert float(re.search(r"mean IoU ([0-9.]+)", text).group(1)) > 80, text
    assert "binary mask: 0 → Background, 255 → Foreground" in text and "class 255" not in text


# -- 8 and 9. Clear all and Remove image ----------------------------------------------------------------------------
def test_clear_all_takes_the_model_away_and_remove_image_can_be_undone(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app)
    assert not visible(dash_duo, "#delete-image")                  # no "Remove image" without an image
    upload(dash_duo, "#upload-images", _save(tmp_path / "disk.png", _disk()))
    canvas_ready(dash_duo)
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    dash_duo.find_element("#clear-all").click()
    until(lambda: overlay_source(dash_duo) is None, timeout=30, what="the old overlay to go")
    until(lambda: "no model yet" in status(dash_duo), what="the header without the old model")
    assert "Nothing is painted" in dash_duo.find_element("#train-info").text
    dash_duo.find_element("#undo").click()                          # undo brings strokes and model back
    segmented(dash_duo)

    dash_duo.find_element("#delete-image").click()
    until(lambda: "Removed disk.png and its 2 strokes" in toasts(dash_duo), what="the removal toast")
    dash_duo.wait_for_contains_text("#thumbnails", "No images yet", timeout=20)
    dash_duo.find_element(".toasts button.btn-primary").click()     # its Undo
    dash_duo.wait_for_contains_text("#thumbnails", "disk.png", timeout=20)
    until(lambda: len(shapes(dash_duo)) == 2, what="the strokes back on the canvas")
    until(lambda: overlay_source(dash_duo), timeout=30, what="its segmentation back")
    no_unexpected_errors(dash_duo)


# -- 11. stacks, objects ----------------------------------------------------------------------------------------------
def test_planes_objects_and_gallery_say_the_same_thing_as_the_header(dash_duo, ui_app, tmp_path):
    stack = np.stack([_disk(seed=z) for z in range(3)])
    stack[:, 50:60, 8:18] = 200                                     # and a small object (area < 1000 px)
    start(dash_duo, ui_app, _save(tmp_path / "stack.tif", stack))
    thumb = dash_duo.find_element("#plane-slider [role=slider]")
    thumb.send_keys(Keys.ARROW_RIGHT)                               # plane 2
    dash_duo.wait_for_contains_text("#canvas-info", "plane 2/3", timeout=20)
    until(lambda: dash_duo.find_element("#plane-slider [role=slider]").get_attribute("aria-valuenow") == "2",
          what="the slider saying 2")
    assert dash_duo.find_element("#plane-slider input").get_attribute("value") == "2"
    canvas_ready(dash_duo)
    bg = dash_duo.driver.execute_script("return document.querySelector('#obj-hist .js-plotly-plot')"
                                        "._fullLayout.paper_bgcolor")
    assert bg in ("#ffffff", "#fff", "rgb(255, 255, 255)"), bg      # not a dark block before measuring
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    press(dash_duo, "#measure")
    until(lambda: dash_duo.driver.find_elements(By.CSS_SELECTOR, "#obj-table td[data-dash-column=area]"),
          timeout=60, what="the table")
    areas = [td.text for td in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#obj-table td[data-dash-column=area]")]
    assert areas and all(re.fullmatch(r"\d+", a) for a in areas), areas  # one format: whole pixels
    size = dash_duo.find_element("#pp-min-size")
    size.send_keys(Keys.CONTROL, "a")
    size.send_keys("100000", Keys.ENTER)                            # applies live, without pressing Measure
    until(lambda: not dash_duo.driver.find_elements(By.CSS_SELECTOR, "#obj-table td[data-dash-column=area]"),
          timeout=60, what="the table to follow the new minimum size")
    tab(dash_duo, "All images")
    press(dash_duo, "#apply-all")
    until(lambda: len(dash_duo.driver.find_elements(By.CSS_SELECTOR, "#gallery .gallery-card")) == 3, timeout=90,
          what="the three planes in the gallery")
    card = next(c for c in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#gallery .gallery-card")
                if "plane 3" in c.text)
    dash_duo.driver.execute_script("arguments[0].click()", card)  # opens plane 3, not plane 1
    dash_duo.wait_for_contains_text("#canvas-info", "plane 3/3", timeout=20)
    no_unexpected_errors(dash_duo)


# -- 12. annotations as a file ------------------------------------------------------------------------------------------
def test_annotations_download_and_load_back_onto_the_image(dash_duo, ui_app, tmp_path):
    start(dash_duo, ui_app, _save(tmp_path / "disk.png", _disk()))
    paint_two_classes(dash_duo, W, H)
    segmented(dash_duo)
    painted = [s["path"] for s in shapes(dash_duo)]
    open_section(dash_duo, "Model & downloads")
    dash_duo.driver.execute_script("document.getElementById('dl-annot-json').click()")
    saved = until(lambda: next(iter(Path(dash_duo.download_path).glob("*.json")), None), what="the JSON download")
    doc = json.loads(saved.read_text())
    assert doc["format"] == "segapp-annotations" and [s["path"] for s in doc["shapes"]] == painted
    dash_duo.find_element("#clear-all").click()
    until(lambda: shapes(dash_duo) == [], what="the strokes cleared")
    upload(dash_duo, "#annot-upload", saved)
    until(lambda: [s["path"] for s in shapes(dash_duo)] == painted, timeout=30, what="the strokes loaded back")
    until(lambda: "Annotations loaded" in toasts(dash_duo), what="the toast")
    until(lambda: overlay_source(dash_duo), timeout=60, what="the segmentation from the loaded strokes")
    no_unexpected_errors(dash_duo)
