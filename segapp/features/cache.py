"""In-memory LRU cache of feature stacks keyed by (image digest, extractor key).

Repainting retrains without re-extracting: the Segmenter and the web app look
features up here before computing them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np


def array_digest(array: np.ndarray) -> str:
    """SHA-1 of an array's shape, dtype and bytes.

    Examples
    --------
    >>> import numpy as np
    >>> array_digest(np.zeros((2, 2))) == array_digest(np.zeros((2, 2)))
    True
    """
    h = hashlib.sha1()
    h.update(repr((array.shape, str(array.dtype))).encode())
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


class FeatureCache:
    """Thread-safe LRU cache bounded by total bytes.

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
        self._data: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, digest: str, key: str):
        with self._lock:
            arr = self._data.get((digest, key))
            if arr is not None:
                self._data.move_to_end((digest, key))
            return arr

    def put(self, digest: str, key: str, features: np.ndarray) -> None:
        if features.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop((digest, key), None)
            if old is not None:
                self._bytes -= old.nbytes
            self._data[(digest, key)] = features
            self._bytes += features.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= evicted.nbytes

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)


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
