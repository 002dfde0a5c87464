"""Leave-one-dataset-out check of the default: would the choice made on the other datasets still
beat the best peer on the one left out?

Usage::

    python bench/lodo.py RUN.json [RUN2.json ...] [--candidates default std std-combo ...]

Reads ``bench/accuracy.py --json`` outputs (rows of every method and peer, same
cases).  For each dataset D, the candidate with the best selection score on the
(dataset, protocol) groups of the *other* datasets is chosen — score = mean over
groups of (candidate - best peer), minus the shortfall of its worst group below
-0.02 — and its margin over the best peer on D's groups is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import PEERS, group_table  # noqa: E402


def selection_score(margins: list[float], floor: float = -0.02) -> float:
    """Mean margin over groups, penalised by how far the worst group falls below ``floor``.

    Examples
    --------
    >>> selection_score([0.05, 0.01]), round(selection_score([0.08, -0.05]), 3)
    (0.03, -0.015)
    """
    return float(np.mean(margins) + min(0.0, min(margins) - floor))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--candidates", nargs="*", help="segapp methods to choose from (default: all in the runs)")
    args = ap.parse_args(argv)
    rows, seen = [], set()
    for path in args.runs:
        for r in json.loads(path.read_text())["rows"]:
            key = (r["dataset"], r["protocol"], r["kind"], r["density"], r["method"])
            if key not in seen:
                seen.add(key)
                rows.append(r)
    groups = group_table(rows, None)
    methods = sorted({r["method"] for r in rows} - set(PEERS))
    cands = [m for m in (args.candidates or methods) if all(m in d for d in groups.values())]
    datasets = sorted({ds for ds, _ in groups})
    margin = {m: {g: d[m] - d["best peer"] for g, d in groups.items()} for m in cands}
    print(f"candidates (present in every group): {', '.join(cands)}\n")
    print(f"{'held-out dataset':<22}{'chosen on the other five':<28}{'group':<14}{'chosen':>8}{'best peer':>11}"
          f"{'margin':>9}")
    held = []
    for ds in datasets:
        others = {m: [v for g, v in margin[m].items() if g[0] != ds] for m in cands}
        chosen = max(cands, key=lambda m: selection_score(others[m]))
        for g, d in groups.items():
            if g[0] == ds:
                held.append(margin[chosen][g])
                print(f"{ds:<22}{chosen:<28}{g[1]:<14}{d[chosen]:>8.3f}{d['best peer']:>11.3f}"
                      f"{margin[chosen][g]:>+9.3f}")
    print(f"\nheld-out groups: mean margin {np.mean(held):+.3f}, worst {min(held):+.3f}, "
          f"below -0.02: {sum(v < -0.02 for v in held)} of {len(held)}")
    print("\nall six datasets, selection score per candidate (mean margin, worst group):")
    for m in sorted(cands, key=lambda m: -selection_score(list(margin[m].values()))):
        v = list(margin[m].values())
        print(f"  {m:<28} score {selection_score(v):+.3f}   mean {np.mean(v):+.3f}   worst {min(v):+.3f}")


if __name__ == "__main__":
    main()
