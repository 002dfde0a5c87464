"""Feature-extractor base class, registry and tiled extraction.

An extractor turns a normalised float32 image of shape ``(H, W, C)`` into a
float32 feature stack of shape ``(H, W, F)``.  Extractors register under a
name; ``"a+b"`` combines registered extractors by concatenating their features.

The tiling arithmetic follows napari-convpaint's idea: each tile is extracted
with ``margin`` pixels of context on every side, then cropped, so a tiled
result equals an untiled one wherever the receptive field fits in the margin.
Tile origins are multiples of ``align`` so that strided networks see the same
sampling grid in every tile.
"""

from __future__ import annotations

import json
import math
from typing import Callable

import numpy as np

from ..errors import ConfigError

_REGISTRY: dict[str, type["FeatureExtractor"]] = {}


class FeatureExtractor:
    """Base class: subclasses set ``name``/``description`` and implement :meth:`compute`.

    Parameters
    ----------
    **params
        Extractor-specific parameters; must be JSON-serialisable and together
        with ``name`` fully determine the output.

    Attributes
    ----------
    margin : int
        Pixels of context each side needed for tiled == untiled.
    align : int
        Tile origins must be multiples of this (1 for pure filters, the total
        stride for networks).
    """

    name: str = ""
    description: str = ""
    default_params: dict = {}

    def __init__(self, **params):
        unknown = set(params) - set(self.default_params)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {sorted(unknown)} for feature extractor '{self.name}'; "
                f"known: {sorted(self.default_params)}"
            )
        self.params = {**self.default_params, **params}

    # -- what subclasses provide ------------------------------------------------
    @property
    def margin(self) -> int:
        return 0

    @property
    def align(self) -> int:
        return 1

    def n_features(self, n_channels: int) -> int:
        """Number of output features for an image with ``n_channels`` channels."""
        raise NotImplementedError

    def feature_names(self, n_channels: int) -> list[str]:
        """Human-readable name of each output feature (used in reports)."""
        return [f"{self.name}:{i}" for i in range(self.n_features(n_channels))]

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Features of a whole (tile of an) image, ``(H, W, C) -> (H, W, F)`` float32."""
        raise NotImplementedError

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """``(True, "")`` when usable here, else ``(False, how to make it available)``."""
        return True, ""

    # -- shared behaviour -------------------------------------------------------
    def config(self) -> dict:
        """JSON-serialisable description that :func:`get_extractor` rebuilds from."""
        return {"name": self.name, "params": dict(self.params)}

    def key(self) -> str:
        """Stable string identifying the output (used as a cache key)."""
        return json.dumps(self.config(), sort_keys=True)

    def __call__(self, image: np.ndarray, tile_size: int | None = 1024) -> np.ndarray:
        return extract_tiled(self, image, tile_size=tile_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


class CombinedExtractor(FeatureExtractor):
    """Concatenation of several extractors' features (registered name ``"a+b"``)."""

    def __init__(self, parts: list[FeatureExtractor]):
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)
        self.description = " + ".join(p.description or p.name for p in self.parts)
        self.params = {}

    @property
    def margin(self) -> int:
        return max(p.margin for p in self.parts)

    @property
    def align(self) -> int:
        return math.lcm(*[p.align for p in self.parts])

    def n_features(self, n_channels: int) -> int:
        return sum(p.n_features(n_channels) for p in self.parts)

    def feature_names(self, n_channels: int) -> list[str]:
        return [n for p in self.parts for n in p.feature_names(n_channels)]

    def compute(self, image: np.ndarray) -> np.ndarray:
        return np.concatenate([p.compute(image) for p in self.parts], axis=-1)

    def config(self) -> dict:
        return {"name": self.name, "parts": [p.config() for p in self.parts]}


def register(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    """Class decorator adding an extractor to the registry under ``cls.name``."""
    if not cls.name or "+" in cls.name:
        raise ValueError(f"invalid extractor name {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[FeatureExtractor]]:
    """Mapping name -> extractor class of everything registered."""
    return dict(_REGISTRY)


def get_extractor(spec, **params) -> FeatureExtractor:
    """Build an extractor from a name, an ``"a+b"`` combination or a saved config.

    Parameters
    ----------
    spec : str or dict or FeatureExtractor
        ``"classical"``, ``"classical+effnet-lite0"``, or the dict returned by
        :meth:`FeatureExtractor.config`.
    **params
        Parameters for a single named extractor (ignored for combinations).

    Examples
    --------
    >>> ex = get_extractor("classical", sigmas=[1.0, 2.0])
    >>> get_extractor(ex.config()).params["sigmas"]
    [1.0, 2.0]
    """
    if isinstance(spec, FeatureExtractor):
        return spec
    if isinstance(spec, dict):
        if "parts" in spec:
            return CombinedExtractor([get_extractor(p) for p in spec["parts"]])
        return get_extractor(spec["name"], **spec.get("params", {}))
    if not isinstance(spec, str):
        raise ConfigError(f"feature extractor must be a name, got {type(spec).__name__}")
    names = [s.strip() for s in spec.split("+") if s.strip()]
    if len(names) > 1:
        return CombinedExtractor([get_extractor(n) for n in names])
    name = names[0] if names else ""
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown feature extractor '{spec}'; available: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](**params)


def extract_tiled(
    extractor: FeatureExtractor,
    image: np.ndarray,
    tile_size: int | None = 1024,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Extract features tile by tile with ``extractor.margin`` of context.

    Parameters
    ----------
    extractor : FeatureExtractor
    image : ndarray, shape (H, W, C), float32
    tile_size : int or None
        Core tile side; ``None`` or a size covering the image computes in one go.
    progress : callable, optional
        Called with the fraction done after each tile.

    Returns
    -------
    ndarray, shape (H, W, F), float32

    Examples
    --------
    >>> import numpy as np
    >>> ex = get_extractor("classical", sigmas=[1.0])
    >>> img = np.random.default_rng(0).random((40, 50, 1), dtype=np.float32)
    >>> np.allclose(extract_tiled(ex, img, 16), extract_tiled(ex, img, None), atol=1e-5)
    True
    """
    from .cache import FeatureCache
    from .tiles import TiledFeatures

    if image.ndim == 2:
        image = image[..., None]
    h, w = image.shape[:2]
    if tile_size is None or (h <= tile_size and w <= tile_size):
        out = extractor.compute(np.ascontiguousarray(image, dtype=np.float32))
        if progress:
            progress(1.0)
        return out
    tiles = TiledFeatures(extractor, np.asarray(image, dtype=np.float32), "", FeatureCache(0), tile=tile_size)
    out = np.empty(tiles.shape, np.float32)
    for n, index in enumerate(tiles.grid):
        y0, y1, x0, x1 = tiles.grid.box(index)
        out[y0:y1, x0:x1] = tiles.tile(index)
        if progress:
            progress((n + 1) / len(tiles.grid))
    return out
