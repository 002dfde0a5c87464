"""Encoding arrays for the browser: PNG data URIs for overlays, heat maps and thumbnails.

UI-free (no Dash): presentation only — colouring a label image with a palette,
quantising a [0, 1] map for a colour map.  Overlays are palette ("P" mode) PNGs,
one byte per pixel before compression, so an overlay update for a megapixel
image is tens of kilobytes, not megabytes.

Examples
--------
>>> import numpy as np
>>> uri = labels_png_uri(np.array([[1, 2], [2, 1]], np.uint8), {1: "#ff0000", 2: "#00ff00"})
>>> uri.startswith("data:image/png;base64,")
True
>>> png_size(uri)
(2, 2)
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

TRANSPARENT_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                   "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
# Colour-map stops (viridis for probabilities, inferno for uncertainty), interpolated to 256.
_STOPS = {
    "viridis": ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
                "#35b779", "#6ece58", "#b5de2b", "#fde725"],
    "inferno": ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446",
                "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"],
}


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` (or ``"#rgb"``) to an RGB tuple."""
    c = color.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def uri_bytes(uri: str) -> bytes:
    """Payload of a ``data:...;base64,`` URI (as sent by dcc.Upload)."""
    _, _, b64 = uri.partition(",")
    return base64.b64decode(b64)


def png_size(uri: str) -> tuple[int, int]:
    """``(width, height)`` of a PNG data URI."""
    return Image.open(io.BytesIO(uri_bytes(uri))).size


def _png(img: Image.Image, level: int = 3) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def labels_png(labels: np.ndarray, colors: dict[int, str]) -> bytes:
    """Palette PNG of a label image: class ``i`` in ``colors[i]``, 0 and unknown ids transparent."""
    labels = np.asarray(labels)
    if labels.size and labels.max() > 255:
        raise ValueError("more than 255 classes cannot be shown as an overlay")
    pal = np.zeros((256, 3), np.uint8)
    alpha = np.zeros(256, np.uint8)
    for cid, color in colors.items():
        if 0 < int(cid) < 256:
            pal[int(cid)] = hex_to_rgb(color)
            alpha[int(cid)] = 255
    img = Image.fromarray(labels.astype(np.uint8, copy=False), mode="P")
    img.putpalette(pal.ravel().tolist())
    img.info["transparency"] = bytes(alpha.tolist())
    return _png(img)


def labels_png_uri(labels: np.ndarray, colors: dict[int, str]) -> str:
    return png_uri(labels_png(labels, colors))


def instances_png_uri(instances: np.ndarray) -> str:
    """Palette PNG of instance labels: each object a distinct hue (cycling after 255), 0 transparent."""
    inst = np.asarray(instances)
    q = np.where(inst > 0, (inst - 1) % 255 + 1, 0).astype(np.uint8)
    hues = (np.arange(256) * 0.618034) % 1.0
    pal = np.zeros((256, 3), np.uint8)
    for i, h in enumerate(hues[1:], start=1):  # HSV(h, 0.75, 1) -> RGB
        k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
        pal[i] = (255 * (1 - 0.75 * np.clip(np.minimum(k, 4 - k), 0, 1))).astype(np.uint8)
    img = Image.fromarray(q, mode="P")
    img.putpalette(pal.ravel().tolist())
    img.info["transparency"] = bytes([0] + [255] * 255)
    return png_uri(_png(img))


def colormap(name: str) -> np.ndarray:
    """``(256, 3)`` uint8 lookup table for ``"viridis"`` or ``"inferno"``."""
    stops = np.array([hex_to_rgb(c) for c in _STOPS[name]], float)
    x = np.linspace(0, 1, len(stops))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, x, stops[:, i]) for i in range(3)], 1).round().astype(np.uint8)


def heatmap_png_uri(values: np.ndarray, cmap: str = "viridis") -> str:
    """Palette PNG of a ``[0, 1]`` map with a colour map (values are clipped)."""
    q = (np.clip(np.nan_to_num(values), 0.0, 1.0) * 255).round().astype(np.uint8)
    img = Image.fromarray(q, mode="P")
    img.putpalette(colormap(cmap).ravel().tolist())
    return png_uri(_png(img))


def rgb_png(rgb: np.ndarray, level: int = 3) -> bytes:
    """PNG of a uint8 ``(H, W, 3)`` image."""
    return _png(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)), level)


def thumbnail_png(rgb: np.ndarray, size: int = 112) -> bytes:
    """Small PNG (longest side ``size``) of a uint8 RGB image."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    return _png(img, 6)


def thumbnail_with_overlay(rgb: np.ndarray, labels: np.ndarray, colors: dict[int, str],
                           alpha: float = 0.5, size: int = 160) -> bytes:
    """Thumbnail of an image blended with its coloured segmentation (for the results gallery)."""
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("RGBA")
    ov = Image.open(io.BytesIO(labels_png(labels, colors))).convert("RGBA")
    a = np.asarray(ov).copy()
    a[..., 3] = (a[..., 3] * alpha).astype(np.uint8)
    out = Image.alpha_composite(img, Image.fromarray(a, "RGBA")).convert("RGB")
    out.thumbnail((size, size), Image.Resampling.LANCZOS)
    return _png(out, 6)
