"""Speed and memory benchmark: segapp vs the scikit-image/Dash sample app's pipeline.

Usage::

    python bench/speed.py [--sizes 512 1024 4096] [--methods baseline classical effnet-lite0] [--repeats 3]
                          [--sections cli stages inference table]

Sections (all by default):

- ``cli``: the whole-process figure — 8 x 1 MP RGB images, ``python -m segapp train`` then
  ``python -m segapp predict`` as subprocesses, next to the same two steps of the scikit-image
  pipeline (``bench/skimage_pipeline.py``) in the same run; median of ``--cli-repeats``, the two
  alternating so that both see the same machine load.
- ``stages``: where the time goes, per stage (read, normalise, features, fit, predict_proba,
  write), for segapp (in-process) and for the peer (its own ``--stages`` report).
- ``inference``: forest inference alone on 1 MP and 9 MP of features — scikit-learn's
  ``predict_proba`` (n_jobs=-1) vs segapp's packed forest on ONNX Runtime (all cores, one core) and
  its NumPy evaluator.
- ``table``: the per-size table below.

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
import os
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


CLI_IMAGES = 8


def cli_dataset(root: Path, n: int = CLI_IMAGES, size: int = 1024) -> tuple[list[Path], list[Path]]:
    """``n`` different 1 MP RGB images (scikit-image photographs, flipped/rotated) with ~1 % scribbles."""
    from PIL import Image
    from skimage import data, transform
    from skimage.color import rgb2gray

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.immunohistochemistry()]
    images, labels = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        src = sources[i % len(sources)]
        src = np.rot90(src, i // len(sources)) if i >= len(sources) else src
        img = (transform.resize(src, (size, size), order=1) * 255).astype(np.uint8)
        gray = rgb2gray(img)
        lab = np.zeros((size, size), np.uint8)
        k = int(0.01 * size * size)
        ys, xs = rng.integers(0, size, k), rng.integers(0, size, k)
        lab[ys, xs] = np.where(gray[ys, xs] > np.median(gray), 2, 1)
        images.append(root / f"img{i}.png")
        labels.append(root / f"img{i}_labels.png")
        Image.fromarray(img).save(images[-1])
        Image.fromarray(lab).save(labels[-1])
    return images, labels


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {out.stderr.strip()[-500:]}")
    return time.perf_counter() - t0, out.stderr


def cli_section(repeats: int) -> dict:
    """Whole CLI processes, train + predict of 8 x 1 MP, segapp vs the scikit-image pipeline."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="segapp-cli-bench-"))
    images, labels = cli_dataset(root)
    pairs = [a for im, lab in zip(images, labels) for a in ("--image", str(im), "--labels", str(lab))]
    py, peer = sys.executable, str(ROOT / "bench" / "skimage_pipeline.py")
    runs = {
        "segapp": ([py, "-m", "segapp", "train", *pairs, "--out", str(root / "m.segapp")],
                   [py, "-m", "segapp", "predict", "--model", str(root / "m.segapp"), "--out-dir", str(root / "a"),
                    *map(str, images)]),
        "segapp --features classical": (
            [py, "-m", "segapp", "train", *pairs, "--features", "classical", "--out", str(root / "c.segapp")],
            [py, "-m", "segapp", "predict", "--model", str(root / "c.segapp"), "--out-dir", str(root / "c"),
             *map(str, images)]),
        "scikit-image pipeline": ([py, peer, "train", *pairs, "--out", str(root / "m.pkl"), "--stages"],
                                  [py, peer, "predict", "--model", str(root / "m.pkl"), "--out-dir", str(root / "b"),
                                   "--stages", *map(str, images)]),
    }
    times = {name: {"train": [], "predict": []} for name in runs}
    peer_stages = []
    for _ in range(repeats):
        for name, (train, predict) in runs.items():
            t_train, err_t = _timed(train)
            t_pred, err_p = _timed(predict)
            times[name]["train"].append(t_train)
            times[name]["predict"].append(t_pred)
            if not name.startswith("segapp"):
                peer_stages.append([json.loads(e.strip().splitlines()[-1]) for e in (err_t, err_p)])
    print(f"\nwhole CLI processes: train on {CLI_IMAGES} x 1 MP RGB, then predict them (median of {repeats})")
    print(f"{'pipeline':<30}{'train s':>10}{'predict s':>11}{'total s':>10}")
    res = {}
    for name, t in times.items():
        tr, pr = statistics.median(t["train"]), statistics.median(t["predict"])
        tot = statistics.median([a + b for a, b in zip(t["train"], t["predict"])])
        res[name] = tot
        print(f"{name:<30}{tr:>10.2f}{pr:>11.2f}{tot:>10.2f}")
    for name in (n for n in res if n.startswith("segapp")):
        print(f"{name} speed-up (peer total / its total): {res['scikit-image pipeline'] / res[name]:.2f}x")
    return {"times": times, "peer_stages": peer_stages}


def stages_child() -> dict:
    """Per-stage seconds of segapp's CLI work, in-process (train on 8 images, predict them)."""
    import tempfile

    from segapp import io
    from segapp.features import FeatureCache
    from segapp.segmenter import Segmenter

    root = Path(tempfile.mkdtemp(prefix="segapp-stages-"))
    images, labels = cli_dataset(root)
    st = {}

    def add(name, t0):
        st[name] = st.get(name, 0.0) + time.perf_counter() - t0

    t0 = time.perf_counter()
    imgs = [io.read_image(p) for p in images]
    labs = [io.read_labels(p) for p in labels]
    add("read", t0)
    seg = Segmenter(cache=FeatureCache(0))
    t0 = time.perf_counter()
    norm = [seg.normalize(im) for im in imgs]
    add("normalise", t0)
    t0 = time.perf_counter()
    feats = [seg.extractor.compute(n) for n in norm]
    add("features", t0)
    cache = FeatureCache(8 * 1024**3)
    seg.cache = cache
    for im, f in zip(imgs, feats):  # hand the computed stacks to the cache: fit/predict time alone
        start = 0
        for part in getattr(seg.feature_tiles(im), "parts", None) or [seg.feature_tiles(im)]:  # "a+b": per part
            for index in part.grid:
                y0, y1, x0, x1 = part.grid.box(index)
                cache.put(part.digest, part.key, index,
                          np.ascontiguousarray(f[y0:y1, x0:x1, start:start + part.n_features]))
            start += part.n_features
    del feats
    t0 = time.perf_counter()
    seg.fit(imgs, labs)
    add("fit", t0)
    probas = []
    t0 = time.perf_counter()
    for im in imgs:
        probas.append(seg.predict_proba(im))
    add("predict_proba", t0)
    t0 = time.perf_counter()
    for im, p in zip(imgs, probas):
        io.write_labels(root / "out.png", seg.predict(im, proba=p))
    add("write", t0)
    return st


def stages_section(peer_stages: list) -> None:
    seg = run_child("stages", "-", 0)
    peer = {}
    for train, pred in peer_stages[:1]:
        for d in (train, pred):
            for k, v in d.items():
                peer[k] = peer.get(k, 0.0) + v
    print(f"\nper stage, seconds for train + predict of {CLI_IMAGES} x 1 MP RGB (segapp in-process; peer from its runs)")
    print(f"{'stage':<16}{'segapp':>10}{'peer':>10}")
    for k in ("import", "read", "normalise", "features", "fit", "predict_proba", "write"):
        a, b = seg.get(k), peer.get(k)
        print(f"{k:<16}" + "".join(f"{v:>10.2f}" if isinstance(v, float) else f"{'-':>10}" for v in (a, b)))


def inference_child(mp: int) -> dict:
    """Forest inference alone on ``mp`` megapixels of classical features (1 MP computed, repeated)."""
    from segapp.forest import Forest, default_threads
    from segapp.segmenter import Segmenter

    img, lab = make_image(1024)
    seg = Segmenter(features="classical")  # the 75 features the table names (the default has 227)
    feats = seg.features(img).reshape(-1, 75)
    seg.fit(img, lab)
    clf, forest = seg.classifier_, seg.predictor_
    one = Forest.from_arrays(forest.to_arrays())
    one.threads = 1
    ways = {"scikit-learn predict_proba": clf.predict_proba,
            f"ONNX Runtime, {default_threads()} threads": forest.predict_proba,
            "ONNX Runtime, 1 thread": one.predict_proba,
            "NumPy packed forest": forest.predict_proba_numpy}
    out = {k: [] for k in ways}
    for _ in range(3):
        for name, fn in ways.items():
            if name.startswith("NumPy") and (mp > 1 and out[name]):
                continue
            t0 = time.perf_counter()
            for _ in range(mp):
                for s in range(0, feats.shape[0], 262_144):
                    fn(feats[s:s + 262_144])
            out[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in out.items()}


def inference_section() -> None:
    print("\nforest inference alone (32 trees, depth 10, 75 classical features; median of 3)")
    rows = {mp: run_child("inference", "-", mp) for mp in (1, 9)}
    names = list(rows[1])
    print(f"{'predictor':<32}" + "".join(f"{f'{mp} MP s':>10}{'speed-up':>10}" for mp in rows))
    for n in names:
        cells = ""
        for mp, r in rows.items():
            base = r["scikit-learn predict_proba"]
            cells += f"{r[n]:>10.2f}{base / r[n]:>9.2f}x" if n in r else f"{'-':>20}"
        print(f"{n:<32}{cells}")


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
    ap.add_argument("--sections", nargs="*", default=["cli", "stages", "inference", "table"])
    ap.add_argument("--cli-repeats", type=int, default=3)
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, method, size = args.child[0], args.child[1], int(args.child[2])
        res = {"time": lambda: child_time(method, size, args.repeats), "memory": lambda: child_memory(method, size),
               "stages": stages_child, "inference": lambda: inference_child(size)}[kind]()
        print(json.dumps(res))
        return
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    peer_stages = []
    if "cli" in args.sections:
        peer_stages = cli_section(args.cli_repeats)["peer_stages"]
    if "stages" in args.sections:
        stages_section(peer_stages)
    if "inference" in args.sections:
        inference_section()
    if "table" not in args.sections:
        return
    print()

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
