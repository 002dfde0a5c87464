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
    #: What the rest of segapp needs to know, read from the class (never from name lists):
    #: benefits from a GPU (job routing sends it to a GPU worker when one runs).
    gpu_worthy: bool = False
    #: Rough CPU time per megapixel relative to ``classical`` (= 1); ``auto`` prefers cheaper.
    relative_cost: float = 1.0
    #: Tried by ``features="auto"`` (needs bundled or no weights: auto must work offline).
    auto_candidate: bool = False
    #: File names of pretrained weights the extractor needs (none for filters / bundled weights).
    weight_files: tuple = ()

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

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the input window one output pixel depends on (``2 * margin + 1``)."""
        return 2 * self.margin + 1

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
        t = combined_traits([type(p) for p in self.parts])
        self.gpu_worthy, self.relative_cost = t["gpu_worthy"], t["relative_cost"]
        self.auto_candidate, self.weight_files = t["auto_candidate"], t["weight_files"]

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


TRAITS = ("gpu_worthy", "relative_cost", "auto_candidate", "weight_files")


def combined_traits(classes) -> dict:
    """Traits of a combination: GPU-worthy if any part is, costs add up, weights are the union."""
    return {"gpu_worthy": any(c.gpu_worthy for c in classes),
            "relative_cost": float(sum(c.relative_cost for c in classes)),
            "auto_candidate": all(c.auto_candidate for c in classes),
            "weight_files": tuple(dict.fromkeys(f for c in classes for f in c.weight_files))}


def traits(spec) -> dict:
    """What an extractor declares (see :class:`FeatureExtractor`), from its name, config or instance.

    Reads the registered classes only: nothing is built, no weights are loaded.
    An ``"a+b"`` combination combines its parts' traits (:func:`combined_traits`).

    Examples
    --------
    >>> traits("classical")["gpu_worthy"], traits("classical+effnet-lite0")["gpu_worthy"]
    (False, True)
    """
    if isinstance(spec, FeatureExtractor):
        return {t: getattr(spec, t) for t in TRAITS}
    if isinstance(spec, dict):
        spec = spec["name"]
    names = [s.strip() for s in str(spec).split("+") if s.strip()]
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown or not names:
        raise ConfigError(f"unknown feature extractor '{spec}'; available: {', '.join(sorted(_REGISTRY))}")
    return combined_traits([_REGISTRY[n] for n in names])


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
        Parameters for a single named extractor; for a combination, one dict per
        part keyed by the part's name (``classical={"sigmas": [1, 2]}``), or flat
        keys that only one part has (``sigmas=[1, 2]``); ambiguous ones raise.

    Examples
    --------
    >>> ex = get_extractor("classical", sigmas=[1.0, 2.0])
    >>> get_extractor(ex.config()).params["sigmas"]
    [1.0, 2.0]
    >>> get_extractor("classical+effnet-lite0", classical={"sigmas": [2.0]}).parts[0].params["sigmas"]
    [2.0]
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
        per_part = {n: dict(params.get(n) or {}) for n in names}
        for k, v in params.items():            # a flat key goes to the one part that has it
            if k in names:
                continue
            owners = [n for n in names if n in _REGISTRY and k in _REGISTRY[n].default_params]
            if len(owners) != 1:
                raise ConfigError(f"parameter '{k}' of the combination '{spec}' is ambiguous or unknown; "
                                  f"give parameters per part, e.g. {{'{names[0]}': {{...}}}}")
            per_part[owners[0]][k] = v
        return CombinedExtractor([get_extractor(n, **per_part[n]) for n in names])
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
