"""Speed and memory benchmark: segapp vs the scikit-image/Dash sample app's pipeline.

Usage::

    python bench/speed.py [--sizes 512 1024 4096] [--methods baseline classical effnet-lite0] [--repeats 3]

For each method and image size (an RGB image: scikit-image's astronaut resized)
it reports, per megapixel: feature extraction, training on ~1 % scribbles,
prediction of every pixel, "retrain + predict from cached features" (what the
web app does after each stroke; median of ``--repeats``), and the peak RSS of a
separate process that loads a trained model and predicts the whole image.
Each measurement runs in a fresh subprocess so peaks don't mix.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_image(size: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB test image of ``size``² and ~1 % scribbles of two classes (bright vs dark)."""
    from skimage import data, transform
    from skimage.color import rgb2gray

    img = (transform.resize(data.astronaut(), (size, size), order=1) * 255).astype(np.uint8)
    gray = rgb2gray(img)
    rng = np.random.default_rng(0)
    lab = np.zeros((size, size), np.uint8)
    n = int(0.01 * size * size)
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    lab[ys, xs] = np.where(gray[ys, xs] > np.median(gray), 2, 1)
    return img, lab


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_time(method: str, size: int, repeats: int) -> dict:
    img, lab = make_image(size)
    mp = size * size / 1e6
    if method == "baseline":
        from skimage.feature import multiscale_basic_features
        from sklearn.ensemble import RandomForestClassifier

        t0 = time.perf_counter()
        feats = multiscale_basic_features(img, channel_axis=-1)
        t_feat = time.perf_counter() - t0

        def fit():
            clf = RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1, random_state=0)
            return clf.fit(feats[lab > 0], lab[lab > 0])

        def predict(clf):
            return clf.predict(feats.reshape(-1, feats.shape[-1]))
    else:
        from segapp.segmenter import Segmenter

        seg = Segmenter(features=method)
        seg.extractor.compute(np.zeros((64, 64, 3), np.float32))  # load weights / warm up once, not timed
        t0 = time.perf_counter()
        seg.features(img)
        t_feat = time.perf_counter() - t0

        def fit():
            return seg.fit(img, lab)

        def predict(s):
            return s.predict(img)

    t0 = time.perf_counter()
    model = fit()
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    predict(model)
    t_pred = time.perf_counter() - t0
    loops = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(fit())
        loops.append(time.perf_counter() - t0)
    return {"feat_s_per_mp": t_feat / mp, "fit_s": t_fit, "predict_s_per_mp": t_pred / mp,
            "features_plus_predict_s": t_feat + t_pred, "retrain_predict_median_s_per_mp": statistics.median(loops) / mp,
            "peak_rss_mb_timing": peak_rss_mb()}


def child_memory(method: str, size: int) -> dict:
    """Train on a 512² crop, then predict the whole image; report peak RSS of this process."""
    img, lab = make_image(size)
    crop = (slice(0, 512), slice(0, 512))
    base_rss = peak_rss_mb()
    t0 = time.perf_counter()
    if method == "baseline":
        from skimage.feature import multiscale_basic_features
        from sklearn.ensemble import RandomForestClassifier

        f = multiscale_basic_features(img[crop], channel_axis=-1)
        clf = RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1, random_state=0)
        clf.fit(f[lab[crop] > 0], lab[crop][lab[crop] > 0])
        del f
        t0 = time.perf_counter()
        feats = multiscale_basic_features(img, channel_axis=-1)
        clf.predict(feats.reshape(-1, feats.shape[-1]))
    else:
        from segapp.features import FeatureCache
        from segapp.segmenter import Segmenter

        seg = Segmenter(features=method, cache=FeatureCache(max_bytes=0)).fit(img[crop], lab[crop])
        seg = Segmenter.load(seg.save())
        seg.extractor.compute(np.zeros((64, 64, 3), np.float32))
        t0 = time.perf_counter()
        seg.predict(img)
    return {"predict_full_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "rss_after_image_mb": base_rss}


def run_child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[512, 1024, 4096])
    ap.add_argument("--methods", nargs="*", default=["baseline", "classical", "effnet-lite0"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timing-max-size", type=int, default=1024, help="largest size for the timing runs")
    ap.add_argument("--data", help="unused (accepted for a uniform bench interface)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, method, size = args.child[0], args.child[1], int(args.child[2])
        res = child_time(method, size, args.repeats) if kind == "time" else child_memory(method, size)
        print(json.dumps(res))
        return

    cols = ["feat s/MP", "fit s", "predict s/MP", "feat+pred s", "retrain+pred s/MP", "peak RSS MB", "full-predict s"]
    print(f"{'size':>6} {'method':<16}" + "".join(f"{c:>18}" for c in cols))
    results = {}
    for size in args.sizes:
        for method in args.methods:
            t = run_child("time", method, size, "--repeats", args.repeats) if size <= args.timing_max_size else {}
            m = run_child("memory", method, size)
            results[(size, method)] = {**t, **m}
            r = results[(size, method)]
            vals = [r.get("feat_s_per_mp"), r.get("fit_s"), r.get("predict_s_per_mp"), r.get("features_plus_predict_s"),
                    r.get("retrain_predict_median_s_per_mp"), r.get("peak_rss_mb"), r.get("predict_full_s")]
            print(f"{size:>6} {method:<16}" + "".join(f"{v:>18.3f}" if isinstance(v, float) else f"{'-':>18}"
                                                      for v in vals) + (f"  {r['error']}" if "error" in r else ""),
                  flush=True)
    print("\nratios vs baseline (baseline / method; >1 = faster or smaller)")
    for size in args.sizes:
        b = results.get((size, "baseline"), {})
        for method in args.methods:
            if method == "baseline":
                continue
            r = results[(size, method)]
            parts = []
            for key, label in [("features_plus_predict_s", "features+predict"), ("predict_full_s", "full predict"),
                               ("peak_rss_mb", "peak RSS")]:
                if key in b and key in r and r[key]:
                    parts.append(f"{label} {b[key] / r[key]:.2f}x")
            print(f"  {size:>5} {method:<16} " + ", ".join(parts))


if __name__ == "__main__":
    main()
