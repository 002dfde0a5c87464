"""Server-side state of one browser session, on top of :mod:`segapp.store`.

Nothing about a user lives in module globals: every piece of work (images,
annotations with their undo history, classes, settings, the model, results) is
stored under the session's unguessable id.  This module is UI-free (no Dash) so
callbacks, background jobs and tests share it.

Keys (``<kind>/<item>``; ``<key>`` is ``<image id>_<plane>``)::

    image/<iid>     (Z, H, W, C) array, native dtype      meta/<iid>     name, shape, dtype
    thumb/<iid>     PNG thumbnail                          display/<key>  PNG of the plane as shown
    annot/<key>     {"shapes", "undo", "redo"}             labels/<key>   painted label image
    result/<key>    predicted class ids                    proba/<key>    probabilities (float16)
    model/v<n>      the .segapp model files                    state/*        classes, current, settings, model

Examples
--------
>>> import tempfile, numpy as np
>>> from segapp.store import LocalStore, new_session_id
>>> s = Session(LocalStore(tempfile.mkdtemp()), new_session_id())
>>> iid = s.add_image("a.png", np.zeros((1, 4, 5, 1), np.uint8), thumbnail=b"png")
>>> [m["name"] for m in s.images()]
['a.png']
>>> s.set_shapes(key(iid, 0), [{"type": "path", "path": "M0,0L1,1"}])
>>> s.undo(key(iid, 0)), s.redo(key(iid, 0))
([], [{'type': 'path', 'path': 'M0,0L1,1'}])
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import numpy as np

from .. import defaults
from ..errors import SegappError
from ..limits import MAX_CLASS_ID, MAX_HISTORY_BYTES, MAX_HISTORY_STEPS
from ..store import Store, issue_session_id, new_item_id, session_key, sign_session_id, verify_session_id

HISTORY = MAX_HISTORY_STEPS
DEFAULT_CLASSES = defaults.CLASSES
PALETTE = defaults.PALETTE
DEFAULT_SETTINGS = {  # read from segapp.defaults, the engine's and the CLI's defaults
    "extractor": defaults.EXTRACTOR, "sigmas": defaults.classical_sigma_range(),
    "trees": defaults.classifier_params()["n_estimators"], "depth": defaults.classifier_params()["max_depth"] or 0,
    "normalization": defaults.NORMALIZATION["method"], "all_images": True,
}


def key(image_id: str, plane: int = 0) -> str:
    """Store item for one plane of one image."""
    return f"{image_id}_{int(plane)}"


def split_key(k: str) -> tuple[str, int]:
    """Inverse of :func:`key`."""
    iid, _, z = k.rpartition("_")
    return iid, int(z)


class Session:
    """Typed access to one session's items in a :class:`~segapp.store.Store`.

    Parameters
    ----------
    store : Store
    sid : str
        The session id; invalid ids raise ``KeyError`` on first access.
    """

    def __init__(self, store: Store, sid: str):
        self.store, self.sid = store, sid

    # -- images ------------------------------------------------------------------
    def add_image(self, name: str, stack: np.ndarray, thumbnail: bytes) -> str:
        iid = new_item_id()
        self.store.put_array(self.sid, "image", iid, stack)
        self.store.put(self.sid, "thumb", iid, thumbnail)
        self.store.put_json(self.sid, "meta", iid, {
            "id": iid, "name": name, "shape": list(stack.shape), "dtype": str(stack.dtype),
            "added": time.time()})
        return iid

    def images(self) -> list[dict]:
        """Metadata of the session's images, oldest first (a removed image, still undoable, is not listed)."""
        out = [self.store.get_json(self.sid, "meta", i) for i in self.store.list(self.sid, "meta")]
        return sorted((m for m in out if m and not m.get("removed")), key=lambda m: m["added"])

    def meta(self, iid: str) -> dict | None:
        """Metadata of one image; None when it is not (or no longer) in the session."""
        meta = self.store.get_json(self.sid, "meta", iid)
        return None if not meta or meta.get("removed") else meta

    def stack(self, iid: str) -> np.ndarray:
        """The image ``(Z, H, W, C)``, read-only (memory-mapped where the store allows: no copy)."""
        arr = self.store.get_array(self.sid, "image", iid, mmap=True)
        if arr is None:
            raise SegappError("this image is no longer in your session; upload it again")
        return arr

    def plane(self, iid: str, z: int = 0) -> np.ndarray:
        """One plane ``(H, W, C)`` of an image."""
        stack = self.stack(iid)
        return stack[min(max(int(z), 0), stack.shape[0] - 1)]

    def thumbnail(self, iid: str) -> bytes | None:
        return self.store.get(self.sid, "thumb", iid)

    def display(self, k: str) -> bytes | None:
        return self.store.get(self.sid, "display", k)

    def put_display(self, k: str, png: bytes) -> None:
        self.store.put(self.sid, "display", k, png)

    def remove_image(self, iid: str) -> dict | None:
        """Take an image out of the session, undoably (:meth:`restore_image`); returns its metadata.

        Its pixels, strokes and results stay stored until the next removal, which deletes
        the previously removed image for good.  Training no longer sees its strokes.
        """
        meta = self.meta(iid)
        if meta is None:
            return None
        previous = self.store.get_json(self.sid, "state", "removed")
        if previous and previous.get("id") != iid:
            self.delete_image(previous["id"])
        self.store.put_json(self.sid, "meta", iid, {**meta, "removed": time.time()})
        self.store.put_json(self.sid, "state", "removed", {"id": iid, "name": meta["name"]})
        self._bump_annot_rev()
        return meta

    def restore_image(self, iid: str) -> dict | None:
        """Bring back the image :meth:`remove_image` took out last (None when it is gone for good)."""
        previous = self.store.get_json(self.sid, "state", "removed")
        meta = self.store.get_json(self.sid, "meta", iid)
        if not previous or previous.get("id") != iid or not meta or not meta.get("removed"):
            return None
        meta.pop("removed")
        self.store.put_json(self.sid, "meta", iid, meta)
        self.store.delete(self.sid, "state", "removed")
        self._bump_annot_rev()
        return meta

    def delete_image(self, iid: str) -> None:
        """Delete an image with its strokes and results for good."""
        meta = self.store.get_json(self.sid, "meta", iid)
        for kind in ("image", "meta", "thumb"):
            self.store.delete(self.sid, kind, iid)
        for z in range(meta["shape"][0] if meta else 1):
            for kind in ("display", "annot", "labels", "result", "proba", "objects", "gthumb"):
                self.store.delete(self.sid, kind, key(iid, z))

    # -- annotations (shapes + undo history) ----------------------------------------
    def _annot(self, k: str) -> dict:
        return self.store.get_json(self.sid, "annot", k, {"shapes": [], "undo": [], "redo": []})

    def shapes(self, k: str) -> list[dict]:
        return self._annot(k)["shapes"]

    def set_shapes(self, k: str, shapes: list[dict], labels: np.ndarray | None = None) -> None:
        """Replace the shapes of ``k`` (recording the old ones for undo)."""
        doc = self._annot(k)
        if shapes == doc["shapes"]:
            return
        doc["undo"] = _push(doc["undo"], _step(doc["shapes"], shapes))
        doc["redo"] = []
        doc["shapes"] = shapes
        self._save_annot(k, doc, labels)

    def _save_annot(self, k, doc, labels=None):
        self.store.put_json(self.sid, "annot", k, doc)
        if labels is not None:
            self.store.put_array(self.sid, "labels", k, labels)
        else:
            self.store.delete(self.sid, "labels", k)  # recomputed on demand
        self._bump_annot_rev()

    def _bump_annot_rev(self) -> None:
        self.store.incr(self.sid, "annot-rev")  # atomic in every process (Redis INCR / file lock)

    def annot_rev(self) -> int:
        """Counter bumped by every annotation change (the model records the one it saw)."""
        return self.store.counter(self.sid, "annot-rev")

    def remove_class_shapes(self, class_id: int, parse) -> int:
        """Drop the shapes of one class from every plane (undoable); returns how many went."""
        n = 0
        for k in self.store.list(self.sid, "annot"):
            shapes = self.shapes(k)
            keep = [s for s in shapes if _class_of(s, parse) != class_id]
            if len(keep) != len(shapes):
                n += len(shapes) - len(keep)
                self.set_shapes(k, keep)
        return n

    def undo(self, k: str) -> list[dict]:
        doc = self._annot(k)
        if doc["undo"]:
            before = _replay(doc["undo"].pop(), doc["shapes"])
            doc["redo"] = _push(doc["redo"], _step(doc["shapes"], before))
            doc["shapes"] = before
            self._save_annot(k, doc)
        return doc["shapes"]

    def redo(self, k: str) -> list[dict]:
        doc = self._annot(k)
        if doc["redo"]:
            after = _replay(doc["redo"].pop(), doc["shapes"])
            doc["undo"] = _push(doc["undo"], _step(doc["shapes"], after))
            doc["shapes"] = after
            self._save_annot(k, doc)
        return doc["shapes"]

    def history_depth(self, k: str) -> tuple[int, int]:
        doc = self._annot(k)
        return len(doc["undo"]), len(doc["redo"])

    def labels(self, k: str) -> np.ndarray | None:
        return self.store.get_array(self.sid, "labels", k)

    def put_labels(self, k: str, labels: np.ndarray) -> None:
        self.store.put_array(self.sid, "labels", k, labels)

    def annotated_keys(self) -> list[str]:
        """Keys of planes (of images in the session) that have at least one shape."""
        live = {m["id"] for m in self.images()}
        return [k for k in self.store.list(self.sid, "annot") if split_key(k)[0] in live and self.shapes(k)]

    # -- classes, settings, current image ---------------------------------------------
    def classes(self) -> list[dict]:
        return self.store.get_json(self.sid, "state", "classes", None) or [dict(c) for c in DEFAULT_CLASSES]

    def set_classes(self, classes: list[dict]) -> None:
        self.store.put_json(self.sid, "state", "classes", classes)

    def settings(self) -> dict:
        return {**DEFAULT_SETTINGS, **self.store.get_json(self.sid, "state", "settings", {})}

    def set_settings(self, settings: dict) -> None:
        self.store.put_json(self.sid, "state", "settings", settings)

    def current(self) -> dict:
        return self.store.get_json(self.sid, "state", "current", {}) or {}

    def set_current(self, iid: str | None, plane: int = 0) -> None:
        self.store.put_json(self.sid, "state", "current", {"image": iid, "plane": int(plane)})

    # -- model and results -------------------------------------------------------------
    def put_model(self, data: bytes | None, info: dict) -> int:
        """Record a new model (``info``) and store its file; returns the new model version.

        Versions come from an atomic counter, so every model gets its own, and the
        record is a versioned write: when two processes train one session, a model
        that finishes after a newer one was recorded is kept out (it never
        replaces the newer one; ``model_info()["version"]`` tells the caller).
        With ``data=None`` only the record is written and the caller stores the file
        later with :meth:`put_model_file` (saving takes a while; readers wait for it).
        """
        version = self.store.incr(self.sid, "model-version")
        doc = json.dumps({**info, "version": version}).encode()
        if self.store.put_if_newer(self.sid, "state", "model", version, doc) and data is not None:
            self.put_model_file(version, data)
        return version

    def put_model_file(self, version: int, data: bytes) -> None:
        self.store.put(self.sid, "model", f"v{version}", data)
        for item in self.store.list(self.sid, "model"):  # keep this version and the one before
            if item.startswith("v") and item[1:].isdigit() and int(item[1:]) < version - 1:
                self.store.delete(self.sid, "model", item)

    def model_bytes(self, wait: float = 15.0) -> bytes | None:
        """The current model file (waiting up to ``wait`` s for one still being saved)."""
        version = self.model_info().get("version")
        if version is None:
            return None
        end = time.time() + wait
        while True:
            data = self.store.get(self.sid, "model", f"v{version}")
            if data is not None or time.time() > end:
                return data
            time.sleep(0.05)

    def clear_model(self) -> None:
        """Forget the model and every result and measurement (the strokes and images stay)."""
        self.store.delete(self.sid, "state", "model")
        for item in self.store.list(self.sid, "model"):
            self.store.delete(self.sid, "model", item)
        for k in self.result_keys():
            for kind in ("result", "proba", "objects"):
                self.store.delete(self.sid, kind, k)
            self.store.delete(self.sid, "state", f"res-{k}")
        self.store.delete(self.sid, "state", "objects")

    def model_info(self) -> dict:
        return self.store.get_json(self.sid, "state", "model", {}) or {}

    def put_result(self, k: str, labels: np.ndarray, proba: np.ndarray, version: int, class_ids: list[int]) -> None:
        """Store a prediction; ``class_ids[i]`` is the class of ``proba[..., i]``."""
        self.store.put_array(self.sid, "result", k, labels)
        self.store.put_array(self.sid, "proba", k, proba.astype(np.float16))
        self.store.put_json(self.sid, "state", f"res-{k}", {"version": version, "classes": [int(c) for c in class_ids]})

    def result_classes(self, k: str) -> list[int]:
        doc = self.store.get_json(self.sid, "state", f"res-{k}")
        return doc["classes"] if doc else []

    def result(self, k: str) -> np.ndarray | None:
        return self.store.get_array(self.sid, "result", k)

    def proba(self, k: str) -> np.ndarray | None:
        p = self.store.get_array(self.sid, "proba", k)
        return None if p is None else p.astype(np.float32)

    def result_version(self, k: str) -> int | None:
        doc = self.store.get_json(self.sid, "state", f"res-{k}")
        return doc["version"] if doc else None

    def result_keys(self) -> list[str]:
        return self.store.list(self.sid, "result")


@dataclass
class Services:
    """Per-process infrastructure shared by all sessions (no per-user data)."""

    settings: object
    store: Store
    feature_cache: object
    models: object = None

    _session_key: bytes | None = None

    def session(self, sid) -> Session:
        """The session of ``sid``: a store id (what callbacks get), or a browser's signed id (verified).

        Raises
        ------
        SegappError
            No id, or a signed-looking id this server did not sign.
        """
        if not isinstance(sid, str) or not sid:
            raise SegappError("your session has not started yet; reload the page")
        if "." in sid:
            bare = verify_session_id(sid, self.signing_key())
            if bare is None:
                raise SegappError("this session id was not issued by this server; reload the page")
            sid = bare
        return Session(self.store, sid)

    def signing_key(self) -> bytes:
        """The key that signs browser session ids (SEGAPP_SECRET_KEY, else the store's own key)."""
        if self._session_key is None:
            self._session_key = session_key(self.store, getattr(self.settings, "secret_key", None))
        return self._session_key

    def issue_session_id(self, sid: str | None = None) -> str:
        """The browser-side id of store session ``sid`` (a fresh session when None)."""
        return sign_session_id(sid, self.signing_key()) if sid else issue_session_id(self.signing_key())

    def lock(self, sid: str, wait: float | None = None):
        """The session's training lock, shared by every process and host of the deployment.

        Serialises training per session (quick successive strokes coalesce instead
        of competing for the CPU) across gunicorn workers, background jobs and
        Celery workers: a Redis lock in distributed mode, a file lock in embedded
        mode.  ``with services.lock(sid):`` waits (at most ``wait`` s, then
        :class:`~segapp.store.LockTimeout`); ``.acquire(timeout=0)`` only tries.
        """
        return self.store.lock(sid, "train", lease=60.0, wait=wait)

    def job_slot(self, wait: float | None = None):
        """A turn among the host's background jobs (bounds memory: ``SEGAPP_MAX_JOBS`` at once).

        Embedded mode runs each background job in its own process on the web
        server's host, so ten sessions starting their first extraction together
        would run ten at once; this makes them take turns.  In distributed mode
        the workers' pool size already bounds it: no slot is needed.
        """
        if getattr(self.settings, "distributed", False):
            return contextlib.nullcontext()
        return self.store.semaphore("jobs", getattr(self.settings, "job_slots", 1), wait=wait)


# -- undo history: each step stores only what changed, and the whole history is bounded in bytes -------
def _step(target: list, current: list) -> dict:
    """The history entry that turns ``current`` back into ``target``: their shared prefix + target's tail.

    Drawing a stroke appends one shape, so its entry is ``{"p": n, "tail": []}`` - a few bytes,
    however large the earlier strokes are.

    Examples
    --------
    >>> a, b = [{"x": 1}], [{"x": 1}, {"x": 2}]
    >>> e = _step(a, b); e["p"], e["tail"], _replay(e, b) == a
    (1, [], True)
    """
    p, n = 0, min(len(target), len(current))
    while p < n and target[p] == current[p]:
        p += 1
    tail = target[p:]
    return {"p": p, "tail": tail, "n": len(json.dumps(tail)) + 24}


def _replay(entry, current: list) -> list:
    if isinstance(entry, list):  # a whole snapshot (histories saved before entries were steps)
        return entry
    return current[:entry["p"]] + entry["tail"]


def _push(stack: list, entry: dict) -> list:
    """``stack + [entry]``, oldest steps dropped beyond MAX_HISTORY_STEPS or MAX_HISTORY_BYTES."""
    stack = stack + [entry]
    sizes = [e["n"] if isinstance(e, dict) and "n" in e else len(json.dumps(e)) for e in stack]
    total = sum(sizes)
    while len(stack) > 1 and (len(stack) > HISTORY or total > MAX_HISTORY_BYTES):
        total -= sizes.pop(0)
        stack.pop(0)
    return stack


def _class_of(shape: dict, parse) -> int | None:
    try:
        return parse(shape.get("name"))[0]
    except SegappError:
        return None


def next_class(classes: list[dict]) -> dict:
    """A new class with the next free id, a default name and an unused colour.

    Examples
    --------
    >>> next_class(DEFAULT_CLASSES)
    {'id': 3, 'name': 'Class 3', 'color': '#2ca02c'}
    >>> next_class([{"id": 1, "color": "#000000"}, {"id": 255, "color": "#ffffff"}])["id"]  # ids stay <= 255
    2
    """
    used = {c["color"].lower() for c in classes}
    ids_used = {c["id"] for c in classes}
    cid = max(ids_used, default=0) + 1
    if cid > MAX_CLASS_ID:
        cid = min(set(range(1, MAX_CLASS_ID + 1)) - ids_used)
    color = next((p for p in PALETTE if p not in used), PALETTE[(cid - 1) % len(PALETTE)])
    return {"id": cid, "name": f"Class {cid}", "color": color}
