"""Cost of the default in the stroke loop: first feature extraction, then retrain (+ predict) with cached features.

Usage::

    nice -n 10 python bench/default_cost.py [--repeats 5] [--size 1024]

A 1 MP RGB image, ~1 % scribbles.  Compares, in the same run, the default (prior
correction on), the default with the correction off, the previous default (three
filter kinds, ``max_features="sqrt"``, no correction) and the filter bank alone.
After the first extraction the features are cached (as the web app's tile cache
holds them after the first stroke), so the retrain times are the classifier's: the
fit and, with the correction, the sample of unpainted pixels it predicts.  Medians
of ``--repeats`` (first extraction: of 3 fresh caches, after loading the network once).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segapp import defaults  # noqa: E402
from segapp.features import FeatureCache  # noqa: E402
from segapp.segmenter import Segmenter  # noqa: E402

VARIANTS = {
    "default": {},
    "default, correction off": {"prior_correction": 0},
    "previous default": {"feature_params": {"classical": {"features": ["gaussian", "gradient", "hessian"]}},
                         "classifier_params": {"max_features": "sqrt", "prior_correction": 0}},
    "filter bank alone (classical)": {"features": "classical"},
}


def scribbles(shape, rng) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    for c in (1, 2):
        for _ in range(40):
            y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 44)
            lab[y:y + 3, x:x + 40] = c
    return lab


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=1024)
    args = ap.parse_args(argv)
    from skimage import data, transform

    img = transform.resize(data.astronaut(), (args.size, args.size), preserve_range=True).astype(np.uint8)
    lab = scribbles(img.shape[:2], np.random.default_rng(0))
    Segmenter(cache=FeatureCache()).feature_tiles(img[:256, :256]).compute()   # load the network once
    print(f"# {args.size}x{args.size} RGB, {np.count_nonzero(lab)} painted pixels, extractor {defaults.EXTRACTOR}, "
          f"load {os.getloadavg()[0]:.1f}")
    print("| variant | features | first extraction s | retrain s (median) | retrain + predict s (median) |")
    print("|---|---|---|---|---|")
    for name, kw in VARIANTS.items():
        firsts = []
        for _ in range(min(3, args.repeats)):   # fresh caches: the first stroke's extraction
            seg = Segmenter(cache=FeatureCache(max_bytes=4 * 1024**3), **kw)
            t0 = time.perf_counter()
            seg.feature_tiles(img).compute()    # cached from here on, as after the first stroke
            firsts.append(time.perf_counter() - t0)
        first = float(np.median(firsts))
        fit, both = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            seg.fit(img, lab)
            t1 = time.perf_counter()
            seg.predict(img)
            t2 = time.perf_counter()
            fit.append(t1 - t0)
            both.append(t2 - t0)
        print(f"| {name} | {seg.training_info['n_features']} | {first:.1f} | {np.median(fit):.2f} | {np.median(both):.2f} |",
              flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
