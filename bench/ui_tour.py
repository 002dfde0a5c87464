"""A new user's tour of the web app with real images, in headless Chromium: what it sees, and screenshots.

Usage::

    python bench/ui_tour.py --data ../shared/data [--out docs/screenshots]

Starts ``app.py`` like ``make run`` (fresh data directories, a free port), then, with real mouse
drags: bad files; three H&E images at once (MICCAI nuclei); strokes placed from the ground truth;
a drag that starts on a stroke; *Apply model to all images*; *Evaluate* with the ordinary 0/255
mask; objects with a setting changed live; annotations downloaded as JSON, *Clear all*, loaded
back; a grey fluorescence image among the colour ones (NIH3T3), its first extraction cancelled
and restarted; a 16-bit TIFF; a 3-page TIFF; a reload; *Remove this image* and its Undo; a
second session.  Prints one line per observation; writes ``tour-*.jpg``.  Needs chromium and
chromedriver (``make setup-dev``).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parent.parent
GD = "document.querySelector('#canvas .js-plotly-plot')"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--window-size=1440,960")
RECORD_TOASTS = ("window.__toasts = []; new MutationObserver(function (ms) { ms.forEach(function (m) {"
                 " m.addedNodes.forEach(function (n) { window.__toasts.push(n.textContent); }); }); })"
                 ".observe(document.getElementById('notices'), {childList: true});")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "SEGAPP_DATA_DIR": str(work / "data"),
           "SEGAPP_CACHE_DIR": str(work / "cache")}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=open(work / "app.log", "wb"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the app did not start; see " + str(work / "app.log"))


def until(fn, timeout=60, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = fn()
        except Exception:  # a re-rendered element: look again
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def strokes_from_mask(mask: np.ndarray, n_fg=6, n_bg=5):
    """Short strokes across the largest objects of a ground-truth mask, and in the background far from them."""
    m = mask > 0
    lab, k = ndi.label(m)
    sizes = ndi.sum(m, lab, range(1, k + 1))
    fg = []
    for i in np.argsort(-sizes)[:n_fg]:
        yy, xx = np.nonzero(lab == i + 1)
        cy, cx, r = float(yy.mean()), float(xx.mean()), float(np.sqrt(sizes[i] / np.pi) * 0.4)
        fg.append([(cx - r, cy), (cx + r, cy)])
    ys, xs = np.nonzero(ndi.distance_transform_edt(~m) > 25)
    pick = np.random.default_rng(0).choice(len(ys), n_bg, replace=False)
    bg = [[(float(xs[j]) - 12, float(ys[j])), (float(xs[j]) + 12, float(ys[j]) + 2)] for j in pick]
    return bg, fg


class Tour:
    def __init__(self, url: str, out: Path, downloads: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options

        opts = Options()
        for a in CHROME_ARGS:
            opts.add_argument(a)
        opts.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d, self.out, self.downloads = webdriver.Chrome(options=opts), out, downloads
        self.d.get(url)
        until(lambda: self.d.find_elements("css selector", "#class-list .class-row"), what="the page")
        self.d.execute_script(RECORD_TOASTS)

    # -- looking -------------------------------------------------------------------------------
    def see(self, *what):
        print(time.strftime("%H:%M:%S"), *what, flush=True)

    def save(self, name):
        """The page as ``tour-<name>.jpg`` (JPEG: real microscopy images make PNG screenshots ~1 MB)."""
        png = Image.open(io.BytesIO(self.d.get_screenshot_as_png())).convert("RGB")
        png.save(self.out / f"tour-{name}.jpg", quality=82, optimize=True)

    def shot(self, name, bottom=False):
        self.d.execute_script("window.scrollTo(0, arguments[0] ? document.body.scrollHeight : 0)", bottom)
        time.sleep(0.6)
        self.save(name)

    def text(self, id_):
        return self.d.find_element("id", id_).text

    def toasts(self):
        return " | ".join(self.d.execute_script("return window.__toasts || []"))

    def banner(self):
        return self.d.execute_script(
            "var b = document.getElementById('job-banner'); return b.getClientRects().length ? "
            "document.getElementById('job-label').textContent + ' ' + document.getElementById('job-fraction')"
            ".textContent : null")

    def overlay(self):
        return self.d.execute_script(f"var g = {GD}; return !!(g && g.data && g.data[1].visible === true)")

    def n_shapes(self):
        return len(self.d.execute_script(f"return {GD}.layout.shapes || []"))

    def displayed(self):
        uri = self.d.execute_script(f"return {GD}.data[0].source")
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2]))).convert("RGB"))

    # -- doing ---------------------------------------------------------------------------------
    def click(self, id_):
        self.d.execute_script("document.getElementById(arguments[0]).click()", id_)

    def tab(self, name):
        t = next(t for t in self.d.find_elements("css selector", "#results-tabs .nav-link") if t.text == name)
        self.d.execute_script("arguments[0].click()", t)
        time.sleep(0.4)

    def section(self, title):
        b = next(b for b in self.d.find_elements("css selector", ".sidebar .accordion-button")
                 if b.text.strip() == title)
        if "collapsed" in b.get_attribute("class"):
            self.d.execute_script("arguments[0].click()", b)

    def upload(self, selector, *paths):
        el = self.d.find_element("css selector", f"{selector} input[type=file]")
        self.d.execute_script("arguments[0].value = ''", el)
        el.send_keys("\n".join(str(p) for p in paths))

    def show(self, name):
        until(lambda: name in self.text("canvas-info"), what=name)
        until(lambda: self.d.execute_script(f"var g = {GD}; return g && g.data && g.data.length == 2 && "
                                            "!!g._fullLayout.xaxis._length"), what="the canvas")
        time.sleep(0.5)

    def key(self, k):
        self.d.find_element("css selector", "body").send_keys(k)
        time.sleep(0.3)

    def _screen(self, points):
        return self.d.execute_script(f"var g = {GD}, xa = g._fullLayout.xaxis, ya = g._fullLayout.yaxis;"
                                     "return arguments[0].map(function (p) { return [xa.d2p(p[0]), ya.d2p(p[1])]; });",
                                     points)

    def stroke(self, points):
        from selenium.webdriver.common.action_chains import ActionChains

        drag = self.d.find_element("css selector", "#canvas .nsewdrag")
        screen = self._screen(points)
        chain = ActionChains(self.d).move_to_element_with_offset(drag, *screen[0]).click_and_hold()
        for x, y in screen[1:]:
            chain = chain.move_to_element_with_offset(drag, x, y)
        chain.release().perform()
        time.sleep(0.3)

    def click_at(self, point):
        from selenium.webdriver.common.action_chains import ActionChains

        drag = self.d.find_element("css selector", "#canvas .nsewdrag")
        ActionChains(self.d).move_to_element_with_offset(drag, *self._screen([point])[0]).click().perform()

    def paint(self, bg, fg):
        self.key("1")
        for s in bg:
            self.stroke(s)
        self.key("2")
        for s in fg:
            self.stroke(s)

    def watch_banner(self, until_fn, timeout=300, shot_at=None):
        """The banner states seen until ``until_fn()``; a screenshot named ``shot_at[1]`` at state ``shot_at[0]``."""
        seen, end, taken = [], time.time() + timeout, False
        while time.time() < end and not until_fn():
            b = self.banner()
            if b and b not in seen:
                seen.append(b)
            if shot_at and not taken and b and shot_at[0] in b:
                self.save(shot_at[1])
                taken = True
            time.sleep(0.2)
        return seen


def make_inputs(data: Path, work: Path) -> dict:
    dna = [np.asarray(Image.open(data / f"fluo_nuclei_nih3t3/images/dna-{i:02d}.png")) for i in (0, 1, 26)]
    paths = {"dna16": work / "dna16.tif", "stack": work / "dna_stack.tif", "notes": work / "notes.png",
             "truncated": work / "truncated.png"}
    tifffile.imwrite(paths["dna16"], dna[1].astype(np.uint16) * 40)
    tifffile.imwrite(paths["stack"], np.stack([a[::2, ::2] for a in dna]), photometric="minisblack")
    paths["notes"].write_bytes(b"just text, not an image")
    raw = (data / "he_nuclei_miccai/images/image02.png").read_bytes()
    paths["truncated"].write_bytes(raw[: len(raw) // 3])
    return paths


def tour(t: Tour, data: Path, inputs: dict) -> None:
    he = data / "he_nuclei_miccai"
    t.see("remove link shown with no image:", t.d.execute_script(
        "return document.getElementById('delete-image').getClientRects().length > 0"))
    t.upload("#upload-images", inputs["notes"], inputs["truncated"])
    until(lambda: "truncated.png" in t.toasts(), what="the bad-file toast")
    t.see("bad files:", t.toasts())

    t.upload("#upload-images", *[he / "images" / f"image0{i}.png" for i in (1, 2, 3)])
    until(lambda: len(t.d.find_elements("css selector", "#thumbnails .thumb")) == 3, what="three thumbnails")
    name = until(lambda: t.text("canvas-info").split("\n")[0], what="an image")
    t.show(name)
    original = np.asarray(Image.open(he / "images" / name))[..., :3]
    t.see(f"{name} on the canvas vs the file: max difference", int(np.abs(t.displayed().astype(int) - original).max()))
    t.see("modebar:", [b.get_attribute("data-title") for b in t.d.find_elements("css selector", "#canvas .modebar-btn")])
    bg, fg = strokes_from_mask(np.asarray(Image.open(he / "masks" / name)))
    t.key("1")
    t.stroke(bg[0])
    t.see("first extraction (H&E):", t.watch_banner(lambda: not t.banner() and t.n_shapes(), timeout=300))
    t.paint(bg[1:], fg)
    until(t.overlay, timeout=300, what="the overlay")
    until(lambda: "model v" in t.text("status-text"), what="a model")
    t.shot("he-segmented")
    t.see("header:", t.text("status-text"), "| training:", t.text("train-info").replace("\n", " / "))

    before = t.n_shapes()
    mid = tuple((a + b) / 2 for a, b in zip(*bg[0]))
    t.key("1")
    t.click_at(mid)
    t.stroke([mid, (mid[0] + 6, mid[1] + 25), (mid[0] + 16, mid[1] + 40)])
    until(lambda: t.n_shapes() == before + 1, timeout=20, what="the stroke that started on a stroke")
    t.see("a click and a drag that start on a stroke: strokes", before, "->", t.n_shapes())

    t.tab("All images")
    t.click("apply-all")
    seen = t.watch_banner(lambda: len(t.d.find_elements("css selector", "#gallery .gallery-card")) == 3
                          and not t.banner(), shot_at=("2/3", "progress-batch"))
    t.see("apply to all:", seen)
    t.see("progress bars or Cancel left on the page after it:", t.d.execute_script(
        "return Array.from(document.querySelectorAll('.progress, button')).filter(function (e) {"
        " return e.getClientRects().length && /progress|Cancel/.test(e.className + ' ' + e.textContent); }).length"))
    t.shot("gallery", bottom=True)

    t.tab("Evaluate")
    t.upload("#gt-upload", he / "masks" / name)
    until(lambda: "mean IoU" in t.text("eval-result"), what="the scores")
    t.see("evaluate with the 0/255 mask:", t.text("eval-result").replace("\n", " / ")[:240])
    t.shot("evaluate-binary-mask", bottom=True)

    t.tab("Objects")
    t.shot("objects-before", bottom=True)
    t.click("measure")
    until(lambda: t.d.find_elements("css selector", "#obj-table td"), timeout=120, what="the table")
    areas = [td.text for td in t.d.find_elements("css selector", "#obj-table td[data-dash-column=area]")]
    t.see("areas:", areas[:8], "| ", t.text("obj-summary").split("\n")[0])
    from selenium.webdriver.common.keys import Keys

    size = t.d.find_element("id", "pp-min-size")
    size.send_keys(Keys.CONTROL, "a")
    size.send_keys("150", Keys.ENTER)
    first = t.text("obj-summary").split("\n")[0]
    until(lambda: t.text("obj-summary").split("\n")[0] != first, timeout=60, what="the live re-measure")
    t.see("minimum size 150, no Measure pressed:", t.text("obj-summary").split("\n")[0])
    t.shot("objects-live", bottom=True)

    t.section("Model & downloads")
    t.click("dl-annot-json")
    saved = until(lambda: next(iter(t.downloads.glob("*.json")), None), what="the JSON")
    t.see("downloaded", saved.name, "with", len(json.loads(saved.read_text())["shapes"]), "strokes")
    t.click("clear-all")
    until(lambda: not t.overlay(), timeout=60, what="the overlay to go")
    until(lambda: "no model yet" in t.text("status-text"), what="the header")
    t.see("after Clear all:", t.text("status-text"), "|", t.text("train-info"))
    t.shot("clear-all")
    t.upload("#annot-upload", saved)
    until(lambda: "Annotations loaded" in t.toasts(), what="the loaded toast")
    until(t.overlay, timeout=300, what="the overlay from the loaded strokes")
    t.see("after loading the JSON:", t.n_shapes(), "strokes |", t.text("status-text"))
    t.shot("annotations-loaded")

    t.upload("#upload-images", data / "fluo_nuclei_nih3t3/images/dna-00.png")
    t.show("dna-00.png")
    until(lambda: "Paint this kind" in t.toasts(), what="the kind toast")
    bg, fg = strokes_from_mask(np.asarray(Image.open(data / "fluo_nuclei_nih3t3/masks/dna-00.png")))
    t.key("1")
    t.stroke(bg[0])
    until(t.banner, timeout=60, what="the banner")
    time.sleep(1.5)
    t.save("progress-extraction")
    t.click("job-cancel")
    until(lambda: "cancelled" in t.toasts(), timeout=30, what="the cancel toast")
    t.see("cancelled:", [x for x in t.toasts().split(" | ") if "ancel" in x][-1])
    t.click("train")
    t.see("first extraction (fluorescence 1344x1024):", t.watch_banner(lambda: not t.banner(), timeout=300))
    t.paint(bg[1:], fg)
    until(t.overlay, timeout=300, what="the overlay on the grey image")
    until(lambda: "One model per kind" in t.toasts(), timeout=60, what="the switch toast")
    t.see("grey among colour:", t.text("status-text"))
    t.shot("grey-among-colour")

    t.upload("#upload-images", inputs["dna16"])
    t.show("dna16.tif")
    shown = t.displayed()
    t.see("16-bit display: range", int(shown.min()), int(shown.max()), "mean", round(float(shown.mean()), 1))
    t.upload("#upload-images", inputs["stack"])
    t.show("dna_stack.tif")
    t.d.find_element("css selector", "#plane-slider [role=slider]").send_keys(Keys.ARROW_RIGHT)
    until(lambda: "plane 2/3" in t.text("canvas-info"), what="plane 2")
    t.see("slider:", t.d.find_element("css selector", "#plane-slider input").get_attribute("value"),
          "| header:", t.text("canvas-info").replace("\n", " "))
    t.shot("stack-plane")

    t.d.refresh()
    until(lambda: "dna_stack.tif" in t.text("canvas-info"), what="the restored session")
    t.d.execute_script(RECORD_TOASTS)
    t.see("after a reload:", t.text("status-text"), "|", len(t.d.find_elements("css selector", "#thumbnails .thumb")),
          "thumbnails")
    thumb = next(e for e in t.d.find_elements("css selector", "#thumbnails .thumb") if name in e.text)
    t.d.execute_script("arguments[0].click()", thumb)
    t.show(name)
    t.click("delete-image")
    until(lambda: f"Removed {name}" in t.toasts(), what="the removal toast")
    t.shot("removed-undo")
    undo = [b for b in t.d.find_elements("css selector", ".toasts button.btn-primary") if b.text == "Undo"][-1]
    undo.click()
    t.show(name)
    until(lambda: t.n_shapes() > 0, what="its strokes back")
    t.see("after Undo:", name, "is back with", t.n_shapes(), "strokes")

    first = t.d.execute_script("return localStorage.getItem('session-id')")
    t.d.execute_script("localStorage.clear()")
    t.d.refresh()
    until(lambda: "No images yet" in t.text("thumbnails"), what="an empty second session")
    t.see("second session: empty, new id:", first != t.d.execute_script("return localStorage.getItem('session-id')"))
    t.see("browser console errors:", [e for e in t.d.get_log("browser") if e.get("level") == "SEVERE"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args(argv)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="segapp-tour-"))
    proc, url = start_app(work)
    t = None
    try:
        t = Tour(url, out, work / "downloads")
        tour(t, data, make_inputs(data, work))
    finally:
        if t is not None:
            t.d.quit()
        proc.terminate()
        proc.wait(30)
        errors = [ln for ln in (work / "app.log").read_text(errors="replace").splitlines()
                  if "Traceback" in ln or "ERROR" in ln]
        print("server errors:", errors[:5])
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
