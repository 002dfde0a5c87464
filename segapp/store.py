"""Per-session storage of images, annotations, models and results.

Everything a session owns lives under its own unguessable session id; keys are
``<session>/<kind>/<item>``.  Two backends share one interface:

- :class:`LocalStore` — a directory on disk (embedded, single-machine mode);
- :class:`RedisStore` — Redis, with a time-to-live on every key (distributed
  mode, shared by the web server and Celery workers).

Values are bytes; helpers store JSON documents and NumPy arrays (``.npy``
bytes, never pickles).

Examples
--------
>>> import tempfile, numpy as np
>>> store = LocalStore(tempfile.mkdtemp())
>>> sid = new_session_id()
>>> store.put_array(sid, "image", "a1", np.arange(6).reshape(2, 3))
>>> store.get_array(sid, "image", "a1").tolist()
[[0, 1, 2], [3, 4, 5]]
>>> store.list(sid, "image")
['a1']
>>> store.get_array(new_session_id(), "image", "a1") is None
True
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import numpy as np

_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def new_session_id() -> str:
    """A fresh unguessable session id (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def new_item_id() -> str:
    """A fresh random id for an image, model or result inside a session."""
    return secrets.token_hex(8)


def _check(session: str, kind: str, item: str | None = None) -> None:
    if not isinstance(session, str) or not _SESSION_RE.match(session):
        raise KeyError("invalid session id")
    if not _NAME_RE.match(kind) or kind.startswith("."):
        raise KeyError(f"invalid kind {kind!r}")
    if item is not None and (not _NAME_RE.match(item) or item.startswith(".")):
        raise KeyError(f"invalid item id {item!r}")


class Store:
    """Interface shared by the backends; subclasses implement the byte operations."""

    ttl: float

    def put(self, session: str, kind: str, item: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, session: str, kind: str, item: str) -> bytes | None:
        raise NotImplementedError

    def delete(self, session: str, kind: str, item: str) -> None:
        raise NotImplementedError

    def list(self, session: str, kind: str) -> list[str]:
        raise NotImplementedError

    def drop_session(self, session: str) -> None:
        raise NotImplementedError

    # -- typed helpers ----------------------------------------------------------
    def put_json(self, session: str, kind: str, item: str, doc) -> None:
        self.put(session, kind, item, json.dumps(doc).encode())

    def get_json(self, session: str, kind: str, item: str, default=None):
        data = self.get(session, kind, item)
        return default if data is None else json.loads(data)

    def put_array(self, session: str, kind: str, item: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(array), allow_pickle=False)
        self.put(session, kind, item, buf.getvalue())

    def get_array(self, session: str, kind: str, item: str):
        data = self.get(session, kind, item)
        return None if data is None else np.load(io.BytesIO(data), allow_pickle=False)


class LocalStore(Store):
    """Directory-backed store: ``root/<session>/<kind>/<item>``.

    Parameters
    ----------
    root : str or Path
    ttl : float
        Seconds after the last write to a session before :meth:`purge_expired`
        removes it.
    """

    def __init__(self, root, ttl: float = 7 * 24 * 3600):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = float(ttl)

    def _path(self, session, kind, item=None) -> Path:
        _check(session, kind, item)
        p = self.root / session / kind
        return p / item if item is not None else p

    def put(self, session, kind, item, data):
        path = self._path(session, kind, item)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{item}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: readers never see half a file
        os.utime(self.root / session)

    def get(self, session, kind, item):
        try:
            return self._path(session, kind, item).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, session, kind, item):
        self._path(session, kind, item).unlink(missing_ok=True)

    def list(self, session, kind):
        p = self._path(session, kind)
        if not p.is_dir():
            return []
        files = [f for f in p.iterdir() if not f.name.startswith(".")]
        return [f.name for f in sorted(files, key=lambda f: (f.stat().st_mtime_ns, f.name))]

    def drop_session(self, session):
        _check(session, "x")
        shutil.rmtree(self.root / session, ignore_errors=True)

    def purge_expired(self, now: float | None = None) -> int:
        """Remove sessions idle for longer than ``ttl``; returns how many."""
        now = time.time() if now is None else now
        n = 0
        for d in self.root.iterdir():
            if d.is_dir() and _SESSION_RE.match(d.name) and now - d.stat().st_mtime > self.ttl:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n


class RedisStore(Store):
    """Redis-backed store; every key expires ``ttl`` seconds after its last write.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    ttl : float
        Time-to-live in seconds of every key (refreshed on write).
    prefix : str
        Namespace for all keys of this deployment.
    """

    def __init__(self, url: str, ttl: float = 7 * 24 * 3600, prefix: str = "segapp"):
        import redis  # imported here: the engine and embedded mode never need it

        self.client = redis.Redis.from_url(url)
        self.ttl = float(ttl)
        self.prefix = prefix

    def _key(self, session, kind, item=None) -> str:
        _check(session, kind, item)
        return f"{self.prefix}:{session}:{kind}" + (f":{item}" if item is not None else "")

    def _index(self, session, kind) -> str:
        return self._key(session, kind) + ":__index__"

    def put(self, session, kind, item, data):
        ttl = max(1, int(round(self.ttl)))
        idx = self._index(session, kind)
        pipe = self.client.pipeline()
        pipe.set(self._key(session, kind, item), data, ex=ttl)
        pipe.zadd(idx, {item: time.time()})
        pipe.expire(idx, ttl)
        pipe.execute()

    def get(self, session, kind, item):
        return self.client.get(self._key(session, kind, item))

    def delete(self, session, kind, item):
        pipe = self.client.pipeline()
        pipe.delete(self._key(session, kind, item))
        pipe.zrem(self._index(session, kind), item)
        pipe.execute()

    def list(self, session, kind):
        idx = self._index(session, kind)
        items = [i.decode() for i in self.client.zrange(idx, 0, -1)]
        alive = [i for i in items if self.client.exists(self._key(session, kind, i))]
        stale = set(items) - set(alive)
        if stale:
            self.client.zrem(idx, *stale)
        return alive

    def drop_session(self, session):
        _check(session, "x")
        keys = list(self.client.scan_iter(match=f"{self.prefix}:{session}:*", count=500))
        if keys:
            self.client.delete(*keys)


def open_store(redis_url: str | None = None, data_dir=None, ttl: float = 7 * 24 * 3600) -> Store:
    """The store for a deployment: Redis when ``redis_url`` is set, else a local directory."""
    if redis_url:
        return RedisStore(redis_url, ttl=ttl)
    return LocalStore(data_dir or Path.cwd() / ".segapp" / "data", ttl=ttl)
