"""Plotly figures of the app: the painting canvas, shapes styled by class, histograms.

The canvas has one image trace, ``data[0]``: the picture at the display step
(a PNG made by ``px.imshow(..., binary_string=True)`` of the block-averaged
image, sent once per image, drawn with ``dx = dy = step`` so that axis units
stay full-resolution pixels).  Overlays (segmentation, probability,
uncertainty, objects) are ``layout.images``, one per 1024-pixel tile, which
callbacks patch in tile by tile (built in the browser, see segapp/ui/assets/segapp.js)
so neither the image nor the untouched tiles are ever resent.

Examples
--------
>>> import numpy as np
>>> uri = base_image_uri(np.zeros((4, 6, 3), np.uint8))
>>> fig = canvas_figure(uri, (4, 6), shapes=[], classes=[{"id": 1, "name": "a", "color": "#ff0000"}],
...                     active=1, width=3, revision="x")
>>> [t.type for t in fig.data], fig.layout.dragmode, len(fig.layout.images)
(['image'], 'drawopenpath', 1)
>>> fig.layout.newshape.name
'class=1;width=3'
>>> big = canvas_figure(uri, (3000, 2500), shapes=[], classes=[], active=1, width=3, revision="y", step=2)
>>> big.data[0].dx, big.data[0].x0, len(big.layout.images)
(2, 0.5, 9)
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go

from ..annotations import parse_shape_name, shape_name
from ..errors import SegappError
from ..viewport import placement
from .overlay_tiles import placeholders

ERASER = {"id": 0, "name": "Eraser", "color": "#ffffff"}
MODEBAR_ADD = ["drawopenpath", "drawclosedpath", "drawrect"]  # no "eraseshape": strokes are never selected
GRAPH_CONFIG = {
    "scrollZoom": True,
    "doubleClick": "reset",
    # strokes are training labels: a drag on the canvas always paints, it never selects, moves or reshapes a stroke
    "editable": False,
    "edits": {"shapePosition": False, "annotationPosition": False, "annotationTail": False, "annotationText": False,
              "axisTitleText": False, "colorbarPosition": False, "colorbarTitleText": False, "legendPosition": False,
              "legendText": False, "titleText": False},
    # self-hosted: nothing offers to send the image anywhere (no "Share chart" cloud upload, no Plotly link or logo)
    "displaylogo": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "showLink": False,
    "plotlyServerURL": "",
    "modeBarButtonsToAdd": MODEBAR_ADD,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage", "sendDataToCloud",
                               "sendChartToCloud", "editInChartStudio", "eraseshape"],
}


def base_image_uri(rgb) -> str:
    """PNG data URI of a uint8 RGB image, as ``px.imshow(binary_string=True)`` encodes it."""
    fig = px.imshow(rgb, binary_string=True, binary_compression_level=1)
    return fig.data[0].source


def class_color(classes: list[dict], class_id: int) -> str:
    if int(class_id) == 0:
        return ERASER["color"]
    return next((c["color"] for c in classes or [] if c["id"] == int(class_id)), "#888888")


def style_shape(shape: dict, classes: list[dict], visible: bool = True) -> dict:
    """A copy of ``shape`` drawn in its class colour (the eraser dashed), never editable.

    Plotly makes every shape drawn in the browser ``editable: true``: a click on it then
    shows vertex handles and the next drag moves a vertex (silently changing training
    labels), and a drag that starts on it draws nothing.  Every stroke sent back is
    ``editable: False`` (and assets/segapp.css in this package takes pointer events off stroke paths).

    Examples
    --------
    >>> s = style_shape({"type": "path", "path": "M0,0L2,2", "name": "class=1;width=3", "editable": True},
    ...                 [{"id": 1, "name": "a", "color": "#ff0000"}])
    >>> s["editable"], s["line"]["color"]
    (False, '#ff0000')
    """
    try:
        cid, _ = parse_shape_name(shape.get("name"))
    except SegappError:
        cid = -1
    color = class_color(classes, cid)
    line = {**(shape["line"] if isinstance(shape.get("line"), dict) else {}), "color": color}
    if cid == 0:
        line["dash"] = "dot"
    out = {**shape, "line": line, "opacity": 0.75, "visible": visible, "editable": False}
    if shape.get("type") == "rect" or str(shape.get("path", "")).rstrip().upper().endswith("Z"):
        out["fillcolor"] = color
    return out


def style_shapes(shapes: list[dict], classes: list[dict], visible: bool = True) -> list[dict]:
    return [style_shape(s, classes, visible) for s in shapes]


def screen_width(width_px: float, scale: float | None) -> float:
    """Plotly line width (screen pixels) for a brush of ``width_px`` image pixels at ``scale``."""
    return max(1.0, round(float(width_px) * float(scale or 1.0), 2))


def newshape(classes: list[dict], active: int, width: float, scale: float | None = None) -> dict:
    """``layout.newshape`` for painting class ``active`` with a ``width``-pixel brush."""
    color = class_color(classes, active)
    return {
        "name": shape_name(active, width),
        "line": {"color": color, "width": screen_width(width, scale), "dash": "dot" if active == 0 else "solid"},
        "fillcolor": color,
        "opacity": 0.75,
        "layer": "above",
    }


def canvas_figure(base_uri: str, hw: tuple[int, int], *, shapes: list[dict], classes: list[dict],
                  active: int, width: float, revision: str, overlay_tiles: list[dict] | None = None,
                  opacity: float = 0.45, show_shapes: bool = True, scale: float | None = None,
                  step: int = 1) -> go.Figure:
    """The painting canvas for one image plane.

    Parameters
    ----------
    base_uri : str
        PNG data URI of the picture at the display step (:func:`base_image_uri`).
    hw : (int, int)
        Full-resolution image height and width in pixels (the axis units).
    revision : str
        ``uirevision``: zoom and pan persist while it stays the same (one per image plane).
    overlay_tiles : list of dict, optional
        Tiles already predicted (``segapp.ui.overlay_tiles.tile_overlay`` output).
    step : int
        Display step of ``base_uri`` (1: full resolution).
    """
    h, w = hw
    fig = go.Figure()
    fig.add_trace(go.Image(source=base_uri, name="image", hoverinfo="skip", dx=step, dy=step,
                           x0=placement(step), y0=placement(step)))
    images = placeholders(h, w, opacity)
    for t in overlay_tiles or []:
        images[t["i"]].update(source=t["uri"], visible=True, name=f"{t['v']}:{t['s']}")
    fig.update_layout(
        dragmode="drawopenpath", newshape=newshape(classes, active, width, scale),
        shapes=style_shapes(shapes, classes, show_shapes), uirevision=revision, images=images,
        margin=dict(l=0, r=0, t=0, b=0), hovermode=False, paper_bgcolor="#1d2330", plot_bgcolor="#1d2330",
        xaxis=dict(visible=False, range=[-0.5, w - 0.5], constrain="domain"),
        yaxis=dict(visible=False, range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain"),
        modebar=dict(orientation="v", bgcolor="rgba(255,255,255,0.85)", color="#495057", activecolor="#0d6efd"),
    )
    return fig


def empty_figure(message: str = "") -> go.Figure:
    """Blank canvas with an optional centred message."""
    fig = go.Figure()
    fig.update_layout(
        xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=0, r=0, t=0, b=0),
        paper_bgcolor="#1d2330", plot_bgcolor="#1d2330", dragmode=False,
        annotations=[dict(text=message, showarrow=False, font=dict(color="#adb5bd", size=16),
                          xref="paper", yref="paper", x=0.5, y=0.5)] if message else [],
    )
    return fig


def empty_histogram(message: str = "Measure objects to see their sizes here.") -> go.Figure:
    """The object-size panel before anything is measured (or when nothing was found): light, with a message.

    Examples
    --------
    >>> fig = empty_histogram()
    >>> fig.layout.paper_bgcolor, fig.layout.annotations[0].text
    ('#ffffff', 'Measure objects to see their sizes here.')
    """
    fig = go.Figure()
    fig.update_layout(
        xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(l=0, r=0, t=0, b=0), height=220,
        paper_bgcolor="#ffffff", plot_bgcolor="#ffffff",
        annotations=[dict(text=message, showarrow=False, font=dict(color="#6c757d", size=13),
                          xref="paper", yref="paper", x=0.5, y=0.5)])
    return fig


def histogram(values, unit: str, title: str) -> go.Figure:
    """Object-size histogram (the light empty panel when there are no values)."""
    values = list(values)
    if not values:
        return empty_histogram(f"{title}: no objects")
    fig = go.Figure(go.Histogram(x=values, marker_color="#0d6efd", nbinsx=30))
    fig.update_layout(
        margin=dict(l=40, r=10, t=30, b=40), height=220, title=dict(text=title, font=dict(size=13)),
        xaxis_title=unit, yaxis_title="objects", bargap=0.05, template="plotly_white",
    )
    return fig
