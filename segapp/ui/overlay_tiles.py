"""Viewport-first prediction for the canvas: tiles in view first, the rest after, full resolution last.

UI-free glue (no Dash), like :mod:`segapp.ui.pipeline`: it decides which tiles
of a plane to predict, at which step (:mod:`segapp.viewport`), stores each
predicted tile in the session, renders tile overlays and stitches the
full-resolution result once every tile has one.  A *plan* is a list of
``[step, ty, tx]`` entries, the order in which the browser will receive tiles:

0. after a stroke (``preview=True``), when the view holds more than ``PREVIEW_PIXELS``
   pixels at its resolution: the tiles in view once more coarsely (step doubled until
   they fit), so the stroke's answer comes at once and the detail follows;
1. the tiles in view, at the view's resolution (display step, or 1 when zoomed in);
2. the other tiles at the display step (the whole picture);
3. every tile at step 1 (the full-resolution result for downloads, measurements).

For an image that fits the display (step 1), 1-3 are the same tiles and the
first batch already completes the result.

Session items: ``tile/<key>.<step>.<ty>_<tx>`` (labels), ``tileproba/...`` (float16)
and ``tilev/...`` (``{"version", "classes"}``).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..features.tiles import TILE, TileGrid
from ..segmenter import uncertainty
from ..viewport import display_step, placement, tile_order, view_step
from .render import heatmap_png_uri, instances_png_uri, labels_png_uri
from .session import split_key


def _item(k: str, step: int, index) -> str:
    return f"{k}.{int(step)}.{int(index[0])}_{int(index[1])}"


def plane_grid(sess, seg, k: str) -> TileGrid:
    """The overlay-tile grid of plane ``k`` (the feature-tile size, independent of the extractor)."""
    h, w = sess.meta(split_key(k)[0])["shape"][1:3]
    return TileGrid((h, w), TILE)


def plane_steps(sess, k: str) -> tuple[int, int, int]:
    """``(h, w, display step)`` of plane ``k``."""
    h, w = sess.meta(split_key(k)[0])["shape"][1:3]
    return h, w, display_step(h, w)


def tile_version(sess, k: str, step: int, index) -> int | None:
    doc = sess.store.get_json(sess.sid, "tilev", _item(k, step, index))
    return doc["version"] if doc else None


PREVIEW_PIXELS = 300_000  # a stroke's first answer predicts at most about this many pixels of the view


def preview_step(grid: TileGrid, visible: list, step: int) -> int:
    """The step of a stroke's first answer: ``step`` doubled until the visible tiles hold
    at most :data:`PREVIEW_PIXELS` pixels (``step`` itself when they already do).

    Examples
    --------
    >>> grid = TileGrid((1024, 1024), 512)
    >>> preview_step(grid, list(grid), 1), preview_step(grid, [(0, 0)], 1), preview_step(grid, list(grid), 2)
    (2, 1, 2)
    """
    pixels = sum((b[1] - b[0]) * (b[3] - b[2]) for b in map(grid.box, visible))
    out = step
    while pixels / (out * out) > PREVIEW_PIXELS:
        out *= 2
    return out


def plan(sess, seg, k: str, version: int, view: dict | None, *, preview: bool = False) -> list[list[int]]:
    """Tiles still to predict for ``version``, in the order the user needs them (see module doc)."""
    grid = plane_grid(sess, seg, k)
    disp = plane_steps(sess, k)[2]
    visible, rest = tile_order(grid, view)
    step = view_step(view, disp)
    coarse = preview_step(grid, visible, step) if preview else step
    wanted = [(coarse, i) for i in visible if coarse > step] + [(step, i) for i in visible] + \
        [(disp, i) for i in rest] + [(1, i) for i in visible + rest]
    out, seen = [], set()
    for step, index in wanted:
        if (step, index) in seen:
            continue
        seen.add((step, index))
        if tile_version(sess, k, step, index) != version:
            out.append([int(step), int(index[0]), int(index[1])])
    return out


def run_plan(sess, seg, k: str, version: int, todo: list, *, budget_s: float = 0.8,
             progress=None, keep: bool = True) -> tuple[list, list]:
    """Predict tiles of ``todo`` in order until ``budget_s`` has passed (at least one).

    ``keep``: let the feature cache keep the tiles read (the view's, reused by
    the next stroke); a background sweep passes False so it does not evict them.
    Returns ``(done, remaining)``; when the last step-1 tile is done the
    full-resolution result is stitched and stored (:func:`stitch`).
    """
    iid, z = split_key(k)
    image = sess.plane(iid, z)
    tiles = seg.feature_tiles(image)
    for part in getattr(tiles, "parts", [tiles]):
        part.keep = keep
    grid = plane_grid(sess, seg, k)
    ids = [int(c) for c in seg.classes_]
    done, t0 = [], time.perf_counter()
    todo = list(todo)
    while todo and (not done or time.perf_counter() - t0 < budget_s):
        step, ty, tx = todo.pop(0)
        proba = tile_proba(seg, tiles, grid.box((ty, tx)), step)
        labels = seg.predict(None, proba=proba)
        item = _item(k, step, (ty, tx))
        sess.store.put_array(sess.sid, "tile", item, labels)
        sess.store.put_array(sess.sid, "tileproba", item, proba.astype(np.float16))
        sess.store.put_json(sess.sid, "tilev", item, {"version": int(version), "classes": ids})
        done.append([step, ty, tx])
        if progress:
            progress(len(done) / (len(done) + len(todo)))
    if any(d[0] == 1 for d in done) and not any(t[0] == 1 for t in todo):
        stitch(sess, seg, k, version, grid)
    return done, todo


BAND_PIXELS = 1 << 17  # pixels whose features are gathered (float32) and classified at once


def tile_proba(seg, tiles, box, step: int) -> np.ndarray:
    """Class probabilities of the pixels ``y0:y1:step, x0:x1:step`` of ``box``, in row bands.

    A band's features are read from the cached tiles (float16 on disk) and converted
    only for that band: a 1 MP tile of the default features is 0.9 GB as one float32
    array, which took longer to assemble than the forest took to classify it.

    Examples
    --------
    >>> import numpy as np
    >>> class Seg:  # a stand-in: the probabilities are the features
    ...     def proba_of(self, f): return f
    >>> class Tiles:
    ...     def region(self, y0, y1, x0, x1, step): return np.mgrid[y0:y1:step, x0:x1:step].transpose(1, 2, 0)
    >>> tile_proba(Seg(), Tiles(), (0, 5, 0, 4), 2).shape
    (3, 2, 2)
    """
    y0, y1, x0, x1 = box
    nx = len(range(x0, x1, step))
    band = step * max(1, BAND_PIXELS // max(1, nx))
    return np.concatenate([seg.proba_of(tiles.region(b, min(b + band, y1), x0, x1, step))
                           for b in range(y0, y1, band)])


def stitch(sess, seg, k: str, version: int, grid: TileGrid) -> bool:
    """Store the whole plane's result from its step-1 tiles if all are at ``version``."""
    if any(tile_version(sess, k, 1, i) != version for i in grid):
        return False
    labels = np.zeros((grid.h, grid.w), np.uint8)
    proba = None
    for index in grid:
        y0, y1, x0, x1 = grid.box(index)
        item = _item(k, 1, index)
        lab, p = sess.store.get_array(sess.sid, "tile", item), sess.store.get_array(sess.sid, "tileproba", item)
        if lab is None or p is None:
            return False
        if proba is None:
            labels = np.zeros((grid.h, grid.w), lab.dtype)
            proba = np.zeros((grid.h, grid.w, p.shape[-1]), np.float16)
        labels[y0:y1, x0:x1], proba[y0:y1, x0:x1] = lab, p
    sess.put_result(k, labels, proba, version, [int(c) for c in seg.classes_])
    return True


def tile_overlay(sess, k: str, step: int, index, grid: TileGrid, mode: str, proba_class, classes) -> dict | None:
    """What the browser needs to draw one tile: ``{"i", "uri", "x", "y", "w", "h", "v", "s"}`` (None: nothing)."""
    item = _item(k, step, index)
    doc = sess.store.get_json(sess.sid, "tilev", item)
    if doc is None or mode == "none":
        return None
    y0, y1, x0, x1 = grid.box(index)
    if mode == "objects":
        inst = sess.store.get_array(sess.sid, "objects", k)
        if inst is None:
            return None
        uri = instances_png_uri(inst[y0:y1:step, x0:x1:step])
    elif mode == "segmentation":
        uri = labels_png_uri(sess.store.get_array(sess.sid, "tile", item), {c["id"]: c["color"] for c in classes})
    else:
        proba = sess.store.get_array(sess.sid, "tileproba", item).astype(np.float32)
        if mode == "uncertainty":
            uri = heatmap_png_uri(uncertainty(proba), "inferno")
        else:
            order = doc["classes"]
            cid = proba_class if proba_class in order else order[-1]
            uri = heatmap_png_uri(proba[..., order.index(cid)], "viridis")
    return {"i": index[0] * grid.shape[1] + index[1], "uri": uri, "x": x0 - 0.5, "y": y0 - 0.5,
            "w": x1 - x0, "h": y1 - y0, "v": doc["version"], "s": int(step)}


def overlays(sess, seg, k: str, entries, mode: str, proba_class, classes, view: dict | None,
             skip=()) -> list[dict]:
    """Tile overlays worth sending for predicted ``entries`` ([step, ty, tx]): those at the display
    step, step-1 tiles in view when the view is zoomed in past the display resolution, and a
    stroke's coarse preview of the tiles in view (the browser keeps the finest it has)."""
    grid = plane_grid(sess, seg, k)
    disp = plane_steps(sess, k)[2]
    lvl = view_step(view, disp)
    visible = set(tile_order(grid, view)[0])
    out = []
    for step, ty, tx in entries:
        if f"{ty * grid.shape[1] + tx}:{step}" in skip:
            continue
        if step == disp or (step >= lvl and (ty, tx) in visible):
            o = tile_overlay(sess, k, step, (ty, tx), grid, mode, proba_class, classes)
            if o:
                out.append(o)
    return out


def current_overlays(sess, seg, k: str, version: int, mode: str, proba_class, classes, view,
                     skip=()) -> list[dict]:
    """Every tile overlay already predicted for ``version`` (after a mode change or image switch),
    except those named in ``skip`` (``"i:step"``: what the browser already shows)."""
    grid = plane_grid(sess, seg, k)
    disp = plane_steps(sess, k)[2]
    lvl = view_step(view, disp)
    entries = []
    for index in grid:
        steps = [s for s in sorted({lvl, disp}) if tile_version(sess, k, s, index) == version]
        if not steps:  # only a stroke's preview so far (the detail is on its way)
            steps = [s for s in (lvl * 2 ** j for j in range(1, 7)) if tile_version(sess, k, s, index) == version][:1]
        entries += [[step, index[0], index[1]] for step in steps]
    return overlays(sess, seg, k, entries, mode, proba_class, classes, view)


_workers: dict = {}
_workers_lock = threading.Lock()


def ensure_worker(sess, seg, k: str, version: int, view: dict | None) -> bool:
    """Predict the rest of plane ``k`` for ``version`` in a thread of this process (one per session).

    The thread follows :func:`plan` tile by tile, re-planning after each tile with
    the latest ``view`` handed in here (so a zoom or pan reorders what is left),
    and stops when nothing is left or a newer model exists.  Returns True when a
    worker for this plane and version is running (started now or before).
    """
    wid = (sess.sid, k, version)
    with _workers_lock:
        w = _workers.get(sess.sid)
        if w and w["id"] == wid and w["thread"].is_alive():
            w["view"] = view
            return True
        state = {"id": wid, "view": view}

        def run():
            while sess.model_info().get("version") == version:
                todo = plan(sess, seg, k, version, state["view"])
                if not todo:
                    break
                run_plan(sess, seg, k, version, todo[:1], budget_s=0, keep=False)

        state["thread"] = threading.Thread(target=run, name=f"tiles-{k}", daemon=True)
        _workers[sess.sid] = state
        state["thread"].start()
        return True


def placeholders(h: int, w: int, opacity: float) -> list[dict]:
    """Hidden layout images, one per overlay tile, in grid order (patched in as tiles arrive)."""
    from .render import TRANSPARENT_PNG

    grid = TileGrid((h, w), TILE)
    out = []
    for index in grid:
        y0, y1, x0, x1 = grid.box(index)
        out.append({"source": TRANSPARENT_PNG, "xref": "x", "yref": "y", "x": x0 - 0.5, "y": y0 - 0.5,
                    "sizex": x1 - x0, "sizey": y1 - y0, "sizing": "stretch", "layer": "above",
                    "opacity": opacity, "visible": False, "name": "0:0", "xanchor": "left", "yanchor": "top"})
    return out


__all__ = ["plan", "run_plan", "stitch", "overlays", "current_overlays", "placeholders", "placement",
           "ensure_worker"]
