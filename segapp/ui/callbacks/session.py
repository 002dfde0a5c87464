"""Session start and restore: the id lives in the browser's localStorage, the work on the server."""

from __future__ import annotations

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from ...features import list_extractors
from ...store import is_store_id, verify_session_id
from .. import ids
from ..pipeline import sigma_indices
from ...autoselect import candidates as auto_candidates
from ..session import DEFAULT_SETTINGS
from .common import callback_spec, valid_session, wire

KNOWN_BACKBONES = {  # shown even when their module is not installed, so users learn they exist
    "vgg16": "VGG16 (ImageNet) — needs a local weights file",
    "dinov2-s": "DINOv2 ViT-S/14 — needs a local weights file",
}
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
        label += " (default)" if name == DEFAULT_SETTINGS["extractor"] else ""
        opts.append({"label": label, "value": name, "disabled": not e["available"]})
        help_[name] = e["description"]
        if not e["available"]:
            help_[name] = e["message"]
    for name, text in KNOWN_BACKBONES.items():
        if name not in found:
            opts.append({"label": f"{name} (not installed)", "value": name, "disabled": True})
            help_[name] = text
    for combo in [n for n in auto_candidates() if "+" in n]:  # from the extractors' traits
        parts = combo.split("+")
        ok = all(found.get(p, {}).get("available") for p in parts)
        label = combo + ("" if ok else " (unavailable)") + (" (default)" if combo == DEFAULT_SETTINGS["extractor"] else "")
        opts.append({"label": label, "value": combo, "disabled": not ok})
        help_[combo] = "Both feature sets side by side."
    return opts, help_


@callback_spec(output=dict(session=Output(ids.SESSION, "data")),
               inputs=dict(timestamp=Input(ids.SESSION, "modified_timestamp")),
               state=dict(stored=State(ids.SESSION, "data")))
def start_session(timestamp, stored, *, services):
    """A server-issued (signed) session id when the browser has none, or one this server did not sign.

    Parameters
    ----------
    timestamp : int or None
        When the browser's stored id last changed (only the trigger).
    stored : object
        What the browser's localStorage holds (anything: it is not trusted).
    services : Services

    Returns
    -------
    dict
        ``session``: a fresh signed id; for an unsigned id of a session this store already
        holds (made before ids were signed) the signed form of it, so that work stays.
        PreventUpdate when ``stored`` is a valid signed id.

    Examples
    --------
    >>> import tempfile
    >>> from segapp.config import Settings
    >>> from segapp.ui import make_services
    >>> d = tempfile.mkdtemp()
    >>> services = make_services(Settings(data_dir=d + "/data", cache_dir=d + "/cache"))
    >>> sid = start_session(None, "a" * 20, services=services)["session"]  # a client-chosen id: replaced
    >>> sid.startswith("a" * 20), len(sid) > 60
    (False, True)
    """
    key = services.signing_key()
    if verify_session_id(stored, key):
        raise PreventUpdate
    if is_store_id(stored) and services.store.has_session(stored):
        return {"session": services.issue_session_id(stored)}
    return {"session": services.issue_session_id()}


@callback_spec(
    output=dict(classes=Output(ids.CLASSES, "data"), current=Output(ids.CURRENT, "data"),
                images_version=Output(ids.IMAGES_VERSION, "data"), extractor=Output(ids.EXTRACTOR, "value"),
                sigmas=Output(ids.SIGMAS, "value"), trees=Output(ids.TREES, "value"), depth=Output(ids.DEPTH, "value"),
                normalization=Output(ids.NORMALIZATION, "value"), all_images=Output(ids.ALL_IMAGES, "value")),
    inputs=dict(sid=Input(ids.SESSION, "data")), state=dict(images_version=State(ids.IMAGES_VERSION, "data")),
)
def restore_session(sid, images_version, *, services):
    """After a reload: classes, the image being shown and the settings come back from the server.

    Parameters
    ----------
    sid : str
        The session id.
    images_version : int or None
        The browser's image-list counter (bumped so the thumbnails re-render).
    services : Services

    Returns
    -------
    dict
        ``classes``, ``current`` (``{"image", "plane"}`` or None), ``images_version`` and the
        settings panel's values ``extractor``, ``sigmas`` (slider indices), ``trees``, ``depth``,
        ``normalization``, ``all_images``.
    """
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
    return {"classes": sess.classes(), "current": cur, "images_version": (images_version or 0) + 1,
            "extractor": s["extractor"], "sigmas": sigma_indices(s["sigmas"]), "trees": s["trees"],
            "depth": s["depth"], "normalization": s["normalization"], "all_images": s["all_images"]}


@callback_spec(output=dict(help=Output(ids.EXTRACTOR_HELP, "children"), sigma_style=Output(ids.SIGMA_ROW, "style")),
               inputs=dict(extractor=Input(ids.EXTRACTOR, "value")), state=dict(sid=State(ids.SESSION, "data")))
def extractor_help(extractor, sid, *, services):
    """What the chosen feature extractor is (or why it is unavailable); the scale slider only for classical.

    Returns
    -------
    dict
        ``help``: one line of text; ``sigma_style``: the style of the scale-range row.
    """
    _, help_ = extractor_options()
    info = services.session(sid).model_info() if valid_session(sid) else {}
    text = help_.get(extractor, "")
    if extractor == "auto":
        auto = info.get("auto")
        text = (f"Last choice: {auto['chosen']} ({auto['reason']})" if auto else
                f"Compares {', '.join(auto_candidates())} on held-out images (one painted image: held-out "
                "blocks of your strokes) when you press Train; live updates reuse the choice.")
    # the scale range applies to the classical filter bank, alone or in a combination
    style = {} if "classical" in str(extractor).split("+") else {"display": "none"}
    return {"help": text, "sigma_style": style}


@callback_spec(output=dict(status_title=Output(ids.STATUS, "title")), inputs=dict(cur=Input(ids.CURRENT, "data")),
               state=dict(sid=State(ids.SESSION, "data")))
def remember_current(cur, sid, *, services):
    """Keep the server's idea of the current image in sync, so a reload shows the same one.

    Returns
    -------
    dict
        ``status_title``: always ``no_update`` (the output only gives the callback a place).
    """
    if not valid_session(sid) or not cur:
        raise PreventUpdate
    services.session(sid).set_current(cur.get("image"), cur.get("plane", 0))
    return {"status_title": no_update}


def register(app, services):
    wire(app, services, start_session, restore_session, extractor_help, remember_current)
