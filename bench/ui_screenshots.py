"""Screenshots of the web app's main states for the docs, taken in headless Chromium.

Usage::

    python bench/ui_screenshots.py [--out docs/screenshots]

Writes ``empty.png``, ``painted.png``, ``segmented.png``, ``uncertainty.png`` and
``objects.png``: scikit-image's ``coins`` painted with a few strokes per class
(placed from a rough threshold so they land on coins and between them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ui_latency import browser, serve, wait  # noqa: E402

GD = "document.querySelector('#canvas .js-plotly-plot')"


def coin_strokes(img: np.ndarray) -> tuple[list, list]:
    """Background strokes between coin rows, short foreground strokes across coin centres."""
    from scipy import ndimage as ndi
    from skimage import filters, measure

    mask = ndi.binary_fill_holes(filters.gaussian(img, 2) > filters.threshold_otsu(filters.gaussian(img, 2)))
    rows = [r for r in range(8, img.shape[0] - 8, 4) if mask[r].mean() < 0.04]
    bg = []
    for r in [rows[0], rows[len(rows) // 2], rows[-1]] if rows else []:
        bg.append([(12, r), (img.shape[1] // 2, r + 1), (img.shape[1] - 12, r)])
    bg.append([(6, 20), (6, img.shape[0] // 2), (6, img.shape[0] - 20)])
    bg.append([(20, 4), (img.shape[1] // 2, 5), (img.shape[1] - 20, 4)])  # the bright band along the top
    h, w = img.shape
    inner = [p for p in measure.regionprops(measure.label(mask))
             if p.bbox[0] > 2 and p.bbox[1] > 2 and p.bbox[2] < h - 2 and p.bbox[3] < w - 2]
    props = sorted(inner, key=lambda p: -p.area)[:8]
    fg = []
    for p in props:
        y, x = p.centroid
        rad = 0.5 * p.axis_minor_length
        fg.append([(x - 0.5 * rad, y), (x, y + 0.1 * rad), (x + 0.5 * rad, y)])
    return bg, fg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select
    from skimage import data

    from segapp.config import Settings
    from segapp.ui import create_app

    tmp = Path(tempfile.mkdtemp(prefix="segapp-shots-"))
    url = serve(create_app(Settings(data_dir=tmp / "data", cache_dir=tmp / "cache")))
    drv = browser()
    drv.set_window_size(1440, 900)

    def click(id_):
        drv.execute_script("document.getElementById(arguments[0]).click()", id_)

    def stroke(points):
        drag = drv.find_element("css selector", "#canvas .nsewdrag")
        screen = drv.execute_script(f"var g={GD}, xa=g._fullLayout.xaxis, ya=g._fullLayout.yaxis;"
                                    "return arguments[0].map(function(p){return [xa.d2p(p[0]), ya.d2p(p[1])];});",
                                    points)
        chain = ActionChains(drv).move_to_element_with_offset(drag, *screen[0]).click_and_hold()
        for x, y in screen[1:]:
            chain = chain.move_to_element_with_offset(drag, x, y)
        chain.release().perform()
        time.sleep(0.4)

    try:
        drv.get(url)
        wait(drv, "return document.querySelectorAll('#class-list .class-row').length > 0")
        time.sleep(1)
        drv.save_screenshot(str(out / "empty.png"))

        drv.execute_script("document.getElementById('live-update').click()")  # paint first, then train
        Select(drv.find_element("css selector", "#sample-select")).select_by_value("coins")
        time.sleep(0.5)
        click("sample-add")
        wait(drv, f"var g={GD}; return g && g.data && g.data.length >= 1 && !!g._fullLayout.xaxis._length")
        time.sleep(1)
        bg, fg = coin_strokes(data.coins())
        for s in bg:
            stroke(s)
        drv.find_element("css selector", "body").send_keys("2")
        time.sleep(0.5)
        for s in fg:
            stroke(s)
        time.sleep(1.5)
        drv.save_screenshot(str(out / "painted.png"))

        click("train")
        wait(drv, f"var g={GD}; return (g.layout.images || []).some(function (i) {{ return i.visible; }})", timeout=120)
        time.sleep(1.5)
        drv.save_screenshot(str(out / "segmented.png"))

        drv.execute_script("Array.from(document.querySelectorAll('#overlay-mode label'))"
                           ".find(function(l){return l.innerText=='Uncertainty';}).click()")
        time.sleep(2)
        drv.save_screenshot(str(out / "uncertainty.png"))

        click("measure")
        wait(drv, "return document.querySelectorAll('#obj-table td').length > 0", timeout=60)
        time.sleep(1.5)
        drv.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        time.sleep(1)
        drv.save_screenshot(str(out / "objects.png"))
    finally:
        drv.quit()
    print("wrote", ", ".join(sorted(p.name for p in out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
