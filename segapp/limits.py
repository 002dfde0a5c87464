"""What an input may cost: one place for every bound segapp puts on untrusted input.

Limits are on *cost*, not only on width x height: decoded bytes (pixels x channels x
planes x bytes per sample), planes, channels, classes, stroke points, shapes per image,
undo history in bytes, JSON nesting, zip members, and the extractor parameters that set
how much work a model file asks for.  Everything that reads a file, a form field or a
request checks against these, before the expensive step.

The limits a deployer may want to change come from :class:`segapp.config.Settings`
(environment variables, see :class:`Limits`); the others follow from data types (class
ids fit in uint8) or from what people really do (a freehand stroke has thousands of
points, not millions) and are module constants.

Examples
--------
>>> lim = Limits.from_settings(None)
>>> lim.max_channels, lim.max_planes
(16, 1000)
>>> check_image_cost("a.tif", 3000, 3000, planes=1, channels=200, itemsize=1, limits=lim)
Traceback (most recent call last):
...
segapp.errors.ImageReadError: cannot read 'a.tif': 200 channels; at most 16 are accepted (SEGAPP_MAX_CHANNELS)
>>> human_bytes(3 * 2**30)
'3.0 GB'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ImageReadError

# -- classes and annotations (fixed: label images are uint8 end to end) ------------------------
MAX_CLASS_ID = 255             # class ids 1..255; 0 = unlabelled (the eraser paints 0)
MAX_CLASS_NAME = 100           # characters of a class name
MAX_SHAPES = 2_000             # shapes (strokes, boxes) on one image plane
MAX_STROKE_POINTS = 10_000     # vertices of one path (a 30 s freehand drag has ~2,000)
MAX_POINTS = 50_000            # vertices of all shapes of one plane together (rasterising ~60 us each)
MAX_PATH_CHARS = 400_000       # characters of one SVG path string (parsed before counting points)
# Fill-only regions (``outline=0``: label images imported as shapes) are never stroked; filling costs
# per row crossing of an edge, not per vertex, so their vertices have their own, larger bounds.
MAX_FILL_POINTS = 2_000_000    # vertices of all fill-only shapes of one plane (a 3000x3000 vessel map: ~0.2 M)
MAX_FILL_PATH_CHARS = 24_000_000  # characters of one fill-only path
MAX_FILL_CROSSINGS = 10_000_000   # edge/row crossings of all filled polygons of one plane (~1 s to fill)
COORD_LIMIT = 1e9              # finite coordinates beyond +-1e9 are clamped (no image is that large)
MAX_HISTORY_BYTES = 8 * 2**20  # undo + redo snapshots of one plane, JSON bytes
MAX_HISTORY_STEPS = 50

# -- requests and JSON documents -------------------------------------------------------------
MAX_JSON_DEPTH = 64            # nesting of any JSON we parse (Dash requests, manifests)
MAX_MANIFEST_BYTES = 1 * 2**20

# -- model files -----------------------------------------------------------------------------
MAX_ZIP_MEMBERS = 20_000       # members of the skops zip inside a model file (2 arrays per tree)
MAX_ZIP_RATIO = 250            # uncompressed / compressed size of one zip member
MAX_TREES = 1_000
MAX_TREE_DEPTH = 256
MAX_TREE_NODES = 2**22         # nodes of one tree
MAX_FEATURES = 20_000          # features per pixel a model may expect

# -- feature extractors (the parameters that decide how much work a model asks for) -----------
MAX_SIGMAS = 16
MAX_SIGMA = 64.0               # classical scale, pixels (the UI offers 0.3..16)
MAX_SCALES = 4                 # network pyramid levels
MAX_SCALE = 8                  # network pyramid downsampling factor
MAX_PARTS = 4                  # extractors in an "a+b" combination


def human_bytes(n: float) -> str:
    """``1536 -> '1.5 KB'`` (binary units, one decimal).

    Examples
    --------
    >>> human_bytes(512), human_bytes(5 * 2**20)
    ('512 B', '5.0 MB')
    """
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


@dataclass(frozen=True)
class Limits:
    """The deployer-tunable limits (environment variable of each in brackets).

    Attributes
    ----------
    max_pixels : int
        Pixels of one image, all planes together [``SEGAPP_MAX_PIXELS``].
    max_image_bytes : int
        Decoded size of one image: pixels x channels x planes x bytes per sample
        [``SEGAPP_MAX_IMAGE_MB``].
    max_planes : int
        Planes (pages, z, t) of one image [``SEGAPP_MAX_PLANES``].
    max_channels : int
        Channels of one image [``SEGAPP_MAX_CHANNELS``].
    max_upload_bytes : int
        Size of one uploaded file [``SEGAPP_MAX_UPLOAD_MB``].
    max_model_bytes : int
        Size of a model file, and of the classifier inside it [``SEGAPP_MAX_MODEL_MB``].
    """

    max_pixels: int = 100_000_000
    max_image_bytes: int = 1024 * 2**20
    max_planes: int = 1000
    max_channels: int = 16
    max_upload_bytes: int = 200 * 2**20
    max_model_bytes: int = 256 * 2**20

    @classmethod
    def from_settings(cls, settings=None) -> "Limits":
        """Limits of a :class:`~segapp.config.Settings` (None: the built-in defaults)."""
        if settings is None:
            return cls()
        return cls(max_pixels=settings.max_pixels, max_image_bytes=settings.max_image_mb * 2**20,
                   max_planes=settings.max_planes, max_channels=settings.max_channels,
                   max_upload_bytes=settings.max_upload_mb * 2**20, max_model_bytes=settings.max_model_mb * 2**20)

    @property
    def max_file_bytes(self) -> int:
        """Largest image file read at all (a file is never much larger than its pixels)."""
        return max(self.max_upload_bytes, self.max_image_bytes) + 16 * 2**20


def default_limits() -> Limits:
    """The limits of this process, from the environment (read on every call: cheap, never stale)."""
    from .config import get_settings

    return Limits.from_settings(get_settings())


def _fail(name, reason: str) -> ImageReadError:
    return ImageReadError(f"cannot read {name!r}: {reason}" if name else f"cannot read image: {reason}")


def check_image_cost(name, width: int, height: int, planes: int = 1, channels: int = 1, itemsize: int = 1,
                     limits: Limits | None = None) -> None:
    """Refuse an image whose header promises more than the limits allow (before decoding).

    Raises
    ------
    ImageReadError
        No pixels, too many planes or channels, too many pixels, or too many decoded bytes;
        the message names the limit and its environment variable.
    """
    lim = limits or Limits()
    width, height, planes, channels = int(width), int(height), int(planes), int(channels)
    if width <= 0 or height <= 0 or planes <= 0 or channels <= 0:
        raise _fail(name, f"image has no pixels ({width} x {height})")
    if planes > lim.max_planes:
        raise _fail(name, f"{planes:,} planes; at most {lim.max_planes:,} are accepted (SEGAPP_MAX_PLANES)")
    if channels > lim.max_channels:
        raise _fail(name, f"{channels:,} channels; at most {lim.max_channels} are accepted (SEGAPP_MAX_CHANNELS)")
    total = width * height * planes
    dims = f"{width} x {height}" + (f" x {planes} planes" if planes > 1 else "")
    if total > lim.max_pixels:
        raise _fail(name, f"image too large: {dims} = {total:,} pixels exceeds the limit of "
                          f"{lim.max_pixels:,} (max_pixels, SEGAPP_MAX_PIXELS)")
    nbytes = total * channels * max(1, int(itemsize))
    if nbytes > lim.max_image_bytes:
        raise _fail(name, f"image too large: {dims} x {channels} channel(s) decodes to {human_bytes(nbytes)}, "
                          f"more than the {human_bytes(lim.max_image_bytes)} accepted (SEGAPP_MAX_IMAGE_MB)")


def clamp_coordinate(v: float) -> float:
    """A finite coordinate clamped to +-:data:`COORD_LIMIT` (so differences never overflow).

    Examples
    --------
    >>> clamp_coordinate(-1e300), clamp_coordinate(3.5)
    (-1000000000.0, 3.5)
    """
    return min(max(v, -COORD_LIMIT), COORD_LIMIT)


def max_stroke_width(shape_hw) -> float:
    """Widest useful brush for an image: twice its diagonal (any wider paints the same pixels).

    Examples
    --------
    >>> max_stroke_width((3, 4))
    10.0
    """
    return 2.0 * math.hypot(float(shape_hw[0]), float(shape_hw[1]))
