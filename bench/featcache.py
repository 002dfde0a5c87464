"""A feature cache on disk for the benchmarks: one ``.npy`` per (image digest, extractor key).

Same ``get``/``put`` interface as :class:`segapp.features.FeatureCache`, so a
:class:`~segapp.segmenter.Segmenter` uses it unchanged; arrays come back
memory-mapped (read-only), so a long benchmark keeps little in memory.  When
the folder grows past ``max_bytes`` the least recently used files are deleted.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


class DiskFeatureCache:
    def __init__(self, root: Path, max_bytes: int = 20 * 1024**3):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = 0

    def _path(self, digest: str, key: str) -> Path:
        return self.root / f"{digest[:24]}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"

    def get(self, digest: str, key: str):
        p = self._path(digest, key)
        try:
            arr = np.load(p, mmap_mode="r")
        except (OSError, ValueError):
            self.misses += 1
            return None
        os.utime(p)
        self.hits += 1
        return arr

    def put(self, digest: str, key: str, feats: np.ndarray) -> None:
        p = self._path(digest, key)
        tmp = p.with_suffix(".tmp.npy")
        np.save(tmp, np.ascontiguousarray(feats, np.float32))
        os.replace(tmp, p)
        self._evict()

    def _evict(self) -> None:
        files = sorted(self.root.glob("*.npy"), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        while files and total > self.max_bytes:
            f = files.pop(0)
            total -= f.stat().st_size
            f.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.npy"))
