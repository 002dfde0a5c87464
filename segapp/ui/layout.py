"""The page: a left sidebar of controls, a big canvas, result panels below it.

Also the small component builders that callbacks use to re-render lists
(classes, thumbnails, gallery, alerts), so every piece of markup lives here.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dash_table, dcc, html

from . import ids
from .figures import GRAPH_CONFIG, empty_figure, empty_histogram
from .pipeline import SIGMA_LADDER, sigma_indices
from .session import DEFAULT_SETTINGS

SAMPLES = {
    "cell": "Cell (phase contrast)", "coins": "Coins", "retina": "Retina (fundus, colour)",
    "immunohistochemistry": "Immunohistochemistry (colour)", "camera": "Camera", "astronaut": "Astronaut (colour)",
    "hubble_deep_field": "Hubble deep field (colour)", "moon": "Moon surface",
}
NORMALIZATIONS = {"standardize": "Mean ± 2 SD", "percentile": "Percentile 1–99.8 %", "minmax": "Min–max",
                  "dtype": "By data type", "none": "None"}
OVERLAYS = [{"label": "Segmentation", "value": "segmentation"}, {"label": "Probability", "value": "probability"},
            {"label": "Uncertainty", "value": "uncertainty"}, {"label": "Objects", "value": "objects"},
            {"label": "Off", "value": "none"}]


def _section(title: str, *children) -> dbc.AccordionItem:
    return dbc.AccordionItem(list(children), title=title, class_name="sb-section")


def _label(text: str, className: str = "sb-label") -> html.Label:
    return html.Label(text, className=className)


def class_items(classes: list[dict], active: int) -> list:
    """Rows of the class list; the active one highlighted, keys 1–9 and 0 (eraser) shown."""
    rows = []
    for i, c in enumerate(classes):
        rows.append(html.Button(
            [html.Span(className="swatch", style={"background": c["color"]}), html.Span(c["name"], className="cname"),
             html.Kbd(str(i + 1) if i < 9 else "", className="ckey")],
            id=ids.class_select(c["id"]), n_clicks=0, title=f"Paint {c['name']} (key {i + 1})" if i < 9 else "",
            className="class-row class-select" + (" active" if c["id"] == active else "")))
    rows.append(html.Button(
        [html.Span(className="swatch eraser"), html.Span("Eraser", className="cname"), html.Kbd("0", className="ckey")],
        id=ids.class_select(0), n_clicks=0, title="Erase painted pixels (key 0)",
        className="class-row class-select" + (" active" if active == 0 else "")))
    return rows


def thumb_items(images: list[dict], thumbs: dict[str, str], current: str | None) -> list:
    if not images:
        return [html.Div("No images yet — drop files above or add a sample.", className="text-muted small py-2")]
    out = []
    for m in images:
        z, h, w, c = m["shape"]
        detail = f"{w}×{h}" + (f"×{c}" if c > 1 else "") + (f" · {z} planes" if z > 1 else "") + f" · {m['dtype']}"
        out.append(html.Button(
            [html.Img(src=thumbs.get(m["id"]), className="thumb-img"),
             html.Div([html.Div(m["name"], className="thumb-name"), html.Div(detail, className="thumb-detail")],
                      className="thumb-text")],
            id=ids.thumb(m["id"]), n_clicks=0, title=m["name"],
            className="thumb" + (" active" if m["id"] == current else "")))
    return out


def gallery_items(items: list[dict]) -> list:
    """Results gallery: ``items`` = ``[{"item", "name", "src", "text"}]``."""
    if not items:
        return [html.Div("Apply the model to all images to see every result here.", className="text-muted small")]
    return [html.Button([html.Img(src=it["src"]), html.Div(it["name"], className="thumb-name"),  # item: plane key
                         html.Div(it["text"], className="thumb-detail")],
                        id=ids.gallery_item(it["item"]), n_clicks=0, className="gallery-card") for it in items]


def train_hint(text: str) -> html.Div:
    return html.Div(text, className="hint")


def model_summary(info: dict) -> html.Div:
    """What the current model is and what it was trained on."""
    if not info:
        return train_hint("Paint a few strokes of at least two classes.")
    if info.get("source") == "uploaded":
        return html.Div([html.Div(f"Model v{info['version']} loaded from {info.get('name', 'a file')}",
                                  className="fw-semibold"),
                         html.Div("Painting retrains it from your strokes.", className="text-muted")])
    n_img = info.get("n_images", 1)
    head = f"Model v{info['version']} · {info.get('extractor', '?')} · {info.get('n_features', '?')} features"
    rows = [html.Div(head,
                     className="fw-semibold"),
            html.Div(f"{info.get('n_pixels', 0):,} painted px on {n_img} image{'s' if n_img != 1 else ''} · "
                     f"fit {info.get('fit_seconds', 0):.2f} s", className="text-muted")]
    if info.get("auto"):
        rows.append(html.Div(f"auto chose {info['auto']['chosen']}: {info['auto']['reason']}", className="text-muted"))
    return html.Div(rows)


def removed_toast(meta: dict, strokes: int) -> dbc.Toast:
    """The toast after removing an image: what went, and an Undo button that brings it back."""
    what = f"Removed {meta['name']}" + (f" and its {strokes} stroke{'s' if strokes != 1 else ''}" if strokes else "")
    return dbc.Toast([html.Span(what + ". "),
                      dbc.Button("Undo", id=ids.restore_image(meta["id"]), n_clicks=0, size="sm", color="primary",
                                 class_name="ms-1 py-0")],
                     id=ids.removed_toast(meta["id"]), header="Image removed", icon="info", dismissable=True,
                     duration=20000, class_name="app-toast", is_open=True)


def toast(message: str, kind: str = "danger", header: str | None = None) -> dbc.Toast:
    """A toast; engine messages ("cannot read ...") start with a capital here, as a sentence on screen.

    A message that starts with a file name (``"scan.tif: ..."``) keeps the name as it is.
    """
    headers = {"danger": "Something went wrong", "warning": "Heads up", "success": "Done", "info": "Note"}
    message = str(message)
    if message.split(" ", 1)[0].isalpha():
        message = message[:1].upper() + message[1:]
    return dbc.Toast(message, header=header or headers.get(kind, "Note"), icon=kind, dismissable=True,
                     duration=9000 if kind != "danger" else 15000, class_name="app-toast", is_open=True)


def _images_section(max_mb: int):
    return _section(
        "Images",
        dcc.Upload(id=ids.UPLOAD, multiple=True, className="dropzone",  # no accept=: refusals get a message
                   children=html.Div([html.Div("Drop images or click to browse", className="fw-semibold"),
                                      html.Div(f"PNG · JPEG · TIFF (16-bit, stacks) · up to {max_mb} MB",
                                               className="small text-muted")])),
        dbc.InputGroup([dbc.Select(id=ids.SAMPLE_SELECT, options=[{"label": v, "value": k} for k, v in SAMPLES.items()],
                                   value="cell", size="sm"),
                        dbc.Button("Add sample", id=ids.SAMPLE_ADD, size="sm", color="secondary", outline=True)],
                       size="sm", class_name="my-2"),
        html.Div(id=ids.THUMBS, className="thumb-list"),
        html.Div([_label("Plane"), dcc.Slider(id=ids.PLANE_SLIDER, min=1, max=2, step=1, value=1,
                                              marks=None, tooltip={"placement": "bottom", "always_visible": False})],
                 id=ids.PLANE_ROW, style={"display": "none"}),
        html.Div(dbc.Button("Remove this image", id=ids.DELETE_IMAGE, size="sm", color="link",
                            class_name="text-danger p-0 small-link"), id=ids.DELETE_ROW, className="text-end",
                 style={"display": "none"}),
    )


def _classes_section():
    return _section(
        "Classes & brush",
        html.Div(id=ids.CLASS_LIST, className="class-list"),
        dbc.InputGroup([
            dbc.Input(id=ids.CLASS_NAME, placeholder="Rename the active class", size="sm", debounce=True),
            dbc.Input(id=ids.CLASS_COLOR, type="color", value="#1f77b4", class_name="color-input", debounce=True),
            dbc.Button("+", id=ids.CLASS_ADD, color="primary", outline=True, title="Add a class", class_name="px-2"),
            dbc.Button("Delete", id=ids.CLASS_DELETE, color="danger", outline=True, title="Delete the active class "
                       "and its strokes", class_name="px-2"),
        ], size="sm", class_name="mt-2"),
        html.Div([_label("Brush width (image px)", className="sb-label mb-0"),
                  dcc.Slider(id=ids.STROKE_WIDTH, min=1, max=40, step=1, value=5, marks={1: "1", 10: "10", 20: "20",
                                                                                       40: "40"},
                             tooltip={"placement": "bottom"})], className="mt-2"),
        html.Div([dbc.Button("↶ Undo", id=ids.UNDO, size="sm", color="secondary", outline=True, title="Ctrl+Z"),
                  dbc.Button("↷ Redo", id=ids.REDO, size="sm", color="secondary", outline=True, title="Ctrl+Shift+Z"),
                  dbc.Button("Clear class", id=ids.CLEAR_CLASS, size="sm", color="secondary", outline=True),
                  dbc.Button("Clear all", id=ids.CLEAR_ALL, size="sm", color="secondary", outline=True)],
                 className="d-flex flex-wrap gap-1 mt-1"),
    )


def _training_section():
    return _section(
        "Training",
        html.Div([dbc.Switch(id=ids.LIVE, label="Live update", value=True, class_name="mb-0"),
                  dbc.Button("Train", id=ids.TRAIN, color="primary", size="sm", class_name="px-4")],
                 className="d-flex justify-content-between align-items-center"),
        dbc.Checkbox(id=ids.ALL_IMAGES, label="Train on all images' annotations", value=True, class_name="mt-2 small"),
        html.Div(id=ids.TRAIN_INFO, className="train-info mt-2")
    )


def _settings_section(extractor_options: list[dict]):
    return _section(
        "Features & classifier",
        _label("Feature extractor"),
        dcc.Dropdown(id=ids.EXTRACTOR, clearable=False, value=DEFAULT_SETTINGS["extractor"], options=extractor_options,
                     searchable=False),
        html.Div(id=ids.EXTRACTOR_HELP, className="small text-muted mt-1"),
        html.Div([_label("Scales σ (classical)", className="sb-label mt-2"),
                  dcc.RangeSlider(id=ids.SIGMAS, min=0, max=len(SIGMA_LADDER) - 1, step=1,
                                  value=sigma_indices(DEFAULT_SETTINGS["sigmas"]), allowCross=False,
                                  marks={i: f"{s:g}" for i, s in enumerate(SIGMA_LADDER) if i % 2 == 0 or s == 16})],
                 id=ids.SIGMA_ROW),
        dbc.Row([dbc.Col([_label("Trees"), dbc.Input(id=ids.TREES, type="number", min=5, max=500, step=1,
                                                      value=DEFAULT_SETTINGS["trees"],
                                                      size="sm", debounce=True)]),
                 dbc.Col([_label("Max depth"), dbc.Input(id=ids.DEPTH, type="number", min=0, max=64, step=1,
                                                         value=DEFAULT_SETTINGS["depth"], size="sm", debounce=True,
                                                         placeholder="0 = none")])],
                class_name="mt-2 g-2"),
        _label("Normalisation", className="sb-label mt-2"),
        dbc.Select(id=ids.NORMALIZATION, size="sm", value=DEFAULT_SETTINGS["normalization"],
                   options=[{"label": v, "value": k} for k, v in NORMALIZATIONS.items()])
    )


def _export_section():
    def dl(text, id_):
        return dbc.Button(text, id=id_, size="sm", color="secondary", outline=True, class_name="dl-btn")
    return _section(
        "Model & downloads",
        html.Div([dl("Segmentation PNG", ids.DL_SEG_PNG), dl("Segmentation TIFF", ids.DL_SEG_TIFF),
                  dl("Probabilities TIFF", ids.DL_PROBA), dl("Model file (.segapp)", ids.DL_MODEL),
                  dl("Annotations JSON", ids.DL_ANNOT_JSON), dl("Annotations PNG", ids.DL_ANNOT),
                  dl("All results (ZIP)", ids.DL_ZIP)],
                 className="dl-grid"),
        dcc.Upload(id=ids.ANNOT_UPLOAD, className="dropzone small-drop mt-2",
                   children=html.Div(["Load annotations (JSON or label PNG/TIFF) onto this image"],
                                     className="small")),
        html.Div(id=ids.MODEL_INFO, className="small text-muted mt-2"),
        dcc.Upload(id=ids.MODEL_UPLOAD, className="dropzone small-drop mt-2",
                   children=html.Div(["Load a model file (.segapp) to apply it"], className="small"))
    )


def job_banner():
    """The ONE progress banner of every long job, over the top of the canvas (label, fraction, bar, Cancel).

    Background callbacks show it with :func:`~segapp.ui.callbacks.common.canvas_job`; its own CSS
    class sets ``display: flex`` without ``!important``, so the inline ``display: none`` hides it.
    """
    return html.Div([
        html.Div([html.Span(className="spinner-border spinner-border-sm job-spinner"),
                  html.Span(id=ids.JOB_LABEL, className="job-label"),
                  html.Span(id=ids.JOB_FRACTION, className="job-fraction")], className="job-text"),
        dbc.Progress(id=ids.JOB_BAR, value=0, striped=True, animated=True, class_name="job-bar"),
        dbc.Button("Cancel", id=ids.JOB_CANCEL, size="sm", color="light", outline=True, class_name="job-cancel"),
    ], id=ids.JOB_BANNER, className="job-banner", role="status", style={"display": "none"})


def _toolbar():
    return html.Div([
        html.Div(id=ids.CANVAS_INFO, className="canvas-info"),
        html.Div([
            dbc.RadioItems(id=ids.OVERLAY_MODE, options=OVERLAYS, value="segmentation", inline=True,
                           class_name="btn-group overlay-mode", input_class_name="btn-check",
                           label_class_name="btn btn-sm btn-outline-light", label_checked_class_name="active"),
            dcc.Dropdown(id=ids.PROBA_CLASS, options=[], value=None, clearable=False, placeholder="class",
                         className="proba-class", style={"display": "none"}),
            html.Div([html.Span("Opacity", className="tb-label"),
                      dcc.Slider(id=ids.OPACITY, min=0, max=1, step=0.05, value=0.45, marks=None)],
                     className="opacity-box"),
            dbc.Switch(id=ids.SHOW_ANNOT, label="Strokes", value=True, class_name="mb-0 text-light small"),
        ], className="toolbar-controls"),
    ], className="canvas-toolbar")


def _objects_tab():
    return dbc.Row([
        dbc.Col([
            _label("Smoothing (radius, px)"), dcc.Slider(id=ids.SMOOTH, min=0, max=10, step=1, value=0, marks=None,
                                                          tooltip={"placement": "bottom"}),
            _label("Minimum object size (px)"), dbc.Input(id=ids.MIN_SIZE, type="number", min=0, value=20, size="sm",
                                                                  debounce=True),
            dbc.Checkbox(id=ids.FILL_HOLES, label="Fill holes", value=True, class_name="mt-2 small"),
            _label("Objects of class", className="sb-label mt-2"),
            dcc.Dropdown(id=ids.OBJ_CLASS, options=[], clearable=False),
            dbc.Checkbox(id=ids.SPLIT, label="Split touching objects", value=True, class_name="mt-2 small"),
            dbc.Row([dbc.Col([_label("Pixel size"), dbc.Input(id=ids.PIXEL_SIZE, type="number", min=0,
                                                               placeholder="optional", size="sm", debounce=True)]),
                     dbc.Col([_label("Unit"), dbc.Input(id=ids.PIXEL_UNIT, value="µm", size="sm", debounce=True)])],
                    class_name="g-2 mt-1"),
            html.Div([dbc.Button("Measure objects", id=ids.MEASURE, color="primary", size="sm"),
                      dbc.Button("CSV", id=ids.OBJ_CSV, color="secondary", outline=True, size="sm")],
                     className="d-flex gap-2 mt-3"),
        ], width=3, class_name="obj-controls"),
        dbc.Col([html.Div(id=ids.OBJ_SUMMARY, className="obj-summary"),
                 dcc.Graph(id=ids.OBJ_HIST, config={"displayModeBar": False}, style={"height": "220px"},
                           figure=empty_histogram()),
                 ], width=4),
        dbc.Col(dash_table.DataTable(
            id=ids.OBJ_TABLE, data=[], columns=[], sort_action="native", page_size=12,
            style_table={"overflowX": "auto"}, style_cell={"fontSize": 12, "padding": "3px 6px",
                                                            "fontFamily": "inherit"},
            style_header={"fontWeight": 600, "backgroundColor": "#f1f3f5"}), width=5),
    ], class_name="g-3")


def _results_panel():
    return dbc.Tabs([
        dbc.Tab(_objects_tab(), label="Objects", tab_id="objects", class_name="p-3"),
        dbc.Tab([html.Div([dbc.Button("Apply model to all images", id=ids.APPLY_ALL, color="primary", size="sm"),
                           html.Span("Progress shows on the canvas.", className="small text-muted")],
                          className="d-flex gap-3 align-items-center mb-3"),
                 html.Div(id=ids.GALLERY, className="gallery")],
                label="All images", tab_id="gallery", class_name="p-3"),
        dbc.Tab([html.P("Upload the ground truth of this image (same size) to score its segmentation: class ids "
                        "(0 = not scored), a 0/255 or 0/1 binary mask or an instance mask (two classes: 0 is the "
                        "first class), or a colour-coded mask in the classes' colours.", className="small text-muted"),
                 dcc.Upload(id=ids.GT_UPLOAD, className="dropzone small-drop",
                            children=html.Div("Drop a ground-truth mask (PNG/TIFF)", className="small")),
                 html.Div(id=ids.EVAL_RESULT, className="mt-3")],
                label="Evaluate", tab_id="evaluate", class_name="p-3"),
    ], id="results-tabs", active_tab="objects", class_name="results-tabs")


def build_layout(settings, extractor_options: list[dict]) -> html.Div:
    """The whole page; ``extractor_options`` for the feature-extractor dropdown."""
    stores = [
        dcc.Store(id=ids.SESSION, storage_type="local"),
        dcc.Store(id=ids.CURRENT, data=None), dcc.Store(id=ids.IMAGES_VERSION, data=0),
        dcc.Store(id=ids.CLASSES, data=[]), dcc.Store(id=ids.ACTIVE_CLASS, data=1),
        dcc.Store(id=ids.ANNOT_VERSION, data=None), dcc.Store(id=ids.TRAIN_REQUEST, data=None),
        dcc.Store(id=ids.EXTRACT_REQUEST, data=None), dcc.Store(id=ids.MODEL_VERSION, data=None),
        dcc.Store(id=ids.SCALE, data=1.0), dcc.Store(id=ids.OVERLAY, data=None),
        dcc.Store(id=ids.MEASURE_REQUEST, data=None),
        dcc.Store(id=ids.VIEW, data=None), dcc.Store(id=ids.TILE_QUEUE, data=None),
        dcc.Interval(id=ids.TILE_TIMER, interval=700, disabled=True), dcc.Store(id=ids.TILE_SEEN, data=None),
        dcc.Download(id=ids.DOWNLOAD),
    ]
    header = html.Header([
        html.Div([html.Span("seg", className="brand-a"), html.Span("app", className="brand-b"),
                  html.Span("interactive pixel classification", className="brand-sub")], className="brand"),
        html.Div(id=ids.STATUS, className="status-text"),
        dbc.Badge("distributed" if settings.distributed else "embedded", id=ids.MODE_BADGE, color="secondary",
                  class_name="ms-2"),
    ], className="app-header")
    sidebar = html.Aside(dbc.Accordion(
        [_images_section(settings.max_upload_mb), _classes_section(), _training_section(),
         _settings_section(extractor_options),
         _export_section()],
        always_open=True, active_item=["item-0", "item-1", "item-2"], flush=True), className="sidebar")
    canvas = html.Div([
        _toolbar(),
        html.Div([job_banner(),
                  html.Div([html.H4("Start by adding an image"),
                            html.P("Drop files on the left, or pick a sample. Then paint a few strokes per class — "
                                   "keys 1–9 switch class, 0 erases, scroll zooms, Ctrl+Z undoes.")],
                           id=ids.EMPTY_HINT, className="empty-hint"),
                  dcc.Graph(id=ids.GRAPH, figure=empty_figure(), config=GRAPH_CONFIG, className="canvas-graph"),
                  html.Div(id=ids.TILE_STATUS, className="tile-status", style={"display": "none"})],
                 className="canvas-wrap"),
    ], className="canvas-card")
    main = html.Main([canvas, html.Div(_results_panel(), className="results-card")], className="main")
    limit = html.Div(id="upload-limit", **{"data-bytes": str(settings.max_upload_mb * 1024 * 1024),
                                           "data-mb": str(settings.max_upload_mb)}, style={"display": "none"})
    client_alert = dbc.Toast(id=ids.CLIENT_ALERT, header="File not uploaded", icon="danger", is_open=False,
                             dismissable=True, duration=15000, class_name="app-toast")
    return html.Div(stores + [limit, header, html.Div([sidebar, main], className="app-body"),
                              html.Div([html.Div(id=ids.NOTICES), client_alert], className="toasts")],
                    className="app")
