"""Objects you can count: object F1 (IoU >= 0.5) and count error against ground-truth instances.

Usage::

    nice -n 10 python bench/objects.py --data ../shared/data [--datasets he_nuclei_miccai dsb2018_nuclei]
        [--sources gt pred] [--density 0.01] [--json out.json]

For each dataset with ``instances/`` (16-bit ids), each image's foreground is
split into objects by each method:

- ``components``: connected components (8-connectivity), no splitting;
- ``default``: ``postprocess.instances`` with ``segapp.defaults.OBJECTS``;
- ``watershed-md5``: the previous default (distance-transform watershed, seeds 5 px apart).

Sources: ``gt`` — the ground-truth foreground (``instances > 0``), which
isolates the splitting; ``pred`` — segapp's default model trained on simulated
scribbles (``--density``) on that image, class of the objects = the mask's
foreground class.  A GT object and a predicted one match when IoU > 0.5 (a
one-to-one matching); F1 = 2 TP / (2 TP + FP + FN) over all objects of the
dataset; count error = |N_pred - N_gt| / N_gt per image (median reported).
DSB is reported per kind too (``dsb2018_nuclei:fluo`` ...).

Examples
--------
>>> import numpy as np
>>> gt = np.zeros((10, 10), int); gt[1:4, 1:4] = 1; gt[6:9, 6:9] = 2
>>> match_counts(gt, gt)
(2, 0, 0)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from segapp.features.cache import DiskFeatureCache  # noqa: E402
from suite import load_item  # noqa: E402
from scribbles import simulate_scribbles  # noqa: E402

RESULTS = HERE / "results"


def methods():
    from segapp import postprocess

    return {
        "components": lambda m: postprocess.instances(m, split_touching=False, min_size=0),
        "default": lambda m: postprocess.instances(m),
        "watershed-md5": lambda m: postprocess.instances(m, split_touching=True, min_distance=5, depth=0,
                                                         min_size=0),
    }


def match_counts(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN) of instance images: pairs with IoU > ``thr`` (unique for thr >= 0.5)."""
    p, g = pred.ravel().astype(np.int64), gt.ravel().astype(np.int64)
    n_p, n_g = int(p.max()), int(g.max())
    both = (p > 0) & (g > 0)
    pairs, inter = np.unique(p[both] * (n_g + 1) + g[both], return_counts=True)
    pi, gi = pairs // (n_g + 1), pairs % (n_g + 1)
    area_p, area_g = np.bincount(p, minlength=n_p + 1), np.bincount(g, minlength=n_g + 1)
    iou = inter / (area_p[pi] + area_g[gi] - inter)
    tp = int(np.count_nonzero(iou > thr))
    n_pred, n_gt = int(np.count_nonzero(area_p[1:])), int(np.count_nonzero(area_g[1:]))
    return tp, n_pred - tp, n_gt - tp


def _defaults_tag() -> str:
    """Short digest of the default Segmenter's config (cached predictions follow the defaults)."""
    import hashlib

    from segapp.segmenter import Segmenter

    return hashlib.sha1(json.dumps(Segmenter().get_config(), sort_keys=True).encode()).hexdigest()[:10]


def predicted_mask(item, density, seed, cache) -> np.ndarray:
    from segapp.segmenter import Segmenter

    fg = int(item.gt.max())
    lab = simulate_scribbles(item.gt, density, seed=seed)
    seg = Segmenter(cache=cache).fit(item.image, lab)
    return seg.predict(item.image) == fg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=HERE.parent.parent / "shared" / "data", type=Path)
    ap.add_argument("--datasets", nargs="*", default=["he_nuclei_miccai", "dsb2018_nuclei"])
    ap.add_argument("--sources", nargs="*", default=["gt", "pred"])
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--max-images", type=int, default=0, help="per dataset (0 = all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cache = DiskFeatureCache(RESULTS / "features", max_memory_bytes=1024**3)
    split = methods()
    per_image = []
    for ds in args.datasets:
        root = args.data / ds
        names = sorted(p.name for p in (root / "instances").glob("*.png"))
        if args.max_images:
            names = names[:: max(1, len(names) // args.max_images)][: args.max_images]
        for k, name in enumerate(names):
            gt_inst = np.array(Image.open(root / "instances" / name)).astype(np.int64)
            item = None
            for src in args.sources:
                if src == "gt":
                    mask = gt_inst > 0
                else:
                    cached = RESULTS / "objects" / f"{ds}_{Path(name).stem}_{args.density:g}_{_defaults_tag()}.png"
                    if cached.exists():
                        mask = np.array(Image.open(cached)) > 0
                    else:
                        item = item or load_item(root, name)
                        mask = predicted_mask(item, args.density, 7 * k, cache)
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(mask.astype(np.uint8) * 255).save(cached)
                for m, fn in split.items():
                    tp, fp, fn_ = match_counts(fn(mask), gt_inst)
                    n_gt = tp + fn_
                    per_image.append({"dataset": ds, "kind": name.split("_")[0] if "dsb" in ds else "",
                                      "image": name, "source": src, "method": m, "tp": tp, "fp": fp, "fn": fn_,
                                      "count_error": abs(tp + fp - n_gt) / max(n_gt, 1)})
            print(f"{ds}/{name} done", file=sys.stderr, flush=True)
    report(per_image, list(split), args.sources)
    if args.json:
        args.json.write_text(json.dumps(per_image, indent=1))


def report(rows, method_names, sources):
    groups = sorted({r["dataset"] for r in rows}) + sorted({f"{r['dataset']}:{r['kind']}" for r in rows if r["kind"]})
    head = f"{'dataset':<28}{'source':<8}" + "".join(f"{m + ' F1':>20}{'count err':>11}" for m in method_names)
    print(head)
    print("-" * len(head))
    for g in groups:
        ds, _, kind = g.partition(":")
        for src in sources:
            cells = ""
            for m in method_names:
                sel = [r for r in rows if r["dataset"] == ds and (not kind or r["kind"] == kind)
                       and r["source"] == src and r["method"] == m]
                if not sel:
                    cells += f"{'':>31}"
                    continue
                tp, fp, fn = (sum(r[k] for r in sel) for k in ("tp", "fp", "fn"))
                f1 = 2 * tp / max(2 * tp + fp + fn, 1)
                cells += f"{f1:>20.3f}{100 * np.median([r['count_error'] for r in sel]):>10.1f}%"
            print(f"{g:<28}{src:<8}{cells}")


if __name__ == "__main__":
    main()
