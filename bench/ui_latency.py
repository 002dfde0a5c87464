"""UI latency: one stroke -> the updated overlay on screen, in headless Chromium.

Usage::

    python bench/ui_latency.py [--size 1024] [--strokes 10] [--baseline-strokes 5]

Two apps run side by side in this process, each driven by its own headless
Chromium, on the same 1024x1024 RGB image (scikit-image's astronaut, resized):

- **segapp**: the real app (``segapp.ui.create_app``), live update on, features
  cached after the first stroke; the overlay arrives as a ``dash.Patch``.
- **baseline**: the Dash/scikit-image sample app's approach: on every stroke
  recompute ``multiscale_basic_features``, refit a random forest
  (``skimage.future.fit_segmenter``), predict, and send back the whole figure
  (image + overlay + shapes).

A stroke is injected the way a drawn path arrives (``Plotly.relayout`` with the
new shapes list, which fires ``plotly_relayout`` -> ``relayoutData``); the clock
stops when the overlay trace shows a new PNG and the browser has painted a frame.
Payload = bytes of the ``_dash-update-component`` responses per stroke (the
largest one is the overlay update / figure resend).  The first two strokes of each
app (one per class; segapp's first one extracts features in a background job) are
warm-up and not timed; the timed strokes alternate between the two apps so both
see the same machine load.  The "server part" row times segapp's retrain + predict
+ store + overlay PNG in-process on the same session afterwards (the rest of a
stroke's latency is HTTP, JSON and drawing in the browser).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1440,1000"]

WRAP_FETCH = """
if (!window.__wrapped) {
  window.__wrapped = true; window.__sizes = [];
  var orig = window.fetch;
  window.fetch = function (input, init) {
    var url = String((input && input.url) || input);
    return orig.apply(this, arguments).then(function (r) {
      if (url.indexOf('_dash-update-component') >= 0)
        r.clone().arrayBuffer().then(function (b) { window.__sizes.push(b.byteLength); });
      return r;
    });
  };
}"""

STROKE = """
var shape = arguments[0], cb = arguments[arguments.length - 1];
var gd = document.querySelector('#canvas .js-plotly-plot');
var src = function () {
  var ims = (gd.layout.images || []).filter(function (i) { return i.visible; });
  if (ims.length) return ims.map(function (i) { return i.source; }).join('|');
  var t = gd.data && gd.data[1];  // the baseline app's overlay trace
  return t && t.visible !== false ? t.source : null;
};
var before = src();
window.__sizes = [];
var t0 = performance.now();
Plotly.relayout(gd, {shapes: (gd.layout.shapes || []).concat([shape])});
(function poll() {
  var s = src();
  if (s && s !== before) {
    requestAnimationFrame(function () {
      var ms = performance.now() - t0;
      setTimeout(function () { cb({ms: ms, sizes: window.__sizes.slice()}); }, 300);
    });
  } else if (performance.now() - t0 > 180000) { cb({ms: -1, sizes: []}); }
  else { setTimeout(poll, 4); }
})();"""


def make_image(size: int) -> np.ndarray:
    from skimage import data, transform

    return (transform.resize(data.astronaut(), (size, size), order=1) * 255).astype(np.uint8)


def strokes(size: int, n: int, seed: int = 0) -> list[dict]:
    """Alternating class 1 / class 2 polylines of ~15 % of the image width, at random places."""
    from segapp.annotations import shape_name

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(0.1, 0.75) * size, rng.uniform(0.1, 0.9) * size
        pts = [(x0 + k * 0.04 * size, y0 + rng.normal(0, 0.01 * size)) for k in range(5)]
        path = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        cid = 1 + i % 2
        out.append({"type": "path", "path": path, "name": shape_name(cid, 5), "editable": True,
                    "line": {"color": "#1f77b4" if cid == 1 else "#d62728", "width": 4}, "opacity": 0.75})
    return out


def baseline_app(img: np.ndarray):
    """The sample app's approach: everything recomputed and the whole figure resent per stroke."""
    import plotly.express as px
    import plotly.graph_objects as go
    from dash import Dash, Input, Output, dcc
    from dash.exceptions import PreventUpdate
    from skimage import future
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    from segapp.annotations import shapes_to_labels
    from segapp.ui.render import labels_png_uri

    def figure(shapes, overlay=None):
        fig = px.imshow(img, binary_string=True)
        if overlay is not None:
            fig.add_trace(go.Image(source=overlay, opacity=0.45, hoverinfo="skip"))
        fig.update_layout(dragmode="drawopenpath", shapes=shapes, uirevision="x", margin=dict(l=0, r=0, t=0, b=0),
                          newshape=dict(name="class=1;width=5"))
        return fig

    app = Dash("baseline", assets_folder=tempfile.mkdtemp())
    app.layout = dcc.Graph(id="canvas", figure=figure([]), style={"height": "900px"})

    @app.callback(Output("canvas", "figure"), Input("canvas", "relayoutData"), prevent_initial_call=True)
    def update(relayout):
        if not relayout or "shapes" not in relayout:
            raise PreventUpdate
        shapes = relayout["shapes"]
        labels = shapes_to_labels(shapes, img.shape[:2])
        if np.unique(labels[labels > 0]).size < 2:
            return figure(shapes)
        feats = multiscale_basic_features(img, channel_axis=-1, sigma_min=0.5, sigma_max=16)
        clf = RandomForestClassifier(n_estimators=50, n_jobs=-1, max_depth=8, max_samples=0.05)
        clf = future.fit_segmenter(labels, feats, clf)
        seg = future.predict_segmenter(feats, clf)
        return figure(shapes, labels_png_uri(seg, {1: "#1f77b4", 2: "#d62728"}))

    return app


def serve(app) -> str:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    for a in BROWSER_ARGS:
        opts.add_argument(a)
    return webdriver.Chrome(options=opts)


class Page:
    """One app open in its own headless Chromium, ready for strokes."""

    def __init__(self, url: str, image_path: Path | None = None):
        self.drv = browser()
        self.drv.set_script_timeout(240)
        self.drv.get(url)
        wait(self.drv, "return !!document.querySelector('#canvas .js-plotly-plot')")
        if image_path is not None:  # segapp: upload the image like a user
            wait(self.drv, "return document.querySelectorAll('#class-list .class-row').length > 0")
            self.drv.find_element("css selector", "#upload-images input[type=file]").send_keys(str(image_path))
            wait(self.drv, "var g=document.querySelector('#canvas .js-plotly-plot');"
                           "return g.data && g.data.length >= 1 && !!g._fullLayout.xaxis._length", timeout=300)
        self.drv.execute_script(WRAP_FETCH)

    def session(self) -> str | None:
        return self.drv.execute_script("return JSON.parse(localStorage.getItem('session-id') || 'null')")

    def first_stroke(self, shape: dict) -> None:
        """One class only: no overlay is expected (segapp starts extracting features)."""
        self.drv.execute_script("var gd=document.querySelector('#canvas .js-plotly-plot');"
                                "Plotly.relayout(gd, {shapes: (gd.layout.shapes||[]).concat([arguments[0]])});", shape)

    def stroke(self, shape: dict) -> dict:
        r = self.drv.execute_async_script(STROKE, shape)
        if r["ms"] < 0:
            raise RuntimeError("no overlay update within 3 minutes")
        return r

    def close(self):
        self.drv.quit()


def wait(drv, script: str, timeout: float = 60):
    end = time.time() + timeout
    while time.time() < end:
        if drv.execute_script(script):
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out: {script}")


def summarize(rows: list[dict]) -> dict:
    ms = [r["ms"] for r in rows]
    biggest = [max(r["sizes"]) if r["sizes"] else 0 for r in rows]
    total = [sum(r["sizes"]) for r in rows]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
            "update_bytes": statistics.median(biggest), "total_bytes": statistics.median(total), "n": len(ms)}


def engine_only(app, sid: str, repeats: int) -> dict:
    """Server-side part of a stroke, in-process on the same session: retrain + predict + store (+ overlay PNG)."""
    from segapp.ui import overlay_tiles as OT
    from segapp.ui.pipeline import StrictCache, load_model, refresh

    services = app.server.extensions["segapp"]
    sess = services.session(sid)
    k = sess.annotated_keys()[0]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = refresh(sess, StrictCache(services.feature_cache), services.models, k, retrain=True, force=True,
                      save_in_thread=True)
        OT.overlays(sess, load_model(sess, services.models, services.feature_cache), k, out["done"],
                    "segmentation", None, sess.classes(), None)
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "update_bytes": 0, "total_bytes": 0, "n": len(times)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--strokes", type=int, default=10, help="timed strokes for segapp")
    ap.add_argument("--baseline-strokes", type=int, default=5, help="timed strokes for the baseline")
    ap.add_argument("--large", nargs="*", type=int, default=[], help="also these sides, e.g. 3000 5000 (9, 25 MP)")
    ap.add_argument("--large-strokes", type=int, default=5, help="later strokes timed per large image")
    ap.add_argument("--large-only", action="store_true", help="skip the 1 MP comparison")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="H&E tiles for the large images")
    ap.add_argument("--screenshots", type=Path, help="save screenshots of the large cases here")
    args = ap.parse_args(argv)
    if args.large:
        large_cases(args)
        if args.large_only:
            return 0

    from PIL import Image

    from segapp.config import Settings
    from segapp.ui import create_app

    tmp = Path(tempfile.mkdtemp(prefix="segapp-bench-"))
    img = make_image(args.size)
    image_path = tmp / f"astronaut_{args.size}.png"
    Image.fromarray(img).save(image_path)
    warmup = 2
    shapes = strokes(args.size, warmup + max(args.strokes, args.baseline_strokes))

    app = create_app(Settings(data_dir=tmp / "data", cache_dir=tmp / "cache"))
    pages = {"segapp": Page(serve(app), image_path), "baseline": Page(serve(baseline_app(img)))}
    rows = {"segapp": [], "baseline": []}
    try:
        for name, page in pages.items():  # warm-up: one stroke per class
            page.first_stroke(shapes[0])
            time.sleep(2)
            r = page.stroke(shapes[1])
            print(f"  {name} warm-up (first two-class model): {r['ms']:.0f} ms", flush=True)
        # timed strokes, alternating between the apps so both see the same machine load
        for i in range(max(args.strokes, args.baseline_strokes)):
            for name, n in (("segapp", args.strokes), ("baseline", args.baseline_strokes)):
                if i < n:
                    r = pages[name].stroke(shapes[warmup + i])
                    rows[name].append(r)
                    print(f"  {name} stroke {i + 1}: {r['ms']:.0f} ms, responses {r['sizes']}", flush=True)
        sid = pages["segapp"].session()
    finally:
        for page in pages.values():
            page.close()
    seg, base = summarize(rows["segapp"]), summarize(rows["baseline"])
    engine = engine_only(app, sid, repeats=args.strokes)

    print()
    print(f"stroke -> updated overlay, {args.size}x{args.size} RGB, headless Chromium (median of N strokes)")
    print(f"{'approach':<44}{'N':>3}{'median':>10}{'min':>9}{'max':>9}{'update bytes':>15}{'bytes/stroke':>15}")
    for name, s in (("segapp (cached features, Patch overlay)", seg),
                    ("  server part alone (in-process, afterwards)", engine),
                    ("baseline (recompute + full figure resend)", base)):
        print(f"{name:<44}{s['n']:>3}{s['median_ms']:>8.0f}ms{s['min_ms']:>7.0f}ms{s['max_ms']:>7.0f}ms"
              f"{s['update_bytes']:>15,.0f}{s['total_bytes']:>15,.0f}")
    print(f"speed-up (baseline median / segapp median): {base['median_ms'] / seg['median_ms']:.1f}x")
    print(f"payload: overlay update / full figure resend = {seg['update_bytes'] / base['update_bytes']:.3f} "
          f"(1/{base['update_bytes'] / seg['update_bytes']:.0f})")
    return 0


def large_cases(args) -> None:
    from bench_ui_large import large_image, print_table, run_case

    from segapp.config import Settings
    from segapp.ui import create_app

    tmp = Path(tempfile.mkdtemp(prefix="segapp-bench-large-"))
    data = args.data if args.data and args.data.is_dir() else None
    rows = []
    for size in args.large:
        image = large_image(size, data, tmp)
        app = create_app(Settings(data_dir=tmp / f"data{size}", cache_dir=tmp / f"cache{size}",
                                  max_upload_mb=400))
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
        rows.append(run_case(Page, serve(app), image, size, args.large_strokes, args.screenshots))
    print_table(rows)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # the apps' background tile threads may still be predicting: skip interpreter teardown (it would abort them)
    import os

    os._exit(code)
