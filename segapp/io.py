"""Image input/output: read and validate images, stacks and label images; write results.

Readers take a path, ``bytes`` or a binary file object and return numpy arrays.  TIFF files
go through tifffile (Pillow when a compression needs the absent ``imagecodecs``); PNG, JPEG,
BMP, GIF, WebP and PPM through Pillow (first frame only; no other Pillow format is tried).
Every problem a user can cause raises :class:`~segapp.errors.ImageReadError` with a one-line
message naming the file.

What a file may cost (:mod:`segapp.limits`) is checked from its header before any pixel is
decoded: pixels (all planes together), planes, channels and decoded bytes (pixels x channels
x planes x bytes per sample); TIFF pages are counted without parsing them all.  While
decoding, no compressed strip may inflate past the size its header declares, and all of
them together past twice the decoded-size limit (decompression bombs).

Decisions: CMYK and YCbCr images are converted to RGB; alpha is dropped; 16-bit *RGB* PNGs
are read as 8-bit (a Pillow limitation; use TIFF for 16-bit colour).
"""
from __future__ import annotations

import hashlib
import io as _io
import logging
import re
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from .errors import ConfigError, ImageReadError
from .limits import Limits, check_image_cost, default_limits, human_bytes
from .tiffguard import BOUNDED, OverBudget, decode_budget, tiff_page_count, tifffile_bounded

DEFAULT_MAX_PIXELS = 100_000_000
NORMALIZE_METHODS = ("percentile", "standardize", "minmax", "dtype", "none")
_STAT_SAMPLES = 1 << 20  # percentiles of larger channels come from an even subsample
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"),
          (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))
# Pillow formats tried for files that are not TIFF; others (EPS runs Ghostscript, PSD, ICNS, ...) are refused
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP", "PPM")
# tifffile's warnings about odd files are noise once segapp refuses the file with its own message:
# a NullHandler keeps them off stderr (logging's last resort) while servers may still route them to a log
logging.getLogger("tifffile").addHandler(logging.NullHandler())


class _NeedsPillow(Exception):
    """tifffile lacks a codec for this TIFF; Pillow (libtiff) may have it."""


def _fail(name: str | None, reason: str) -> ImageReadError:
    reason = " ".join(str(reason).split())
    return ImageReadError(f"cannot read {name!r}: {reason}" if name else f"cannot read image: {reason}")


def _limits(limits: Limits | None, max_pixels: int | None) -> Limits:
    lim = limits or default_limits()
    return lim if max_pixels is None else replace(lim, max_pixels=int(max_pixels))


def _read_source(source, name: str | None, max_bytes: int) -> tuple[bytes, str | None]:
    too_big = f"the file is larger than {human_bytes(max_bytes)} (SEGAPP_MAX_IMAGE_MB, SEGAPP_MAX_UPLOAD_MB)"
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > max_bytes:
            raise _fail(name, too_big)
        return bytes(source), name
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        try:
            if path.is_dir():
                raise _fail(name, "this is a folder, not an image file")
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except FileNotFoundError:
            raise _fail(name, "no such file") from None
        except OSError as exc:
            raise _fail(name, exc.strerror or exc) from None
        if len(data) > max_bytes:
            raise _fail(name, too_big)
        return data, name
    if hasattr(source, "read"):
        fname = getattr(source, "name", None)
        name = name or (Path(fname).name if isinstance(fname, str) else None)
        data = None if isinstance(source, _io.TextIOBase) else source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise _fail(name, "file object was opened in text mode; open it with 'rb'")
        if len(data) > max_bytes:
            raise _fail(name, too_big)
        return bytes(data), name
    raise TypeError(f"expected a path, bytes or a binary file object, got {type(source).__name__}")


def _decode(data: bytes, name, limits: Limits, labels: bool) -> np.ndarray:
    """Decode to a raw (Z, H, W, C) array; with ``labels`` palette indices are kept."""
    if not data:
        raise _fail(name, "the file is empty")
    kind = next((k for magic, k in _MAGIC if data.startswith(magic)), None)
    try:
        if kind == "TIFF":
            try:
                with decode_budget(2 * limits.max_image_bytes):  # every decoded byte counts, whatever the header
                    return _decode_tiff(data, name, limits, labels)
            except _NeedsPillow:
                pass
        return _decode_pillow(data, name, limits, labels, kind)
    except ImageReadError:
        raise
    except OverBudget:
        raise _fail(name, "the compressed pixel data inflates to more than the image size it declares "
                          "(a decompression bomb)") from None
    except Image.DecompressionBombError as exc:
        raise _fail(name, f"image too large (decompression-bomb guard: {exc})") from None
    except MemoryError:
        raise _fail(name, "not enough memory to decode the image") from None
    except RecursionError:
        raise _fail(name, f"corrupt {kind or 'image'} file (structure nested too deeply)") from None
    except Exception as exc:  # decoders raise many types on corrupt input
        if kind:
            detail = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the data", str(exc))  # no object reprs on screen
            raise _fail(name, f"truncated or corrupt {kind} file ({type(exc).__name__}: {detail})") from None
        what = "a PDF document, not an image" if data.startswith(b"%PDF") else "not a recognised image format"
        raise _fail(name, f"{what} (expected PNG, JPEG or TIFF)") from None


def _decode_tiff(data: bytes, name, limits: Limits, labels: bool) -> np.ndarray:
    tifffile = tifffile_bounded()
    max_pages = limits.max_planes * max(1, limits.max_channels)
    if tiff_page_count(data, max_pages) > max_pages:
        raise _fail(name, f"the TIFF has more than {max_pages:,} pages; at most {limits.max_planes:,} planes "
                          f"of {limits.max_channels} channels are accepted (SEGAPP_MAX_PLANES, SEGAPP_MAX_CHANNELS)")
    with tifffile.TiffFile(_io.BytesIO(data)) as tf:
        series = tf.series[0]
        axes, shape = series.axes, tuple(series.shape)
        if "Y" not in axes or "X" not in axes:
            raise _fail(name, f"unsupported TIFF layout (axes {axes!r})")
        size = dict(zip(axes, shape))
        other = [i for i, a in enumerate(axes) if a not in "YXCS"]
        chan = [i for i, a in enumerate(axes) if a in "CS"]
        planes = int(np.prod([shape[i] for i in other], dtype=np.int64))
        nchan = int(np.prod([shape[i] for i in chan], dtype=np.int64))
        if series.dtype is not None and series.dtype.kind == "c":
            raise _fail(name, f"unsupported pixel type {series.dtype}")
        page = series.keyframe
        palette = not labels and page.photometric == tifffile.PHOTOMETRIC.PALETTE
        itemsize = series.dtype.itemsize if series.dtype is not None else 1
        check_image_cost(name, size["X"], size["Y"], planes, 3 if palette else nchan, itemsize, limits)
        for pg in series.pages:  # strips/tiles past the end of the data = truncated file
            ends = [o + c for o, c in zip(pg.dataoffsets, pg.databytecounts) if c] if pg else []
            if ends and max(ends) > len(data):
                raise _fail(name, "truncated TIFF file (the file ends before its pixel data)")
            if pg and not BOUNDED[0] and pg.compression != 1:  # pragma: no cover
                raise _NeedsPillow
        try:
            arr = series.asarray(maxworkers=1)  # one thread: the decode budget is per context
        except ValueError as exc:
            if "imagecodecs" in str(exc):
                raise _NeedsPillow from None
            raise
        arr = arr.transpose(other + [axes.index("Y"), axes.index("X")] + chan)
        arr = arr.reshape(planes, size["Y"], size["X"], nchan)
        if labels:
            return arr
        if palette and page.colormap is not None:
            cmap = np.moveaxis(np.asarray(page.colormap), 0, -1)
            cmap = (cmap >> 8).astype(np.uint8) if cmap.max() > 255 else cmap.astype(np.uint8)
            arr = cmap[arr[..., 0]]
        elif page.photometric == tifffile.PHOTOMETRIC.RGB and nchan == 4:
            arr = arr[..., :3]
        if page.bitspersample == 1:
            arr = arr.astype(bool)
        return arr


def _pil_frame(im: Image.Image, name, labels: bool) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        arr = np.asarray(im, dtype=bool)
        return arr.astype(np.uint8) if labels else arr
    if mode in ("L", "I", "F") or mode.startswith("I;16") or (labels and mode == "P"):
        arr = np.asarray(im)  # a PNG opened as "I" (older Pillow) still holds 16-bit pixels
        is16 = mode.startswith("I;16") or (mode == "I" and im.format == "PNG")
        return arr.astype(np.uint16) if is16 else arr
    if mode in ("LA", "La", "PA") and (labels or mode != "PA"):
        return np.asarray(im)[..., :1]
    if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
        return np.asarray(im)[..., :3]
    if mode in ("P", "PA", "CMYK", "YCbCr"):
        if labels:
            raise _fail(name, f"labels must be single-channel, got mode {mode!r}")
        return np.asarray(im.convert("RGBA"))[..., :3]
    raise _fail(name, f"unsupported image mode {mode!r}")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels as decoded (palette -> RGB)


def _pil_cost(im: Image.Image, labels: bool) -> tuple[int, int]:
    """``(channels, bytes per sample)`` of a Pillow image as segapp decodes it."""
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;32"):
        return 1, 4
    if mode.startswith("I;16"):
        return 1, 2
    if mode in ("P", "PA"):
        return (1 if labels else 4), 1  # palette images pass through RGBA
    return len(im.getbands()), 1


def _decode_pillow(data: bytes, name, limits: Limits, labels: bool, kind) -> np.ndarray:
    if kind == "PNG" and len(data) >= 26 and data[12:16] == b"IHDR":  # size before Pillow parses
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        depth, ctype = data[24], data[25]
        check_image_cost(name, w, h, 1, 1 if labels and ctype == 3 else _PNG_CHANNELS.get(ctype, 1),
                         2 if depth == 16 else 1, limits)
    with Image.open(_io.BytesIO(data), formats=PIL_FORMATS) as im:
        planes = getattr(im, "n_frames", 1) if kind == "TIFF" else 1
        channels, itemsize = _pil_cost(im, labels)
        check_image_cost(name, im.width, im.height, planes, channels, itemsize, limits)
        frames = ImageSequence.Iterator(im) if planes > 1 else [im]
        arrs = []
        for frame in frames:
            frame.load()
            arr = _pil_frame(frame, name, labels)
            arrs.append(arr if arr.ndim == 3 else arr[..., None])
            if len(arrs) == planes:
                break
    if any(a.shape != arrs[0].shape or a.dtype != arrs[0].dtype for a in arrs):
        raise _fail(name, "the pages of this TIFF differ in size or type")
    return np.stack(arrs)


def _as_image_dtype(arr: np.ndarray, name) -> np.ndarray:
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    native = arr.dtype.newbyteorder("=")
    if native in (np.uint8, np.uint16, np.float32):
        return arr.astype(native, copy=False)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float32)
    raise _fail(name, f"unsupported pixel type {arr.dtype}")


def read_stack(source, *, max_pixels: int | None = None, name: str | None = None,
               limits: Limits | None = None) -> np.ndarray:
    """Read an image or a multi-page/volume TIFF as a ``(Z, H, W, C)`` array.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
    max_pixels : int, optional
        Refuse images with more pixels (width x height x planes), checked from the header
        (overrides ``limits.max_pixels``).
    name : str, optional
        File name for error messages when ``source`` is bytes.
    limits : Limits, optional
        Cost limits (decoded bytes, planes, channels, pixels, file size); default: from the
        environment (:func:`segapp.limits.default_limits`).  Checked from the header before
        decoding, and again while decompressing (a strip may not inflate past its size).

    Returns
    -------
    ndarray
        uint8, uint16 or float32.  RGBA -> RGB, palette -> RGB, LA -> L, 1-bit -> {0, 255},
        other integer/float types -> float32.  TIFF axes C and S (samples) become channels,
        every other axis (Z, T, pages, ...) is flattened into Z.

    Raises
    ------
    ImageReadError
        Empty, not an image, truncated or corrupt, too large, unsupported mode or pixel type.

    Examples
    --------
    >>> import io, numpy as np, tifffile
    >>> buf = io.BytesIO(); tifffile.imwrite(buf, np.zeros((6, 4, 5), np.uint16))
    >>> read_stack(buf.getvalue()).shape
    (6, 4, 5, 1)
    """
    lim = _limits(limits, max_pixels)
    data, name = _read_source(source, name, lim.max_file_bytes)
    return _as_image_dtype(_decode(data, name, lim, labels=False), name)


def read_image(source, *, max_pixels: int | None = None, plane: int = 0,
               name: str | None = None, limits: Limits | None = None) -> np.ndarray:
    """Read one plane of an image as ``(H, W, C)`` (see :func:`read_stack`).

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGBA", (5, 4)).save(buf, format="PNG")
    >>> img = read_image(buf.getvalue()); img.shape, img.dtype
    ((4, 5, 3), dtype('uint8'))
    """
    lim = _limits(limits, max_pixels)
    data, name = _read_source(source, name, lim.max_file_bytes)
    stack = read_stack(data, name=name, limits=lim)
    if not -len(stack) <= plane < len(stack):
        raise _fail(name, f"plane {plane} does not exist (the file has {len(stack)})")
    return stack[plane]


def read_labels(source, *, max_pixels: int | None = None, name: str | None = None,
                limits: Limits | None = None) -> np.ndarray:
    """Read a label image: 2-D non-negative integers, 0 = unlabelled, 1..K = classes.

    Accepts L, I;16, I, 1-bit and palette PNGs (palette *indices* are the labels) and integer
    TIFFs.  An RGB(A) image is accepted only when its colour channels are equal.  Float pixels,
    negative values and more than one plane raise ImageReadError.  (Ground-truth masks in the
    forms people have — 0/255, colour-coded — are read by :func:`read_mask` and
    :func:`segapp.metrics.interpret_mask`.)

    Returns
    -------
    ndarray of int32, shape (H, W)

    Examples
    --------
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); write_labels(buf, np.array([[0, 1], [2, 300]]), fmt="png")
    >>> read_labels(buf.getvalue()).tolist()
    [[0, 1], [2, 300]]
    """
    arr = read_mask(source, max_pixels=max_pixels, name=name, limits=limits)
    if arr.ndim == 3:
        raise _fail(name or _source_name(source), "labels must be single-channel class ids; this colour image has "
                    "differing channels (save the class ids 0..K as a grayscale or palette image)")
    return arr


def _source_name(source) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    fname = getattr(source, "name", None)
    return Path(fname).name if isinstance(fname, str) else None


def read_mask(source, *, max_pixels: int | None = None, name: str | None = None, limits=None) -> np.ndarray:
    """Read a label image or a mask as it is: ``(H, W)`` int32 values, or ``(H, W, 3)`` int32 colours.

    Like :func:`read_labels` (palette indices are values, alpha is dropped, an RGB image with
    equal channels is one channel) but a colour-coded mask keeps its colours, for
    :func:`segapp.metrics.interpret_mask`.

    Examples
    --------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.fromarray(np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)).save(buf, "PNG")
    >>> read_mask(buf.getvalue()).shape
    (1, 2, 3)
    """
    lim = _limits(limits, max_pixels)
    data, name = _read_source(source, name, lim.max_file_bytes)
    arr = _decode(data, name, lim, labels=True)
    if arr.shape[0] != 1:
        raise _fail(name, f"labels must be one 2-D image, got {arr.shape[0]} planes")
    arr = arr[0]
    if arr.shape[-1] in (2, 4):  # drop alpha
        arr = arr[..., :-1]
    if arr.dtype.kind not in "biu":
        raise _fail(name, f"labels must be integers, got {arr.dtype} pixels")
    if arr.size and arr.min() < 0:
        raise _fail(name, f"labels must be non-negative, found {int(arr.min())}")
    if arr.size and int(arr.max()) > np.iinfo(np.int32).max:
        raise _fail(name, f"label value {int(arr.max())} is too large")
    if arr.shape[-1] > 1 and not (arr == arr[..., :1]).all():
        return arr[..., :3].astype(np.int32)
    return arr[..., 0].astype(np.int32)


def write_labels(target, labels, fmt: str | None = None) -> None:
    """Write class ids as a PNG (uint8 if max < 256, else uint16) or a zlib-compressed TIFF.

    ``fmt`` is "png" or "tiff"; by default it follows the suffix of ``target`` (.tif/.tiff ->
    TIFF, anything else -> PNG).  ``target`` is a path or a binary file object.

    Examples
    --------
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); write_labels(buf, np.array([[0, 70000]]), fmt="tiff")
    >>> read_labels(buf.getvalue()).tolist()
    [[0, 70000]]
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "biu":
        raise ValueError(f"labels must be a 2-D integer array, got {lab.dtype} {lab.shape}")
    if lab.size and lab.min() < 0:
        raise ValueError("labels must be non-negative")
    if fmt is None:
        fmt = "tiff" if str(getattr(target, "name", target)).lower().endswith((".tif", ".tiff")) else "png"
    top = int(lab.max()) if lab.size else 0
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    lab = lab.astype(dtype)
    if fmt == "png":
        if dtype == np.uint32:
            raise ValueError(f"label {top} does not fit in a PNG (max 65535); use fmt='tiff'")
        Image.fromarray(lab).save(target, format="PNG")
    elif fmt in ("tif", "tiff"):
        tifffile_bounded().imwrite(target, lab, photometric="minisblack", compression="zlib")
    else:
        raise ValueError(f"unknown label format {fmt!r}; use 'png' or 'tiff'")


def write_proba_tiff(target, proba, *, dtype: str = "float32") -> None:
    """Write class probabilities ``(H, W, K)`` as a TIFF of K pages, one ``(H, W)`` page per class.

    The file has axes "CYX" (page k = class k in the order of ``Segmenter.classes_``), so Fiji
    shows a K-slice stack and :func:`read_image` returns ``(H, W, K)`` again.  ``dtype`` is
    "float32" or "uint8" (probability x 255, rounded).

    Examples
    --------
    >>> import io, numpy as np
    >>> buf = io.BytesIO(); write_proba_tiff(buf, np.full((4, 5, 2), 0.5, np.float32))
    >>> read_image(buf.getvalue()).shape
    (4, 5, 2)
    """
    p = np.asarray(proba, dtype=np.float32)
    p = p[..., None] if p.ndim == 2 else p
    if p.ndim != 3:
        raise ValueError(f"proba must be (H, W, K), got shape {p.shape}")
    if dtype == "uint8":
        p = np.rint(np.clip(p, 0, 1) * 255).astype(np.uint8)
    elif dtype != "float32":
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    tifffile_bounded().imwrite(target, np.ascontiguousarray(np.moveaxis(p, -1, 0)), photometric="minisblack",
                        metadata={"axes": "CYX"})


def _channel_range(ch: np.ndarray, method: str, low: float, high: float) -> tuple[float, float]:
    flat = ch.reshape(-1)
    if flat.size > _STAT_SAMPLES:
        flat = flat[:: flat.size // _STAT_SAMPLES]
    flat = flat[np.isfinite(flat)]
    if not flat.size:
        return 0.0, 1.0
    if method == "percentile":
        lo, hi = np.percentile(flat, [low, high])
    elif method == "standardize":  # mean -/+ 2 standard deviations
        mean, sd = float(flat.mean(dtype=np.float64)), float(flat.std(dtype=np.float64))
        lo, hi = mean - 2 * sd, mean + 2 * sd
    else:
        lo, hi = flat.min(), flat.max()
    if not hi > lo:  # flat percentiles (e.g. sparse image): fall back to the full range
        lo, hi = flat.min(), flat.max()
    return float(lo), (float(hi) if hi > lo else float(lo) + 1.0)


def _check_normalization(a: np.ndarray, method: str, low: float, high: float) -> None:
    if method not in NORMALIZE_METHODS:
        raise ConfigError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZE_METHODS)}")
    if method == "percentile" and not 0 <= low < high <= 100:
        raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"cannot normalise pixels of type {a.dtype}")


def normalize(image, method: str = "percentile", low: float = 1.0, high: float = 99.8, *,
              clip: bool = False) -> np.ndarray:
    """Scale an image to roughly [0, 1] per channel; float32, same shape as ``image``.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` or ``(..., C)`` with channels last.
    method : {"percentile", "standardize", "minmax", "dtype", "none"}
        "percentile": per channel, the ``low``/``high`` percentiles map to 0/1 (robust to
        brightness and contrast changes); "standardize": per channel, mean - 2 sd and
        mean + 2 sd map to 0/1 (z-scores, as napari-convpaint normalises); "minmax": per-channel min/max; "dtype": divide by the
        integer type's maximum (floats unchanged); "none": only cast to float32.
    clip : bool
        Clip the result to [0, 1].

    Constant channels become 0, and non-finite input pixels become 0, so the output is always
    finite.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    >>> b = normalize(a * 2 + 50, "minmax"); float(b.min()), float(b.max())
    (0.0, 1.0)
    >>> bool(np.allclose(normalize(a), normalize(a * 2.0 + 50)))
    True
    >>> normalize(np.full((2, 2), 7)).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    a = np.asarray(image)
    _check_normalization(a, method, low, high)
    out = a.astype(np.float32)  # always a copy
    if method == "dtype" and a.dtype.kind in "iu":
        out /= np.float32(np.iinfo(a.dtype).max)
    elif method in ("percentile", "standardize", "minmax"):
        chans = out[..., None] if out.ndim == 2 else out
        for c in range(chans.shape[-1]):
            ch = chans[..., c]
            lo, hi = _channel_range(ch, method, low, high)
            with np.errstate(over="ignore", invalid="ignore"):
                res = (ch - np.float32(lo)) * np.float32(1 / (hi - lo))
            if a.dtype.kind == "f" and (np.isfinite(ch) & ~np.isfinite(res)).any():  # -> float64
                res = (ch.astype(np.float64) - lo) / (hi - lo)
            chans[..., c] = res
    if clip:
        np.clip(out, 0, 1, out=out)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = 0.0
    return out


_DISPLAY_BAND = 4 * 2**20  # float32 values converted at once for display (large images go in row bands)
DISPLAY_METHODS = ("auto", "dtype", "percentile", "minmax")


def display_range(image, method: str = "auto", low: float = 0.5, high: float = 99.9) -> tuple[float, float]:
    """The ONE intensity range ``(lo, hi)`` that maps all channels of ``image`` to 0..255 for display.

    ``"auto"``: 8-bit colour images their type's range (shown exactly as the file), colour
    floats already in [0, 1] that range; everything else (grey images, 16-bit, floats) the
    ``low``/``high`` percentiles of all channels' pixels together (an auto-contrast that
    changes brightness, never hue).  ``"dtype"``: the integer type's range;
    ``"percentile"``/``"minmax"``: over all channels together.  Never one range per channel:
    that would change the colour balance (pink H&E shown deep red).

    Examples
    --------
    >>> import numpy as np
    >>> display_range(np.zeros((1, 2, 3), np.uint8)), display_range(np.full((1, 2, 3), 0.5))
    ((0.0, 255.0), (0.0, 1.0))
    >>> display_range(np.array([[[100, 1000, 4000]]], np.uint16), "minmax")
    (100.0, 4000.0)
    >>> display_range(np.array([[20, 60, 90]], np.uint8), "minmax")   # a dim grey image: auto-contrast
    (20.0, 90.0)
    """
    a = np.asarray(image)
    if method not in DISPLAY_METHODS:
        raise ConfigError(f"unknown display mapping {method!r}; choose one of {', '.join(DISPLAY_METHODS)}")
    if a.dtype == bool:
        return 0.0, 1.0
    colour = a.ndim == 3 and a.shape[-1] >= 3
    if method == "dtype" or (method == "auto" and colour and a.dtype == np.uint8):
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            return (0.0 if a.dtype.kind == "u" else float(info.min)), float(info.max)
        method = "auto"
    if a.dtype.kind not in "biuf":
        raise ConfigError(f"cannot display pixels of type {a.dtype}")
    if method != "minmax" and not 0 <= low < high <= 100:
        raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    sample = _pixel_sample(a)  # every pixel of a small image; an even subsample of a large one (no copy of it)
    if method == "auto" and colour and a.dtype.kind == "f":
        finite = sample[np.isfinite(sample)]
        if finite.size and finite.min() >= 0 and finite.max() <= 1:
            return 0.0, 1.0
    return _channel_range(sample, "minmax" if method == "minmax" else "percentile", low, high)


def _pixel_sample(a: np.ndarray) -> np.ndarray:
    """float32 values of an even subsample of ``a``'s pixels (all channels of each), at most
    ``_STAT_SAMPLES`` values; the whole image when it is that small."""
    if a.size <= _STAT_SAMPLES:
        return a.astype(np.float32).reshape(-1)
    h, w = a.shape[:2]
    c = a.size // (h * w)
    idx = np.arange(0, h * w, -(-(h * w * c) // _STAT_SAMPLES))
    rows, cols = np.divmod(idx, w)
    return a[rows, cols].astype(np.float32).reshape(-1)


def to_display_rgb(image, *, method: str = "auto", low: float = 0.5, high: float = 99.9) -> np.ndarray:
    """Any image -> uint8 ``(H, W, 3)`` that looks like the file (for the canvas, thumbnails, the gallery).

    All channels share ONE intensity range (:func:`display_range`): 8-bit colour images are
    shown unchanged, grey, 16-bit and float images get one auto-contrast range.  Per-channel stretching
    (:func:`normalize`) is what features see, not what the picture shows.  One channel ->
    grey; two -> magenta/green; three or more -> the first three.

    Examples
    --------
    >>> import numpy as np
    >>> pink = np.array([[[230, 150, 200]]], np.uint8)       # H&E pink stays that pink
    >>> to_display_rgb(pink).tolist()
    [[[230, 150, 200]]]
    >>> rgb = to_display_rgb(np.linspace(0, 4000, 20, dtype=np.uint16).reshape(4, 5))
    >>> rgb.shape, rgb.dtype, int(rgb.min()), int(rgb.max())
    ((4, 5, 3), dtype('uint8'), 0, 255)
    >>> to_display_rgb(np.array([[[1000, 500, 2000], [0, 0, 0]]], np.uint16), method="minmax").tolist()
    [[[128, 64, 255], [0, 0, 0]]]
    """
    a = np.asarray(image)
    a = a[..., None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[-1] == 0:
        raise ConfigError(f"expected a 2-D image or (H, W, C) array, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8 and (method == "dtype" or method == "auto" and a.shape[-1] == 3):
        u8 = a
    else:
        lo, hi = display_range(a, method, low, high)
        scale = np.float32(255.0 / (hi - lo))
        u8 = np.empty(a.shape, np.uint8)
        rows = max(1, _DISPLAY_BAND // max(1, a.shape[1] * a.shape[2]))
        for r in range(0, a.shape[0], rows):  # row bands: no full-size float copy of a large image
            with np.errstate(over="ignore", invalid="ignore"):
                band = (a[r:r + rows].astype(np.float32) - np.float32(lo)) * scale
            np.nan_to_num(band, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
            u8[r:r + rows] = np.rint(np.clip(band, 0, 255, out=band), out=band)
    if u8.shape[-1] == 1:
        return np.repeat(u8, 3, axis=-1)
    if u8.shape[-1] == 2:
        return np.ascontiguousarray(u8[..., [0, 1, 0]])
    return np.ascontiguousarray(u8)


def image_digest(array) -> str:
    """Content hash of an array (dtype, shape and pixels); equal arrays give equal digests.

    Examples
    --------
    >>> import numpy as np
    >>> image_digest(np.zeros((2, 2))) == image_digest(np.zeros((2, 2)))
    True
    >>> image_digest(np.zeros((2, 2))) == image_digest(np.zeros((2, 2), np.float32))
    False
    """
    a = np.ascontiguousarray(array)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    h = hashlib.blake2b(f"{a.dtype.str}|{a.shape}|".encode(), digest_size=16)
    h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()
