"""Command line: ``python -m segapp train | predict | evaluate | features | worker | config``.

User errors (bad files, empty annotations, foreign model files) print one line
``segapp: error: ...`` to stderr and exit with status 2; never a traceback.

Examples
--------
>>> main(["features", "--list"])  # doctest: +ELLIPSIS
classical ...
0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import SegappError


def _progress(label: str):
    """A one-line progress bar on stderr (only when stderr is a terminal)."""
    tty = sys.stderr.isatty()

    def report(fraction: float):
        if tty:
            n = int(30 * fraction)
            sys.stderr.write(f"\r{label} [{'#' * n}{'.' * (30 - n)}] {100 * fraction:5.1f}%")
            if fraction >= 1:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return report


def cmd_train(args) -> int:
    from . import io
    from .segmenter import Segmenter

    if len(args.image) != len(args.labels):
        raise SegappError(f"got {len(args.image)} --image but {len(args.labels)} --labels; give them in pairs")
    images = [io.read_image(p) for p in args.image]
    labels = [io.read_labels(p) for p in args.labels]
    for p, im, lab in zip(args.image, images, labels):
        if lab.shape != im.shape[:2]:
            raise SegappError(f"labels for {p} are {lab.shape[1]}x{lab.shape[0]}, the image is "
                              f"{im.shape[1]}x{im.shape[0]}")
    params = json.loads(args.feature_params) if args.feature_params else None
    seg = Segmenter(features=args.features, feature_params=params, classifier=args.classifier,
                    n_estimators=args.trees, max_depth=args.depth, max_samples=args.max_samples,
                    class_weight="balanced" if args.balanced else None,
                    normalization={"method": args.normalization} if args.normalization else None)
    seg.fit(images, labels)
    seg.save(args.out)
    info = {"model": str(args.out), "features": seg.extractor.name, "classes": [c["id"] for c in seg.classes],
            **seg.training_info}
    if seg.auto_report:
        info["auto"] = {"chosen": seg.auto_report["chosen"], "reason": seg.auto_report["reason"]}
    print(json.dumps(info))
    return 0


def cmd_predict(args) -> int:
    from . import io
    from .segmenter import Segmenter

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.queue is not None:
        from .config import get_settings
        from .jobs.client import predict_via_queue

        paths = predict_via_queue(args.model, args.images, out, proba=args.proba,
                                  queue=args.queue or None, settings=get_settings(),
                                  progress=_progress("predict"))
        for p in paths:
            print(p)
        return 0
    from .features import FeatureCache

    seg = Segmenter.load(args.model)
    seg.cache = FeatureCache(0)  # each image's tiles are used once: keep nothing (bounded memory)
    for i, path in enumerate(args.images):
        image = io.read_image(path)
        proba = seg.predict_proba(image, progress=_progress(f"{Path(path).name} ({i + 1}/{len(args.images)})"))
        stem = Path(path).stem
        io.write_labels(out / f"{stem}.png", seg.predict(image, proba=proba))
        print(out / f"{stem}.png")
        if args.proba:
            io.write_proba_tiff(out / f"{stem}_proba.tif", proba)
            print(out / f"{stem}_proba.tif")
    return 0


def cmd_evaluate(args) -> int:
    from . import io
    from .metrics import evaluate

    pred, gt = io.read_labels(args.pred), io.read_labels(args.gt)
    mask = io.read_labels(args.mask) > 0 if args.mask else None
    print(json.dumps(evaluate(pred, gt, mask=mask), indent=None if args.compact else 1))
    return 0


def cmd_features(args) -> int:
    from .features import list_extractors

    for e in list_extractors():
        status = "available" if e["available"] else f"unavailable: {e['message']}"
        print(f"{e['name']:<14} {e['description']}  [{status}]")
    return 0


def cmd_worker(args) -> int:
    from .config import get_settings
    from .jobs.worker import run_worker

    queues = [q for q in (args.queues or "").split(",") if q] or None
    return run_worker(queues, args.concurrency, get_settings())


def cmd_config(args) -> int:
    from .config import describe

    print(describe())
    return 0


def classifier_kinds() -> list[str]:
    from .classifiers import BUILDERS

    return list(BUILDERS)


def build_parser() -> argparse.ArgumentParser:
    from . import defaults
    from .io import NORMALIZE_METHODS

    p = argparse.ArgumentParser(prog="python -m segapp", description="Pixel-classification segmentation.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from images and label images")
    t.add_argument("--image", action="append", required=True, help="image file (repeat for several)")
    t.add_argument("--labels", action="append", required=True, help="label image: 0 unlabelled, 1..K classes")
    t.add_argument("--out", required=True, help="model file to write (.segapp)")
    cp = defaults.classifier_params()
    t.add_argument("--features", default=None,
                   help=f"extractor name, a+b combination, or auto (default {defaults.EXTRACTOR})")
    t.add_argument("--feature-params", help='JSON parameters, e.g. \'{"sigmas": [1, 2, 4]}\'')
    t.add_argument("--classifier", default=None, choices=sorted(classifier_kinds()),
                   help=f"pixel classifier (default {defaults.CLASSIFIER})")
    t.add_argument("--trees", type=int, default=None, help=f"number of trees (default {cp.get('n_estimators')})")
    t.add_argument("--depth", type=int, default=None,
                   help=f"maximum tree depth, 0 = unlimited (default {cp.get('max_depth')})")
    t.add_argument("--max-samples", type=float, default=None,
                   help=f"fraction of painted pixels per tree (default {cp.get('max_samples')})")
    t.add_argument("--balanced", action="store_true", help="weight classes to equal total weight")
    t.add_argument("--normalization", default=None, choices=list(NORMALIZE_METHODS),
                   help=f"per-image normalisation (default {defaults.NORMALIZATION['method']})")
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="segment images with a model file")
    pr.add_argument("--model", required=True)
    pr.add_argument("--out-dir", required=True)
    pr.add_argument("--proba", action="store_true", help="also write <stem>_proba.tif")
    pr.add_argument("--queue", nargs="?", const="", default=None,
                    help="submit to Celery workers (REDIS_URL) instead of predicting here; optional queue name")
    pr.add_argument("images", nargs="+")
    pr.set_defaults(func=cmd_predict)

    e = sub.add_parser("evaluate", help="per-class IoU/F1 of a prediction against ground truth, as JSON")
    e.add_argument("--pred", required=True)
    e.add_argument("--gt", required=True)
    e.add_argument("--mask", help="only score pixels where this image is non-zero")
    e.add_argument("--compact", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("features", help="feature extractors")
    f.add_argument("--list", action="store_true", help="list extractors and whether they are available")
    f.set_defaults(func=cmd_features)

    w = sub.add_parser("worker", help="start a Celery worker (needs REDIS_URL)")
    w.add_argument("--queues", help="comma-separated queues, e.g. gpu,default")
    w.add_argument("--concurrency", type=int)
    w.set_defaults(func=cmd_worker)

    c = sub.add_parser("config", help="print the effective settings (secrets masked)")
    c.set_defaults(func=cmd_config)
    return p


def main(argv=None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SegappError as e:
        print(f"segapp: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"segapp: error: no such file: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segapp: interrupted", file=sys.stderr)
        return 130
