"""Per-session storage of images, annotations, models and results.

Everything a session owns lives under its own unguessable session id; keys are
``<session>/<kind>/<item>``.  Two backends share one interface:

- :class:`LocalStore` — a directory on disk (embedded, single-machine mode);
- :class:`RedisStore` — Redis, where a session expires ``ttl`` seconds after its
  last write (distributed mode, shared by the web server and Celery workers).

Values are bytes; helpers store JSON documents and NumPy arrays (``.npy``
bytes, never pickles).

State that several processes (gunicorn workers, Celery workers, hosts) share
uses primitives that cross processes: :meth:`Store.incr` (Redis ``INCR`` / a
file-locked counter), :meth:`Store.lock` (redis-py's ``Lock`` with a renewed
lease / the ``filelock`` package) and :meth:`Store.put_if_newer` (a versioned
write that never replaces a newer version with an older one).

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
>>> store.incr(sid, "annot-rev"), store.incr(sid, "annot-rev"), store.counter(sid, "annot-rev")
(1, 2, 2)
>>> store.put_if_newer(sid, "state", "model", 2, b"v2"), store.put_if_newer(sid, "state", "model", 1, b"v1")
(True, False)
>>> store.get(sid, "state", "model")
b'v2'
>>> with store.lock(sid, "train"):
...     store.lock(sid, "train").acquire(timeout=0)
False
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path

import numpy as np

from .config import mask_url
from .errors import SegappError

_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class StoreUnavailableError(SegappError):
    """The session store (Redis) cannot be reached; the message says where and what to do."""


class LockTimeout(SegappError):
    """A session lock was not acquired within the time asked for."""


def new_session_id() -> str:
    """A fresh unguessable session id (192 random bits, URL-safe): the key a session is stored under.

    A browser never holds this bare id: it holds :func:`sign_session_id` of it, and the server
    refuses any id it did not sign (client-chosen ids are replaced by fresh ones).
    """
    return secrets.token_urlsafe(24)


# -- server-issued session ids ---------------------------------------------------------------------
# What the browser keeps is ``<store id>.<HMAC-SHA256 of it, base64url>``; the key is derived from
# SEGAPP_SECRET_KEY, or (unset) a random key kept in the store itself, so every web process of a
# deployment and every restart agree on it.
_SIGNED_RE = re.compile(r"^([A-Za-z0-9_-]{20,64})\.([A-Za-z0-9_-]{43})$")


def _signature(session: str, key: bytes) -> str:
    mac = hmac.new(key, b"segapp-session\x00" + session.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_session_id(session: str, key: bytes) -> str:
    """The browser-side id of store session ``session``: ``session.signature``.

    Examples
    --------
    >>> signed = sign_session_id("a" * 32, b"k" * 32)
    >>> signed.startswith("a" * 32 + "."), verify_session_id(signed, b"k" * 32) == "a" * 32
    (True, True)
    >>> verify_session_id("a" * 32, b"k" * 32) is None  # unsigned: client-chosen, refused
    True
    """
    _check(session, "x")
    return f"{session}.{_signature(session, key)}"


def verify_session_id(signed, key: bytes) -> str | None:
    """The store session of a browser-side id, or None when this server did not sign it."""
    m = _SIGNED_RE.match(signed) if isinstance(signed, str) else None
    if not m or not hmac.compare_digest(m.group(2), _signature(m.group(1), key)):
        return None
    return m.group(1)


def issue_session_id(key: bytes) -> str:
    """A fresh signed session id for a browser."""
    return sign_session_id(new_session_id(), key)


def is_store_id(session) -> bool:
    """True for a well-formed bare session id (what the store keys sessions by).

    Examples
    --------
    >>> is_store_id("a" * 32), is_store_id("a" * 32 + ".sig"), is_store_id(None)
    (True, False, False)
    """
    return isinstance(session, str) and bool(_SESSION_RE.match(session))


def session_key(store: "Store", secret: str | None = None) -> bytes:
    """The signing key: derived from ``secret`` (SEGAPP_SECRET_KEY) when set, else the store's own key."""
    if secret:
        return hashlib.sha256(b"segapp-session-key\x00" + secret.encode()).digest()
    return store.session_secret()


def check_signing_key(store: "Store", key: bytes) -> None:
    """Refuse to run with another session-signing key than the rest of the deployment.

    Web servers issue signed session ids and workers run the web app's background jobs
    with them: a process whose SEGAPP_SECRET_KEY differs would refuse every session (its
    jobs would do nothing).  The first process records a fingerprint of its key in the
    store; every later one compares.

    Raises
    ------
    ConfigError
        The key differs from the recorded one (one line: what to set).

    Examples
    --------
    >>> import tempfile
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> check_signing_key(store, b"k" * 32); check_signing_key(store, b"k" * 32)
    >>> check_signing_key(store, b"x" * 32)
    Traceback (most recent call last):
    ...
    segapp.errors.ConfigError: SEGAPP_SECRET_KEY differs from the one the other web servers and workers of this deployment use; set the same value everywhere (to change it on purpose, delete the store's session-key-id first; sessions restart)
    """
    from .errors import ConfigError

    mine = hashlib.sha256(b"segapp-key-fingerprint\x00" + key).hexdigest()[:32]
    if store.first_value("session-key-id", mine) != mine:
        raise ConfigError("SEGAPP_SECRET_KEY differs from the one the other web servers and workers of this "
                          "deployment use; set the same value everywhere (to change it on purpose, delete the "
                          "store's session-key-id first; sessions restart)")


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


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("."):
        raise KeyError(f"invalid name {name!r}")


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

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` when the store cannot be used."""

    def has_session(self, session: str) -> bool:
        """True when the store holds anything of ``session`` (used to re-sign sessions of older versions)."""
        raise NotImplementedError

    def session_secret(self) -> bytes:
        """A random 32-byte key kept by the store, created on first use (signs session ids)."""
        raise NotImplementedError

    def first_value(self, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless something is there already; returns what is there."""
        raise NotImplementedError

    # -- cross-process primitives -----------------------------------------------
    def incr(self, session: str, name: str) -> int:
        """Atomically add one to the session's counter ``name``; returns the new value (first: 1)."""
        raise NotImplementedError

    def counter(self, session: str, name: str) -> int:
        """Current value of the counter ``name`` (0 when never incremented)."""
        raise NotImplementedError

    def put_if_newer(self, session: str, kind: str, item: str, version: int, data: bytes) -> bool:
        """Write ``data`` only if ``version`` is above the version last written there; True if written.

        An older writer that finishes late can never replace a newer value
        (model versions never go backwards).
        """
        raise NotImplementedError

    def lock(self, session: str, name: str, *, lease: float = 30.0, wait: float | None = None) -> "SessionLock":
        """A lock shared by every process using this store (not acquired yet; use ``with`` or ``acquire``).

        ``lease``: seconds after which the lock of a process that died is free again
        (Redis; a live holder renews it).  File locks die with their process.
        ``wait``: most seconds ``with`` waits before raising :class:`LockTimeout` (None: no limit).
        """
        raise NotImplementedError

    def semaphore(self, name: str, slots: int, *, wait: float | None = None, lease: float = 60.0) -> "Semaphore":
        """At most ``slots`` holders at once, over every process using this store (``with`` waits its turn)."""
        return Semaphore([self._slot_lock(name, i, lease) for i in range(max(1, int(slots)))], wait)

    def _slot_lock(self, name: str, i: int, lease: float) -> "SessionLock":
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
        self.put(session, kind, item, buf.getbuffer())

    def get_array(self, session: str, kind: str, item: str, mmap: bool = False):
        """The stored array, or None; ``mmap=True`` may return a read-only memory map (large images)."""
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
        _write_atomic(self._path(session, kind, item), data)
        os.utime(self.root / session)

    def get(self, session, kind, item):
        try:
            return self._path(session, kind, item).read_bytes()
        except FileNotFoundError:
            return None

    def put_array(self, session, kind, item, array):
        """Written straight to the file (no in-memory copy of a large image)."""
        path = self._path(session, kind, item)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{item}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)
        os.replace(tmp, path)
        os.utime(self.root / session)

    def get_array(self, session, kind, item, mmap: bool = False):
        path = self._path(session, kind, item)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
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

    def has_session(self, session):
        _check(session, "x")
        return (self.root / session).is_dir()

    def session_secret(self) -> bytes:
        path = self.root / ".session-key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        for _ in range(50):  # another process may be writing it right now
            key = path.read_bytes()
            if len(key) == 32:
                return key
            time.sleep(0.01)
        raise StoreUnavailableError(f"the session key {path} is damaged; delete it (sessions restart)")

    def first_value(self, name, value):
        _check_name(name)
        path = self.root / f".{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # another process may be writing it right now
                text = path.read_text()
                if text:
                    return text
                time.sleep(0.01)
            return text
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value

    def _meta_path(self, session, what: str, name: str) -> Path:
        _check(session, "x", name)
        return self.root / session / f".{what}" / name

    def _file_lock(self, session, name: str, timeout: float = -1):
        from filelock import FileLock

        path = self._meta_path(session, "locks", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path), timeout=timeout)

    def incr(self, session, name):
        path = self._meta_path(session, "counters", name)
        with self._file_lock(session, f"counter-{name}"):
            value = self.counter(session, name) + 1
            _write_atomic(path, str(value).encode())
        os.utime(self.root / session)
        return value

    def counter(self, session, name):
        try:
            return int(self._meta_path(session, "counters", name).read_text() or 0)
        except FileNotFoundError:
            return 0

    def put_if_newer(self, session, kind, item, version, data):
        self._path(session, kind, item)  # validates the names
        ver = self._meta_path(session, "versions", f"{kind}.{item}")
        with self._file_lock(session, f"version-{kind}.{item}"):
            try:
                current = int(ver.read_text())
            except (FileNotFoundError, ValueError):
                current = None
            if current is not None and int(version) <= current:
                return False
            self.put(session, kind, item, data)
            _write_atomic(ver, str(int(version)).encode())
        return True

    def lock(self, session, name, *, lease=30.0, wait=None):
        _check(session, "x", name)
        return SessionLock(_FileLockBackend(self, session, name), wait)

    def _slot_lock(self, name, i, lease):
        from filelock import FileLock

        _check_name(name)
        path = self.root / ".slots" / f"{name}-{i}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return SessionLock(_FileLockBackend(None, None, None, lock=FileLock(str(path))))

    def purge_expired(self, now: float | None = None) -> int:
        """Remove sessions idle for longer than ``ttl``; returns how many."""
        now = time.time() if now is None else now
        n = 0
        for d in self.root.iterdir():
            if d.is_dir() and _SESSION_RE.match(d.name) and now - d.stat().st_mtime > self.ttl:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: readers never see half a file


class SessionLock:
    """A lock over processes and hosts: ``with lock:`` waits; ``lock.acquire(timeout=0)`` tries once.

    Returned by :meth:`Store.lock`.  Raises :class:`LockTimeout` when ``with``
    cannot acquire it within ``wait`` seconds (default: wait as long as it takes).
    """

    def __init__(self, backend, wait: float | None = None):
        self._backend, self.wait = backend, wait
        self.held = False

    def acquire(self, timeout: float | None = None) -> bool:
        """True once acquired; False if ``timeout`` seconds passed first (None: wait forever)."""
        self.held = self._backend.acquire(timeout)
        return self.held

    def release(self) -> None:
        if self.held:
            self.held = False
            self._backend.release()

    def __enter__(self):
        if not self.acquire(self.wait):
            raise LockTimeout(f"another job of this session is still running (waited {self.wait:g} s)")
        return self

    def __exit__(self, *exc):
        self.release()


class Semaphore:
    """``slots`` locks; ``with sem:`` holds the first free one (waiting at most ``wait`` s, then LockTimeout)."""

    def __init__(self, locks: list, wait: float | None = None):
        self.locks, self.wait, self.held = locks, wait, None

    def acquire(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for lock in self.locks:
                if lock.acquire(timeout=0):
                    self.held = lock
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def release(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None

    def __enter__(self):
        if not self.acquire(self.wait):
            raise LockTimeout(f"all {len(self.locks)} job slots stayed busy for {self.wait:g} s; try again later")
        return self

    def __exit__(self, *exc):
        self.release()


class _FileLockBackend:
    def __init__(self, store: "LocalStore | None", session: str | None, name: str | None, lock=None):
        self._lock = lock if lock is not None else store._file_lock(session, f"lock-{name}")

    def acquire(self, timeout):
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
            return True
        except Timeout:
            return False

    def release(self):
        self._lock.release()


class _RedisLockBackend:
    """redis-py ``Lock`` whose lease a daemon thread renews while it is held."""

    def __init__(self, store: "RedisStore", key: str, lease: float):
        self._store, self._lease = store, float(lease)
        self._lock = store.client.lock(key, timeout=self._lease, sleep=0.05, thread_local=False)
        self._stop = threading.Event()

    def acquire(self, timeout):
        ok = self._store._guard(lambda: self._lock.acquire(blocking=timeout is None or timeout > 0,
                                                           blocking_timeout=timeout))
        if ok:
            self._stop.clear()
            threading.Thread(target=self._renew, name="segapp-lock-lease", daemon=True).start()
        return bool(ok)

    def _renew(self):
        while not self._stop.wait(self._lease / 3):
            try:
                self._lock.reacquire()
            except Exception:  # lost (expired) or Redis away: the holder finds out on release
                return

    def release(self):
        self._stop.set()
        try:
            self._lock.release()
        except Exception:  # the lease expired meanwhile (another holder may have it): nothing to undo
            pass


class RedisStore(Store):
    """Redis-backed store; a session expires ``ttl`` seconds after its last write.

    Every value carries a one-byte header; values larger than ``chunk_bytes``
    are split over several keys (Redis caps one value at 512 MB), so images of
    any accepted size round-trip.  Each session keeps a registry of its keys:
    a write refreshes the expiry of the whole session (at most once per
    ``ttl / 10`` seconds), so old images do not expire before newer
    annotations, and :meth:`drop_session` needs no keyspace scan.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    ttl : float
        Seconds a session lives after its last write.
    prefix : str
        Namespace for all keys of this deployment.
    chunk_bytes : int
        Largest single Redis value written.
    client : redis.Redis, optional
        An existing client (``url`` is then only used in messages).
    """

    def __init__(self, url: str, ttl: float = 7 * 24 * 3600, prefix: str = "segapp",
                 chunk_bytes: int = 32 * 1024**2, client=None):
        import redis  # imported here: the engine and embedded mode never need it

        self.url = url
        self.client = client or redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=120, socket_keepalive=True,
            health_check_interval=30, retry_on_timeout=True)
        self.ttl = float(ttl)
        self.prefix = prefix
        self.chunk_bytes = int(chunk_bytes)
        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._refresh = self.client.register_script(_REFRESH_LUA)
        self._put_newer = self.client.register_script(_PUT_NEWER_LUA)

    # -- key layout: '#' never occurs in a validated kind or item, so internal keys cannot collide
    def _base(self, session) -> str:
        return f"{self.prefix}:{{{session}}}"  # hash tag: one cluster slot per session

    def _key(self, session, kind, item=None) -> str:
        _check(session, kind, item)
        return f"{self._base(session)}:{kind}" + (f":{item}" if item is not None else "")

    def _index(self, session, kind) -> str:
        return self._key(session, kind) + ":#index"

    def _registry(self, session) -> str:
        return self._base(session) + ":#keys"

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(round(self.ttl * 1000)))

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except self._errors as e:
            raise StoreUnavailableError(unreachable_message(self.url, e)) from None

    # -- byte operations -----------------------------------------------------------
    def put(self, session, kind, item, data):
        self._guard(self._put, session, kind, item, bytes(data) if not isinstance(data, bytes) else data)

    def _put(self, session, kind, item, data: bytes):
        key, idx, reg, ttl = self._key(session, kind, item), self._index(session, kind), \
            self._registry(session), self._ttl_ms
        old_chunks = self._chunk_keys(key)
        if len(data) <= self.chunk_bytes:
            value, chunks = b"\x00" + data, []
        else:
            nonce = secrets.token_hex(4)
            n = -(-len(data) // self.chunk_bytes)
            chunks = [f"{key}#{nonce}:{i}" for i in range(n)]
            view = memoryview(data)
            for i, ck in enumerate(chunks):  # one value per round trip keeps requests bounded
                pipe = self.client.pipeline(transaction=False)
                pipe.set(ck, view[i * self.chunk_bytes:(i + 1) * self.chunk_bytes], px=ttl)
                pipe.sadd(reg, ck)
                pipe.pexpire(reg, ttl)
                pipe.execute()
            value = b"\x01" + json.dumps({"chunks": chunks, "size": len(data)}).encode()
        pipe = self.client.pipeline(transaction=True)
        pipe.set(key, value, px=ttl)
        pipe.zadd(idx, {item: time.time()})
        pipe.sadd(reg, key, idx)
        pipe.pexpire(idx, ttl)
        pipe.pexpire(reg, ttl)
        pipe.execute()
        stale = [c for c in old_chunks if c not in chunks]
        if stale:
            self.client.delete(*stale)
            self.client.srem(reg, *stale)
        self._touch(session)

    def _chunk_keys(self, key) -> list[str]:
        if self.client.getrange(key, 0, 0) != b"\x01":
            return []
        head = self.client.get(key)
        return json.loads(head[1:])["chunks"] if head and head[:1] == b"\x01" else []

    def _touch(self, session) -> None:
        """Refresh the expiry of every key of the session (rate-limited)."""
        every = max(1, int(self.ttl // 10))
        if self.client.set(self._base(session) + ":#touch", b"1", nx=True, ex=min(60, every)):
            self._refresh(keys=[self._registry(session)], args=[self._ttl_ms])

    def get(self, session, kind, item):
        return self._guard(self._get, self._key(session, kind, item))

    def _get(self, key):
        for _ in range(3):  # a concurrent overwrite may replace the chunks between two reads
            value = self.client.get(key)
            if value is None:
                return None
            if value[:1] == b"\x00":
                return value[1:]
            head = json.loads(value[1:])
            parts = self.client.mget(head["chunks"]) if head["chunks"] else []
            if all(p is not None for p in parts):
                data = b"".join(parts)
                if len(data) == head["size"]:
                    return data
        return None

    def delete(self, session, kind, item):
        key = self._key(session, kind, item)

        def run():
            chunks = self._chunk_keys(key)
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key, *chunks)
            pipe.zrem(self._index(session, kind), item)
            pipe.srem(self._registry(session), key, *chunks)
            pipe.execute()

        self._guard(run)

    def list(self, session, kind):
        idx = self._index(session, kind)

        def run():
            items = [i.decode() for i in self.client.zrange(idx, 0, -1)]
            if not items:
                return []
            pipe = self.client.pipeline(transaction=False)
            for i in items:
                pipe.exists(self._key(session, kind, i))
            alive = [i for i, ok in zip(items, pipe.execute()) if ok]
            stale = set(items) - set(alive)
            if stale:
                self.client.zrem(idx, *stale)
            return alive

        return self._guard(run)

    def drop_session(self, session):
        _check(session, "x")
        reg = self._registry(session)

        def run():
            keys = [k.decode() for k in self.client.smembers(reg)]
            for s in range(0, len(keys), 500):
                self.client.delete(*keys[s:s + 500])
            self.client.delete(reg, self._base(session) + ":#touch")

        self._guard(run)

    def ping(self) -> None:
        self._guard(self.client.ping)

    def has_session(self, session):
        _check(session, "x")
        return bool(self._guard(self.client.exists, self._registry(session)))

    def session_secret(self) -> bytes:
        key = f"{self.prefix}:#session-key"
        self._guard(lambda: self.client.set(key, secrets.token_bytes(32), nx=True))  # the first process wins
        value = self._guard(self.client.get, key)
        if not value or len(value) != 32:
            raise StoreUnavailableError(f"the session key in Redis ({key}) is damaged; delete it (sessions restart)")
        return value

    def first_value(self, name, value):
        _check_name(name)
        key = f"{self.prefix}:#{name}"
        self._guard(lambda: self.client.set(key, value.encode(), nx=True))
        stored = self._guard(self.client.get, key)
        return stored.decode() if stored else value

    # -- cross-process primitives ('#' never occurs in validated names: no collisions) ---------
    def _counter_key(self, session, name) -> str:
        _check(session, "x", name)
        return f"{self._base(session)}:#counter:{name}"

    def incr(self, session, name):
        key, reg, ttl = self._counter_key(session, name), self._registry(session), self._ttl_ms

        def run():
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, ttl)
            pipe.sadd(reg, key)
            pipe.pexpire(reg, ttl)
            return int(pipe.execute()[0])

        value = self._guard(run)
        self._guard(self._touch, session)
        return value

    def counter(self, session, name):
        raw = self._guard(self.client.get, self._counter_key(session, name))
        return int(raw or 0)

    def put_if_newer(self, session, kind, item, version, data):
        data = bytes(data)
        if len(data) > self.chunk_bytes:
            raise ValueError("put_if_newer stores small documents only")
        key = self._key(session, kind, item)
        keys = [key, key + "#version", self._index(session, kind), self._registry(session)]
        args = [int(version), b"\x00" + data, self._ttl_ms, item, time.time()]
        done = self._guard(self._put_newer, keys, args)
        if done:
            self._guard(self._touch, session)
        return bool(done)

    def lock(self, session, name, *, lease=30.0, wait=None):
        _check(session, "x", name)
        return SessionLock(_RedisLockBackend(self, f"{self._base(session)}:#lock:{name}", lease), wait)

    def _slot_lock(self, name, i, lease):
        _check_name(name)
        return SessionLock(_RedisLockBackend(self, f"{self.prefix}:#slots:{name}:{i}", lease))


# Refresh the expiry of every key listed in the registry set KEYS[1]; forget keys that are gone.
_REFRESH_LUA = """
local ttl = tonumber(ARGV[1])
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('PEXPIRE', k, ttl) == 0 then redis.call('SREM', KEYS[1], k) end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""


# Versioned write: KEYS = value, its version, the kind's index, the session registry;
# ARGV = version, value, ttl ms, item, time.  Writes (and returns 1) only above the stored version.
_PUT_NEWER_LUA = """
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
local version = tonumber(ARGV[1])
if version <= current then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('SADD', KEYS[4], KEYS[1], KEYS[2], KEYS[3])
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('PEXPIRE', KEYS[4], ttl)
return 1
"""


def unreachable_message(url: str, error: Exception | str) -> str:
    """One-line message for an unreachable Redis.

    Examples
    --------
    >>> unreachable_message("redis://:pw@db:6379/0", "Connection refused")
    'cannot reach Redis at redis://:***@db:6379/0 (Connection refused); start Redis or fix REDIS_URL, \
or unset REDIS_URL to run in embedded mode'
    """
    reason = " ".join(str(error).split()) or type(error).__name__
    return (f"cannot reach Redis at {mask_url(url)} ({reason}); start Redis or fix REDIS_URL, "
            "or unset REDIS_URL to run in embedded mode")


def check_redis(url: str, timeout: float = 3.0) -> None:
    """Ping Redis at ``url``; raise :class:`StoreUnavailableError` with a one-line message if it fails.

    Examples
    --------
    >>> check_redis("redis://127.0.0.1:1/0", timeout=0.5)
    Traceback (most recent call last):
    ...
    segapp.store.StoreUnavailableError: cannot reach Redis at redis://127.0.0.1:1/0 (...); ...
    """
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=None)
    try:
        client.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
        raise StoreUnavailableError(unreachable_message(url, e)) from None
    except redis.exceptions.ResponseError as e:  # e.g. wrong password / AUTH required
        raise StoreUnavailableError(f"Redis at {mask_url(url)} refused the connection: "
                                    f"{' '.join(str(e).split())}; check the password in REDIS_URL") from None
    finally:
        client.close()


def open_store(redis_url: str | None = None, data_dir=None, ttl: float = 7 * 24 * 3600) -> Store:
    """The store for a deployment: Redis when ``redis_url`` is set, else a local directory."""
    if redis_url:
        return RedisStore(redis_url, ttl=ttl)
    return LocalStore(data_dir or Path.cwd() / ".segapp" / "data", ttl=ttl)


def store_for(settings) -> Store:
    """The store described by a :class:`segapp.config.Settings` (``redis_url``, ``data_dir``, ``session_ttl``)."""
    return open_store(settings.redis_url, settings.data_dir, settings.session_ttl)
