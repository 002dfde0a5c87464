"""The one place for segapp's defaults: the engine, the CLI, the model file and the web app read them here.

Chosen on the benchmark suite (``bench/accuracy.py``: six datasets, interactive and
transfer protocols, 0.25-1 % scribbles, next to napari-convpaint and the scikit-image
pipeline in the same run) and checked leave-one-dataset-out (``bench/lodo.py``); see
``docs/benchmarks.md``.  Nothing here depends on a dataset: there are no per-dataset
switches.  In short: per-image standardisation is what makes a model transfer to new
images (percentiles follow the tails: saturated H&E whites, bright debris); the filter
bank plus EfficientNet-Lite0 is the most robust feature set (either alone fails on some
kind of image); the strongly bagged random forest beat gradient boosting and packs into
plain arrays for fast, safe inference.

Examples
--------
>>> from segapp import defaults
>>> defaults.classifier_params()["n_estimators"] > 0
True
"""

from __future__ import annotations

import copy

#: Feature extractor (a registered name or an ``a+b`` combination) and its parameters.
EXTRACTOR = "classical+effnet-lite0"
EXTRACTOR_PARAMS: dict = {}   # for a combination: one dict per part, e.g. {"classical": {"sigmas": [...]}}

#: Pixel classifier (see :mod:`segapp.classifiers`) and its parameters per kind.
CLASSIFIER = "random-forest"
CLASSIFIER_PARAMS = {
    "random-forest": {"n_estimators": 32, "max_depth": 10, "max_samples": 0.05, "class_weight": None},
    "extra-trees": {"n_estimators": 32, "max_depth": 10, "max_samples": 0.05, "class_weight": None},
}

#: Per-image normalisation applied before feature extraction (see :func:`segapp.io.normalize`).
NORMALIZATION = {"method": "standardize", "low": 1.0, "high": 99.8}

#: Colours of classes 1, 2, ... and the two classes a new session starts with.
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
CLASSES = [{"id": 1, "name": "Background", "color": PALETTE[0]},
           {"id": 2, "name": "Foreground", "color": PALETTE[1]}]

#: Splitting a foreground mask into objects (see :func:`segapp.postprocess.instances`).
#: ``min_distance`` and ``depth`` are fractions of the typical object radius (postprocess.object_scale).
#: ``min_area``: objects below this fraction of the typical object's area are noise and dropped.
OBJECTS = {"split_touching": True, "min_distance": 0.75, "depth": 0.15, "min_area": 0.1}


def classifier_params(kind: str | None = None) -> dict:
    """A fresh copy of the default parameters of classifier ``kind`` (the default classifier if None)."""
    return copy.deepcopy(CLASSIFIER_PARAMS.get(kind or CLASSIFIER, {}))


def classical_sigma_range() -> list[float]:
    """``[smallest, largest]`` default scale of the classical filter bank (the web app's slider)."""
    from .features.classical import DEFAULT_SIGMAS

    params = EXTRACTOR_PARAMS.get("classical", {}) if "+" in EXTRACTOR else EXTRACTOR_PARAMS
    sigmas = params.get("sigmas", DEFAULT_SIGMAS) if "classical" in EXTRACTOR else DEFAULT_SIGMAS
    return [float(min(sigmas)), float(max(sigmas))]
