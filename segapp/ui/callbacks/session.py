"""Session start and restore: the id lives in the browser's localStorage, the work on the server."""

from __future__ import annotations

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from ...features import list_extractors
from ...store import new_session_id
from .. import ids
from ..pipeline import sigma_indices
from ..session import DEFAULT_SETTINGS
from .common import valid_session

KNOWN_BACKBONES = {  # shown even when their module is not installed, so users learn they exist
    "vgg16": "VGG16 (ImageNet) — needs a local weights file",
    "dinov2-s": "DINOv2 ViT-S/14 — needs a local weights file",
}
COMBOS = ["classical+effnet-lite0"]
HIDDEN = {"timm"}  # needs a model name: available from the command line and the Python API


def extractor_options() -> tuple[list[dict], dict[str, str]]:
    """Dropdown options (unavailable ones disabled) and the how-to message for each disabled one."""
    found = {e["name"]: e for e in list_extractors()}
    opts = [{"label": "auto (cross-validated choice)", "value": "auto"}]
    help_ = {}
    for name, e in found.items():
        if name in HIDDEN:
            continue
        label = name if e["available"] else f"{name} (weights missing)"
        opts.append({"label": label, "value": name, "disabled": not e["available"]})
        help_[name] = e["description"]
        if not e["available"]:
            help_[name] = e["message"]
    for name, text in KNOWN_BACKBONES.items():
        if name not in found:
            opts.append({"label": f"{name} (not installed)", "value": name, "disabled": True})
            help_[name] = text
    for combo in COMBOS:
        parts = combo.split("+")
        ok = all(found.get(p, {}).get("available") for p in parts)
        opts.append({"label": combo + ("" if ok else " (unavailable)"), "value": combo, "disabled": not ok})
        help_[combo] = "Both feature sets side by side."
    return opts, help_


def register(app, services):
    @app.callback(Output(ids.SESSION, "data"), Input(ids.SESSION, "modified_timestamp"), State(ids.SESSION, "data"))
    def start_session(_ts, sid):
        """A fresh unguessable session id when the browser has none (or a malformed one)."""
        if valid_session(sid):
            raise PreventUpdate
        return new_session_id()

    @app.callback(
        Output(ids.CLASSES, "data"), Output(ids.CURRENT, "data"), Output(ids.IMAGES_VERSION, "data"),
        Output(ids.EXTRACTOR, "value"), Output(ids.SIGMAS, "value"),
        Output(ids.TREES, "value"), Output(ids.DEPTH, "value"), Output(ids.NORMALIZATION, "value"),
        Output(ids.ALL_IMAGES, "value"),
        Input(ids.SESSION, "data"), State(ids.IMAGES_VERSION, "data"),
    )
    def restore_session(sid, version):
        """After a reload: classes, the image being shown and the settings come back from the server."""
        if not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        cur = sess.current()
        if cur.get("image") and sess.meta(cur["image"]) is None:
            cur = {}
        if not cur.get("image"):
            imgs = sess.images()
            cur = {"image": imgs[-1]["id"], "plane": 0} if imgs else None
        s = {**DEFAULT_SETTINGS, **sess.settings()}
        return (sess.classes(), cur, (version or 0) + 1, s["extractor"], sigma_indices(s["sigmas"]),
                s["trees"], s["depth"], s["normalization"], s["all_images"])

    @app.callback(Output(ids.EXTRACTOR_HELP, "children"), Output(ids.SIGMA_ROW, "style"),
                  Input(ids.EXTRACTOR, "value"), State(ids.SESSION, "data"))
    def extractor_help(name, sid):
        _, help_ = extractor_options()
        info = services.session(sid).model_info() if valid_session(sid) else {}
        text = help_.get(name, "")
        if name == "auto":
            auto = info.get("auto")
            text = (f"Last choice: {auto['chosen']} ({auto['reason']})" if auto else
                    "Compares classical, effnet-lite0 and both on held-out blocks of your strokes when you press "
                    "Train; live updates reuse the choice.")
        style = {} if name == "classical" else {"display": "none"}  # combos and auto use the default scales
        return text, style

    # keep the server's idea of "current image" in sync, so a reload shows the same one
    @app.callback(Output(ids.STATUS, "title"), Input(ids.CURRENT, "data"), State(ids.SESSION, "data"))
    def remember_current(cur, sid):
        if not valid_session(sid) or not cur:
            raise PreventUpdate
        services.session(sid).set_current(cur.get("image"), cur.get("plane", 0))
        return no_update
