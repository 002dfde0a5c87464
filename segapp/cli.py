"""Command line: ``segapp train | predict | evaluate | features | serve | worker | config``.

``segapp`` is the console command the package installs (``python -m segapp`` is the same).

User errors (bad files, empty annotations, foreign model files, bad options, unreadable
or unwritable paths) print exactly one line ``segapp: error: ...`` to stderr and exit with
status 2; never a traceback, and no library warning lines before it (Python warnings are
off unless ``-W``/``PYTHONWARNINGS`` asks for them; library log records go nowhere).

Examples
--------
>>> main(["features", "--list"])  # doctest: +ELLIPSIS
classical ...
0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, SegappError


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


def _read_training_labels(path, shape_hw):
    """``(labels, classes)`` from a label image or a JSON annotations file (made in the web app)."""
    from . import annotation_files, io

    data = Path(path).read_bytes()
    if annotation_files.is_annotations_json(data):
        return annotation_files.labels_from_annotations(data, shape_hw, name=Path(path).name)
    return io.read_labels(data, name=Path(path).name), []


def cmd_train(args) -> int:
    from . import io
    from .segmenter import Segmenter

    if len(args.image) != len(args.labels):
        raise SegappError(f"got {len(args.image)} --image but {len(args.labels)} --labels; give them in pairs")
    params = _feature_params(args.feature_params)  # options first: they cost nothing to check
    _check_forest_options(args)
    folder = Path(args.out).parent
    if not folder.is_dir():
        raise SegappError(f"cannot write {args.out}: the folder {folder} does not exist")
    images = [io.read_image(p) for p in args.image]
    labels, classes = [], {}
    for p, im in zip(args.labels, images):
        lab, named = _read_training_labels(p, im.shape[:2])
        labels.append(lab)
        classes.update({c["id"]: c for c in named if c.get("color")})
    for p, im, lab in zip(args.image, images, labels):
        if lab.shape != im.shape[:2]:
            raise SegappError(f"labels for {p} are {lab.shape[1]}x{lab.shape[0]}, the image is "
                              f"{im.shape[1]}x{im.shape[0]}")
    seg = Segmenter(features=args.features, feature_params=params, classifier=args.classifier,
                    n_estimators=args.trees, max_depth=args.depth, max_samples=args.max_samples,
                    class_weight="balanced" if args.balanced else None,
                    **({} if args.prior_correction is None else {"prior_correction": args.prior_correction}),
                    normalization={"method": args.normalization} if args.normalization else None,
                    classes=list(classes.values()) or None)
    seg.fit(images, labels)
    seg.save(args.out)
    info = {"model": str(args.out), "features": seg.extractor.name, "classes": [c["id"] for c in seg.classes],
            **seg.training_info}
    if seg.auto_report:
        info["auto"] = {"chosen": seg.auto_report["chosen"], "reason": seg.auto_report["reason"]}
    print(json.dumps(info))
    return 0


def _feature_params(text: str | None) -> dict | None:
    """``--feature-params`` as a dict (one-line ConfigError when it is not a JSON object)."""
    from . import jsonguard

    if not text:
        return None
    try:
        params = jsonguard.loads(text, max_bytes=100_000)
    except ValueError as e:
        raise ConfigError(f"--feature-params is not valid JSON ({' '.join(str(e).split())[:80]})") from None
    if not isinstance(params, dict):
        raise ConfigError(f"--feature-params must be a JSON object such as '{{\"sigmas\": [1, 2, 4]}}', "
                          f"got {type(params).__name__}")
    return params


def _check_forest_options(args) -> None:
    from .limits import MAX_TREE_DEPTH, MAX_TREES

    if args.trees is not None and not 1 <= args.trees <= MAX_TREES:  # None: the default of segapp.defaults
        raise ConfigError(f"--trees must be 1..{MAX_TREES}, got {args.trees}")
    if args.depth is not None and not 0 <= args.depth <= MAX_TREE_DEPTH:
        raise ConfigError(f"--depth must be 0 (unlimited) or up to {MAX_TREE_DEPTH}, got {args.depth}")
    if args.max_samples is not None and not 0 < args.max_samples <= 1:
        raise ConfigError(f"--max-samples must be a fraction in (0, 1], got {args.max_samples}")


def cmd_predict(args) -> int:
    from . import io

    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise SegappError(f"--out-dir {out} is a file, not a folder")
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
    first = io.read_image(args.images[0])  # a bad image is refused before the (slower) model load
    from .features import FeatureCache
    from .segmenter import Segmenter

    seg = Segmenter.load(args.model)
    seg.cache = FeatureCache(0)  # each image's tiles are used once: keep nothing (bounded memory)
    for i, path in enumerate(args.images):
        image, first = (first if i == 0 else io.read_image(path)), None
        proba = seg.predict_proba(image, progress=_progress(f"{Path(path).name} ({i + 1}/{len(args.images)})"))
        stem = Path(path).stem
        io.write_labels(out / f"{stem}.png", seg.predict(image, proba=proba))
        print(out / f"{stem}.png")
        if args.proba:
            io.write_proba_tiff(out / f"{stem}_proba.tif", proba)
            print(out / f"{stem}_proba.tif")
    return 0


def cmd_evaluate(args) -> int:
    import numpy as np

    from . import io
    from .metrics import evaluate, interpret_mask

    pred = io.read_labels(args.pred)
    if args.model:
        from .segmenter import Segmenter

        classes = Segmenter.load(args.model).classes
    else:
        classes = [{"id": int(c)} for c in np.unique(pred) if c > 0]
    gt, how = interpret_mask(io.read_mask(args.gt), classes)
    mask = io.read_labels(args.mask) > 0 if args.mask else None
    result = evaluate(pred, gt, mask=mask, ignore=0)
    print(json.dumps({**result, "gt_read_as": how}, indent=None if args.compact else 1))
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


def cmd_serve(args) -> int:
    from .config import get_settings
    from .ui import create_app

    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    app = create_app(settings)
    print(f"segapp: serving on http://{host}:{port} ({settings.masked()['mode']})", flush=True)
    app.run(host=host, port=port, debug=False)
    return 0


def cmd_config(args) -> int:
    from .config import describe

    print(describe())
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage text is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"segapp: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def classifier_kinds() -> list[str]:
    from .classifiers import BUILDERS

    return list(BUILDERS)


def build_parser() -> argparse.ArgumentParser:
    from . import defaults
    from .io import NORMALIZE_METHODS

    p = _Parser(prog="segapp", description="Pixel-classification segmentation.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from images and label images")
    t.add_argument("--image", action="append", required=True, help="image file (repeat for several)")
    t.add_argument("--labels", action="append", required=True,
                   help="label image (0 unlabelled, 1..K classes) or the annotations JSON the web app downloads")
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
    t.add_argument("--prior-correction", type=float, default=None, metavar="ALPHA",
                   help="correct for classes painted more (or less) than they occur, 0 = off, 1 = full "
                        f"(default {cp.get('prior_correction', 0)})")
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
    e.add_argument("--gt", required=True, help="ground truth: class ids (0 = not scored), a 0/255 or 0/1 binary "
                   "mask (two classes), an instance mask (two classes), or colour-coded in the classes' colours "
                   "(needs --model)")
    e.add_argument("--model", help="the model file: its class names and colours (for colour-coded ground truth)")
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

    s = sub.add_parser("serve", help="start the web app (embedded mode unless REDIS_URL is set)")
    s.add_argument("--host", help="address to listen on (default: HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default: PORT or 8050)")
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser("config", help="print the effective settings (secrets masked)")
    c.set_defaults(func=cmd_config)
    return p


def _quiet_libraries() -> None:
    """No warning lines from libraries on stderr: the CLI says what went wrong in one line."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


@contextmanager
def _native_stderr_captured():
    """C libraries (libtiff through Pillow, libjpeg) print warnings straight to file descriptor 2.

    While a command runs, descriptor 2 points to a temporary file (dropped afterwards) and
    ``sys.stderr`` writes to the real stderr, so segapp's own line (or a bug's traceback) is
    all that appears.  ``SEGAPP_DEBUG=1`` shows everything.
    """
    try:
        own = sys.stderr.fileno() == 2 and not os.environ.get("SEGAPP_DEBUG")
    except (AttributeError, OSError, ValueError):  # sys.stderr replaced (pytest's capsys, an IDE)
        own = False
    if not own:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:
        yield
        return
    old, sink = sys.stderr, tempfile.TemporaryFile()
    real = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                     errors="backslashreplace")
    os.dup2(sink.fileno(), 2)
    sys.stderr = real
    try:
        yield
    finally:
        real.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = old
        real.close()
        sink.close()


def _error(message) -> int:
    print(f"segapp: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "worker":  # a worker configures Celery's logging itself and keeps its stderr
        return _run(args)
    _quiet_libraries()
    with _native_stderr_captured():
        return _run(args)


def _run(args) -> int:
    try:
        return args.func(args)
    except SegappError as e:
        return _error(e)
    except FileNotFoundError as e:
        return _error(f"no such file: {e.filename}")
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as e:
        return _error(f"{e.strerror}: {e.filename}")
    except OSError as e:
        return _error(f"{e.strerror or type(e).__name__}" + (f": {e.filename}" if e.filename else ""))
    except MemoryError:
        return _error("not enough memory (try smaller images, or lower SEGAPP_MAX_IMAGE_MB)")
    except KeyboardInterrupt:
        print("segapp: interrupted", file=sys.stderr)
        return 130
