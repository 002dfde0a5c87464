"""Caches: a generic LRU, feature stacks in memory and on disk.

Repainting retrains without re-extracting: the Segmenter, the web app and the
workers look features up here (keyed by image digest and extractor key) before
computing them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np


class LRUCache:
    """Thread-safe least-recently-used cache bounded by a total cost.

    Parameters
    ----------
    max_cost : int
        Evict least-recently-used entries while the summed cost exceeds this.
    cost : callable, optional
        Cost of a value (default 1 per entry); a value costing more than
        ``max_cost`` is not stored.

    Examples
    --------
    >>> c = LRUCache(2)
    >>> c.put("a", 1); c.put("b", 2); _ = c.get("a"); c.put("c", 3)
    >>> sorted(c.keys())
    ['a', 'c']
    """

    def __init__(self, max_cost: int, cost=None):
        self.max_cost = int(max_cost)
        self.cost = cost or (lambda value: 1)
        self._data: OrderedDict = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            value = self._data.get(key)
            if value is None:
                return default
            self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        cost = self.cost(value)
        if cost > self.max_cost:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._total -= self.cost(old)
            self._data[key] = value
            self._total += cost
            while self._total > self.max_cost:
                _, evicted = self._data.popitem(last=False)
                self._total -= self.cost(evicted)

    def keys(self) -> list:
        with self._lock:
            return list(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._data)


class FeatureCache:
    """Feature stacks keyed by (image digest, extractor key), LRU-bounded by total bytes.

    Parameters
    ----------
    max_bytes : int
        Evict least-recently-used entries beyond this many bytes.

    Examples
    --------
    >>> import numpy as np
    >>> c = FeatureCache(max_bytes=10_000)
    >>> c.put("img", "ex", np.ones((10, 10, 2), np.float32))
    >>> c.get("img", "ex").shape
    (10, 10, 2)
    >>> c.get("other", "ex") is None
    True
    """

    def __init__(self, max_bytes: int = 2 * 1024**3):
        self.max_bytes = int(max_bytes)
        self._lru = LRUCache(self.max_bytes, cost=lambda a: a.nbytes)

    def get(self, digest: str, key: str):
        return self._lru.get((digest, key))

    def put(self, digest: str, key: str, features: np.ndarray) -> None:
        self._lru.put((digest, key), features)

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


DISK_FEATURE_BYTES = 6 * 1024**3  # bound of the on-disk feature cache


class DiskFeatureCache:
    """Feature cache shared by the web process and its background jobs.

    Parameters
    ----------
    directory : path
        Where ``<digest>-<key hash>.npy`` files live.
    max_memory_bytes, max_disk_bytes : int
        LRU bounds of the in-memory front and of the directory.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> DiskFeatureCache(d).put("img", "ex", np.ones((4, 4, 2), np.float32))
    >>> DiskFeatureCache(d).get("img", "ex").shape      # another process sees it
    (4, 4, 2)
    """

    def __init__(self, directory, max_memory_bytes: int = 2 * 1024**3, max_disk_bytes: int = DISK_FEATURE_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.memory = FeatureCache(max_memory_bytes)
        self.max_disk_bytes = int(max_disk_bytes)
        self._lock = threading.Lock()

    def _path(self, digest: str, key: str) -> Path:
        return self.dir / f"{digest}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"

    def get(self, digest: str, key: str):
        feats = self.memory.get(digest, key)
        if feats is not None:
            return feats
        path = self._path(digest, key)
        try:
            feats = np.load(path, mmap_mode="r", allow_pickle=False)
            os.utime(path)
        except (FileNotFoundError, ValueError, OSError):
            return None
        self.memory.put(digest, key, feats)
        return feats

    def put(self, digest: str, key: str, features: np.ndarray) -> None:
        self.memory.put(digest, key, features)
        path = self._path(digest, key)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(features), allow_pickle=False)
            os.replace(tmp, path)
        except OSError:  # a full disk only costs a recomputation later
            tmp.unlink(missing_ok=True)
            return
        self._evict()

    def _evict(self) -> None:
        with self._lock:
            files = sorted(self.dir.glob("*.npy"), key=lambda p: p.stat().st_mtime)
            total = sum(p.stat().st_size for p in files)
            while files and total > self.max_disk_bytes:
                p = files.pop(0)
                total -= p.stat().st_size
                p.unlink(missing_ok=True)
