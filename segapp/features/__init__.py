"""Feature extractors: a registry keyed by name (``classical``, ``effnet-lite0``, ``vgg16``,
``dinov2-s``, ``timm`` with ``model=...``) and combinations ``"a+b"``.

Examples
--------
>>> from segapp.features import get_extractor, list_extractors
>>> "classical" in [e["name"] for e in list_extractors()]
True
"""

from .base import (  # noqa: F401
    CombinedExtractor,
    FeatureExtractor,
    TRAITS,
    extract_tiled,
    get_extractor,
    register,
    registered,
)
from . import classical  # noqa: F401  (registers "classical")
from . import deep  # noqa: F401  (registers the network backbones; torch is imported lazily)
from .cache import FeatureCache  # noqa: F401


def list_extractors() -> list[dict]:
    """Registered extractors, their availability and traits (what the UI lists).

    ``[{name, description, available, message, gpu_worthy, relative_cost, auto_candidate, weight_files}]``.
    """
    out = []
    for name, cls in sorted(registered().items()):
        ok, msg = cls.availability()
        out.append({"name": name, "description": cls.description, "available": ok, "message": msg,
                    **{t: getattr(cls, t) for t in TRAITS}})
    return out
