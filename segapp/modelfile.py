"""The ``.segapp`` model file: a zip of a JSON manifest and the classifier as plain arrays.

Loading never executes code from the file.  Format 2 stores the forest as
``classifier.npz`` — integer and float arrays only, read with
``allow_pickle=False`` and checked node by node (:meth:`segapp.forest.Forest.from_arrays`)
— so a model loads with NumPy alone, without scikit-learn or skops.  The fast
predictor (an ONNX Runtime session) is generated from those verified arrays on
load; nothing compiled is ever stored.  Format-1 files (``classifier.skops``)
still load, through ``skops.io.loads`` with an explicit list of trusted types
(random-forest parts only); classifiers that cannot be packed as a forest are
still written that way.  A SHA-256 of the classifier member is recorded in the
manifest, so edited or truncated files are refused.  Pickles, foreign zips and
files from a newer format are refused with a one-line
:class:`~segapp.errors.ModelFileError`.

Layout::

    model.segapp (zip)
      manifest.json     format, versions, extractor config, classes, normalisation, digest
      classifier.npz    the forest's arrays (format 2), or classifier.skops (format 1)

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
import zlib
from datetime import datetime, timezone

import numpy as np

from . import __version__
from .errors import ModelFileError, SegappError

FORMAT = "segapp-model"
FORMAT_VERSION = 2
MEMBERS = ("classifier.npz", "classifier.skops")  # format 2, format 1
MAX_FILE_BYTES = 2 * 1024**3
TRUSTED_TYPES = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._tree.Tree",
]
#: classifier kind (segapp.classifiers) -> the estimator class a model file may hold for it
CLASSIFIER_TYPES = {"random-forest": "RandomForestClassifier", "extra-trees": "ExtraTreesClassifier"}


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
    """Serialise a trained :class:`~segapp.segmenter.Segmenter` to model-file bytes."""
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
                       "params": seg.classifier_params, "random_state": seg.random_state},
        "auto_report": seg.auto_report,
        "training": seg.training_info,
        "sha256": {member: hashlib.sha256(blob).hexdigest()},
    }
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        z.writestr(member, blob)
    return buf.getvalue()


def read_manifest(data: bytes) -> tuple[dict, str, bytes]:
    """Validate the container and return ``(manifest, classifier member name, its bytes)``."""
    if not data:
        raise ModelFileError("the model file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ModelFileError("the model file is larger than 2 GB")
    if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"}q", b"]q"):
        raise ModelFileError("this looks like a pickle file; segapp never unpickles model files")
    if not zipfile.is_zipfile(_io.BytesIO(data)):
        raise ModelFileError("not a segapp model file (not a zip archive)")
    try:
        with zipfile.ZipFile(_io.BytesIO(data)) as z:
            names = set(z.namelist())
            member = next((m for m in MEMBERS if m in names), None)
            if "manifest.json" not in names or member is None:
                raise ModelFileError("not a segapp model file (zip without manifest.json/classifier)")
            manifest = json.loads(z.read("manifest.json"))
            blob = z.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError, EOFError, zlib.error) as e:
        raise ModelFileError(f"the model file is damaged ({type(e).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError("not a segapp model file (unknown manifest format)")
    fv = manifest.get("format_version")
    if not isinstance(fv, int) or fv > FORMAT_VERSION:
        raise ModelFileError(f"model file format {fv} is newer than this segapp supports ({FORMAT_VERSION}); upgrade segapp")
    expected = (manifest.get("sha256") or {}).get(member)
    if expected != hashlib.sha256(blob).hexdigest():
        raise ModelFileError("the model file was modified after saving (checksum mismatch); refusing to load it")
    return manifest, member, blob


def _load_forest(blob: bytes):
    """The packed forest of a format-2 file: plain arrays only (no pickles), every node checked."""
    from .forest import Forest

    try:
        with np.load(_io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
    return Forest.from_arrays(arrays)


_PLAIN_NODES = {"DictNode", "ListNode", "JsonNode", "TupleNode", "NdArrayNode"}


def schema_types(blob: bytes) -> set[str]:
    """Every type a skops blob would construct, read from its JSON schema (nothing is loaded).

    Plain containers and NumPy arrays are reported as their node kind; objects
    and type references as ``module.Class``.
    """
    with zipfile.ZipFile(_io.BytesIO(blob)) as z:
        schema = json.loads(z.read("schema.json"))
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


def _load_classifier(blob: bytes, manifest: dict):
    import skops.io as sio

    try:
        untrusted = schema_types(blob) - set(TRUSTED_TYPES) - _PLAIN_NODES - {"TypeNode"}
        untrusted |= set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES)
    except Exception as e:
        raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
    if untrusted:
        raise ModelFileError(f"the model file contains untrusted types {sorted(untrusted)}; refusing to load it")
    try:
        clf = sio.loads(blob, trusted=TRUSTED_TYPES)
    except Exception as e:
        made = (manifest.get("versions") or {}).get("scikit-learn", "?")
        import sklearn

        raise ModelFileError(f"the classifier cannot be loaded (saved with scikit-learn {made}, this is "
                             f"{sklearn.__version__}): {type(e).__name__}") from None
    if type(clf).__name__ not in CLASSIFIER_TYPES.values() or not type(clf).__module__.startswith("sklearn."):
        raise ModelFileError(f"unexpected classifier type {type(clf).__name__} in the model file")
    return clf


def load_segmenter(source, cls=None):
    """Read a model file (path, bytes or binary file object) into a Segmenter.

    Raises
    ------
    ModelFileError
        The file is not a segapp model, was modified, is from a newer format,
        contains untrusted types, or names an unknown feature extractor.
    """
    from .features import get_extractor
    from .segmenter import Segmenter

    cls = cls or Segmenter
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ModelFileError(f"cannot read model file {source}: {e.strerror or e}") from None
    manifest, member, blob = read_manifest(data)
    try:
        extractor = get_extractor(manifest["extractor"])
        classes = [{"id": int(c["id"]), "name": str(c["name"]), "color": str(c["color"])}
                   for c in manifest["classes"]]
        norm = {k: manifest["normalization"][k] for k in ("method", "low", "high")}
        n_channels = int(manifest["n_channels"])
        n_features = int(manifest["n_features"])
    except SegappError as e:
        raise ModelFileError(f"the model file needs an unavailable feature extractor: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"the model file's manifest is incomplete ({type(e).__name__}: {e})") from None
    clf = _load_forest(blob) if member == "classifier.npz" else _load_classifier(blob, manifest)
    if extractor.n_features(n_channels) != n_features or clf.n_features_in_ != n_features:
        raise ModelFileError("the model file is inconsistent: its classifier does not match its feature extractor")
    if [c["id"] for c in classes] != [int(c) for c in clf.classes_]:
        raise ModelFileError("the model file is inconsistent: class list does not match the classifier")
    params = manifest.get("classifier") or {}
    if member == "classifier.npz":  # a packed forest: the kind is the manifest's (both kinds pack the same way)
        kind = params.get("kind", "random-forest")
        if kind not in CLASSIFIER_TYPES:
            raise ModelFileError(f"the model file names an unknown classifier kind {kind!r}")
    else:
        kind = {v: k for k, v in CLASSIFIER_TYPES.items()}[type(clf).__name__]
    if params.get("kind", kind) != kind:
        raise ModelFileError("the model file is inconsistent: its classifier kind does not match the classifier")
    saved = params.get("params") if isinstance(params.get("params"), dict) else {}
    seg = cls(features=extractor.config(), normalization=norm, classes=classes, classifier=kind,
              classifier_params={**saved, "n_estimators": params.get("n_estimators", 32),
                                 "max_depth": params.get("max_depth") or 0,
                                 "max_samples": params.get("max_samples", 0.05),
                                 "class_weight": params.get("class_weight")},
              random_state=params.get("random_state", 0))
    if member == "classifier.npz":
        seg.predictor_ = clf
    else:
        from .segmenter import make_predictor

        seg.classifier_, seg.predictor_ = clf, make_predictor(clf)
    seg.n_channels_ = n_channels
    seg.auto_report = manifest.get("auto_report")
    seg.training_info = manifest.get("training") or {}
    seg.manifest = manifest
    return seg
