"""The web app's front door: requests and callback payloads are checked before any callback body runs.

Everything a browser sends is untrusted (a page can be edited, a request forged), so:

- :func:`install` adds a Flask ``before_request`` check to Dash's callback endpoint: a body over
  the size limit, or JSON nested deeper than :data:`segapp.limits.MAX_JSON_DEPTH` (which would
  make Python's JSON parser raise RecursionError, an HTTP 500), is answered with a toast
  instead of reaching Dash.
- :func:`payload_checks` gives, for each plain callback function, a check per named input:
  session ids must be ones this server signed (they are replaced by the bare store id the
  body works with; anything else becomes None, so the body sees "no session"); the
  current-image reference, the class list, the request stores and every slider, number
  field, dropdown and switch must hold a value the page could have produced (ranges and
  options come from the layout itself).  A bad value raises a one-line
  :class:`~segapp.errors.SegappError`, which the app shows as a toast.
- :func:`decode_upload` turns one ``dcc.Upload`` value into bytes, or a one-line reason.

Examples
--------
>>> decode_upload("data:image/png;base64,aGVsbG8=", "a.png", 100)
b'hello'
>>> decode_upload("data:image/png;base64,aGVsbG8", "a.png", 100)
Traceback (most recent call last):
...
segapp.errors.ImageReadError: a.png: the upload is damaged (its base64 data is cut off or malformed)
>>> check_current({"image": "0123456789abcdef", "plane": 2})
{'image': '0123456789abcdef', 'plane': 2}
>>> check_current({"image": "../other/image/x", "plane": 0})
Traceback (most recent call last):
...
segapp.errors.SegappError: the page sent an invalid image reference; click the image again (your work is kept)
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re

from .. import jsonguard
from ..errors import ImageReadError, SegappError
from ..limits import MAX_CLASS_ID, MAX_CLASS_NAME, MAX_JSON_DEPTH, human_bytes
from ..store import verify_session_id
from . import ids

ENDPOINT = "_dash-update-component"
_ITEM = re.compile(r"^[0-9a-f]{16}$")            # image ids (store.new_item_id)
_PLANE_KEY = re.compile(r"^[0-9a-f]{16}_\d{1,6}$")  # session.key(image id, plane)
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_PLANE = 100_000
MAX_TEXT = 200


def _bad(what: str, action: str = "reload the page") -> SegappError:
    return SegappError(f"the page sent an invalid {what}; {action} (your work is kept)")


# -- the request ---------------------------------------------------------------------------------
def refusal_response(message: str, status: int = 200):
    """A Dash callback response that changes no output and shows ``message`` as a toast."""
    from dash import Patch
    from dash._utils import to_json
    from flask import Response

    from .layout import toast

    patch = Patch()
    patch.append(toast(message, "danger", "Request refused"))
    body = to_json({"multi": True, "response": {}, "sideUpdate": {ids.NOTICES: {"children": patch}}})
    return Response(body, status=status, mimetype="application/json")


def install(app) -> None:
    """Check every callback request's size and nesting before Dash parses it."""
    from flask import request

    server = app.server
    limit = server.config.get("MAX_CONTENT_LENGTH")

    def too_large(length) -> str:
        mb = server.config.get("SEGAPP_MAX_UPLOAD_MB")
        return (f"the upload is {human_bytes(length)}, more than this server accepts in one go "
                f"({mb} MB per file); send fewer or smaller files")

    @server.before_request
    def check_request():
        if not request.path.endswith(ENDPOINT) or request.method != "POST":
            return None
        length = request.content_length
        if limit and length and length > limit:
            return refusal_response(too_large(length))
        data = request.get_data(cache=True)
        if jsonguard.too_deep(data, MAX_JSON_DEPTH):
            return refusal_response(f"the request is nested more than {MAX_JSON_DEPTH} levels deep; "
                                    "it was not processed")
        try:  # parsed once: werkzeug caches it (non-silent) and hands the same object to Dash
            body = request.get_json()
        except Exception:  # werkzeug's BadRequest / UnsupportedMediaType
            return refusal_response("not a callback request of this page (the body is not JSON)", status=400)
        problem = malformed(body, app.callback_map)
        if problem:
            return refusal_response(f"not a callback request of this page ({problem})", status=400)
        return None

    @server.errorhandler(413)
    def request_too_large(_err):
        return refusal_response(too_large(request.content_length or 0))

    from dash.exceptions import CallbackException, InvalidCallbackReturnValue

    @server.errorhandler(CallbackException)
    def request_not_of_this_page(err):  # e.g. outputs that do not match the callback (a crafted request)
        if isinstance(err, InvalidCallbackReturnValue):
            raise err  # what a callback returned: a bug of ours, logged as one
        return refusal_response("not a callback request of this page (its outputs or inputs do not match "
                                "the callback)", status=400)


def callback_request(callback_map, name: str, values: dict, changed: list[str]) -> dict:
    """The body the browser POSTs for callback function ``name`` (tests and the fuzz bench send it).

    ``values`` maps ``"id.property"`` to each input's and state's value; ``changed`` lists the
    ``"id.property"`` that triggered.  :func:`malformed` accepts what this returns.
    """
    key, spec = next((k, v) for k, v in callback_map.items() if getattr(v.get("callback"), "__name__", "") == name)
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outs = [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]

    def deps(items):
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in items]
    return {"output": key, "outputs": outs if key.startswith("..") else outs[0], "inputs": deps(spec["inputs"]),
            "state": deps(spec["state"]), "changedPropIds": changed}


def malformed(body, callback_map) -> str | None:
    """Why ``body`` is not a callback request Dash can process (None when it is one).

    Examples
    --------
    >>> malformed({"output": "a.b"}, {"a.b": {"inputs": [], "state": []}})
    'inputs must be a list'
    """
    if not isinstance(body, dict):
        return "not a JSON object"
    spec = callback_map.get(body.get("output")) if isinstance(body.get("output"), str) else None
    if spec is None:
        return "unknown output"
    for name in ("inputs", "state"):
        deps = body.get(name, [] if name == "state" else None)
        if not isinstance(deps, list):
            return f"{name} must be a list"
        if len(deps) != len(spec.get(name, [])):
            return f"{len(deps)} {name} where the callback takes {len(spec.get(name, []))}"
        for dep in deps:
            items = dep if isinstance(dep, list) else [dep]
            if not all(isinstance(d, dict) and "id" in d and isinstance(d.get("property"), str) for d in items):
                return f"malformed {name}"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds must be a list of names"
    if not isinstance(body.get("outputs"), (dict, list)):
        return "outputs must be an object or a list"
    return None


# -- one upload ------------------------------------------------------------------------------------
def clean_name(name, fallback: str = "image") -> str:
    """A file name fit for messages and downloads: no folders, no control characters, short.

    Examples
    --------
    >>> clean_name("../../etc/passwd.png"), clean_name(None), clean_name("a\\x00b.png")
    ('passwd.png', 'image', 'ab.png')
    """
    text = name if isinstance(name, str) else fallback
    text = re.sub(r"[\x00-\x1f\x7f]", "", text.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return (text[:60] + "…" + text[-20:] if len(text) > 100 else text) or fallback


def decode_upload(content, name: str, max_bytes: int) -> bytes:
    """The bytes of one ``dcc.Upload`` data URI; ImageReadError (one line, naming the file) otherwise."""
    if not isinstance(content, str):
        raise ImageReadError(f"{name}: the upload is not a file (got {type(content).__name__})")
    head, sep, payload = content.partition(",")
    if not sep or not head.startswith("data:"):
        raise ImageReadError(f"{name}: the upload is not a data URI")
    if not head.endswith(";base64"):
        raise ImageReadError(f"{name}: the upload is not base64-encoded (the browser always encodes files)")
    if len(payload) > max_bytes * 4 // 3 + 8:
        raise ImageReadError(f"{name}: the file is about {human_bytes(len(payload) * 3 // 4)}, more than the "
                             f"{human_bytes(max_bytes)} this server accepts")
    if not payload.isascii():
        raise ImageReadError(f"{name}: the upload is damaged (it holds characters that are not base64)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageReadError(f"{name}: the upload is damaged (its base64 data is cut off or malformed)") from None
    if not data:
        raise ImageReadError(f"{name}: the file is empty")
    return data


def upload_items(contents, filenames) -> list[tuple[str, object]]:
    """``[(clean name, content)]`` for one or many uploaded files; every file keeps a name.

    Examples
    --------
    >>> upload_items(["a", "b"], ["x.png"])
    [('x.png', 'a'), ('file 2', 'b')]
    """
    contents = contents if isinstance(contents, list) else [contents]
    names = filenames if isinstance(filenames, list) else [filenames]
    return [(clean_name(names[i] if i < len(names) else None, f"file {i + 1}"), c) for i, c in enumerate(contents)]


# -- store values -----------------------------------------------------------------------------------
def check_current(cur):
    """A current-image value ``{"image": <16 hex>, "plane": int}`` (or None), else SegappError."""
    if cur is None:
        return None
    if not isinstance(cur, dict) or not isinstance(cur.get("image"), str) or not _ITEM.match(cur["image"]):
        raise _bad("image reference", "click the image again")
    plane = cur.get("plane", 0)
    if isinstance(plane, bool) or not isinstance(plane, int) or not 0 <= plane <= MAX_PLANE:
        raise _bad("image reference", "click the image again")
    return {**cur, "image": cur["image"], "plane": plane}


def check_classes(classes):
    """The browser's copy of the class list: ids 0..255, short names, ``#rrggbb`` colours."""
    if classes is None:
        return None
    if not isinstance(classes, list) or len(classes) > MAX_CLASS_ID + 1:
        raise _bad("class list")
    for c in classes:
        if not isinstance(c, dict) or isinstance(c.get("id"), bool) or not isinstance(c.get("id"), int) \
                or not 0 <= c["id"] <= MAX_CLASS_ID or not isinstance(c.get("name"), str) \
                or len(c["name"]) > MAX_CLASS_NAME or not isinstance(c.get("color"), str) \
                or not _COLOR.match(c["color"]):
            raise _bad("class list")
    return classes


def check_session(sid, key):
    """The store id a browser's signed session id stands for; None for anything this server did not sign.

    None makes a callback body act as "no session yet" (nothing is read or stored), while
    ``start_session`` replaces the browser's id with a fresh signed one (or, for a session of a
    version before ids were signed, with its signed form) - so a typed, copied or forged id is
    visibly replaced and never used.
    """
    return verify_session_id(sid, key()) if sid is not None else None


def _check_request_store(value):
    """TRAIN_REQUEST / EXTRACT_REQUEST / ANNOT_VERSION / MODEL_VERSION: small dicts; plane keys well formed."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise _bad("request")
    k = value.get("key")
    if k is not None and (not isinstance(k, str) or not _PLANE_KEY.match(k)):
        raise _bad("request")
    for name in ("force", "retrain", "rendered"):
        if name in value and not isinstance(value[name], bool):
            raise _bad("request")
    for name in ("n", "v", "version", "total", "rev", "t"):
        if name in value and value[name] is not None and not _number(value[name]):
            raise _bad("request")
    return value


def _number(value, lo=None, hi=None, *, integer=False, optional=True):
    if value is None and optional:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if integer and int(value) != value:
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _clicks(value) -> bool:
    if isinstance(value, list):
        return len(value) <= 10_000 and all(_clicks(v) for v in value)
    return _number(value, 0, 10**9, integer=True)


# -- constraints read from the layout ----------------------------------------------------------------
def layout_constraints(layout) -> dict[tuple[str, str], object]:
    """``{(component id, property): check(value) -> bool}`` for the inputs the page renders."""
    out = {}
    for comp in [layout, *layout._traverse()] if hasattr(layout, "_traverse") else []:
        cid = getattr(comp, "id", None)
        if not isinstance(cid, str):
            continue
        kind = type(comp).__name__
        lo, hi = getattr(comp, "min", None), getattr(comp, "max", None)
        if kind == "Slider":
            out[(cid, "value")] = (lambda v, lo=lo: _number(v, lo, None)) if cid == ids.PLANE_SLIDER else \
                (lambda v, lo=lo, hi=hi: _number(v, lo, hi, optional=False))  # a slider always has a value
        elif kind == "RangeSlider":
            out[(cid, "value")] = lambda v, lo=lo, hi=hi: v is None or (
                isinstance(v, list) and 1 <= len(v) <= 2 and all(_number(x, lo, hi, optional=False) for x in v))
        elif kind == "Input":
            typ = getattr(comp, "type", None) or "text"
            if typ == "number":
                out[(cid, "value")] = lambda v, lo=lo, hi=hi: _number(v, lo, hi if hi is not None else 1e12)
            elif typ == "color":
                out[(cid, "value")] = lambda v: v is None or (isinstance(v, str) and bool(_COLOR.match(v)))
            else:
                out[(cid, "value")] = lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_TEXT)
        elif kind in ("Select", "RadioItems", "Dropdown"):
            options = getattr(comp, "options", None) or []
            values = {o.get("value") if isinstance(o, dict) else o for o in options}
            if values and cid not in (ids.PROBA_CLASS, ids.OBJ_CLASS, ids.EXTRACTOR):
                out[(cid, "value")] = lambda v, values=frozenset(values): isinstance(v, (str, int, float, type(None))) \
                    and v in values
            else:  # options change at run time (class ids, extractors): a short scalar
                out[(cid, "value")] = lambda v: v is None or (isinstance(v, (int, str)) and not isinstance(v, bool)
                                                              and len(str(v)) <= 100)
        elif kind in ("Switch", "Checkbox"):
            out[(cid, "value")] = lambda v: v is None or isinstance(v, bool)
        elif kind == "Tabs":
            out[(cid, "active_tab")] = lambda v: v is None or (isinstance(v, str) and len(v) <= 100)
        elif kind == "Store" and cid != ids.SESSION:  # a browser-side store holds what its initial value holds
            out[(cid, "data")] = _like(getattr(comp, "data", None))
        elif kind == "Interval":
            out[(cid, "n_intervals")] = lambda v: _number(v, 0, 10**12, integer=True)
    return out


def _like(initial):
    """A check for a store's value: of the kind of its initial value (None/dict initial: None or a dict)."""
    if isinstance(initial, bool):
        return lambda v: v is None or isinstance(v, bool)
    if isinstance(initial, (int, float)):
        return lambda v: _number(v)
    if isinstance(initial, list):
        return lambda v: v is None or isinstance(v, list)
    if isinstance(initial, str):
        return lambda v: v is None or isinstance(v, str)
    return lambda v: v is None or isinstance(v, dict)


def _check_view(value):
    """The visible region the browser reports: finite numbers for the box and the screen width."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16 or not all(
            _number(value.get(k), -1e9, 1e9) for k in ("x0", "x1", "y0", "y1", "px")):
        raise _bad("view")
    return value


def _check_tiles_seen(value):
    if value is None:
        return None
    tiles = value.get("tiles", []) if isinstance(value, dict) else None
    k = value.get("key") if isinstance(value, dict) else None
    if not isinstance(tiles, list) or len(tiles) > 100_000 or not all(isinstance(t, str) and len(t) <= 40
                                                                       for t in tiles) \
            or (k is not None and (not isinstance(k, str) or not _PLANE_KEY.match(k))) \
            or not _number(value.get("v"), integer=True):
        raise _bad("tile list")
    return value


def payload_checks(fn, constraints: dict, session_key) -> dict:
    """``{parameter: check}`` for the named inputs of plain callback ``fn``; each check returns the
    value to pass on, or raises SegappError."""
    spec = getattr(fn, "dash_spec", {})
    deps = {**spec.get("inputs", {}), **spec.get("state", {})}
    checks = {}
    for name, dep in deps.items():
        cid, prop = getattr(dep, "component_id", None), getattr(dep, "component_property", None)
        if cid == ids.SESSION and prop == "data" and name == "sid":
            checks[name] = functools.partial(check_session, key=session_key)
        elif cid == ids.CURRENT:
            checks[name] = check_current
        elif cid == ids.CLASSES:
            checks[name] = check_classes
        elif cid in (ids.TRAIN_REQUEST, ids.EXTRACT_REQUEST, ids.ANNOT_VERSION, ids.MODEL_VERSION,
                     getattr(ids, "TILE_QUEUE", None)):
            checks[name] = _check_request_store
        elif cid == getattr(ids, "VIEW", None):
            checks[name] = _check_view
        elif cid == getattr(ids, "TILE_SEEN", None):
            checks[name] = _check_tiles_seen
        elif cid == ids.IMAGES_VERSION:
            checks[name] = _simple(lambda v: _number(v, 0, 10**12, integer=True), "image list version")
        elif cid == ids.ACTIVE_CLASS:
            checks[name] = _simple(lambda v: _number(v, 0, MAX_CLASS_ID, integer=True, optional=False), "class")
        elif cid == ids.SCALE:
            checks[name] = _simple(lambda v: _number(v, 1e-6, 1e6), "zoom")
        elif cid == ids.GRAPH and prop == "relayoutData":
            checks[name] = _simple(lambda v: v is None or isinstance(v, dict), "drawing event")
        elif prop == "n_clicks":
            checks[name] = _simple(_clicks, "click")
        elif prop == "modified_timestamp":  # -1 until the store is first written
            checks[name] = _simple(lambda v: _number(v, -1, 10**15, integer=True), "timestamp")
        elif (cid, prop) in constraints:
            checks[name] = _simple(constraints[(cid, prop)], f"value for {cid}")
    return checks


def _simple(ok, what):
    def check(value):
        if not ok(value):
            raise _bad(what)
        return value
    return check
