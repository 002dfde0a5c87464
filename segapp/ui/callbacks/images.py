"""Images: upload (many at once), samples, thumbnails, switching, planes of stacks, removal."""

from __future__ import annotations

from dash import ALL, Input, Output, Patch, State, no_update
from dash.exceptions import PreventUpdate

from ... import io
from ...errors import ImageReadError, SegappError
from ...limits import Limits
from .. import ids
from ..guard import decode_upload, upload_items
from ..layout import SAMPLES, removed_toast, thumb_items
from ..render import png_uri, rgb_png, thumbnail_png
from ..session import key, split_key
from .common import bump, callback_spec, valid_session, wire


def add_image(sess, name: str, data: bytes, settings) -> str:
    """Validate and store one uploaded file; returns its item id (raises ImageReadError).

    The file must pass every cost limit of the deployment (:class:`segapp.limits.Limits`:
    upload size, pixels, planes, channels, decoded bytes), checked before it is decoded.
    """
    limit = settings.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        raise ImageReadError(f"{name}: the file is {len(data) / 2**20:.0f} MB, more than the "
                             f"{settings.max_upload_mb} MB this server accepts")
    stack = io.read_stack(data, name=name, limits=Limits.from_settings(settings))
    step = max(1, -(-max(stack.shape[1:3]) // 1024))  # a thumbnail needs no more than ~1000 px a side
    thumb = thumbnail_png(io.to_display_rgb(stack[0, ::step, ::step]))
    return sess.add_image(name, stack, thumb)


def sample_bytes(name: str) -> bytes:
    """One of scikit-image's bundled sample images, as PNG bytes (read back through segapp.io)."""
    if name not in SAMPLES:
        raise SegappError(f"unknown sample {name!r}")
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.dtype == bool:
        arr = arr.astype("uint8") * 255
    return rgb_png(arr)


@callback_spec(
    output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True),
                images_version=Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
                upload_contents=Output(ids.UPLOAD, "contents")),
    inputs=dict(contents=Input(ids.UPLOAD, "contents")),
    state=dict(filenames=State(ids.UPLOAD, "filename"), sid=State(ids.SESSION, "data"),
               images_version=State(ids.IMAGES_VERSION, "data")),
    prevent_initial_call=True,
)
def upload_images(contents, filenames, sid, images_version, *, services, notify):
    """Add the dropped files to the session; files that are not images get one toast naming each.

    Parameters
    ----------
    contents, filenames : str or list of str
        ``dcc.Upload``'s data URIs and file names (one or many).
    sid : str
    images_version : int or None
    services, notify
        Filled in by :func:`~segapp.ui.callbacks.common.wire` (tests pass their own).

    Returns
    -------
    dict
        ``current``: the last added image (``no_update`` when none was added);
        ``images_version``: bumped; ``upload_contents``: None, so the same file can be dropped again.
    """
    if not contents or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    limit = services.settings.max_upload_mb * 1024 * 1024
    added, failed = [], []
    for name, content in upload_items(contents, filenames):  # every file is added or named with its reason
        try:
            added.append(add_image(sess, name, decode_upload(content, name, limit), services.settings))
        except SegappError as e:
            failed.append(str(e) if name in str(e) else f"{name}: {e}")
    if failed:  # one toast: Dash keeps only the last one a request sets
        done = f" · Added {len(added)} image(s)." if added else ""
        notify(" · ".join(failed) + done, "danger", f"{len(failed)} file(s) not added")
    elif len(added) > 1:
        notify(f"Added {len(added)} images.", "success")
    if not added:
        return {"current": no_update, "images_version": no_update, "upload_contents": None}
    return {"current": {"image": added[-1], "plane": 0}, "images_version": bump(images_version),
            "upload_contents": None}


@callback_spec(
    output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True),
                images_version=Output(ids.IMAGES_VERSION, "data", allow_duplicate=True)),
    inputs=dict(n_clicks=Input(ids.SAMPLE_ADD, "n_clicks")),
    state=dict(sample=State(ids.SAMPLE_SELECT, "value"), sid=State(ids.SESSION, "data"),
               images_version=State(ids.IMAGES_VERSION, "data")),
    prevent_initial_call=True,
)
def add_sample(n_clicks, sample, sid, images_version, *, services):
    """Add one of scikit-image's sample images (``sample``: its name) and show it.

    Returns
    -------
    dict
        ``current``: the new image; ``images_version``: bumped.
    """
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    iid = add_image(sess, f"{sample}.png", sample_bytes(sample), services.settings)
    return {"current": {"image": iid, "plane": 0}, "images_version": bump(images_version)}


@callback_spec(output=dict(thumbs=Output(ids.THUMBS, "children"), remove_style=Output(ids.DELETE_ROW, "style"),
                           remove_title=Output(ids.DELETE_IMAGE, "title")),
               inputs=dict(images_version=Input(ids.IMAGES_VERSION, "data"), cur=Input(ids.CURRENT, "data")),
               state=dict(sid=State(ids.SESSION, "data")))
def show_thumbnails(images_version, cur, sid, *, services):
    """The session's image list, the current image highlighted; "Remove image" only while an image is shown.

    Returns
    -------
    dict
        ``thumbs``: the thumbnail buttons; ``remove_style`` and ``remove_title`` of the remove link.
    """
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    images = sess.images()
    thumbs = {m["id"]: png_uri(sess.thumbnail(m["id"]) or b"") for m in images}
    shown = next((m for m in images if m["id"] == (cur or {}).get("image")), None)
    return {"thumbs": thumb_items(images, thumbs, (cur or {}).get("image")),
            "remove_style": {} if shown else {"display": "none"},
            "remove_title": f"Remove {shown['name']} and its strokes (undo in the message that follows)" if shown
            else ""}


@callback_spec(output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True)),
               inputs=dict(thumb_clicks=Input(ids.thumb(ALL), "n_clicks"),
                           gallery_clicks=Input(ids.gallery_item(ALL), "n_clicks")),
               state=dict(cur=State(ids.CURRENT, "data")), prevent_initial_call=True)
def select_image(thumb_clicks, gallery_clicks, cur, *, trigger, clicked):
    """Show the image whose thumbnail (or the plane whose gallery card) was clicked.

    Parameters
    ----------
    thumb_clicks, gallery_clicks : list of int
        Click counts of the pattern-matching buttons (only the trigger matters).
    cur : dict or None
        The image on screen.
    trigger : dict
        The clicked button's id: ``{"type": "thumb", "item": "<image id>"}`` (plane 0) or
        ``{"type": "gallery-item", "item": "<image id>_<plane>"}``.
    clicked : bool
        False when the buttons merely re-rendered.

    Returns
    -------
    dict
        ``current``: the chosen image and plane.

    Examples
    --------
    >>> select_image([0, 1], [], {"image": "a"}, trigger={"type": "thumb", "item": "b"}, clicked=True)
    {'current': {'image': 'b', 'plane': 0}}
    >>> select_image([], [1], {"image": "b"}, trigger={"type": "gallery-item", "item": "b_2"}, clicked=True)
    {'current': {'image': 'b', 'plane': 2}}
    """
    if not clicked or not isinstance(trigger, dict) or not isinstance(trigger.get("item"), str):
        raise PreventUpdate
    if trigger.get("type") == "gallery-item":
        iid, z = split_key(trigger["item"])
    else:
        iid, z = trigger["item"], 0
    if cur and cur.get("image") == iid and int(cur.get("plane", 0)) == z:
        raise PreventUpdate
    return {"current": {"image": iid, "plane": z}}


@callback_spec(output=dict(style=Output(ids.PLANE_ROW, "style"), max=Output(ids.PLANE_SLIDER, "max"),
                           value=Output(ids.PLANE_SLIDER, "value"), marks=Output(ids.PLANE_SLIDER, "marks")),
               inputs=dict(cur=Input(ids.CURRENT, "data")), state=dict(sid=State(ids.SESSION, "data")))
def plane_slider(cur, sid, *, services):
    """The plane slider of a stack (hidden for single-plane images), numbered 1..Z as the header says.

    Returns
    -------
    dict
        The slider row's ``style`` and the slider's ``max``, ``value`` (the plane number,
        1-based) and ``marks``.
    """
    hidden = {"style": {"display": "none"}, "max": 2, "value": 1, "marks": None}
    if not cur or not valid_session(sid):
        return hidden
    meta = services.session(sid).meta(cur["image"])
    z = meta["shape"][0] if meta else 1
    if z <= 1:
        return hidden
    marks = {i: str(i) for i in range(1, z + 1)} if z <= 12 else {1: "1", z: str(z)}
    return {"style": {}, "max": z, "value": int(cur.get("plane", 0)) + 1, "marks": marks}


@callback_spec(output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True)),
               inputs=dict(plane=Input(ids.PLANE_SLIDER, "value")), state=dict(cur=State(ids.CURRENT, "data")),
               prevent_initial_call=True)
def choose_plane(plane, cur):
    """Show another plane of the current stack (``plane``: the slider's 1-based number).

    Examples
    --------
    >>> choose_plane(3, {"image": "a", "plane": 0})
    {'current': {'image': 'a', 'plane': 2}}
    """
    if not cur or plane is None or cur.get("plane", 0) == int(plane) - 1:
        raise PreventUpdate
    return {"current": {**cur, "plane": max(int(plane) - 1, 0)}}


@callback_spec(
    output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True),
                images_version=Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
                annot_version=Output(ids.ANNOT_VERSION, "data", allow_duplicate=True),
                notices=Output(ids.NOTICES, "children", allow_duplicate=True)),
    inputs=dict(n_clicks=Input(ids.DELETE_IMAGE, "n_clicks")),
    state=dict(cur=State(ids.CURRENT, "data"), sid=State(ids.SESSION, "data"),
               images_version=State(ids.IMAGES_VERSION, "data")),
    prevent_initial_call=True,
)
def delete_image(n_clicks, cur, sid, images_version, *, services):
    """Remove the current image and its strokes, undoably: a toast with an Undo button; show the newest one left.

    Returns
    -------
    dict
        ``current``: the image now shown (None when none is left); ``images_version``: bumped;
        ``annot_version``: bumped (training no longer sees its strokes); ``notices``: the toast.
    """
    if not cur or not cur.get("image") or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    meta = sess.meta(cur["image"])
    if meta is None:
        raise PreventUpdate
    strokes = sum(len(sess.shapes(key(meta["id"], z))) for z in range(meta["shape"][0]))
    sess.remove_image(meta["id"])
    rest = sess.images()
    toasts = Patch()
    toasts.append(removed_toast(meta, strokes))
    return {"current": {"image": rest[-1]["id"], "plane": 0} if rest else None,
            "images_version": bump(images_version), "annot_version": {"rev": sess.annot_rev(), "key": None},
            "notices": toasts}


@callback_spec(
    output=dict(current=Output(ids.CURRENT, "data", allow_duplicate=True),
                images_version=Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
                annot_version=Output(ids.ANNOT_VERSION, "data", allow_duplicate=True),
                toasts_open=Output(ids.removed_toast(ALL), "is_open")),
    inputs=dict(clicks=Input(ids.restore_image(ALL), "n_clicks")),
    state=dict(sid=State(ids.SESSION, "data"), images_version=State(ids.IMAGES_VERSION, "data")),
    prevent_initial_call=True,
)
def restore_image(clicks, sid, images_version, *, services, trigger, clicked, notify):
    """Undo the last removal: the image comes back with its strokes and results, and is shown.

    Parameters
    ----------
    clicks : list of int
        Click counts of the Undo buttons in the removal toasts.
    trigger : dict
        ``{"type": "restore-image", "item": "<image id>"}``.

    Returns
    -------
    dict
        ``current`` (the restored image), ``images_version``, ``annot_version`` (it trains
        again) and ``toasts_open`` (the removal toasts closed).
    """
    if not clicked or not isinstance(trigger, dict) or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    meta = sess.restore_image(str(trigger.get("item")))
    closed = [False] * len(clicks)
    if meta is None:
        notify("That image cannot be brought back any more (only the last removed image can).", "warning")
        return {"current": no_update, "images_version": no_update, "annot_version": no_update,
                "toasts_open": closed}
    return {"current": {"image": meta["id"], "plane": 0}, "images_version": bump(images_version),
            "annot_version": {"rev": sess.annot_rev(), "key": None}, "toasts_open": closed}


def register(app, services):
    wire(app, services, upload_images, add_sample, show_thumbnails, select_image, plane_slider, choose_plane,
         delete_image, restore_image)
