"""Accuracy benchmark: segapp (its default, each extractor, ``auto``) next to its peers, same run.

Usage::

    make bench-peers                       # once: .venv-peers with napari-convpaint 1.2.0
    nice -n 10 python bench/accuracy.py --data ../shared/data [--datasets drive isbi2012 ...]
        [--densities 0.0025 0.01] [--methods default classical auto skimage convpaint ...]
        [--variant NAME='{"features": "classical", "classifier": "random-forest"}'] [--json out.json]

Protocols, cases and scribbles: see ``bench/suite.py`` (all datasets under
``--data``; interactive on >= 3 images each, transfer 2 -> 4 images, DSB within
a kind, COCO interactive only).  Scores are mIoU against ground truth.

Peers: ``skimage`` (the scikit-image sample app's pipeline, ``bench/peers/
skimage_pipeline.py``), ``convpaint`` (napari-convpaint 1.2.0's default CPU
model: Gaussian features + CatBoost) and ``convpaint-rf`` (its random-forest
option), run by ``bench/peers/convpaint.py`` in ``.venv-peers``.  The *best
peer* of a case (dataset, protocol, density) is the best peer's mean mIoU there.

Everything is cached under ``bench/results/`` (gitignored): scribbles, peer
predictions, segapp features (``segapp.features.cache.DiskFeatureCache``) and each (method, case)
result, so an interrupted run resumes where it stopped; ``--fresh`` ignores
cached results (not features).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import classifier_kinds  # noqa: E402,F401  (gradient boosting, for comparison)
from segapp.features.cache import DiskFeatureCache  # noqa: E402
from peers import convpaint  # noqa: E402
from peers.skimage_pipeline import SkimagePipeline  # noqa: E402
from suite import load_item, plan, score, scribbles_for  # noqa: E402

PEERS = ["skimage", "convpaint", "convpaint-rf"]
SEGAPP = ["default", "classical", "effnet-lite0", "classical+effnet-lite0", "auto"]
RESULTS = HERE / "results"
BENCH_VERSION = 2  # bump when the protocol changes, to invalidate cached results


def segapp_spec(method: str, variants: dict) -> dict:
    """Segmenter keyword arguments of a method name."""
    if method in variants:
        return dict(variants[method])
    if method == "default":
        return {}
    return {"features": method}


def _config(spec: dict) -> dict:
    from segapp.segmenter import Segmenter

    spec = dict(spec)
    smooth = spec.pop("smooth", 0)
    seg = Segmenter(**spec)
    if hasattr(seg, "get_config"):
        return {**seg.get_config(), **({"smooth": smooth} if smooth else {})}
    return {"features": seg.features_spec, "feature_params": seg.feature_params, "n_estimators": seg.n_estimators,
            "max_depth": seg.max_depth, "max_samples": seg.max_samples, "class_weight": seg.class_weight,
            "normalization": seg.normalization}


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def case_digest(case, items) -> str:
    h = hashlib.sha1(f"{BENCH_VERSION}|{case.key}|{case.train}|{case.test}".encode())
    for n in case.train:
        h.update(case.labels[n].tobytes())
    for n in case.train + case.test:
        h.update(hashlib.sha1(np.ascontiguousarray(items[n].image).tobytes()).digest())
    return h.hexdigest()[:16]


def run_segapp(spec: dict, case, items, cache) -> dict:
    from segapp.segmenter import Segmenter

    from segapp.postprocess import smooth_proba

    spec = dict(spec)
    smooth = spec.pop("smooth", 0)   # bench-only: Gaussian smoothing of the probabilities, in pixels
    seg = Segmenter(**spec, cache=cache)
    t0 = time.perf_counter()
    seg.fit([items[n].image for n in case.train], [case.labels[n] for n in case.train])
    t1 = time.perf_counter()

    def predict(img):
        proba = seg.predict_proba(img)
        return seg.predict(img, proba=smooth_proba(proba, smooth) if smooth else proba)

    scores = {n: score(predict(items[n].image), items[n]) for n in case.test}
    t2 = time.perf_counter()
    return {"images": scores, "fit_s": t1 - t0, "predict_s": (t2 - t1) / len(case.test),
            "chosen": (seg.auto_report or {}).get("chosen", "")}


def run_dataset(root: Path, methods, variants, args, log) -> list[dict]:
    cases, needed = plan(root, args.densities, args.interactive, 2, args.transfer_test, args.seed)
    cases = [c for c in cases if c.protocol in args.protocols]
    items = {n: load_item(root, n) for n in needed}
    for c in cases:
        scribbles_for(c, items, RESULTS / "scribbles")
    rows = []

    def add(method, case, res):
        rows.append({"dataset": case.dataset, "protocol": case.protocol, "kind": case.kind,
                     "density": case.density, "method": method, "miou": float(np.mean(list(res["images"].values()))),
                     **res})

    cp = [(m, c) for m in methods if m in convpaint.CONFIGS for c in cases]
    if cp:
        t0 = time.perf_counter()
        preds = convpaint.run(cp, items, RESULTS / "peers" / root.name)
        log(f"  convpaint peers: {len(cp)} jobs in {time.perf_counter() - t0:.0f} s (cached jobs are free)")
        for m, c in cp:
            secs = preds[(m, c.key, c.test[0])][1]
            add(m, c, {"images": {n: score(preds[(m, c.key, n)][0], items[n]) for n in c.test},
                       "fit_s": secs, "predict_s": 0.0, "chosen": ""})
    if "skimage" in methods:
        pipe = SkimagePipeline()
        for c in cases:
            path = RESULTS / "runs" / "skimage" / f"{case_digest(c, items)}.json"
            if path.exists() and not args.fresh:
                add("skimage", c, json.loads(path.read_text()))
                continue
            t0 = time.perf_counter()
            preds = pipe.fit_predict([items[n].image for n in c.train], [c.labels[n] for n in c.train],
                                     [items[n].image for n in c.test])
            res = {"images": {n: score(p, items[n]) for n, p in zip(c.test, preds)},
                   "fit_s": time.perf_counter() - t0, "predict_s": 0.0, "chosen": ""}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(res))
            add("skimage", c, res)
        pipe.forget()
    cache = DiskFeatureCache(RESULTS / "features", max_memory_bytes=1024**3,
                             max_disk_bytes=int(args.feature_cache_gb * 1024**3))
    for m in methods:
        if m in PEERS:
            continue
        spec = segapp_spec(m, variants)
        mkey = _digest(_config(spec))
        t0 = time.perf_counter()
        for c in cases:
            path = RESULTS / "runs" / mkey / f"{case_digest(c, items)}.json"
            if path.exists() and not args.fresh:
                res = json.loads(path.read_text())
            else:
                res = run_segapp(spec, c, items, cache)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(res))
            add(m, c, res)
        log(f"  {m}: {time.perf_counter() - t0:.0f} s")
    return rows


def case_table(rows, methods) -> dict:
    """``{(dataset, protocol, density): {method: mIoU}}``: mean over a case's images / kinds."""
    acc: dict = {}
    for r in rows:
        acc.setdefault((r["dataset"], r["protocol"], r["density"]), {}).setdefault(r["method"], []).append(r["miou"])
    table = {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in acc.items()}
    for d in table.values():
        peers = [d[p] for p in PEERS if p in d]
        if peers:
            d["best peer"] = max(peers)
    return table


def group_table(rows, methods) -> dict:
    """``{(dataset, protocol): {method: mean over densities}}``."""
    acc: dict = {}
    for (ds, pr, _), d in case_table(rows, methods).items():
        for m, v in d.items():
            acc.setdefault((ds, pr), {}).setdefault(m, []).append(v)
    return {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in sorted(acc.items())}


def print_tables(rows, methods, out=print):
    cols = [m for m in PEERS if m in methods] + (["best peer"] if any(p in methods for p in PEERS) else []) + \
        [m for m in methods if m not in PEERS]
    w = max(12, *(len(c) + 2 for c in cols))
    head = f"{'dataset':<20}{'protocol':<12}{'density':>8}" + "".join(f"{c:>{w}}" for c in cols)
    out(head)
    out("-" * len(head))
    for (ds, pr, dn), d in sorted(case_table(rows, methods).items()):
        out(f"{ds:<20}{pr:<12}{100 * dn:>7.2f}%" + "".join(f"{d.get(c, np.nan):>{w}.3f}" for c in cols))
    groups = group_table(rows, methods)
    out(f"\nper (dataset, protocol) group, mean over densities {sorted({r['density'] for r in rows})}")
    out(head.replace("density", "       "))
    for (ds, pr), d in groups.items():
        out(f"{ds:<20}{pr:<12}{'':>8}" + "".join(f"{d.get(c, np.nan):>{w}.3f}" for c in cols))
    out(f"{'mean':<40}" + "".join(f"{np.mean([d.get(c, np.nan) for d in groups.values()]):>{w}.3f}" for c in cols))
    if "best peer" not in cols:
        return
    out("\nvs best peer (same run), over groups:")
    for m in [c for c in cols if c not in PEERS and c != "best peer"]:
        diffs = {k: d[m] - d["best peer"] for k, d in groups.items() if m in d}
        worst = min(diffs, key=diffs.get)
        secs = [r["fit_s"] + r["predict_s"] for r in rows if r["method"] == m]
        chosen = {}
        for r in rows:
            if r["method"] == m and r["chosen"]:
                chosen[r["chosen"]] = chosen.get(r["chosen"], 0) + 1
        out(f"  {m:<28} mean {np.mean(list(diffs.values())):+.3f}   worst {worst[0]}/{worst[1]} {diffs[worst]:+.3f}"
            f"   groups below -0.02: {sum(v < -0.02 for v in diffs.values())}"
            f"   median fit+predict {np.median(secs):.2f} s" + (f"   chose {chosen}" if chosen else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=HERE.parent.parent / "shared" / "data", type=Path)
    ap.add_argument("--datasets", nargs="*")
    ap.add_argument("--densities", nargs="*", type=float, default=[0.0025, 0.01])
    ap.add_argument("--protocols", nargs="*", default=["interactive", "transfer"])
    ap.add_argument("--methods", nargs="*", default=PEERS + SEGAPP)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="extra segapp method: Segmenter keyword arguments as JSON")
    ap.add_argument("--interactive", type=int, default=4, help="images in the interactive protocol (>= 3)")
    ap.add_argument("--transfer-test", type=int, default=4, help="images segmented in the transfer protocol")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--feature-cache-gb", type=float, default=20.0)
    ap.add_argument("--fresh", action="store_true", help="recompute results (cached features are kept)")
    ap.add_argument("--json", type=Path, help="also write all rows as JSON here")
    args = ap.parse_args(argv)
    variants = {}
    for v in args.variant:
        name, _, spec = v.partition("=")
        variants[name] = json.loads(spec)
    methods = list(dict.fromkeys(args.methods + [v for v in variants if v not in args.methods]))
    if not args.data.is_dir():
        ap.error(f"no data folder {args.data}")
    datasets = args.datasets or sorted(p.name for p in args.data.iterdir() if (p / "images").is_dir())
    rows = []
    for name in datasets:
        t0 = time.perf_counter()
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows += run_dataset(args.data / name, methods, variants, args,
                            lambda s: print(s, file=sys.stderr, flush=True))
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print_tables(rows, methods)
    if args.json:
        args.json.write_text(json.dumps({"methods": methods, "variants": variants, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
