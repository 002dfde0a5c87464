"""Viewport-first prediction: display pyramid, stroke mapping, tile order, tiles == whole image."""

import numpy as np
import pytest

from segapp.annotations import shape_name, shapes_to_labels
from segapp.config import Settings
from segapp.features.tiles import TileGrid
from segapp.segmenter import Segmenter
from segapp.store import new_session_id
from segapp.ui import make_services
from segapp.ui import overlay_tiles as OT
from segapp.ui.figures import base_image_uri, canvas_figure
from segapp.ui.pipeline import load_model, refresh
from segapp.ui.session import key
from segapp.viewport import display_step, downscale, placement, tile_order, view_box, view_step

FAST = {"sigmas": [1.0, 3.0]}


def test_strokes_on_the_downscaled_display_land_on_the_right_full_resolution_pixels():
    h, w = 3000, 2500
    step = display_step(h, w)
    assert step == 2
    full = np.zeros((h, w, 3), np.uint8)
    full[2000:2010, 1000:1010] = 255  # a bright 10x10 marker at full resolution
    shown = downscale(full, step)
    fig = canvas_figure(base_image_uri(shown), (h, w), shapes=[], classes=[], active=1, width=1, revision="k",
                        step=step)
    trace = fig.data[0]
    # the user clicks on the displayed pixels of the marker: where are they on the axes?
    rows, cols = np.nonzero(shown[..., 0] == 255)
    xs, ys = trace.x0 + cols * trace.dx, trace.y0 + rows * trace.dy
    path = "M" + "L".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys))
    labels = shapes_to_labels([{"type": "path", "path": path, "name": shape_name(1, 1)}], (h, w))
    painted = np.argwhere(labels > 0)
    assert painted.size and (painted[:, 0] >= 2000).all() and (painted[:, 0] < 2010).all()
    assert (painted[:, 1] >= 1000).all() and (painted[:, 1] < 1010).all()
    assert placement(step) == 0.5 and fig.layout.xaxis.range == (-0.5, w - 0.5)


def test_view_geometry():
    grid = TileGrid((3000, 3000), 1024)
    view = {"x0": 1100.0, "x1": 1900.0, "y0": 100.0, "y1": 700.0, "px": 900}
    visible, rest = tile_order(grid, view)
    assert visible == [(0, 1)] and len(rest) == 8 and rest[0] in {(0, 0), (0, 2), (1, 1)}
    assert view_box(view, 3000, 3000) == (100, 701, 1100, 1901)
    assert view_step(view, 2) == 1 and view_step(None, 2) == 2
    assert view_step({"x0": 0, "x1": 3000, "y0": 0, "y1": 3000, "px": 1000}, 2) == 2


@pytest.fixture
def big_session(tmp_path, monkeypatch):
    """A 300x260 image shown at step 2 (display side 150) with 100-px tiles, painted and trained."""
    import segapp.features.tiles as T
    import segapp.ui.overlay_tiles as O
    import segapp.viewport as V

    monkeypatch.setattr(V, "DISPLAY_MAX_SIDE", 150)
    monkeypatch.setattr(O, "TILE", 100)
    monkeypatch.setattr(T, "TILE", 100)
    services = make_services(Settings(data_dir=tmp_path / "d", cache_dir=tmp_path / "c"))
    sid = new_session_id()
    sess = services.session(sid)
    rng = np.random.default_rng(0)
    img = np.full((300, 260), 50.0)
    img[:, 130:] = 180 + rng.normal(0, 20, (300, 130))
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)[None, ..., None]
    iid = sess.add_image("big.png", img, thumbnail=b"")
    k = key(iid, 0)
    shapes = [{"type": "path", "path": "M10,20L100,25", "name": shape_name(1, 5)},
              {"type": "path", "path": "M150,250L240,240", "name": shape_name(2, 5)}]
    sess.set_shapes(k, shapes, shapes_to_labels(shapes, (300, 260)))
    sess.set_settings({**sess.settings(), "extractor": "classical", "sigmas": [1.0, 3.0], "trees": 8})
    return services, sess, k, img[0]


def test_visible_tiles_first_then_the_picture_then_full_resolution(big_session):
    services, sess, k, img = big_session
    view = {"x0": 0, "x1": 90, "y0": 0, "y1": 90, "px": 400}  # zoomed into the top-left tile
    out = refresh(sess, services.feature_cache, services.models, k, retrain=True, view=view)
    assert out["trained"] and out["done"] == [[1, 0, 0]]  # only the tile in view, at full resolution
    todo = out["todo"]
    steps = [t[0] for t in todo]
    assert steps == sorted(steps, reverse=True) and set(steps) == {1, 2}  # the picture first, then full res
    assert sess.result(k) is None  # no full-resolution result yet
    seg = load_model(sess, services.models, services.feature_cache)
    while todo:
        done, todo = OT.run_plan(sess, seg, k, out["version"], todo, budget_s=0)
        assert len(done) == 1
    # stitched from tiles == the whole image predicted in one go (from the same float16 feature tiles)
    whole = Segmenter.load(sess.model_bytes())
    whole.cache = services.feature_cache
    np.testing.assert_array_equal(sess.result(k), whole.predict(img))
    proba = whole.predict_proba(img)
    np.testing.assert_allclose(sess.proba(k), proba, atol=1e-3)  # stored as float16
    # a display-step tile is the full-resolution prediction sampled every second pixel
    disp = sess.store.get_array(sess.sid, "tileproba", OT._item(k, 2, (1, 1))).astype(np.float32)
    np.testing.assert_allclose(disp, proba[100:200:2, 100:200:2], atol=2e-3)
    # overlays: display-step tiles for the picture, the full-resolution one where the view is zoomed in
    shown = OT.current_overlays(sess, seg, k, out["version"], "segmentation", None, sess.classes(), view)
    by_tile = {t["i"]: t["s"] for t in shown}
    assert by_tile[0] == 1 and len(by_tile) == 9 and set(by_tile.values()) == {1, 2}
    assert OT.plan(sess, seg, k, out["version"], view) == []


def test_a_later_stroke_recomputes_no_feature_tile(big_session, monkeypatch):
    from segapp.features.classical import ClassicalFeatures

    services, sess, k, img = big_session
    refresh(sess, services.feature_cache, services.models, k, retrain=True, view=None)
    seg = load_model(sess, services.models, services.feature_cache)
    version = sess.model_info()["version"]
    todo = OT.plan(sess, seg, k, version, None)
    OT.run_plan(sess, seg, k, version, todo, budget_s=float("inf"))
    calls = []
    real = ClassicalFeatures.compute
    monkeypatch.setattr(ClassicalFeatures, "compute", lambda self, im: calls.append(im.shape) or real(self, im))
    shapes = sess.shapes(k) + [{"type": "path", "path": "M20,200L60,210", "name": shape_name(1, 5)}]
    sess.set_shapes(k, shapes, shapes_to_labels(shapes, (300, 260)))
    out = refresh(sess, services.feature_cache, services.models, k, retrain=True, view=None)
    OT.run_plan(sess, seg := load_model(sess, services.models, services.feature_cache), k, out["version"],
                out["todo"], budget_s=float("inf"))
    assert out["trained"] and calls == []  # every tile came from the disk cache
    assert sess.result_version(k) == out["version"] and seg is not None


def test_a_stroke_on_a_large_view_answers_with_a_coarse_preview_and_the_detail_follows(big_session, monkeypatch):
    services, sess, k, img = big_session
    monkeypatch.setattr(OT, "PREVIEW_PIXELS", 4_000)  # the 300x260 image stands in for a large one
    view = {"x0": 0, "x1": 190, "y0": 0, "y1": 190, "px": 800}  # zoomed in: 4 tiles in view at full resolution
    out = refresh(sess, services.feature_cache, services.models, k, retrain=True, view=view, preview=True)
    assert [d[0] for d in out["done"]] == [4] * 4  # 4 x 100x100 px = 40,000 px > 4,000: step 4 (2,500 px)
    assert [t[0] for t in out["todo"][:4]] == [1] * 4 and sess.result(k) is None  # then the view at full detail
    seg = load_model(sess, services.models, services.feature_cache)
    sent = OT.overlays(sess, seg, k, out["done"], "segmentation", None, sess.classes(), view)
    assert sorted((t["i"], t["s"]) for t in sent) == [(0, 4), (1, 4), (3, 4), (4, 4)]  # the preview is shown
    again = OT.current_overlays(sess, seg, k, out["version"], "segmentation", None, sess.classes(), view)
    assert sorted((t["i"], t["s"]) for t in again) == [(0, 4), (1, 4), (3, 4), (4, 4)]  # also after a re-render
    OT.run_plan(sess, seg, k, out["version"], out["todo"], budget_s=float("inf"))
    whole = Segmenter.load(sess.model_bytes())
    whole.cache = services.feature_cache
    np.testing.assert_array_equal(sess.result(k), whole.predict(img))  # the preview changes no result
    shown = OT.current_overlays(sess, seg, k, out["version"], "segmentation", None, sess.classes(), view)
    assert {t["i"]: t["s"] for t in shown}[0] == 1  # the finest tile is the one shown
    later = refresh(sess, services.feature_cache, services.models, k, retrain=True, view=view, preview=False)
    assert not later["trained"] and later["done"] == []  # nothing stale: no preview is redone without a stroke
