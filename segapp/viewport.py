"""Viewport arithmetic: the display pyramid, which tiles are in view, and at what resolution.

A large image is shown at a *display step* ``s`` (every ``s``-th pixel per
axis, block-averaged for the picture, sampled for predictions) so that what the
browser receives is at most :data:`DISPLAY_MAX_SIDE` pixels on its longest side;
where the user zooms in past that resolution the visible tiles come at full
resolution (step 1).  Coordinates everywhere are full-resolution pixel
coordinates: a displayed pixel ``(i, j)`` at step ``s`` stands for the
full-resolution block ``[i s, (i + 1) s) x [j s, (j + 1) s)`` and is drawn
centred on it, so strokes drawn on the downscaled picture land on the right
full-resolution pixels.

Examples
--------
>>> display_step(3000, 3000), display_step(1024, 768), display_step(5000, 5000)
(2, 1, 3)
>>> placement(3, 0)        # centre of displayed pixel 0 at step 3 = full-res pixel 1
1.0
>>> view_step({"x0": 0, "x1": 3000, "px": 1000}, 2)   # whole 3000-px width in 1000 screen px
2
>>> view_step({"x0": 1000, "x1": 1500, "px": 1000}, 2)  # zoomed in: full resolution
1
"""

from __future__ import annotations

import numpy as np

DISPLAY_MAX_SIDE = 2048  # longest side of what the browser gets for a whole image


def display_step(h: int, w: int, max_side: int | None = None) -> int:
    """Smallest integer step that brings the longest side down to ``max_side`` (:data:`DISPLAY_MAX_SIDE`)."""
    return max(1, -(-max(int(h), int(w)) // int(max_side or DISPLAY_MAX_SIDE)))


def placement(step: int, start: int = 0) -> float:
    """Full-resolution coordinate of the centre of the first displayed pixel of a region at ``start``."""
    return start + (step - 1) / 2


def downscale(rgb: np.ndarray, step: int) -> np.ndarray:
    """Block mean of a uint8 ``(H, W, 3)`` picture over ``step x step`` blocks (edges: partial blocks).

    Examples
    --------
    >>> a = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, -1)
    >>> downscale(a, 2)[..., 0].tolist()
    [[2, 4], [10, 12]]
    >>> downscale(a, 3).shape
    (2, 2, 3)
    """
    if step == 1:
        return rgb
    h, w = rgb.shape[:2]
    ww = -(-w // step) * step
    out = np.empty((-(-h // step), ww // step, rgb.shape[2]), np.uint8)
    band = max(1, (8 << 20) // max(1, ww * step * rgb.shape[2]))  # output rows per pass: ~32 MB of float32
    for r in range(0, out.shape[0], band):
        part = rgb[r * step:(r + band) * step]
        rows = -(-part.shape[0] // step) * step
        pad = np.pad(part, ((0, rows - part.shape[0]), (0, ww - w), (0, 0)), mode="edge").astype(np.float32)
        blocks = pad.reshape(rows // step, step, ww // step, step, -1).mean(axis=(1, 3))
        out[r:r + band] = np.rint(blocks).astype(np.uint8)
    return out


def view_box(view: dict | None, h: int, w: int) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` in pixels of a browser view ``{"x0", "x1", "y0", "y1"}`` (None: the whole image)."""
    if not view:
        return 0, h, 0, w
    x0, x1 = sorted((float(view.get("x0", -0.5)), float(view.get("x1", w - 0.5))))
    y0, y1 = sorted((float(view.get("y0", -0.5)), float(view.get("y1", h - 0.5))))
    box = (int(np.clip(np.floor(y0 + 0.5), 0, h)), int(np.clip(np.ceil(y1 + 0.5), 0, h)),
           int(np.clip(np.floor(x0 + 0.5), 0, w)), int(np.clip(np.ceil(x1 + 0.5), 0, w)))
    return box if box[1] > box[0] and box[3] > box[2] else (0, h, 0, w)


def view_step(view: dict | None, display: int) -> int:
    """Resolution for a view: full (1) once a screen pixel covers less than ``display`` image pixels."""
    if not view or display == 1 or not view.get("px"):
        return display
    per_screen_px = abs(float(view["x1"]) - float(view["x0"])) / max(1.0, float(view["px"]))
    return 1 if per_screen_px < display * 0.75 else display


def tile_order(grid, view: dict | None) -> tuple[list, list]:
    """``(visible, rest)``: the grid's tiles in view (nearest the centre first), then the others."""
    y0, y1, x0, x1 = view_box(view, grid.h, grid.w)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2

    def dist(index):
        by0, by1, bx0, bx1 = grid.box(index)
        return ((by0 + by1) / 2 - cy) ** 2 + ((bx0 + bx1) / 2 - cx) ** 2

    visible = sorted(grid.touching(y0, y1, x0, x1), key=dist)
    shown = set(visible)
    return visible, sorted((i for i in grid if i not in shown), key=dist)
