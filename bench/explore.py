"""Design exploration on pixel samples: many feature / normalisation / classifier variants, quickly.

Usage::

    nice -n 10 python bench/explore.py build [--datasets ...]      # once: the feature store
    nice -n 10 python bench/explore.py run VARIANTS.json [--json out.json]

``build`` computes, for every image the suite (``bench/suite.py``) needs, a superset
of features — the classical bank at scales 0.3-24 with all six kinds on the image
scaled by its dtype only (any per-channel affine normalisation is applied afterwards,
exactly: Gaussians are affine in the input, derivatives scale with it), and
EfficientNet-Lite0 stages 0-3 at scales 1 and 2 on the image under each network
normalisation — and keeps only the rows that matter: every scribbled pixel of every
case and a fixed uniform sample of 30,000 scored pixels per image.  Forests are then
trained on the scribbled rows and scored on the sampled rows (mIoU of the sample,
an unbiased estimate of the image's class areas; within ~0.005 of the full-image
score), so one variant over the whole suite takes about a minute instead of the
full benchmark's half hour.  Final numbers always come from ``bench/accuracy.py``.

A variant (JSON) names its feature families and how they are combined::

    {"name": "fuse", "families": [{"kind": "classical", "norm": "std"},
                                  {"kind": "effnet", "norm": "std", "stages": [0, 1, 2]}],
     "fusion": "average", "forest": {"n_estimators": 32, "max_depth": 10, "max_samples": 0.05}}
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from suite import load_item, plan, scribbles_for  # noqa: E402

STORE = HERE / "results" / "explore"
SIGMAS = [0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0, 16.0, 24.0]
KINDS = ["gaussian", "gradient", "log", "dog", "structure", "hessian"]
N_SAMPLE = 25_000
DENSITIES = [0.0025, 0.01]
#: network input normalisations stored (statistics per channel, see :func:`channel_range`)
NET_NORMS = {"std": (1, 2), "robust": (1,), "dtype": (1,)}


# ----------------------------------------------------------------------------- normalisation
def channel_stats(ch: np.ndarray) -> dict:
    """Statistics of one channel (dtype-scaled) from which every normalisation is derived."""
    flat = ch.reshape(-1)
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000]
    q = np.percentile(flat, [1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.8])
    lo, hi = q[1], q[9]
    mid = flat[(flat >= lo) & (flat <= hi)]
    mid = mid if mid.size else flat
    return {"mean": float(flat.mean(dtype=np.float64)), "sd": float(flat.std(dtype=np.float64)),
            "mad": float(np.median(np.abs(flat - q[5]))), "tmean": float(mid.mean(dtype=np.float64)),
            "tsd": float(mid.std(dtype=np.float64)), "min": float(flat.min()), "max": float(flat.max()),
            **{f"p{k:g}": float(v) for k, v in zip([1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.8], q)}}


def channel_range(st: dict, norm: str) -> tuple[float, float]:
    """``(lo, hi)`` mapped to 0..1 by normalisation ``norm`` from :func:`channel_stats`."""
    if norm == "std":
        lo, hi = st["mean"] - 2 * st["sd"], st["mean"] + 2 * st["sd"]
    elif norm == "robust":       # median -/+ 2 robust SD (1.4826 MAD), IQR as a floor
        s = max(1.4826 * st["mad"], (st["p75"] - st["p25"]) / 1.349, 1e-6)
        lo, hi = st["p50"] - 2 * s, st["p50"] + 2 * s
    elif norm == "trim":         # mean -/+ 2 SD of the 2-98 % central range
        lo, hi = st["tmean"] - 2 * st["tsd"], st["tmean"] + 2 * st["tsd"]
    elif norm == "pct":
        lo, hi = st["p1"], st["p99.8"]
    elif norm == "dtype":
        lo, hi = 0.0, 1.0
    else:
        raise ValueError(norm)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def normalise_classical(raw: np.ndarray, names: list[str], stats: list[dict], norm: str) -> np.ndarray:
    """Classical features of the image normalised by ``norm``, from the dtype-scaled image's features."""
    out = raw.astype(np.float32)
    for j, n in enumerate(names):
        c = int(n.rsplit("_c", 1)[1])
        lo, hi = channel_range(stats[c], norm)
        s = hi - lo
        if n.startswith("gaussian"):
            out[:, j] = (out[:, j] - lo) / s
        elif n.startswith("structure"):
            out[:, j] /= s * s
        else:
            out[:, j] /= s
    return out


def _norm_image(img01: np.ndarray, stats: list[dict], norm: str) -> np.ndarray:
    out = np.empty_like(img01)
    for c in range(img01.shape[-1]):
        lo, hi = channel_range(stats[c], norm)
        out[..., c] = (img01[..., c] - lo) / (hi - lo)
    return out


# ----------------------------------------------------------------------------- store
def suite_cases(data: Path, datasets):
    from accuracy import RESULTS

    out = {}
    for name in datasets:
        cases, needed = plan(data / name, DENSITIES, 4, 2, 4, 0)
        items = {n: load_item(data / name, n) for n in needed}
        for c in cases:
            scribbles_for(c, items, RESULTS / "scribbles")
        out[name] = (cases, items)
    return out


def build(data: Path, datasets, log=print):
    from segapp import io
    from segapp.features import get_extractor

    classical = get_extractor("classical", sigmas=SIGMAS, features=KINDS)
    net = get_extractor("effnet-lite0", out_indices=[0, 1, 2, 3], device="cpu")
    for name, (cases, items) in suite_cases(data, datasets).items():
        for n, it in items.items():
            path = STORE / name / (Path(n).stem + ".npz")
            if path.exists():
                continue
            t0 = time.perf_counter()
            img = io.normalize(it.image if it.image.ndim == 3 else it.image[..., None], "dtype")
            stats = [channel_stats(img[..., c]) for c in range(img.shape[-1])]
            lab = np.zeros(it.gt.shape, bool)
            for c in cases:
                if n in c.labels:
                    lab |= c.labels[n] > 0
            valid = it.valid if it.valid is not None else np.ones(it.gt.shape, bool)
            rng = np.random.default_rng(0)
            vy, vx = np.nonzero(valid)
            pick = rng.choice(vy.size, min(N_SAMPLE, vy.size), replace=False)
            sy, sx = vy[pick], vx[pick]
            ly, lx = np.nonzero(lab)
            rr, cc = np.r_[ly, sy], np.r_[lx, sx]
            is_sample = np.r_[np.zeros(ly.size, bool), np.ones(sy.size, bool)]
            arrays = {"rr": rr.astype(np.int32), "cc": cc.astype(np.int32), "is_sample": is_sample,
                      "gt": it.gt[rr, cc].astype(np.uint8)}
            f = classical.compute(img)
            arrays["classical"] = f[rr, cc].astype(np.float16)
            del f
            for norm, scales in NET_NORMS.items():
                x = _norm_image(img, stats, norm)
                for s in scales:
                    net.params["scales"] = [s]
                    f = net.compute(x)
                    arrays[f"effnet_{norm}_s{s}"] = f[rr, cc].astype(np.float16)
                    del f
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, stats=json.dumps(stats), classical_names=json.dumps(classical.feature_names(img.shape[-1])),
                     shape=np.array(it.gt.shape), **arrays)
            log(f"{name}/{n}: {rr.size} rows, {time.perf_counter() - t0:.0f} s")


class Store:
    """Lazy reader of the feature store of one dataset."""

    def __init__(self, dataset: str):
        self.dataset, self._z = dataset, {}

    def __getitem__(self, image: str) -> dict:
        if image not in self._z:
            with np.load(STORE / self.dataset / (Path(image).stem + ".npz")) as z:
                d = {k: z[k] for k in z.files}
            d["stats"] = json.loads(str(d["stats"]))
            d["classical_names"] = json.loads(str(d["classical_names"]))
            key = d["rr"].astype(np.int64) * 100_000 + d["cc"]
            d["key"] = key
            self._z[image] = d
        return self._z[image]


# ----------------------------------------------------------------------------- variants
EFFNET_CHANNELS = [16, 24, 40, 112]


def family_columns(d: dict, fam: dict, rows: np.ndarray, pooled: list[dict] | None) -> np.ndarray:
    """Feature columns of one family for the given rows of one image."""
    if fam["kind"] == "classical":
        sig = {float(x) for x in fam.get("sigmas", [0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0])}
        kinds = set(fam.get("kinds", ["gaussian", "gradient", "hessian"]))
        names = d["classical_names"]
        cols = [j for j, n in enumerate(names) if n.split("_")[0] in kinds
                and float(re.search(r"_s([0-9.]+)_c", n).group(1)) in sig]
        sel = [names[j] for j in cols]
        norm = fam.get("norm", "std")
        stats = pooled if norm == "pooled" else d["stats"]
        return normalise_classical(d["classical"][rows][:, cols], sel, stats, "std" if norm == "pooled" else norm)
    if fam["kind"] == "effnet":
        stages = fam.get("stages", [0, 1, 2])
        off = np.cumsum([0] + EFFNET_CHANNELS)
        cols = np.concatenate([np.arange(off[s], off[s + 1]) for s in stages])
        parts = [d[f"effnet_{fam.get('norm', 'std')}_s{s}"][rows][:, cols] for s in fam.get("scales", [1])]
        return np.concatenate(parts, 1).astype(np.float32)
    raise ValueError(fam["kind"])


def forest(params: dict, n: int, seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    p = {"n_estimators": 32, "max_depth": 10, "max_samples": 0.05, **params}
    per_tree = min(n, max(20, int(round(p.pop("max_samples") * n))))
    return RandomForestClassifier(max_samples=per_tree, n_jobs=2, random_state=seed, **p)


def fit_predict(variant: dict, Xtr: list[np.ndarray], y: np.ndarray, Xte: list[np.ndarray],
                Xun: list[np.ndarray] | None = None) -> np.ndarray:
    """Class-probabilities of the test rows under the variant's fusion rule.

    ``Xun``: unpainted (sampled) rows of the training images, for the prior correction.
    """
    prior = variant.get("prior")
    if prior and Xun is not None:
        base = {k: v for k, v in variant.items() if k != "prior"}
        p, classes = fit_predict(base, Xtr, y, Xun)
        n_train = np.bincount(np.searchsorted(classes, y), minlength=classes.size) / y.size
        est = estimate_prior(p, n_train, prior.get("em", 0))
        w = (est / n_train) ** prior.get("alpha", 1.0)
        if prior.get("how", "weight") == "weight":
            return fit_predict({**base, "forest": {**base.get("forest", {}),
                                                   "class_weight": dict(zip(classes.tolist(), w.tolist()))}},
                               Xtr, y, Xte)
        q, classes = fit_predict(base, Xtr, y, Xte)
        q = q * w
        return q / q.sum(1, keepdims=True), classes
    fp = dict(variant.get("forest", {}))
    fusion = variant.get("fusion", "concat")
    if fusion == "concat":
        clf = forest(fp, y.size).fit(np.concatenate(Xtr, 1), y)
        return clf.predict_proba(np.concatenate(Xte, 1)), clf.classes_
    probs, weights = [], variant.get("weights") or [1.0] * len(Xtr)
    for k, (a, b) in enumerate(zip(Xtr, Xte)):
        clf = forest(fp, y.size, seed=k).fit(a, y)
        probs.append(clf.predict_proba(b))
        classes = clf.classes_
    if fusion == "average":
        p = sum(w * q for w, q in zip(weights, probs)) / sum(weights)
    elif fusion == "geometric":
        p = np.exp(sum(w * np.log(q + 1e-3) for w, q in zip(weights, probs)) / sum(weights))
    elif fusion == "max-confidence":
        conf = np.stack([q.max(1) for q in probs])
        p = np.stack(probs)[conf.argmax(0), np.arange(conf.shape[1])]
    else:
        raise ValueError(fusion)
    return p, classes


def estimate_prior(p: np.ndarray, train_prior: np.ndarray, em: int = 0) -> np.ndarray:
    """Class proportions of unpainted pixels: argmax fractions (em=0) or ``em`` EM steps (Saerens 2002)."""
    if not em:
        return np.maximum(np.bincount(p.argmax(1), minlength=p.shape[1]) / p.shape[0], 1e-3)
    w = train_prior.copy()
    for _ in range(em):
        q = p * (w / train_prior)
        q /= q.sum(1, keepdims=True)
        w = np.maximum(q.mean(0), 1e-3)
    return w


def miou(pred: np.ndarray, gt: np.ndarray) -> float:
    ious = []
    for c in np.union1d(np.unique(pred), np.unique(gt)):
        a, b = pred == c, gt == c
        ious.append((a & b).sum() / max(1, (a | b).sum()))
    return float(np.mean(ious))


def run_case(variant: dict, case, store: Store) -> dict:
    fams = variant["families"]
    pooled = None
    if any(f.get("norm") == "pooled" for f in fams):   # training images' statistics for every image
        pooled = [{"mean": float(np.mean([store[n]["stats"][c]["mean"] for n in case.train])),
                   "sd": float(np.sqrt(np.mean([store[n]["stats"][c]["sd"] ** 2 for n in case.train])))}
                  for c in range(len(store[case.train[0]]["stats"]))]
    Xtr, ys = [[] for _ in fams], []
    for n in case.train:
        d = store[n]
        lab = case.labels[n]
        ly, lx = np.nonzero(lab)
        rows = np.searchsorted(d["key"][~d["is_sample"]], ly.astype(np.int64) * 100_000 + lx)
        rows = np.flatnonzero(~d["is_sample"])[rows]
        for k, f in enumerate(fams):
            Xtr[k].append(family_columns(d, f, rows, pooled))
        ys.append(lab[ly, lx])
    Xtr, y = [np.concatenate(x) for x in Xtr], np.concatenate(ys)
    tests = [(n, np.flatnonzero(store[n]["is_sample"])) for n in case.test]
    Xte = [np.concatenate([family_columns(store[n], f, r, pooled) for n, r in tests]) for f in fams]
    Xun = None
    if variant.get("prior"):
        un = [(n, np.flatnonzero(store[n]["is_sample"])) for n in case.train]
        Xun = [np.concatenate([family_columns(store[n], f, r, pooled) for n, r in un]) for f in fams]
    p, classes = fit_predict(variant, Xtr, y, Xte, Xun)
    pred = classes[p.argmax(1)]
    out, s = {}, 0
    for n, r in tests:
        out[n] = miou(pred[s:s + r.size], store[n]["gt"][r])
        s += r.size
    return {"images": out, "miou": float(np.mean(list(out.values())))}


def run_variants(variants: list[dict], suite: dict, log=None) -> list[dict]:
    rows = []
    for name, (cases, _) in suite.items():
        st = Store(name)
        for v in variants:
            t0 = time.perf_counter()
            for c in cases:
                r = run_case(v, c, st)
                rows.append({"dataset": c.dataset, "protocol": c.protocol, "kind": c.kind, "density": c.density,
                             "method": v["name"], "fit_s": 0.0, "predict_s": 0.0, "chosen": "", **r})
            if log:
                log(f"{name} {v['name']}: {time.perf_counter() - t0:.0f} s")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["build", "run"])
    ap.add_argument("variants", nargs="?", type=Path)
    ap.add_argument("--data", default=HERE.parent.parent / "shared" / "data", type=Path)
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--peers", type=Path, help="bench/accuracy.py --json output with the peers' rows")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    datasets = args.datasets or sorted(p.name for p in args.data.iterdir() if (p / "images").is_dir())
    if args.cmd == "build":
        build(args.data, datasets, log=lambda s: print(s, file=sys.stderr, flush=True))
        return
    from accuracy import PEERS, print_tables

    suite = suite_cases(args.data, datasets)
    variants = json.loads(args.variants.read_text())
    rows = run_variants(variants, suite, log=lambda s: print(s, file=sys.stderr, flush=True))
    methods = [v["name"] for v in variants]
    if args.peers:
        peer_rows = [r for r in json.loads(args.peers.read_text())["rows"]
                     if r["method"] in PEERS and r["dataset"] in datasets]
        rows += peer_rows
        methods = PEERS + methods
    print_tables(rows, methods)
    if args.json:
        args.json.write_text(json.dumps({"methods": methods, "rows": rows}))


if __name__ == "__main__":
    main()
