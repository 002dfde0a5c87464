"""The benchmark suite: datasets, protocols, cases and their simulated scribbles (cached on disk).

A *case* is one (dataset, protocol, kind, density): scribbles on its ``train``
images, predictions scored on its ``test`` images.

- *interactive*: paint one image, segment that image (one case per image,
  averaged); at least 3 images per dataset.
- *transfer*: paint two images, train on both, segment 4 others.
  ``dsb2018_nuclei`` mixes three acquisitions, so it transfers within a kind
  (file-name prefix ``fluo_``, ``color_``, ``bright_``); ``coco_mval_objects``
  (one object per unrelated photograph) is interactive only.

Images are chosen evenly spaced over each (kind's) sorted file list, so the
suite does not depend on the first few files.  Masks are mapped to classes
1..K in order of their values; DRIVE is scored inside ``fov/``.

Examples
--------
>>> evenly_spaced(list("abcdefghij"), 4)
['a', 'd', 'g', 'j']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from scribbles import simulate_scribbles

INTERACTIVE_ONLY = {"coco_mval_objects"}
TRANSFER_WITHIN_KIND = {"dsb2018_nuclei"}
PROTOCOLS = ("interactive", "transfer")


@dataclass
class Item:
    name: str
    image: np.ndarray          # raw (H, W) or (H, W, C)
    gt: np.ndarray             # classes 1..K
    valid: np.ndarray | None   # where to score (and paint)


@dataclass
class Case:
    dataset: str
    protocol: str
    kind: str
    density: float
    train: list[str]
    test: list[str]
    seed: int
    labels: dict = field(default_factory=dict, repr=False)   # train name -> scribbles

    @property
    def key(self) -> str:
        return f"{self.dataset}|{self.protocol}|{self.kind}|{self.density:g}"


def evenly_spaced(names: list, k: int) -> list:
    """``k`` names evenly spaced over ``names`` (all of them when fewer)."""
    if len(names) <= k:
        return list(names)
    return [names[int(round(i))] for i in np.linspace(0, len(names) - 1, k)]


def kind_of(dataset: str, name: str) -> str:
    return name.split("_")[0] if dataset in TRANSFER_WITHIN_KIND else "all"


def load_item(root: Path, name: str) -> Item:
    from segapp import io

    mask = np.array(Image.open(root / "masks" / name))
    gt = (np.searchsorted(np.unique(mask), mask) + 1).astype(np.uint8)
    fov = root / "fov" / name
    valid = np.array(Image.open(fov)) > 0 if fov.exists() else None
    img = io.read_image(root / "images" / name)
    return Item(name, img[..., 0] if img.shape[-1] == 1 else img, gt, valid)


def plan(root: Path, densities, n_interactive: int = 4, n_train: int = 2, n_test: int = 4,
         seed: int = 0) -> tuple[list[Case], list[str]]:
    """Cases of one dataset and the image names they need."""
    name = root.name
    files = sorted(p.name for p in (root / "images").glob("*.png"))
    kinds: dict[str, list[str]] = {}
    for f in files:
        kinds.setdefault(kind_of(name, f), []).append(f)
    cases, needed = [], []
    per_kind_inter = max(1, -(-n_interactive // len(kinds))) if len(kinds) > 1 else n_interactive
    for kind, names in sorted(kinds.items()):
        chosen = evenly_spaced(names, max(n_train + n_test, per_kind_inter))
        if name in INTERACTIVE_ONLY:
            chosen = evenly_spaced(names, max(n_interactive, 3))
        inter = chosen[:per_kind_inter] if name not in INTERACTIVE_ONLY else chosen
        for d in densities:
            for j, f in enumerate(inter):
                cases.append(Case(name, "interactive", f, d, [f], [f], seed + 7 * j))
            if name not in INTERACTIVE_ONLY and len(chosen) >= n_train + 1:
                cases.append(Case(name, "transfer", kind, d, chosen[:n_train],
                                  chosen[n_train:n_train + n_test], seed + 1000))
        needed += [f for f in chosen if f not in needed]
    return cases, needed


def scribbles_for(case: Case, items: dict, cache_dir: Path | None) -> dict:
    """Simulated scribbles of the case's train images (cached as PNG under ``cache_dir``)."""
    out = {}
    for i, n in enumerate(case.train):
        it = items[n]
        path = None
        if cache_dir is not None:
            tag = hashlib.sha1(it.gt.tobytes()).hexdigest()[:10]
            path = cache_dir / case.dataset / f"{Path(n).stem}_{case.density:g}_{case.seed + i}_{tag}.png"
        if path is not None and path.exists():
            out[n] = np.array(Image.open(path))
            continue
        lab = simulate_scribbles(it.gt, case.density, seed=case.seed + i, valid=it.valid)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(lab).save(path)
        out[n] = lab
    case.labels = out
    return out


def score(pred: np.ndarray, item: Item) -> float:
    """Mean IoU over the ground-truth classes (inside ``valid``)."""
    from segapp.metrics import mean_iou

    if item.valid is not None:
        return float(mean_iou(pred[item.valid], item.gt[item.valid]))
    return float(mean_iou(pred, item.gt))
