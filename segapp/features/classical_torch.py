"""The classical filter bank in torch, for CUDA: the same numbers as :mod:`segapp.features.classical`.

Every step mirrors the NumPy implementation (edge-padded separable Gaussians
sampled every ``step`` pixels, the Gaussian pyramid, central differences with
one-sided edges, linear upsampling with samples at ``f * j``, closed-form 2x2
eigenvalues), so the output matches it within float32 rounding on any device;
the tests run it with ``device="cpu"``.  :func:`cuda_present` decides, without
importing torch on machines that have no NVIDIA driver, whether
:class:`~segapp.features.classical.ClassicalFeatures` hands its work to this
module.  The device is always resolved here, on this machine, never read from a
model file.

Examples
--------
>>> import numpy as np
>>> from segapp.features.classical import ClassicalFeatures
>>> ex = ClassicalFeatures(sigmas=[1.0, 5.0], features=["gaussian", "gradient", "hessian", "structure"])
>>> img = np.random.default_rng(0).random((40, 52, 2), dtype=np.float32)
>>> bool(np.allclose(compute(ex, img, "cpu"), ex.compute_numpy(img), atol=1e-4))
True
"""

from __future__ import annotations

import functools
import os

import numpy as np

from . import classical as C

DEVICE = "cuda"  # where ClassicalFeatures.compute sends its work when cuda_present() (tests: "cpu")


@functools.lru_cache(maxsize=1)
def cuda_present() -> bool:
    """True when a CUDA device is usable (torch is imported only if an NVIDIA driver is installed)."""
    if os.environ.get("SEGAPP_DEVICE", "").lower() == "cpu":
        return False
    if not (os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return False
    return bool(torch.cuda.is_available())


def _gauss1d(a, sigma: float, axis: int, step: int = 1):
    import torch
    import torch.nn.functional as F

    r = C._radius(sigma)
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    w = torch.tensor((w / w.sum()).astype(np.float32), device=a.device)
    x = a.movedim(axis, -1)  # (..., n)
    shape = x.shape
    x = x.reshape(-1, 1, shape[-1])
    x = F.pad(x, (r, r), mode="replicate")
    out = F.conv1d(x, w.view(1, 1, -1), stride=step)
    return out.reshape(*shape[:-1], out.shape[-1]).movedim(-1, axis)


def _gauss(a, sigma: float, step: int = 1):
    return _gauss1d(_gauss1d(a, sigma, 0, step), sigma, 1, step)


def _upsample1d(a, f: int, n: int, axis: int):
    import torch

    m = a.shape[axis]
    p = torch.arange(n, device=a.device)
    j = torch.div(p, f, rounding_mode="floor")
    j1 = torch.clamp(j + 1, max=m - 1)
    t = ((p % f).to(torch.float32) / f)
    shape = [1] * a.ndim
    shape[axis] = n
    t = t.view(shape)
    return a.index_select(axis, j) * (1 - t) + a.index_select(axis, j1) * t


def _upsample(a, f: int, shape):
    if f == 1:
        return a
    return _upsample1d(_upsample1d(a, f, shape[1], 1), f, shape[0], 0)


def _diff(a, axis: int, f: int = 1):
    import torch

    if a.shape[axis] < 2:
        return torch.zeros_like(a)
    b = a.movedim(axis, 0)
    out = torch.cat([b[1:2] - b[0:1], b[2:] - b[:-2], b[-1:] - b[-2:-1]], 0) * np.float32(0.5 / f)
    return out.movedim(0, axis)


def _diff2(a, axis: int, f: int = 1):
    import torch

    if a.shape[axis] < 2:
        return torch.zeros_like(a)
    b = a.movedim(axis, 0)
    out = torch.cat([b[1:2] - b[0:1], b[2:] + b[:-2] - b[1:-1] - b[1:-1], b[-2:-1] - b[-1:]], 0)
    if f > 1:
        out = out * np.float32(1 / f**2)
    return out.movedim(0, axis)


def _eig2x2(axx, ayy, axy):
    half_tr = (axx + ayy) * 0.5
    d = ((axx - ayy) * 0.5) ** 2 + axy * axy
    d = d.sqrt()
    return half_tr + d, half_tr - d


def compute(ex, image: np.ndarray, device: str = "cuda") -> np.ndarray:
    """Features of ``image`` (H, W, C) float32 with ``ex``'s settings, computed by torch on ``device``."""
    import torch

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    h, w, n_ch = img.shape
    layout = ex._layout(n_ch)
    sigmas, kinds = ex.params["sigmas"], ex.params["features"]
    top = C._level(sigmas[-1])
    out = np.empty((h, w, len(layout)), np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, 0))).to(device)
        planes = {}
        for c in range(n_ch):
            levels = [x[c]]
            for k in range(1, top + 1):
                levels.append(_gauss(levels[-1], C._step_sigma(k), step=2))
            if ex.params["include_raw"]:
                planes[(c, None, "raw", "")] = x[c]
            for s in sigmas:
                k = C._level(s)
                base, f = levels[k], 2**k
                g = _gauss(base, C._level_sigma(s, k))
                res = {"gaussian": g}
                if "dog" in kinds and s >= C.MIN_DERIVATIVE_SIGMA:
                    res["dog"] = g - _gauss(base, C._level_sigma(C.DOG_RATIO * s, k))
                if ex._derivatives(s):
                    gx, gy = _diff(g, 1, f), _diff(g, 0, f)
                    if "gradient" in kinds:
                        res["gradient"] = (gx * gx + gy * gy).sqrt()
                    if "log" in kinds or "hessian" in kinds:
                        gxx, gyy = _diff2(g, 1, f), _diff2(g, 0, f)
                        if "log" in kinds:
                            res["log"] = gxx + gyy
                        if "hessian" in kinds:
                            res["hessian_eig1"], res["hessian_eig2"] = _eig2x2(gxx, gyy, _diff(gx, 0, f))
                    if "structure" in kinds:
                        jxx, jyy, jxy = (_gauss(a, s / 2 / f) for a in (gx * gx, gy * gy, gx * gy))
                        res["structure_eig1"], res["structure_eig2"] = _eig2x2(jxx, jyy, jxy)
                for kind, t in res.items():
                    name, suf = (kind, "") if kind in C.KINDS else (kind[:-5], kind[-5:])  # "_eig1"/"_eig2"
                    planes[(c, s, name, suf)] = _upsample(t, f, (h, w))
        stack = torch.stack([planes[e] for e in layout], -1)
        out[:] = stack.cpu().numpy()
    return out
