"""In-memory LRU cache of feature stacks keyed by (image digest, extractor key).

Repainting retrains without re-extracting: the Segmenter and the web app look
features up here before computing them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

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
