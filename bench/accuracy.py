"""Accuracy benchmark: segapp's extractors and ``auto`` vs the scikit-image baseline.

Usage::

    python bench/accuracy.py --data ../shared/data [--densities 0.0025 0.01 0.025]
                             [--datasets isbi2012 drive ...] [--methods classical auto baseline ...]

For each dataset under ``--data`` (``<name>/images/*.png`` + ``<name>/masks/*.png``)
and each scribble density, two protocols:

- *interactive*: scribble on an image, segment that same image;
- *transfer*: scribble on two images, train on both, segment the others.

Scores are mIoU against the ground truth (DRIVE: inside its field of view).
The baseline is the scikit-image/Dash sample app's pipeline:
``multiscale_basic_features`` on the raw image + ``RandomForestClassifier(
n_estimators=50, max_depth=10, max_samples=0.05)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scribbles import simulate_scribbles  # noqa: E402

from segapp import io  # noqa: E402
from segapp.metrics import mean_iou  # noqa: E402
from segapp.segmenter import Segmenter  # noqa: E402

METHODS = ["baseline", "classical", "effnet-lite0", "classical+effnet-lite0", "auto"]


class Baseline:
    """The sample app's pipeline, unchanged: no normalisation, skimage features, small RF."""

    def __init__(self):
        self._feats = {}

    def features(self, image):
        from skimage.feature import multiscale_basic_features

        key = io.image_digest(image)
        if key not in self._feats:
            ch = -1 if image.ndim == 3 and image.shape[-1] > 1 else None
            img = image[..., 0] if image.ndim == 3 and ch is None else image
            self._feats[key] = multiscale_basic_features(img, channel_axis=ch).astype(np.float32)
        return self._feats[key]

    def fit_predict(self, train_images, train_labels, test_images):
        from sklearn.ensemble import RandomForestClassifier

        X = np.concatenate([self.features(im)[lab > 0] for im, lab in zip(train_images, train_labels)])
        y = np.concatenate([lab[lab > 0] for lab in train_labels])
        clf = RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1, random_state=0)
        clf.fit(X, y)
        out = []
        for im in test_images:
            f = self.features(im)
            out.append(clf.predict(f.reshape(-1, f.shape[-1])).reshape(f.shape[:2]))
        return out


def load_dataset(root: Path, max_images: int):
    """Images (raw arrays), ground truth as classes 1..K, and optional validity masks."""
    items = []
    for p in sorted((root / "images").glob("*.png"))[:max_images]:
        mask = np.array(Image.open(root / "masks" / p.name))
        values = np.unique(mask)
        gt = (np.searchsorted(values, mask) + 1).astype(np.uint8)
        fov = root / "fov" / p.name
        valid = np.array(Image.open(fov)) > 0 if fov.exists() else None
        img = io.read_image(p)
        items.append((p.name, img[..., 0] if img.shape[-1] == 1 else img, gt, valid))
    return items


def score(pred, gt, valid):
    if valid is not None:
        return mean_iou(pred[valid], gt[valid])
    return mean_iou(pred, gt)


def run_protocol(method, engines, train, test, density, seed):
    """Train on scribbles of ``train`` items, score predictions on ``test`` items."""
    labels = [simulate_scribbles(gt, density, seed=seed + i, valid=valid)
              for i, (_, _, gt, valid) in enumerate(train)]
    images = [img for _, img, _, _ in train]
    t0 = time.perf_counter()
    if method == "baseline":
        preds = engines["baseline"].fit_predict(images, labels, [img for _, img, _, _ in test])
        chosen = ""
    else:
        seg = Segmenter(features=method, cache=engines["cache"], **engines.get("params", {}))
        seg.fit(images, labels)
        preds = [seg.predict(img) for _, img, _, _ in test]
        chosen = seg.auto_report["chosen"] if seg.auto_report else ""
    seconds = time.perf_counter() - t0
    scores = [score(p, gt, valid) for p, (_, _, gt, valid) in zip(preds, test)]
    return float(np.mean(scores)), seconds, chosen


def main(argv=None):
    from segapp.features import FeatureCache

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--densities", nargs="*", type=float, default=[0.0025, 0.01, 0.025])
    ap.add_argument("--methods", nargs="*", default=METHODS)
    ap.add_argument("--interactive-images", type=int, default=2, help="images scored in the interactive protocol")
    ap.add_argument("--transfer-test", type=int, default=3, help="images segmented in the transfer protocol")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trees", type=int, default=32, help="segapp's forest size (the baseline keeps 50)")
    ap.add_argument("--json", type=Path, help="also write all rows as JSON here")
    args = ap.parse_args(argv)

    datasets = args.datasets or sorted(p.name for p in args.data.iterdir() if (p / "images").is_dir())
    rows = []
    header = f"{'dataset':<20}{'protocol':<12}{'density':>8}  " + "".join(f"{m:>24}" for m in args.methods)
    print(header)
    print("-" * len(header))
    for name in datasets:
        n = max(args.interactive_images, 2 + args.transfer_test)
        items = load_dataset(args.data / name, n)
        engines = {"baseline": Baseline(), "cache": FeatureCache(max_bytes=12 * 1024**3),
                   "params": {"n_estimators": args.trees}}
        for density in args.densities:
            for protocol in ("interactive", "transfer"):
                cells = {}
                for method in args.methods:
                    if protocol == "interactive":
                        res = [run_protocol(method, engines, [it], [it], density, args.seed + 7 * k)
                               for k, it in enumerate(items[:args.interactive_images])]
                        miou = float(np.mean([r[0] for r in res]))
                        secs = float(np.sum([r[1] for r in res]))
                        chosen = ",".join(sorted({r[2] for r in res if r[2]}))
                    else:
                        miou, secs, chosen = run_protocol(method, engines, items[:2], items[2:2 + args.transfer_test],
                                                          density, args.seed)
                    cells[method] = miou
                    rows.append({"dataset": name, "protocol": protocol, "density": density, "method": method,
                                 "miou": miou, "seconds": secs, "chosen": chosen})
                line = f"{name:<20}{protocol:<12}{100 * density:>7.2f}%  "
                line += "".join(f"{cells[m]:>24.3f}" for m in args.methods)
                print(line, flush=True)
    summarize(rows, args.methods)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def summarize(rows, methods):
    """Mean mIoU over datasets and protocols at 0.25-1 % scribbles; differences vs baseline."""
    low = [r for r in rows if r["density"] <= 0.0101]
    if not low or "baseline" not in methods:
        return
    print("\nmean mIoU at 0.25-1 % scribbles (all datasets, both protocols)")
    base = {(r["dataset"], r["protocol"], r["density"]): r["miou"] for r in low if r["method"] == "baseline"}
    for m in methods:
        mine = [r for r in low if r["method"] == m]
        diffs = [r["miou"] - base[(r["dataset"], r["protocol"], r["density"])] for r in mine]
        per_ds = {}
        for r, d in zip(mine, diffs):
            per_ds.setdefault(r["dataset"], []).append(d)
        worst = min((np.mean(v), k) for k, v in per_ds.items())
        median_s = np.median([r["seconds"] for r in mine])
        chosen = {}
        for r in mine:
            for c in filter(None, r["chosen"].split(",")):
                chosen[c] = chosen.get(c, 0) + 1
        print(f"  {m:<24} mIoU {np.mean([r['miou'] for r in mine]):.3f}   vs baseline {np.mean(diffs):+.3f}   "
              f"worst dataset {worst[1]} {worst[0]:+.3f}   median fit+predict {median_s:.2f} s"
              + (f"   chose {chosen}" if chosen else ""))


if __name__ == "__main__":
    main()
