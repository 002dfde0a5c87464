"""Feature caches: tiles of feature stacks, in memory and on disk, behind one interface.

Features are kept per *tile* — keyed by (image digest, extractor key, tile
index) — so that a large image is extracted once, a tile at a time, and a
later stroke, prediction or process finds every tile it needs without
recomputing it (see :mod:`segapp.features.tiles` for the tile grid).

Anything with ``get(digest, key, index)`` / ``put(digest, key, index, tile)``
is a :class:`TileCache`: :class:`FeatureCache` (process memory, LRU by bytes)
and :class:`DiskFeatureCache` (memory-mapped ``.npy`` files, float16 on disk,
with a float32 memory front) are the two here; a backend that several hosts
reach (object store, Redis, a shared volume) only has to provide those two
methods.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

Index = tuple[int, int]
FLOAT16_MAX = 65000.0  # stored float16 values are clipped here (float16 overflows at 65504)


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


@runtime_checkable
class TileCache(Protocol):
    """Where feature tiles live: the one interface the engine, the web app and the workers use.

    ``get`` returns the ``(h, w, F)`` tile (any float dtype; callers cast) or
    None; ``put`` stores one.  Implementations must be safe to call from
    several threads, and a ``put`` must be visible to every later ``get`` that
    shares the backend (other processes or hosts included, for shared ones).
    """

    def get(self, digest: str, key: str, index: Index) -> np.ndarray | None: ...

    def put(self, digest: str, key: str, index: Index, tile: np.ndarray) -> None: ...


class FeatureCache:
    """Feature tiles in this process's memory, LRU-bounded by total bytes.

    Parameters
    ----------
    max_bytes : int
        Evict least-recently-used tiles beyond this many bytes (0: keep nothing).

    Examples
    --------
    >>> import numpy as np
    >>> c = FeatureCache(max_bytes=10_000)
    >>> c.put("img", "ex", (0, 1), np.ones((10, 10, 2), np.float32))
    >>> c.get("img", "ex", (0, 1)).shape
    (10, 10, 2)
    >>> c.get("img", "ex", (0, 0)) is None
    True
    >>> isinstance(c, TileCache)
    True
    """

    def __init__(self, max_bytes: int = 1024**3):
        self.max_bytes = int(max_bytes)
        self._lru = LRUCache(self.max_bytes, cost=lambda a: a.nbytes)

    def get(self, digest: str, key: str, index: Index):
        return self._lru.get((digest, key, tuple(index)))

    def put(self, digest: str, key: str, index: Index, tile: np.ndarray) -> None:
        self._lru.put((digest, key, tuple(index)), tile)

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


DISK_FEATURE_BYTES = 8 * 1024**3  # bound of the on-disk feature cache
MEMORY_FRONT_BYTES = 1280 * 1024**2  # float32 tiles kept in memory in front of the disk (4 tiles of 75 features)


class DiskFeatureCache:
    """Feature tiles on disk (memory-mapped), shared by the web process and its background jobs.

    Tiles are stored as ``<digest>/<key hash>/<ty>_<tx>.npy`` in ``dtype``
    (float16 by default: half the bytes, no measurable accuracy cost, see
    ``docs/benchmarks.md``) and memory-mapped back; recently used tiles are also
    kept as float32 in a bounded memory front so that repeated strokes skip
    even the conversion.  Writes are atomic (temporary file + rename), so
    concurrent writers of one tile are harmless.

    Parameters
    ----------
    directory : path
    dtype : numpy dtype
        Storage type on disk (``float16`` or ``float32``).
    max_memory_bytes, max_disk_bytes : int
        Bounds of the memory front and of the directory (least recently used
        tiles are deleted first).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> DiskFeatureCache(d).put("img", "ex", (0, 0), np.ones((4, 4, 2), np.float32))
    >>> tile = DiskFeatureCache(d).get("img", "ex", (0, 0))      # another process sees it
    >>> tile.shape, tile.dtype
    ((4, 4, 2), dtype('float16'))
    """

    def __init__(self, directory, dtype=np.float16, max_memory_bytes: int = MEMORY_FRONT_BYTES,
                 max_disk_bytes: int = DISK_FEATURE_BYTES):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self.memory = FeatureCache(max_memory_bytes)
        self.max_disk_bytes = int(max_disk_bytes)
        self._lock = threading.Lock()
        self._puts = 0

    def path(self, digest: str, key: str, index: Index) -> Path:
        """File of one tile."""
        return self.dir / digest / hashlib.sha1(key.encode()).hexdigest()[:16] / f"{index[0]}_{index[1]}.npy"

    def get(self, digest: str, key: str, index: Index):
        """The tile: float32 from the memory front, else the memory-mapped file (storage dtype).

        A memory map costs nothing until read, so callers that need a few pixels
        (training) or every ``step``-th pixel (the display) read only those.
        """
        tile = self.memory.get(digest, key, index)
        if tile is not None:
            return tile
        path = self.path(digest, key, index)
        try:
            tile = np.load(path, mmap_mode="r", allow_pickle=False)
            os.utime(path)
        except (FileNotFoundError, ValueError, OSError):
            return None
        return tile

    def remember(self, digest: str, key: str, index: Index, tile: np.ndarray) -> None:
        """Keep a float32 copy of a tile a caller converted in full (the next stroke reuses it)."""
        self.memory.put(digest, key, index, np.asarray(tile, dtype=np.float32))

    def as_stored(self, tile: np.ndarray) -> np.ndarray:
        """``tile`` in the storage dtype (float16 clipped to its finite range)."""
        tile = np.asarray(tile)
        if self.dtype == np.float16:
            tile = np.clip(tile, -FLOAT16_MAX, FLOAT16_MAX)
        return tile.astype(self.dtype, copy=False)

    def put(self, digest: str, key: str, index: Index, tile: np.ndarray) -> None:
        stored = self.as_stored(tile)
        path = self.path(digest, key, index)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.save(f, stored, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:  # a full disk only costs a recomputation later
            tmp.unlink(missing_ok=True)
            return
        with self._lock:
            self._puts += 1
            check = self._puts % 16 == 1
        if check:
            self.evict()

    def evict(self) -> None:
        """Delete least recently used tiles while the directory exceeds ``max_disk_bytes``."""
        with self._lock:
            files = []
            for p in self.dir.glob("*/*/*.npy"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
            files.sort()
            total = sum(s for _, s, _ in files)
            for _, size, p in files:
                if total <= self.max_disk_bytes:
                    break
                p.unlink(missing_ok=True)
                total -= size
