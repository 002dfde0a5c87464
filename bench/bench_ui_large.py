"""Large images in the web app (9 MP, 25 MP): first overlay and later strokes, viewport first.

Used by ``bench/ui_latency.py --large 3000 5000``.  A real user's session in
headless Chromium with real mouse drags: upload the image, zoom into a region
(as one does to paint details), paint class 1, press 2, paint class 2; then
``--large-strokes`` more strokes.  For each, the clock runs from the mouse
release to (a) every overlay tile in view showing the new model ("visible")
and (b) every tile of the image showing it ("whole"), read from the figure's
``layout.images`` (each tile is named ``version:step``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

GD = "document.querySelector('#canvas .js-plotly-plot')"

TILE_STATE = "var g = " + GD + """, fl = g._fullLayout, xr = fl.xaxis.range, yr = fl.yaxis.range;
var x0 = Math.min(xr[0], xr[1]), x1 = Math.max(xr[0], xr[1]), y0 = Math.min(yr[0], yr[1]), y1 = Math.max(yr[0], yr[1]);
var vis = [], all = [];
(g.layout.images || []).forEach(function (im) {
  var v = im.visible ? Number(String(im.name).split(':')[0]) : 0;
  all.push(v);
  if (im.x < x1 && im.x + im.sizex > x0 && im.y < y1 && im.y + im.sizey > y0) vis.push(v);
});
return {vis: Math.min.apply(null, vis), all: Math.min.apply(null, all), n: all.length};
"""


def large_image(size: int, data: Path | None, out: Path) -> Path:
    """An RGB ``size``² image: H&E tiles from ``data`` (he_nuclei_miccai) when present, else scikit-image's."""
    from PIL import Image

    src = sorted((data / "he_nuclei_miccai" / "images").glob("*.png")) if data else []
    if src:
        tiles = [np.asarray(Image.open(p).convert("RGB")) for p in src]
    else:
        from skimage import data as skd

        tiles = [skd.astronaut(), skd.immunohistochemistry(), skd.coffee()[:400, :512]]
    h, w = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    rows, k = [], 0
    for r in range(-(-size // h)):
        row = []
        for c in range(-(-size // w)):
            t = tiles[k % len(tiles)][:h, :w]
            k += 1
            row.append(t if (r + c) % 2 == 0 else t[:, ::-1])
        rows.append(np.concatenate(row, 1))
    path = out / f"mosaic_{size}.png"
    Image.fromarray(np.ascontiguousarray(np.concatenate(rows, 0)[:size, :size])).save(path, compress_level=1)
    return path


def tile_state(drv) -> dict:
    return drv.execute_script(TILE_STATE)


def drag(drv, points) -> None:
    """A real pointer drag along image-pixel ``points`` [(col, row), ...]."""
    from selenium.webdriver.common.action_chains import ActionChains

    area = drv.find_element("css selector", "#canvas .nsewdrag")
    screen = drv.execute_script(
        f"var g={GD}, xa=g._fullLayout.xaxis, ya=g._fullLayout.yaxis;"
        "return arguments[0].map(function(p){return [xa.d2p(p[0]), ya.d2p(p[1])];});", points)
    chain = ActionChains(drv).move_to_element_with_offset(area, *screen[0]).click_and_hold()
    for x, y in screen[1:]:
        chain = chain.move_to_element_with_offset(area, x, y)
    chain.release().perform()


def choose_class(drv, cid: int, timeout: float = 30) -> None:
    """Press the class's key and wait until the brush paints that class (the newshape patch arrived)."""
    drv.find_element("css selector", "body").send_keys(str(cid))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if drv.execute_script(f"return ({GD}.layout.newshape || {{}}).name || ''").startswith(f"class={cid};"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"class {cid} never became the brush")


def wait_version(drv, newer_than: int, what: str, timeout: float) -> float:
    """Seconds until the tiles of ``what`` ("vis" or "all") show a version > ``newer_than``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        st = tile_state(drv)
        if st["n"] and st[what] > newer_than:
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise RuntimeError(f"no new overlay ({what}) within {timeout:.0f} s")


def run_case(page_factory, url: str, image: Path, size: int, n_strokes: int, shots: Path | None) -> dict:
    """One large image: first overlay (visible, whole) and the later strokes' latencies."""
    from segapp.viewport import display_step

    page = page_factory(url, image)
    drv = page.drv
    try:
        # zoom into the upper-left third, as one does to paint details
        view = size // 3
        drv.execute_script(f"Plotly.relayout({GD}, {{'xaxis.range': [0, {view}], 'yaxis.range': [{view}, 0]}});")
        time.sleep(1.5)
        rng = np.random.default_rng(0)

        def squiggle(cx, cy):
            return [(cx + k * view * 0.04, cy + rng.normal(0, view * 0.004)) for k in range(6)]

        drag(drv, squiggle(view * 0.1, view * 0.1))          # class 1: background near the corner
        choose_class(drv, 2)
        drag(drv, squiggle(view * 0.5, view * 0.5))          # class 2
        t_vis = wait_version(drv, 0, "vis", 600)
        if shots:
            drv.save_screenshot(str(shots / f"large_{size}_first_visible.png"))
        t_all = t_vis + wait_version(drv, 0, "all", 900)
        later = []
        for i in range(n_strokes):
            before = max(tile_state(drv)["vis"], 0)
            choose_class(drv, 1 if i % 2 == 0 else 2)
            pts = squiggle(view * (0.15 + 0.12 * i), view * (0.3 + 0.1 * (i % 3)))
            drag(drv, pts)
            tv = wait_version(drv, before, "vis", 300)
            ta = tv + wait_version(drv, before, "all", 600)
            later.append((tv, ta))
            print(f"  {size}² stroke {i + 1}: visible {tv:.2f} s, whole {ta:.2f} s", flush=True)
        if shots:
            drv.save_screenshot(str(shots / f"large_{size}_after_strokes.png"))
            drv.execute_script(f"Plotly.relayout({GD}, {{'xaxis.autorange': true, 'yaxis.autorange': true}});")
            time.sleep(3)
            drv.save_screenshot(str(shots / f"large_{size}_whole.png"))
    finally:
        page.close()
    return {"size": size, "step": display_step(size, size), "first_visible_s": t_vis, "first_whole_s": t_all,
            "later_visible_median_s": statistics.median([a for a, _ in later]) if later else None,
            "later_whole_median_s": statistics.median([b for _, b in later]) if later else None, "n": len(later)}


def print_table(rows: list[dict]) -> None:
    print("\nlarge images in the web app (segapp, viewport first; headless Chromium, real drags)")
    print(f"{'image':<12}{'step':>5}{'first: visible':>16}{'first: whole':>14}"
          f"{'later: visible':>16}{'later: whole':>14}{'N':>4}")
    for r in rows:
        mp = r["size"] ** 2 / 1e6
        lv = r["later_visible_median_s"]
        lw = r["later_whole_median_s"]
        print(f"{r['size']}² {mp:4.0f}MP{r['step']:>5}{r['first_visible_s']:>15.1f}s{r['first_whole_s']:>13.1f}s"
              + (f"{lv:>15.2f}s{lw:>13.2f}s" if lv is not None else f"{'-':>16}{'-':>14}") + f"{r['n']:>4}")
    print("baseline (sample app, recompute everything + resend the figure) at these sizes: not run — "
          "multiscale_basic_features alone needs > 5 GB at 9 MP (float64, 24 features x 3 channels) "
          "and the whole-figure PNG per stroke is tens of MB; see the 1 MP comparison above.")
