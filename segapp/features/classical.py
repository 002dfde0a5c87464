"""Classical multi-scale filter bank (ilastik-style pixel features).

Per channel and scale ``s`` the image is smoothed with a Gaussian (float32,
``truncate=3.5``, edges ``'nearest'``); the other features come from that
smoothed image ``G`` by central finite differences rather than separate
derivative-of-Gaussian convolutions:

==========  =====  ============================================================
kind        count  definition at scale ``s``
==========  =====  ============================================================
gaussian    1      ``G = gaussian(I, s)``
gradient    1      gradient magnitude ``sqrt(Gx**2 + Gy**2)``
log         1      Laplacian of Gaussian ``Gxx + Gyy``
dog         1      difference of Gaussians ``G(s) - G(0.66 s)`` (as ilastik)
structure   2      eigenvalues (larger first) of ``gaussian([Gx Gx, Gx Gy, Gy Gy], s / 2)``
hessian     2      eigenvalues (larger first) of ``[[Gxx, Gxy], [Gxy, Gyy]]``
==========  =====  ============================================================

As in ilastik, kinds other than ``gaussian`` skip ``s < 0.5``.  Derivatives are
in units of input pixels at every scale.  Scales ``s >= 3.2`` are computed on a
Gaussian pyramid (grid step ``2**k``, the largest with ``s / 2**k >= 1.6``) and
the features interpolated back bilinearly, so the extractor's ``align`` is the
coarsest step (tiles then share one sampling grid and tiled == untiled).
Tasks (one per channel and scale) run in a thread pool.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ConfigError
from ..limits import MAX_SIGMA, MAX_SIGMAS
from .base import FeatureExtractor, register

TRUNCATE = 3.5
MIN_DERIVATIVE_SIGMA = 0.5
LEVEL_SIGMA = 1.6
DOG_RATIO = 0.66
KINDS = {"gaussian": ("",), "gradient": ("",), "log": ("",), "dog": ("",),
         "structure": ("_eig1", "_eig2"), "hessian": ("_eig1", "_eig2")}
DEFAULT_SIGMAS = [0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0]
DEFAULT_FEATURES = ["gaussian", "gradient", "hessian"]
N_THREADS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else (os.cpu_count() or 1)))


def _radius(sigma: float) -> int:
    """Kernel half-width for ``sigma`` (as scipy.ndimage computes it at :data:`TRUNCATE`)."""
    return int(TRUNCATE * sigma + 0.5)


def _level(sigma: float) -> int:
    """Pyramid level ``k`` (grid step ``2**k``) for a scale: largest with ``sigma / 2**k >= 1.6``."""
    k = 0
    while sigma / 2 ** (k + 1) >= LEVEL_SIGMA:
        k += 1
    return k


def _presmooth(k: int) -> float:
    """Total smoothing (full-resolution pixels) of pyramid level ``k``."""
    return LEVEL_SIGMA * 2 ** (k - 1) if k else 0.0


def _step_sigma(k: int) -> float:
    """Sigma (in level ``k - 1`` pixels) applied before decimating to level ``k``."""
    return np.sqrt(_presmooth(k) ** 2 - _presmooth(k - 1) ** 2) / 2 ** (k - 1)


def _level_sigma(sigma: float, k: int) -> float:
    """Sigma still to apply, in level-``k`` pixels, to reach ``sigma`` from the level's image."""
    return float(np.sqrt(sigma**2 - _presmooth(k) ** 2)) / 2**k


def _gauss1d(a: np.ndarray, sigma: float, axis: int, step: int = 1) -> np.ndarray:
    """Gaussian along ``axis`` ('nearest' edges), keeping every ``step``-th sample."""
    r, m = _radius(sigma), -(-a.shape[axis] // step)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w = (w / w.sum()).astype(np.float32)
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    p = np.moveaxis(np.pad(a, pad, mode="edge"), axis, 0)
    out = p[r : r + step * (m - 1) + 1 : step] * w[r]
    tmp = np.empty_like(out)
    for j in range(1, r + 1):
        np.add(p[r - j : r - j + step * (m - 1) + 1 : step], p[r + j : r + j + step * (m - 1) + 1 : step], out=tmp)
        tmp *= w[r + j]
        out += tmp
    return np.moveaxis(out, 0, axis)


def _gauss(a: np.ndarray, sigma: float, step: int = 1) -> np.ndarray:
    return _gauss1d(_gauss1d(a, sigma, 0, step), sigma, 1, step)


def _upsample1d(a: np.ndarray, f: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of samples at ``f * j`` to ``n`` positions along ``axis``."""
    shape = list(a.shape)
    shape[axis] = n
    out = np.empty(shape, np.float32)
    b, o_all, m = np.moveaxis(a, axis, 0), np.moveaxis(out, axis, 0), a.shape[axis]
    for t in range(f):
        o = o_all[t::f]
        k = min(len(o), m - 1) if t else 0  # positions with a right-hand neighbour sample
        np.multiply(b[:k], np.float32(1 - t / f), out=o[:k])
        o[:k] += b[1 : k + 1] * np.float32(t / f)
        o[k:] = b[k : len(o)]  # sample positions themselves, and beyond the last sample
    return out


def _upsample(a: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling by ``f`` (sample ``j`` sits at pixel ``f * j``) to ``shape``."""
    if f == 1:
        return a
    return _upsample1d(_upsample1d(a, f, shape[1], 1), f, shape[0], 0)


def _diff(a: np.ndarray, axis: int, f: int = 1) -> np.ndarray:
    """Central difference ``(a[i+1] - a[i-1]) / (2 f)`` along ``axis``, edges replicated."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    out = np.empty_like(a)
    b, o = np.moveaxis(a, axis, 0), np.moveaxis(out, axis, 0)
    np.subtract(b[2:], b[:-2], out=o[1:-1])
    np.subtract(b[1], b[0], out=o[0])
    np.subtract(b[-1], b[-2], out=o[-1])
    out *= np.float32(0.5 / f)
    return out


def _diff2(a: np.ndarray, axis: int, f: int = 1) -> np.ndarray:
    """Second difference ``(a[i+1] - 2 a[i] + a[i-1]) / f**2`` along ``axis``, edges replicated."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    out = np.empty_like(a)
    b, o = np.moveaxis(a, axis, 0), np.moveaxis(out, axis, 0)
    np.add(b[2:], b[:-2], out=o[1:-1])
    o[1:-1] -= b[1:-1]
    o[1:-1] -= b[1:-1]
    np.subtract(b[1], b[0], out=o[0])
    np.subtract(b[-2], b[-1], out=o[-1])
    if f > 1:
        out *= np.float32(1 / f**2)
    return out


def _eig2x2(axx: np.ndarray, ayy: np.ndarray, axy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (larger, smaller) of the symmetric 2x2 matrices ``[[axx, axy], [axy, ayy]]``."""
    half_tr = axx + ayy
    half_tr *= 0.5
    d = axx - ayy
    d *= 0.5
    d *= d
    d += axy * axy
    np.sqrt(d, out=d)
    return half_tr + d, half_tr - d


def _put(buf: np.ndarray, planes: list[np.ndarray], k0: int) -> None:
    """``buf[..., k0 + j] = planes[j]``, in row blocks of ``buf`` small enough to stay in cache."""
    h, w, n_feat = buf.shape
    rows = max(1, (1 << 21) // (4 * w * n_feat))
    for r0 in range(0, h, rows):
        block = buf[r0 : r0 + rows]
        for j, plane in enumerate(planes):
            block[:, :, k0 + j] = plane[r0 : r0 + rows]


@register
class ClassicalFeatures(FeatureExtractor):
    """ilastik-style filter bank at several scales, per channel, float32.

    Parameters
    ----------
    sigmas : list of float
        Scales in pixels (default ``[0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0]``, as in ilastik).
    features : list of str
        Subset of ``"gaussian", "gradient", "log", "dog", "structure", "hessian"``
        (default ``["gaussian", "gradient", "hessian"]``); the output follows this order.
    include_raw : bool
        Also output the (unsmoothed) input channels (default False).

    Notes
    -----
    Per channel there is one feature per kind and scale (two for ``structure`` and
    ``hessian``); kinds other than ``gaussian`` skip ``sigma < 0.5``.  The defaults
    give 25 features per channel (75 for RGB); all six kinds give 49 per channel.
    Features are ordered channel, then sigma, then kind (see :meth:`feature_names`).

    Examples
    --------
    >>> import numpy as np
    >>> ex = ClassicalFeatures(sigmas=[1.0, 2.0], features=["gaussian", "hessian"])
    >>> img = np.random.default_rng(0).random((32, 40, 3), dtype=np.float32)
    >>> feats = ex.compute(img)
    >>> feats.shape, feats.dtype, ex.n_features(3)
    ((32, 40, 18), dtype('float32'), 18)
    >>> ex.feature_names(3)[:3]
    ['gaussian_s1_c0', 'hessian_eig1_s1_c0', 'hessian_eig2_s1_c0']
    """

    name = "classical"
    description = "Gaussian, gradient, LoG, DoG, structure-tensor and Hessian eigenvalues at several scales"
    gpu_worthy = False
    relative_cost = 1.0
    auto_candidate = True
    default_params = {"sigmas": list(DEFAULT_SIGMAS), "features": list(DEFAULT_FEATURES), "include_raw": False}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if not isinstance(p["sigmas"], (list, tuple)) or len(p["sigmas"]) > MAX_SIGMAS:
            raise ConfigError(f"classical: sigmas must be a list of at most {MAX_SIGMAS} numbers, "
                              f"got {str(p['sigmas'])[:60]}")
        if not isinstance(p["features"], (list, tuple, str)) or len(p["features"]) > 4 * len(KINDS):
            raise ConfigError(f"classical: features must be a list of {', '.join(KINDS)}; got {str(p['features'])[:60]}")
        try:
            sigmas = sorted({float(s) for s in p["sigmas"]})
            feats = [p["features"]] if isinstance(p["features"], str) else [str(k) for k in p["features"]]
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"classical: sigmas must be numbers, got {str(p['sigmas'])[:80]}") from None
        if not sigmas or not all(0 < s <= MAX_SIGMA for s in sigmas):
            raise ConfigError(f"classical: sigmas must be numbers in (0, {MAX_SIGMA:g}], got {str(p['sigmas'])[:80]}")
        unknown = set(feats) - set(KINDS)
        if unknown:
            raise ConfigError(f"classical: unknown feature kind(s) {str(sorted(unknown))[:80]}; known: {list(KINDS)}")
        feats = [k for k in KINDS if k in feats]
        self.params = {"sigmas": sigmas, "features": feats, "include_raw": bool(p["include_raw"])}
        if not self._layout(1):
            raise ConfigError("classical: this choice of features and sigmas gives no features")

    def _derivatives(self, sigma: float) -> bool:
        return sigma >= MIN_DERIVATIVE_SIGMA and bool(set(self.params["features"]) - {"gaussian", "dog"})

    @property
    def margin(self) -> int:
        m = 0
        for s in self.params["sigmas"]:
            k = _level(s)
            r = _radius(_level_sigma(s, k))
            if self._derivatives(s):
                r += 1 + (_radius(s / 2 / 2**k) if "structure" in self.params["features"] else 0)
            pyramid = sum(2 ** (j - 1) * _radius(_step_sigma(j)) for j in range(1, k + 1))
            m = max(m, pyramid + 2**k * (r + 1))
        return m + 2

    @property
    def align(self) -> int:
        return 2 ** _level(self.params["sigmas"][-1])

    def _layout(self, n_channels: int) -> list[tuple[int, float | None, str, str]]:
        """One ``(channel, sigma, kind, suffix)`` per output feature, in output order."""
        out = []
        for c in range(n_channels):
            if self.params["include_raw"]:
                out.append((c, None, "raw", ""))
            for s in self.params["sigmas"]:
                for kind in self.params["features"]:
                    if kind == "gaussian" or s >= MIN_DERIVATIVE_SIGMA:
                        out.extend((c, s, kind, suf) for suf in KINDS[kind])
        return out

    def n_features(self, n_channels: int) -> int:
        return len(self._layout(n_channels))

    def feature_names(self, n_channels: int) -> list[str]:
        return [f"{kind}{suf}" + (f"_s{s:g}" if s is not None else "") + f"_c{c}"
                for c, s, kind, suf in self._layout(n_channels)]

    def compute(self, image: np.ndarray) -> np.ndarray:
        """Features ``(H, W, F)`` float32: on CUDA through torch when a GPU is present, else NumPy."""
        from . import classical_torch

        if classical_torch.cuda_present():
            return classical_torch.compute(self, image, classical_torch.DEVICE)
        return self.compute_numpy(image)

    def compute_numpy(self, image: np.ndarray) -> np.ndarray:
        """The NumPy implementation (threads over channels and scales)."""
        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 2:
            img = img[..., None]
        h, w, n_ch = img.shape
        layout = self._layout(n_ch)
        buf = np.empty((h, w, len(layout)), np.float32)
        sigmas, kinds = self.params["sigmas"], self.params["features"]
        top = _level(sigmas[-1])

        def pyramid(c):  # levels[k]: channel smoothed by _presmooth(k), sampled every 2**k pixels
            levels = [np.ascontiguousarray(img[..., c])]
            for k in range(1, top + 1):
                levels.append(_gauss(levels[-1], _step_sigma(k), step=2))
            return levels

        def task(cs):
            c, s = cs
            ks = [i for i, e in enumerate(layout) if e[:2] == (c, s)]
            if not ks:
                return
            k = _level(s)
            base, f = levels[c][k], 2**k
            g = _gauss(base, _level_sigma(s, k))
            out = {"gaussian": g}
            if "dog" in kinds and s >= MIN_DERIVATIVE_SIGMA:
                out["dog"] = g - _gauss(base, _level_sigma(DOG_RATIO * s, k))
            if self._derivatives(s):
                gx, gy = _diff(g, 1, f), _diff(g, 0, f)
                if "gradient" in kinds:
                    out["gradient"] = np.sqrt(gx * gx + gy * gy)
                if "log" in kinds or "hessian" in kinds:
                    gxx, gyy = _diff2(g, 1, f), _diff2(g, 0, f)
                    if "log" in kinds:
                        out["log"] = gxx + gyy
                    if "hessian" in kinds:
                        out["hessian_eig1"], out["hessian_eig2"] = _eig2x2(gxx, gyy, _diff(gx, 0, f))
                if "structure" in kinds:
                    jxx, jyy, jxy = (_gauss(a, s / 2 / f) for a in (gx * gx, gy * gy, gx * gy))
                    out["structure_eig1"], out["structure_eig2"] = _eig2x2(jxx, jyy, jxy)
            _put(buf, [_upsample(out[layout[i][2] + layout[i][3]], f, (h, w)) for i in ks], ks[0])

        if self.params["include_raw"]:
            for c in range(n_ch):
                buf[..., layout.index((c, None, "raw", ""))] = img[..., c]
        tasks = sorted(((c, s) for c in range(n_ch) for s in sigmas), key=lambda t: -t[1])
        if N_THREADS > 1:
            with ThreadPoolExecutor(min(N_THREADS, len(tasks))) as pool:
                levels = list(pool.map(pyramid, range(n_ch)))
                list(pool.map(task, tasks))
        else:
            levels = [pyramid(c) for c in range(n_ch)]
            for t in tasks:
                task(t)
        return buf
