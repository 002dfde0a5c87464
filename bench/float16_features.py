"""Does storing feature tiles as float16 cost accuracy?  mIoU with float32 vs float16 disk tiles.

Usage::

    python bench/float16_features.py --data ../shared/data [--datasets isbi2012 he_nuclei_miccai] [--images 3]

Interactive protocol of ``bench/accuracy.py`` (scribble ~0.25 % / 1 % of an image, segment it)
and transfer (train on two, segment the next ``--images``), the same model settings, features
read from a ``DiskFeatureCache`` in float32 and in float16.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import load_dataset, score  # noqa: E402
from scribbles import simulate_scribbles  # noqa: E402

from segapp.features.cache import DiskFeatureCache  # noqa: E402
from segapp.segmenter import Segmenter  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", nargs="*", default=["isbi2012", "he_nuclei_miccai"])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--densities", nargs="*", type=float, default=[0.0025, 0.01])
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="segapp-f16-"))
    caches = {"float32": DiskFeatureCache(tmp / "f32", dtype=np.float32),
              "float16": DiskFeatureCache(tmp / "f16", dtype=np.float16)}
    print(f"{'dataset':<20}{'protocol':<12}{'density':>8}{'float32':>10}{'float16':>10}{'diff':>9}")
    diffs = []
    for name in args.datasets:
        items = load_dataset(args.data / name, 2 + args.images)
        for density in args.densities:
            for protocol in ("interactive", "transfer"):
                cells = {}
                for dtype, cache in caches.items():
                    if protocol == "interactive":
                        vals = []
                        for i, (_, img, gt, valid) in enumerate(items[:args.images]):
                            lab = simulate_scribbles(gt, density, seed=i, valid=valid)
                            seg = Segmenter(cache=cache).fit(img, lab)
                            vals.append(score(seg.predict(img), gt, valid))
                        cells[dtype] = float(np.mean(vals))
                    else:
                        train, test = items[:2], items[2:2 + args.images]
                        labs = [simulate_scribbles(gt, density, seed=i, valid=v) for i, (_, _, gt, v) in enumerate(train)]
                        seg = Segmenter(cache=cache).fit([im for _, im, _, _ in train], labs)
                        cells[dtype] = float(np.mean([score(seg.predict(im), gt, v) for _, im, gt, v in test]))
                d = cells["float16"] - cells["float32"]
                diffs.append(d)
                print(f"{name:<20}{protocol:<12}{100 * density:>7.2f}%{cells['float32']:>10.4f}{cells['float16']:>10.4f}"
                      f"{d:>+9.4f}", flush=True)
    print(f"mean difference float16 - float32: {np.mean(diffs):+.4f} mIoU (worst {min(diffs):+.4f})")
    f32 = sum(p.stat().st_size for p in (tmp / "f32").rglob("*.npy"))
    f16 = sum(p.stat().st_size for p in (tmp / "f16").rglob("*.npy"))
    print(f"disk: float32 {f32 / 1e6:.0f} MB, float16 {f16 / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
