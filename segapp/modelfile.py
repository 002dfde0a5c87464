"""The ``.segapp`` model file: a zip of a JSON manifest and the classifier as plain arrays.

A model file is data, checked whole before anything is built from it
(:mod:`segapp.modelcheck`): the zip's members, sizes and compression ratios are
read from its directory before anything is inflated (and inflating never goes
past the declared sizes); the manifest is bounded JSON, its checksum covers the
whole manifest (which records the classifier member's SHA-256), and every field
is validated by type and range before the extractor or the classifier is built;
the compute device is never read from a file.  Loading never executes code from
the file and never writes a member to disk.

The forest is stored as ``classifier.npz`` — integer and float arrays only, each
``.npy`` header checked against its member's size before NumPy reads it, read
with ``allow_pickle=False`` and checked node by node (children after their
parent, one parent each, depth, features, finite values; :func:`segapp.modelcheck.check_packed`
and :meth:`segapp.forest.Forest.from_arrays`) — so a model loads with NumPy alone,
without scikit-learn or skops.  The fast predictor (an ONNX Runtime session) is
generated from those verified arrays on load; nothing compiled is ever stored.
``classifier.skops`` files (format 1, and classifiers that cannot be packed) load
through ``skops.io.loads`` with an explicit list of trusted types after the skops
zip got the same size checks, and every tree of the loaded forest is checked.
Pickles, damaged, edited, foreign, oversized and newer-format files are refused
with a one-line :class:`~segapp.errors.ModelFileError`.

Formats: 3 = ``classifier.npz`` and a manifest checksum; 2 = ``classifier.npz``
without it; 1 = ``classifier.skops`` (written with a checksum since format 3).

Layout::

    model.segapp (zip)
      manifest.json     format, versions, extractor config, classes, normalisation,
                        sha256 of the classifier member, checksum of the manifest itself
      classifier.npz    the forest's arrays (or classifier.skops)

Examples
--------
>>> import numpy as np
>>> from segapp.segmenter import Segmenter
>>> img = np.random.default_rng(0).random((32, 32))
>>> lab = np.zeros((32, 32), np.uint8); lab[:4] = 1; lab[-4:] = 2
>>> seg = Segmenter(features="classical", feature_params={"sigmas": [1.0]}, n_estimators=3).fit(img, lab)
>>> again = load_segmenter(dump_segmenter(seg))
>>> bool((again.predict(img) == seg.predict(img)).all())
True
>>> load_segmenter(b"not a model")
Traceback (most recent call last):
...
segapp.errors.ModelFileError: not a segapp model file (not a zip archive)
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import platform
import zipfile
from datetime import datetime, timezone

import numpy as np

from . import __version__, jsonguard
from . import limits as L
from .classifiers import WHEN_ABSENT
from .prior import check_scale
from .errors import ModelFileError, SegappError
from .modelcheck import (CLASSIFIER_TYPES, FORMAT, FORMAT_VERSION, MEMBERS, build_extractor, check_forest,
                         check_zip, load_npz, manifest_checksum, read_member, validate_manifest)

MAX_FILE_BYTES = 2 * 1024**3  # kept for callers; the effective limit is Limits.max_model_bytes
TRUSTED_TYPES = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._tree.Tree",
]


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    v = {"segapp": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("scikit-learn", "skops", "onnxruntime", "torch", "timm"):
        try:
            v[name] = version(name)
        except PackageNotFoundError:
            pass
    return v


def _classifier_member(seg) -> tuple[str, bytes]:
    """``(member name, bytes)``: the packed forest as ``.npz`` when possible, else skops."""
    from .forest import Forest

    if isinstance(seg.predictor_, Forest):
        buf = _io.BytesIO()
        np.savez(buf, **seg.predictor_.to_arrays())
        return "classifier.npz", buf.getvalue()
    import skops.io as sio

    return "classifier.skops", sio.dumps(seg.classifier_)


def dump_segmenter(seg) -> bytes:
    """Serialise a trained :class:`~segapp.segmenter.Segmenter` to model-file bytes.

    The manifest is validated exactly as on loading, so a file segapp writes is one it accepts
    (a class colour that is not ``#rrggbb`` raises here, not later for whoever loads the file).
    """
    seg._check_fitted()
    member, blob = _classifier_member(seg)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if member == "classifier.npz" else 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "extractor": seg.extractor.config(),
        "normalization": seg.normalization,
        "n_channels": seg.n_channels_,
        "n_features": int(seg.predictor_.n_features_in_),
        "classes": seg.classes,
        "classifier": {"type": CLASSIFIER_TYPES.get(seg.classifier, type(seg.classifier_).__name__),
                       "kind": seg.classifier,
                       "n_estimators": seg.n_estimators, "max_depth": seg.max_depth,
                       "max_samples": seg.max_samples, "class_weight": seg.class_weight,
                       "params": seg.classifier_params, "random_state": seg.random_state,
                       "prior_scale": None if seg.prior_scale_ is None else [float(v) for v in seg.prior_scale_]},
        "auto_report": seg.auto_report,
        "training": seg.training_info,
        "sha256": {member: hashlib.sha256(blob).hexdigest()},
    }
    try:
        manifest = json.loads(json.dumps(manifest, allow_nan=False))  # exactly what a reader will see
        validate_manifest(manifest, L.Limits(max_channels=max(L.Limits().max_channels, seg.n_channels_ or 1)))
    except (TypeError, ValueError) as e:
        raise SegappError(f"cannot save the model: {e}") from None
    except ModelFileError as e:
        raise SegappError(f"cannot save the model: {str(e).removeprefix('invalid model file: ')}") from None
    manifest["checksum"] = manifest_checksum(manifest)
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        z.writestr(member, blob)
    return buf.getvalue()


def read_manifest(data: bytes, limits: L.Limits | None = None) -> tuple[dict, str, bytes]:
    """Check the container and the manifest; return ``(validated manifest, classifier member, its bytes)``.

    Nothing is inflated before the zip directory passed its checks, and the classifier
    member is only read once the manifest (and its checksum) passed.
    """
    lim = limits or L.default_limits()
    if not data:
        raise ModelFileError("the model file is empty")
    if len(data) > lim.max_model_bytes:
        raise ModelFileError(f"the model file is larger than {L.human_bytes(lim.max_model_bytes)} "
                             "(SEGAPP_MAX_MODEL_MB)")
    if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"}q", b"]q") or \
            (data[:1] in b"c(]}NIST" and data.rstrip().endswith(b".")):  # protocol 0-1 pickles end with STOP
        raise ModelFileError("this looks like a pickle file; segapp never unpickles model files")
    if data[:2] != b"PK":
        raise ModelFileError("not a segapp model file (not a zip archive)")
    z = check_zip(data, "the model file", max_members=8, max_total=lim.max_model_bytes,
                  sizes={"manifest.json": L.MAX_MANIFEST_BYTES, **{m: lim.max_model_bytes for m in MEMBERS}},
                  required=("manifest.json",))
    with z:
        names = z.namelist()
        member = next((m for m in MEMBERS if m in names), None)
        if member is None or sum(m in names for m in MEMBERS) != 1:
            raise ModelFileError("not a segapp model file (zip without manifest.json/classifier)")
        raw = read_member(z, "manifest.json", "the model file")
        try:
            doc = jsonguard.loads(raw, max_bytes=L.MAX_MANIFEST_BYTES)
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelFileError(f"the model file's manifest is not valid JSON "
                                 f"({' '.join(str(e).split())[:80]})") from None
        manifest = validate_manifest(doc, lim)
        if "checksum" in doc or manifest["format_version"] >= 3:
            if not isinstance(doc.get("checksum"), str) or doc["checksum"] != manifest_checksum(doc):
                raise ModelFileError("the model file was modified after saving (manifest checksum mismatch); "
                                     "refusing to load it")
        blob = read_member(z, member, "the model file")
    if manifest["sha256"].get(member) != hashlib.sha256(blob).hexdigest():
        raise ModelFileError("the model file was modified after saving (checksum mismatch); refusing to load it")
    return manifest, member, blob


_PLAIN_NODES = {"DictNode", "ListNode", "JsonNode", "TupleNode", "NdArrayNode"}


def schema_types(blob: bytes, max_total: int | None = None) -> set[str]:
    """Every type a skops blob would construct, read from its JSON schema (nothing is loaded).

    Plain containers and NumPy arrays are reported as their node kind; objects
    and type references as ``module.Class``.  The skops zip is size-checked first
    (``max_total`` uncompressed bytes at most).
    """
    max_total = max_total or L.default_limits().max_model_bytes
    with check_zip(blob, "the classifier", max_members=L.MAX_ZIP_MEMBERS, max_total=max_total,
                   required=("schema.json",)) as z:
        try:
            schema = jsonguard.loads(read_member(z, "schema.json", "the classifier"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "__class__" in node:
                loader = node.get("__loader__", "")
                name = f"{node.get('__module__')}.{node['__class__']}"
                plain = loader in _PLAIN_NODES or (loader == "TypeNode" and node.get("__module__") in ("builtins", "numpy"))
                found.add(loader if plain else name)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return found


def _load_classifier(blob: bytes, manifest: dict, limits: L.Limits):
    import skops.io as sio

    untrusted = schema_types(blob, limits.max_model_bytes) - set(TRUSTED_TYPES) - _PLAIN_NODES - {"TypeNode"}
    try:
        untrusted |= set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES)
    except Exception as e:
        raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
    if untrusted:
        shown = sorted(untrusted)
        raise ModelFileError(f"the model file contains untrusted types {str(shown[:4])[:200]}"
                             f"{' and more' if len(shown) > 4 else ''}; refusing to load it")
    try:
        clf = sio.loads(blob, trusted=TRUSTED_TYPES)
    except Exception as e:
        made = manifest["versions"].get("scikit-learn", "?")
        import sklearn

        raise ModelFileError(f"the classifier cannot be loaded (saved with scikit-learn {made[:20]}, this is "
                             f"{sklearn.__version__}): {type(e).__name__}") from None
    if type(clf).__name__ not in CLASSIFIER_TYPES.values() or not type(clf).__module__.startswith("sklearn."):
        raise ModelFileError(f"unexpected classifier type {type(clf).__name__} in the model file")
    return clf


def load_segmenter(source, cls=None, limits: L.Limits | None = None):
    """Read a model file (path, bytes or binary file object) into a Segmenter.

    Raises
    ------
    ModelFileError
        The file is not a segapp model, is damaged or was modified, is from a newer format,
        asks for more than the limits allow, contains untrusted types or a malformed tree,
        or names an unknown feature extractor.
    """
    from .forest import Forest
    from .segmenter import Segmenter

    cls = cls or Segmenter
    lim = limits or L.default_limits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(lim.max_model_bytes + 1)
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(lim.max_model_bytes + 1)
        except IsADirectoryError:
            raise ModelFileError(f"cannot read model file {source}: it is a folder") from None
        except OSError as e:
            raise ModelFileError(f"cannot read model file {source}: {e.strerror or e}") from None
    if not isinstance(data, (bytes, bytearray)):
        raise ModelFileError("cannot read the model file: open it in binary mode ('rb')")
    manifest, member, blob = read_manifest(bytes(data), lim)
    extractor = build_extractor(manifest["extractor"])
    n_channels, n_features = manifest["n_channels"], manifest["n_features"]
    if extractor.n_features(n_channels) != n_features:
        raise ModelFileError("the model file is inconsistent: its classifier does not match its feature extractor")
    classes, params = manifest["classes"], manifest["classifier"]
    class_ids = [c["id"] for c in classes]
    if member == "classifier.npz":
        clf = Forest.from_arrays(load_npz(blob, n_features, class_ids, lim))
        kind = params["kind"] or "random-forest"  # both kinds pack the same way: the kind is the manifest's
    else:
        clf = _load_classifier(blob, manifest, lim)
        check_forest(clf, n_features, class_ids)
        kind = {v: k for k, v in CLASSIFIER_TYPES.items()}[type(clf).__name__]
    if clf.n_features_in_ != n_features:
        raise ModelFileError("the model file is inconsistent: its classifier does not match its feature extractor")
    if class_ids != [int(c) for c in clf.classes_]:
        raise ModelFileError("the model file is inconsistent: class list does not match the classifier")
    if (params["kind"] or kind) != kind:
        raise ModelFileError("the model file is inconsistent: its classifier kind does not match the classifier")
    saved = {**WHEN_ABSENT, **params["params"]}   # older files: retrain as they were trained (no prior correction)
    seg = cls(features=extractor.config(), normalization=manifest["normalization"], classes=classes, classifier=kind,
              classifier_params={**saved, "n_estimators": params["n_estimators"],
                                 "max_depth": params["max_depth"] or 0, "max_samples": params["max_samples"],
                                 "class_weight": params["class_weight"]},
              random_state=params["random_state"] if params["random_state"] is not None else 0)
    try:
        scale = params["prior_scale"]
        seg.prior_scale_ = None if scale is None else check_scale(scale, len(classes))
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"the model file's prior correction is malformed ({e})") from None
    if member == "classifier.npz":
        seg.predictor_ = clf
    else:
        from .segmenter import make_predictor

        seg.classifier_, seg.predictor_ = clf, make_predictor(clf)
    seg.n_channels_ = n_channels
    seg.auto_report = manifest["auto_report"]
    seg.training_info = manifest["training"]
    seg.manifest = manifest
    return seg
