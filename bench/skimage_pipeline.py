"""The scikit-image/Dash sample app's pipeline as a command line: the peer of ``python -m segapp``.

Usage::

    python bench/skimage_pipeline.py train --image A.png --labels A_lab.png [...] --out model.pkl
    python bench/skimage_pipeline.py predict --model model.pkl --out-dir DIR IMG [IMG ...]

``multiscale_basic_features`` on the raw image (channels last) + ``RandomForestClassifier(
n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1)``, as in ``bench/accuracy.py``;
the model is a pickle (this is a benchmark peer, not something to load from strangers).
``--stages`` prints per-stage seconds as JSON on stderr.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

STAGES: dict[str, float] = {}


class stage:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        STAGES[self.name] = STAGES.get(self.name, 0.0) + time.perf_counter() - self.t0


def features(img):
    from skimage.feature import multiscale_basic_features

    return multiscale_basic_features(img, channel_axis=-1 if img.ndim == 3 else None)


def main(argv=None):
    with stage("import"):
        from PIL import Image
        from sklearn.ensemble import RandomForestClassifier
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["train", "predict"])
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--labels", action="append", default=[])
    ap.add_argument("--out")
    ap.add_argument("--model")
    ap.add_argument("--out-dir")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("images", nargs="*")
    a = ap.parse_intermixed_args(argv)
    if a.command == "train":
        xs, ys = [], []
        for ip, lp in zip(a.image, a.labels):
            with stage("read"):
                img, lab = np.asarray(Image.open(ip))[..., :3], np.asarray(Image.open(lp))
            with stage("features"):
                f = features(img)
            xs.append(f[lab > 0])
            ys.append(lab[lab > 0])
        with stage("fit"):
            clf = RandomForestClassifier(n_estimators=50, max_depth=10, max_samples=0.05, n_jobs=-1, random_state=0)
            clf.fit(np.concatenate(xs), np.concatenate(ys))
        with stage("write"):
            Path(a.out).write_bytes(pickle.dumps(clf))
    else:
        with stage("read"):
            clf = pickle.loads(Path(a.model).read_bytes())
        out = Path(a.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for ip in a.images:
            with stage("read"):
                img = np.asarray(Image.open(ip))[..., :3]
            with stage("features"):
                f = features(img)
            with stage("predict_proba"):
                proba = clf.predict_proba(f.reshape(-1, f.shape[-1]))
            with stage("write"):
                pred = clf.classes_[proba.argmax(1)].reshape(img.shape[:2]).astype(np.uint8)
                Image.fromarray(pred).save(out / f"{Path(ip).stem}.png")
    if a.stages:
        print(json.dumps(STAGES), file=sys.stderr)


if __name__ == "__main__":
    main()
