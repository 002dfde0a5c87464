"""Images: upload (many at once), samples, thumbnails, switching, planes of stacks, removal."""

from __future__ import annotations

from dash import ALL, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from ... import io
from ...errors import ImageReadError, SegappError
from .. import ids
from ..layout import SAMPLES, thumb_items
from ..render import png_uri, rgb_png, thumbnail_png, uri_bytes
from .common import bump, clicked, notify, valid_session


def add_image(sess, name: str, data: bytes, settings) -> str:
    """Validate and store one uploaded file; returns its item id (raises ImageReadError)."""
    limit = settings.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        raise ImageReadError(f"{name}: the file is {len(data) / 2**20:.0f} MB, more than the "
                             f"{settings.max_upload_mb} MB this server accepts")
    stack = io.read_stack(data, max_pixels=settings.max_pixels, name=name)
    thumb = thumbnail_png(io.to_display_rgb(stack[0]))
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


def register(app, services):
    settings = services.settings

    @app.callback(
        Output(ids.CURRENT, "data", allow_duplicate=True), Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
        Output(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD, "contents"), State(ids.UPLOAD, "filename"), State(ids.SESSION, "data"),
        State(ids.IMAGES_VERSION, "data"), prevent_initial_call=True,
    )
    def upload_images(contents, names, sid, version):
        if not contents or not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        contents = contents if isinstance(contents, list) else [contents]
        names = names if isinstance(names, list) else [names]
        added, failed = [], []
        for content, name in zip(contents, names):
            try:
                added.append(add_image(sess, name or "image", uri_bytes(content), settings))
            except SegappError as e:
                failed.append(str(e))
        if failed:
            notify(" · ".join(failed), "danger", f"{len(failed)} file(s) not added")
        if len(added) > 1:
            notify(f"Added {len(added)} images.", "success")
        if not added:
            return no_update, no_update, None
        return {"image": added[-1], "plane": 0}, bump(version), None

    @app.callback(
        Output(ids.CURRENT, "data", allow_duplicate=True), Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
        Input(ids.SAMPLE_ADD, "n_clicks"), State(ids.SAMPLE_SELECT, "value"), State(ids.SESSION, "data"),
        State(ids.IMAGES_VERSION, "data"), prevent_initial_call=True,
    )
    def add_sample(_n, name, sid, version):
        sess = services.session(sid)
        iid = add_image(sess, f"{name}.png", sample_bytes(name), settings)
        return {"image": iid, "plane": 0}, bump(version)

    @app.callback(Output(ids.THUMBS, "children"), Input(ids.IMAGES_VERSION, "data"), Input(ids.CURRENT, "data"),
                  State(ids.SESSION, "data"))
    def show_thumbnails(_v, cur, sid):
        if not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        images = sess.images()
        thumbs = {m["id"]: png_uri(sess.thumbnail(m["id"]) or b"") for m in images}
        return thumb_items(images, thumbs, (cur or {}).get("image"))

    @app.callback(Output(ids.CURRENT, "data", allow_duplicate=True),
                  Input(ids.thumb(ALL), "n_clicks"), Input(ids.gallery_item(ALL), "n_clicks"),
                  State(ids.CURRENT, "data"), prevent_initial_call=True)
    def select_image(_thumbs, _gallery, cur):
        if not clicked() or not isinstance(ctx.triggered_id, dict):
            raise PreventUpdate
        iid = ctx.triggered_id["item"]
        if cur and cur.get("image") == iid:
            raise PreventUpdate
        return {"image": iid, "plane": 0}

    @app.callback(Output(ids.PLANE_ROW, "style"), Output(ids.PLANE_SLIDER, "max"), Output(ids.PLANE_SLIDER, "value"),
                  Output(ids.PLANE_SLIDER, "marks"),
                  Input(ids.CURRENT, "data"), State(ids.SESSION, "data"))
    def plane_slider(cur, sid):
        if not cur or not valid_session(sid):
            return {"display": "none"}, 1, 0, None
        meta = services.session(sid).meta(cur["image"])
        z = meta["shape"][0] if meta else 1
        if z <= 1:
            return {"display": "none"}, 1, 0, None
        marks = {0: "1", z - 1: str(z)}
        return {}, z - 1, cur.get("plane", 0), marks

    @app.callback(Output(ids.CURRENT, "data", allow_duplicate=True), Input(ids.PLANE_SLIDER, "value"),
                  State(ids.CURRENT, "data"), prevent_initial_call=True)
    def choose_plane(z, cur):
        if not cur or z is None or cur.get("plane", 0) == z:
            raise PreventUpdate
        return {**cur, "plane": int(z)}

    @app.callback(
        Output(ids.CURRENT, "data", allow_duplicate=True), Output(ids.IMAGES_VERSION, "data", allow_duplicate=True),
        Input(ids.DELETE_IMAGE, "n_clicks"), State(ids.CURRENT, "data"), State(ids.SESSION, "data"),
        State(ids.IMAGES_VERSION, "data"), prevent_initial_call=True,
    )
    def delete_image(_n, cur, sid, version):
        if not cur:
            raise PreventUpdate
        sess = services.session(sid)
        meta = sess.meta(cur["image"])
        sess.delete_image(cur["image"])
        rest = sess.images()
        notify(f"Removed {meta['name'] if meta else 'the image'} and its strokes.", "info")
        return ({"image": rest[-1]["id"], "plane": 0} if rest else None), bump(version)

