"""Tiled feature stacks: an image's features computed one tile at a time, each tile once.

The image is cut into a fixed grid of ``tile``-pixel squares (origins at
multiples of ``tile``; ``tile`` is a multiple of the extractor's ``align``).
A tile's features are computed from the tile plus ``margin`` pixels of context
on every side and then cropped, so a tiled stack equals the untiled one
wherever the receptive field fits in the margin (napari-convpaint's
arithmetic, see :mod:`segapp.features.base`).  Every computed tile goes to a
:class:`~segapp.features.cache.TileCache` under (image digest, extractor key,
tile index) and is never computed again while the cache keeps it: training
reads only the tiles under the painted pixels, prediction walks the tiles in
the order the caller asks for (the viewport first).

Examples
--------
>>> import numpy as np
>>> from segapp.features import FeatureCache, get_extractor
>>> ex = get_extractor("classical", sigmas=[1.0])
>>> img = np.random.default_rng(0).random((40, 50, 1), dtype=np.float32)
>>> tf = TiledFeatures(ex, img, "digest", cache=FeatureCache(), tile=16)
>>> tf.grid.shape, tf.n_features
((3, 4), 4)
>>> np.allclose(tf.full(), ex.compute(img), atol=1e-5)
True
>>> tf.n_computed, TiledFeatures(ex, img, "digest", cache=tf.cache, tile=16).full().shape
(12, (40, 50, 4))
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Iterable

import numpy as np

from .base import FeatureExtractor

TILE = 1024  # default tile side (context margin ~60 px: 1.25x the pixels of an interior tile)


class TileGrid:
    """The tiles of an ``(h, w)`` image: boxes, context boxes, and which tiles a region touches.

    Parameters
    ----------
    shape : (int, int)
    tile : int
        Tile side; rounded down to a multiple of ``align`` (at least ``align``).
    margin, align : int
        The extractor's context and alignment (the margin is rounded up to ``align``).

    Examples
    --------
    >>> g = TileGrid((1000, 700), 512, margin=10)
    >>> g.shape, g.box((1, 1)), g.context((1, 1))
    ((2, 2), (512, 1000, 512, 700), (502, 1000, 502, 700))
    >>> g.touching(500, 520, 0, 10)
    [(0, 0), (1, 0)]
    """

    def __init__(self, shape, tile: int = TILE, margin: int = 0, align: int = 1):
        self.h, self.w = int(shape[0]), int(shape[1])
        self.tile = max(align, (int(tile) // align) * align)
        self.margin = int(math.ceil(margin / align) * align)
        self.shape = (max(1, -(-self.h // self.tile)), max(1, -(-self.w // self.tile)))

    def __iter__(self):
        return iter([(ty, tx) for ty in range(self.shape[0]) for tx in range(self.shape[1])])

    def __len__(self) -> int:
        return self.shape[0] * self.shape[1]

    def box(self, index) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of a tile's own pixels."""
        ty, tx = index
        y0, x0 = ty * self.tile, tx * self.tile
        return y0, min(y0 + self.tile, self.h), x0, min(x0 + self.tile, self.w)

    def context(self, index) -> tuple[int, int, int, int]:
        """The tile's box grown by the margin, clipped to the image."""
        y0, y1, x0, x1 = self.box(index)
        m = self.margin
        return max(0, y0 - m), min(self.h, y1 + m), max(0, x0 - m), min(self.w, x1 + m)

    def touching(self, y0: int, y1: int, x0: int, x1: int) -> list[tuple[int, int]]:
        """Tiles that overlap the region ``[y0, y1) x [x0, x1)`` (row-major)."""
        y0, x0 = max(0, int(y0)), max(0, int(x0))
        y1, x1 = min(self.h, int(y1)), min(self.w, int(x1))
        if y1 <= y0 or x1 <= x0:
            return []
        t = self.tile
        return [(ty, tx) for ty in range(y0 // t, (y1 - 1) // t + 1) for tx in range(x0 // t, (x1 - 1) // t + 1)]

    def of_pixels(self, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Flat tile number (``ty * n_cols + tx``) of each pixel."""
        return (np.asarray(rr) // self.tile) * self.shape[1] + np.asarray(cc) // self.tile


class TiledFeatures:
    """Features of one image, computed tile by tile on demand and cached.

    Parameters
    ----------
    extractor : FeatureExtractor
    image : ndarray or callable
        The *normalised* float32 ``(H, W, C)`` image, or a function returning it
        (called at most once, and only if a tile must be computed).
    digest : str
        Identity of the image (:func:`segapp.io.image_digest` of the raw pixels).
    cache : TileCache
    key : str, optional
        Cache key of the extractor config (plus normalisation); default ``extractor.key()``.
    shape : (int, int), optional
        ``(H, W)``; required when ``image`` is a callable.
    tile : int

    Attributes
    ----------
    n_computed : int
        Tiles this object computed (the rest came from the cache).
    keep : bool
        Whether tiles read in full go to the cache's memory front (``remember``), if it has one.
    """

    def __init__(self, extractor: FeatureExtractor, image, digest: str, cache, key: str | None = None,
                 shape=None, tile: int = TILE, n_channels: int | None = None):
        self.extractor, self.digest, self.cache = extractor, digest, cache
        self._image = image
        if shape is None:
            shape = image.shape[:2]
            n_channels = image.shape[2] if image.ndim == 3 else 1
        self.grid = TileGrid(shape, tile, extractor.margin, extractor.align)
        self.key = f"{key or extractor.key()}|tile={self.grid.tile}"
        self.n_features = extractor.n_features(n_channels or 1)
        self.n_computed = 0
        self.keep = True  # ask the cache to keep converted tiles in memory (the viewport's; not a sweep's)
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.h, self.grid.w, self.n_features

    def _normalised(self) -> np.ndarray:
        with self._lock:
            if callable(self._image):
                self._image = self._image()
            img = self._image
        return img[..., None] if img.ndim == 2 else img

    def cached(self, index) -> np.ndarray | None:
        """A tile's features as the cache holds them (float32, or a float16 memory map), or None."""
        return self.cache.get(self.digest, self.key, tuple(index))

    def missing(self, indices: Iterable | None = None) -> list[tuple[int, int]]:
        """The tiles (of ``indices``, default all) not in the cache."""
        return [i for i in (self.grid if indices is None else indices) if self.cached(i) is None]

    def tile(self, index) -> np.ndarray:
        """Features ``(th, tw, F)`` float32 of one tile: from the cache, else computed and cached."""
        index = (int(index[0]), int(index[1]))
        feats = self.cached(index)
        if feats is None:
            img = self._normalised()
            py0, py1, px0, px1 = self.grid.context(index)
            y0, y1, x0, x1 = self.grid.box(index)
            ctx = self.extractor.compute(np.ascontiguousarray(img[py0:py1, px0:px1], dtype=np.float32))
            core = np.ascontiguousarray(ctx[y0 - py0:y1 - py0, x0 - px0:x1 - px0])
            del ctx
            with self._lock:
                self.n_computed += 1
            self.cache.put(self.digest, self.key, index, core)
            feats = self.cached(index)  # what the cache holds (float16 on disk): identical everywhere
            feats = core if feats is None else feats
        if feats.dtype != np.float32:
            feats = np.asarray(feats, dtype=np.float32)
            remember = getattr(self.cache, "remember", None) if self.keep else None
            if remember:
                remember(self.digest, self.key, index, feats)
        return feats

    def compute(self, indices: Iterable | None = None, progress: Callable[[float], None] | None = None) -> None:
        """Make sure the tiles (default all) are in the cache, reporting the fraction done."""
        todo = self.missing(indices)
        for n, index in enumerate(todo):
            self.tile(index)
            if progress:
                progress((n + 1) / len(todo))
        if progress and not todo:
            progress(1.0)

    def at(self, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
        """Features ``(N, F)`` of the pixels ``(rr[i], cc[i])``, touching only the tiles they fall in."""
        rr, cc = np.asarray(rr), np.asarray(cc)
        out = np.empty((rr.size, self.n_features), np.float32)
        which = self.grid.of_pixels(rr, cc)
        for t in np.unique(which):
            index = divmod(int(t), self.grid.shape[1])
            y0, _, x0, _ = self.grid.box(index)
            sel = np.flatnonzero(which == t)
            tile = self.cached(index)  # a memory map: read only the painted pixels
            tile = self.tile(index) if tile is None else tile
            out[sel] = tile[rr[sel] - y0, cc[sel] - x0]
        return out

    def region(self, y0: int, y1: int, x0: int, x1: int, step: int = 1, out: np.ndarray | None = None) -> np.ndarray:
        """Features of the pixels ``y0:y1:step, x0:x1:step`` as ``(ny, nx, F)`` float32.

        A region that is exactly one tile comes back without a copy (do not write to it),
        unless ``out`` (a float32 ``(ny, nx, F)`` array, e.g. a view of a wider one) is given
        to be filled.
        """
        touched = self.grid.touching(y0, y1, x0, x1)
        if out is None and step == 1 and len(touched) == 1 and self.grid.box(touched[0]) == (y0, y1, x0, x1):
            return self.tile(touched[0])
        ys, xs = np.arange(y0, y1, step), np.arange(x0, x1, step)
        if out is None:
            out = np.empty((ys.size, xs.size, self.n_features), np.float32)
        for index in touched:
            by0, by1, bx0, bx1 = self.grid.box(index)
            iy = np.flatnonzero((ys >= by0) & (ys < by1))
            ix = np.flatnonzero((xs >= bx0) & (xs < bx1))
            if iy.size and ix.size:
                t = self.cached(index)  # a float16 memory map: read (and convert) only these pixels
                t = self.tile(index) if t is None else t
                out[iy[0]:iy[-1] + 1, ix[0]:ix[-1] + 1] = t[ys[iy[0]] - by0:ys[iy[-1]] - by0 + 1:step,
                                                            xs[ix[0]] - bx0:xs[ix[-1]] - bx0 + 1:step]
        return out

    def full(self) -> np.ndarray:
        """The whole stack ``(H, W, F)`` float32 (assembled from tiles)."""
        return self.region(0, self.grid.h, 0, self.grid.w)


class CombinedTiles:
    """The tiled features of an ``"a+b"`` extractor: each part cached on its own, concatenated.

    Parts keep their own cache entries, so a combination reuses what a single
    extractor already computed (and the other way round).
    """

    def __init__(self, parts: list[TiledFeatures], grid: TileGrid):
        self.parts, self.grid = list(parts), grid
        self.n_features = sum(p.n_features for p in self.parts)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.h, self.grid.w, self.n_features

    @property
    def n_computed(self) -> int:
        return sum(p.n_computed for p in self.parts)

    def missing(self, indices: Iterable | None = None) -> list[tuple[int, int]]:
        """Tiles of this grid (default all) for which some part still has a tile to compute."""
        out = []
        for index in (self.grid if indices is None else indices):
            y0, y1, x0, x1 = self.grid.box(index)
            if any(p.missing(p.grid.touching(y0, y1, x0, x1)) for p in self.parts):
                out.append(index)
        return out

    def compute(self, indices: Iterable | None = None, progress: Callable[[float], None] | None = None) -> None:
        boxes = [self.grid.box(i) for i in (self.grid if indices is None else indices)]
        for k, p in enumerate(self.parts):
            wanted = sorted({t for b in boxes for t in p.grid.touching(*b)})
            step = None if progress is None else (lambda f, k=k: progress((k + f) / len(self.parts)))
            p.compute(wanted, step)

    def tile(self, index) -> np.ndarray:
        return self.region(*self.grid.box(index))

    def at(self, rr, cc) -> np.ndarray:
        return np.concatenate([p.at(rr, cc) for p in self.parts], axis=-1)

    def region(self, y0: int, y1: int, x0: int, x1: int, step: int = 1) -> np.ndarray:
        """The parts' features side by side, each written straight into its columns (no concatenation)."""
        out = np.empty((len(range(y0, y1, step)), len(range(x0, x1, step)), self.n_features), np.float32)
        start = 0
        for p in self.parts:
            p.region(y0, y1, x0, x1, step, out=out[..., start:start + p.n_features])
            start += p.n_features
        return out

    def full(self) -> np.ndarray:
        return self.region(0, self.grid.h, 0, self.grid.w)
