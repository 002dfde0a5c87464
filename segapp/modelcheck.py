"""Checks on an untrusted model file: its zips, its manifest and its trees, before anything is built.

A model file is data.  :mod:`segapp.modelfile` packs and unpacks it; this module decides
whether what it unpacked may be used:

- :func:`check_zip` - member count, names, declared sizes and compression ratios, read from
  the central directory before anything is inflated (the model zip and the skops zip inside).
- :func:`validate_manifest` - every field the loader uses, by type and range: extractor
  config (within each extractor's own bounds; ``device`` is never taken from a file), channels,
  features, classes (ids 1..255, names, ``#rrggbb`` colours), classifier parameters,
  normalisation.  Returns a clean copy holding only validated values.
- :func:`check_forest` - the loaded forest matches the manifest, and every tree is well formed
  (children after their parent, so traversal ends; split features exist; values finite), so a
  crafted tree can neither crash nor hang prediction.

Every refusal is a one-line :class:`~segapp.errors.ModelFileError`.

Examples
--------
>>> validate_manifest({"format": "segapp-model", "format_version": 9})
Traceback (most recent call last):
...
segapp.errors.ModelFileError: model file format 9 is newer than this segapp supports (3); upgrade segapp
>>> m = {"format": "segapp-model", "format_version": 2, "extractor": {"name": "classical"},
...      "normalization": {"method": "none"}, "n_channels": 10**30}
>>> validate_manifest(m)
Traceback (most recent call last):
...
segapp.errors.ModelFileError: invalid model file: n_channels = 1000000000000000000000000000000 is outside 1..16
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import re
import struct
import zipfile

import numpy as np

from . import limits as L
from .errors import ModelFileError, SegappError
from .io import NORMALIZE_METHODS

FORMAT = "segapp-model"
FORMAT_VERSION = 3  # 3: manifest checksum + classifier.npz; 2: classifier.npz; 1: classifier.skops
MEMBERS = ("classifier.npz", "classifier.skops")
#: classifier kind (segapp.classifiers) -> the estimator class a model file may hold for it
#: (with its skops types in modelfile.TRUSTED_TYPES)
CLASSIFIER_TYPES = {"random-forest": "RandomForestClassifier", "extra-trees": "ExtraTreesClassifier"}
_TREE_TYPES = {"RandomForestClassifier": "DecisionTreeClassifier", "ExtraTreesClassifier": "ExtraTreeClassifier"}
_NPZ_ARRAYS = ("classes", "n_features", "offsets", "feature", "threshold", "left", "right", "value")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_MEMBER = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _bad(reason: str) -> ModelFileError:
    return ModelFileError(f"invalid model file: {reason}")


# -- zip containers -----------------------------------------------------------------------------
def _central_directory(data: bytes) -> tuple[int, int]:
    """``(entries, size)`` from the end-of-central-directory record (no entry is parsed)."""
    pos = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if pos < 0 or pos + 22 > len(data):
        raise zipfile.BadZipFile("no end of central directory")
    _, _, _, entries, size, _, _ = struct.unpack_from("<HHHHIIH", data, pos + 4)
    if entries == 0xFFFF or size == 0xFFFFFFFF:
        raise _bad("zip64 archives are not model files")
    return entries, size


def check_zip(data: bytes, what: str, *, max_members: int, max_total: int, sizes: dict | None = None,
              required: tuple = ()) -> zipfile.ZipFile:
    """Open ``data`` as a zip after checking what inflating it would cost; returns the ZipFile.

    Parameters
    ----------
    what : str
        Name used in messages ("the model file", "the classifier").
    max_members, max_total : int
        Most members, and most uncompressed bytes of all members together.
    sizes : dict, optional
        ``{member name: largest uncompressed size}``; with it, only these names are allowed.
    required : tuple
        Member names that must be present.
    """
    try:
        entries, cd_size = _central_directory(data)
    except (zipfile.BadZipFile, struct.error):
        raise ModelFileError(f"{what} is damaged (not a complete zip archive)") from None
    if entries > max_members or cd_size > max_members * 400:
        raise _bad(f"{what} has {entries:,} members; at most {max_members:,} are expected")
    try:
        z = zipfile.ZipFile(_io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise ModelFileError(f"{what} is damaged ({type(e).__name__})") from None
    infos = z.infolist()
    names = [i.filename for i in infos]
    if len(infos) > max_members:
        raise _bad(f"{what} has {len(infos):,} members; at most {max_members:,} are expected")
    missing = [n for n in required if n not in names]
    if missing:
        raise ModelFileError(f"not a segapp model file (zip without {'/'.join(missing)})")
    if len(set(names)) != len(names):
        raise _bad(f"{what} holds the same member twice")
    total = 0
    for info in infos:
        name = info.filename
        if not _MEMBER.match(name) or name.startswith("."):
            raise _bad(f"{what} has an unexpected member {name[:40]!r}")
        if sizes is not None and name not in sizes:
            raise _bad(f"{what} has an unexpected member {name!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(f"{what}: member {name!r} uses an unsupported compression")
        limit = sizes[name] if sizes is not None else max_total
        if info.file_size > limit:
            raise ModelFileError(f"refusing {what}: its member {name!r} would inflate to "
                                 f"{L.human_bytes(info.file_size)}, more than the {L.human_bytes(limit)} allowed")
        if info.file_size > 2**20 and info.file_size > L.MAX_ZIP_RATIO * max(1, info.compress_size):
            raise ModelFileError(f"refusing {what}: its member {name!r} is compressed "
                                 f"{info.file_size // max(1, info.compress_size):,}:1 (a zip bomb)")
        total += info.file_size
    if total > max_total:
        raise ModelFileError(f"refusing {what}: it would inflate to {L.human_bytes(total)}, more than the "
                             f"{L.human_bytes(max_total)} allowed (SEGAPP_MAX_MODEL_MB)")
    return z


def read_member(z: zipfile.ZipFile, name: str, what: str) -> bytes:
    """A member's bytes, never more than its (checked) declared size; CRC verified by zipfile."""
    info = z.getinfo(name)
    try:
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise ModelFileError(f"{what} is damaged ({type(e).__name__}: {' '.join(str(e).split())[:60]})") from None
    except Exception as e:  # zlib.error and friends on flipped bytes
        kind = type(e).__name__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__name__}"
        raise ModelFileError(f"{what} is damaged ({kind})") from None
    if len(data) != info.file_size:
        raise ModelFileError(f"{what} is damaged (member {name!r} has the wrong size)")
    return data


# -- the manifest -------------------------------------------------------------------------------
def canonical(doc) -> bytes:
    """Canonical JSON bytes of a document (sorted keys, no spaces) for the manifest checksum."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 over the canonical manifest without its ``checksum`` field."""
    return hashlib.sha256(canonical({k: v for k, v in manifest.items() if k != "checksum"})).hexdigest()


def _int(doc, key, lo, hi, *, optional=False, default=None, where=""):
    v = doc.get(key, default) if isinstance(doc, dict) else None
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"{where}{key} must be an integer, got {_show(v)}")
    if not lo <= v <= hi:
        raise _bad(f"{where}{key} = {v} is outside {lo}..{hi}")
    return v


def _num(doc, key, lo, hi, *, default=None, where=""):
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(f"{where}{key} must be a number, got {_show(v)}")
    if not lo <= v <= hi:
        raise _bad(f"{where}{key} = {v} is outside {lo:g}..{hi:g}")
    return float(v)


def _text(v, what, max_len):
    if not isinstance(v, str):
        raise _bad(f"{what} must be text, got {_show(v)}")
    if len(v) > max_len or _CONTROL.search(v):
        raise _bad(f"{what} must be at most {max_len} printable characters")
    return v


def _show(v) -> str:
    s = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__
    return s if len(s) <= 40 else s[:37] + "..."


def _extractor(cfg, depth=0) -> dict:
    """Validated extractor config; ``device`` dropped (it is always resolved on this machine)."""
    from .features import registered

    if not isinstance(cfg, dict):
        raise _bad(f"extractor must be an object, got {_show(cfg)}")
    if "parts" in cfg:
        parts = cfg["parts"]
        if depth or not isinstance(parts, list) or not 2 <= len(parts) <= L.MAX_PARTS:
            raise _bad(f"extractor combination must list 2..{L.MAX_PARTS} extractors")
        clean = [_extractor(p, 1) for p in parts]
        return {"name": "+".join(p["name"] for p in clean), "parts": clean}
    name = _text(cfg.get("name"), "extractor name", 40)
    cls = registered().get(name)
    if cls is None:
        raise ModelFileError(f"the model file needs an unavailable feature extractor: unknown feature extractor "
                             f"'{name}'; available: {', '.join(sorted(registered()))}")
    params = cfg.get("params", {})
    if not isinstance(params, dict) or len(params) > 16:
        raise _bad(f"extractor params must be an object, got {_show(params)}")
    unknown = set(params) - set(cls.default_params)
    if unknown:
        raise _bad(f"unknown parameter(s) {str(sorted(unknown))[:60]} for feature extractor '{name}'")
    params = {k: v for k, v in params.items() if k != "device"}
    if "device" in cls.default_params:
        params["device"] = "auto"
    return {"name": name, "params": params}


def _classes(classes) -> list[dict]:
    if not isinstance(classes, list) or not 2 <= len(classes) <= L.MAX_CLASS_ID:
        raise _bad(f"classes must be a list of 2..{L.MAX_CLASS_ID} classes")
    out, seen = [], set()
    for i, c in enumerate(classes):
        if not isinstance(c, dict):
            raise _bad(f"class {i + 1} must be an object, got {_show(c)}")
        cid = _int(c, "id", 1, L.MAX_CLASS_ID, where="class ")
        if cid in seen:
            raise _bad(f"class id {cid} appears twice")
        seen.add(cid)
        name = _text(c.get("name"), f"the name of class {cid}", L.MAX_CLASS_NAME)
        color = c.get("color")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise _bad(f"the colour of class {cid} must be #rrggbb, got {_show(color)}")
        out.append({"id": cid, "name": name, "color": color.lower()})
    return out


def _normalization(n) -> dict:
    if not isinstance(n, dict):
        raise _bad(f"normalization must be an object, got {_show(n)}")
    method = n.get("method")
    if method not in NORMALIZE_METHODS:
        raise _bad(f"normalization method must be one of {', '.join(NORMALIZE_METHODS)}, got {_show(method)}")
    low = _num(n, "low", 0, 100, default=1.0, where="normalization ")
    high = _num(n, "high", 0, 100, default=99.8, where="normalization ")
    if method == "percentile" and not low < high:
        raise _bad(f"normalization percentiles must satisfy low < high, got {low:g}, {high:g}")
    return {"method": method, "low": low, "high": high}


def _forest_params(p, where: str) -> dict:
    """The forest parameters segapp.classifiers reads, each within bounds (unknown keys refused)."""
    known = {"n_estimators", "max_depth", "max_samples", "class_weight", "max_features", "min_samples_leaf",
             "prior_correction"}
    unknown = set(p) - known
    if unknown:
        raise _bad(f"{where}unknown parameter(s) {str(sorted(unknown))[:60]}")
    out = {}
    if "n_estimators" in p:
        out["n_estimators"] = _int(p, "n_estimators", 1, L.MAX_TREES, where=where)
    if "max_depth" in p:
        out["max_depth"] = _int(p, "max_depth", 0, L.MAX_TREE_DEPTH, optional=True, where=where)
    if "max_samples" in p:
        out["max_samples"] = _num(p, "max_samples", 1e-9, 1, where=where)
    if "min_samples_leaf" in p:
        out["min_samples_leaf"] = _int(p, "min_samples_leaf", 1, 10**6, where=where)
    if "class_weight" in p:
        if p["class_weight"] not in (None, "balanced"):
            raise _bad(f"{where}class_weight must be null or \"balanced\", got {_show(p['class_weight'])}")
        out["class_weight"] = p["class_weight"]
    if "max_features" in p:
        v = p["max_features"]
        if not (v in (None, "sqrt", "log2") or (not isinstance(v, bool) and isinstance(v, (int, float))
                                                  and 0 < v <= L.MAX_FEATURES)):
            raise _bad(f"{where}max_features must be \"sqrt\", \"log2\", null or a number, got {_show(v)}")
        out["max_features"] = v
    if "prior_correction" in p:
        out["prior_correction"] = _num(p, "prior_correction", 0, 1, where=where)
    return out


def _classifier_params(p) -> dict:
    if not isinstance(p, dict):
        raise _bad(f"classifier must be an object, got {_show(p)}")
    kind = p.get("kind")
    if kind is not None and kind not in CLASSIFIER_TYPES:
        raise _bad(f"classifier kind must be one of {', '.join(CLASSIFIER_TYPES)}, got {_show(kind)}")
    typ = p.get("type", CLASSIFIER_TYPES.get(kind, "RandomForestClassifier"))
    if typ not in CLASSIFIER_TYPES.values() or (kind is not None and typ != CLASSIFIER_TYPES[kind]):
        raise _bad(f"classifier type must be one of {', '.join(CLASSIFIER_TYPES.values())}"
                   f"{' for kind ' + kind if kind else ''}, got {_show(typ)}")
    weight = p.get("class_weight")
    if weight not in (None, "balanced"):
        raise _bad(f"classifier class_weight must be null or \"balanced\", got {_show(weight)}")
    extra = p.get("params", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise _bad(f"classifier params must be an object, got {_show(extra)}")
    return {"type": typ, "kind": kind,
            "n_estimators": _int(p, "n_estimators", 1, L.MAX_TREES, default=32, where="classifier "),
            "max_depth": _int(p, "max_depth", 0, L.MAX_TREE_DEPTH, optional=True, where="classifier ") or None,
            "max_samples": _num(p, "max_samples", 1e-9, 1, default=0.05, where="classifier "),
            "class_weight": weight, "params": _forest_params(extra, "classifier params "),
            "random_state": _int(p, "random_state", 0, 2**32 - 1, optional=True, where="classifier "),
            "prior_scale": _prior_scale(p.get("prior_scale"))}


def _prior_scale(v):
    """The prior correction's per-class factors: null, or finite positive numbers (one per class,
    checked against the class list on load)."""
    if v is None:
        return None
    if not isinstance(v, list) or not 2 <= len(v) <= L.MAX_CLASS_ID or not all(
            not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in v):
        raise _bad("the prior correction (classifier prior_scale) is malformed: it must be null or "
                   "one finite positive number per class")
    return [float(x) for x in v]


def _report(doc, what):
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise _bad(f"{what} must be an object, got {_show(doc)}")
    for key in ("chosen", "reason"):
        if key in doc:
            _text(doc[key], f"{what} {key}", 500)
    return doc


def validate_manifest(m, limits: L.Limits | None = None) -> dict:
    """Check every field the loader uses; return a clean manifest of validated values only.

    Raises
    ------
    ModelFileError
        Wrong format or version, a field of the wrong type, or a value out of bounds.
    """
    lim = limits or L.Limits()
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ModelFileError("not a segapp model file (unknown manifest format)")
    fv = m.get("format_version")
    if isinstance(fv, bool) or not isinstance(fv, int) or fv < 1:
        raise _bad(f"format_version must be a positive integer, got {_show(fv)}")
    if fv > FORMAT_VERSION:
        raise ModelFileError(f"model file format {fv} is newer than this segapp supports ({FORMAT_VERSION}); "
                             "upgrade segapp")
    versions = m.get("versions") or {}
    if not isinstance(versions, dict) or len(versions) > 32 or \
            not all(isinstance(k, str) and isinstance(v, str) and len(k) + len(v) < 200 for k, v in versions.items()):
        raise _bad("versions must map names to version strings")
    training = m.get("training") or {}
    if not isinstance(training, dict) or len(training) > 64 or not all(
            isinstance(v, (int, float, str, bool, type(None), list)) for v in training.values()):
        raise _bad("training must be an object of plain values")
    clean = {
        "format": FORMAT, "format_version": fv, "created": _text(m.get("created", ""), "created", 64),
        "versions": dict(versions), "extractor": _extractor(m.get("extractor")),
        "normalization": _normalization(m.get("normalization")),
        "n_channels": _int(m, "n_channels", 1, lim.max_channels),
        "n_features": _int(m, "n_features", 1, L.MAX_FEATURES),
        "classes": _classes(m.get("classes")), "classifier": _classifier_params(m.get("classifier", {})),
        "auto_report": _report(m.get("auto_report"), "auto_report"), "training": dict(training),
    }
    sha = m.get("sha256")
    if not isinstance(sha, dict) or not sha or not all(k in MEMBERS and isinstance(v, str) for k, v in sha.items()):
        raise _bad("the classifier checksum (sha256) is missing")
    clean["sha256"] = {k: v for k, v in sha.items()}
    return clean


def build_extractor(cfg: dict):
    """The extractor of a validated config; its own bounds (sigmas, scales, layers) apply."""
    from .features import get_extractor

    from .features import registered

    if cfg.get("name") == "timm" or any(p.get("name") == "timm" for p in cfg.get("parts", [])):
        _require_timm_weights(cfg)
    for part in cfg.get("parts", [cfg]):  # weights a backbone needs: say so now, not on every prediction
        ok, message = registered()[part["name"]].availability()
        if not ok:
            raise ModelFileError(f"the model file needs an unavailable feature extractor: {message}")
    try:
        return get_extractor(cfg)
    except SegappError as e:
        raise ModelFileError(f"the model file's feature extractor is not usable here: {e}") from None
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise _bad(f"extractor ({type(e).__name__})") from None


def _require_timm_weights(cfg: dict) -> None:
    """A generic timm backbone from a file is built only when its weights are here (building one
    allocates the whole network: a file could otherwise name a billion-parameter model)."""
    from .features import weights as W

    for part in cfg.get("parts", [cfg]):
        if part.get("name") != "timm":
            continue
        model = part.get("params", {}).get("model", "resnet18")
        if not isinstance(model, str) or not re.match(r"^[A-Za-z0-9_.-]{1,100}$", model):
            raise _bad(f"timm model must be a model name, got {_show(model)}")
        ok, message = W.weights_status(model, list(W.timm_weight_files(model)))
        if not ok:
            raise ModelFileError(f"the model file needs an unavailable feature extractor: {message}")


# -- the forest ---------------------------------------------------------------------------------
def _tree_depth(left: np.ndarray, right: np.ndarray, stop: int) -> int:
    """Depth of a proper tree (every node but the root has one parent), level by level; O(nodes)."""
    frontier, level = np.array([0]), -1
    while frontier.size and level <= stop:
        kids = np.concatenate([left[frontier], right[frontier]])
        frontier = kids[kids >= 0]
        level += 1
    return level


def check_forest(clf, n_features: int, class_ids: list[int], n_estimators: int | None = None) -> None:
    """Refuse a scikit-learn forest (skops files) that does not match its manifest, or holds a malformed tree."""
    tree_type = _TREE_TYPES.get(type(clf).__name__)
    if tree_type is None or not type(clf).__module__.startswith("sklearn."):
        raise ModelFileError(f"unexpected classifier type {type(clf).__name__} in the model file")
    trees = getattr(clf, "estimators_", None)
    if not isinstance(trees, list) or not 1 <= len(trees) <= L.MAX_TREES:
        raise _bad(f"the forest must hold 1..{L.MAX_TREES} trees")
    classes = np.asarray(getattr(clf, "classes_", []))
    if classes.ndim != 1 or classes.dtype.kind not in "iu" or classes.tolist() != list(class_ids):
        raise ModelFileError("the model file is inconsistent: class list does not match the classifier")
    k = len(class_ids)
    if getattr(clf, "n_outputs_", None) != 1 or getattr(clf, "n_classes_", None) != k or \
            getattr(clf, "n_features_in_", None) != n_features:
        raise ModelFileError("the model file is inconsistent: its classifier does not match its feature extractor")
    for i, est in enumerate(trees):
        where = f"tree {i + 1}"
        if type(est).__name__ != tree_type or not type(est).__module__.startswith("sklearn.") or \
                getattr(est, "n_outputs_", None) != 1 or \
                getattr(est, "n_classes_", None) != k or getattr(est, "n_features_in_", None) != n_features:
            raise _bad(f"{where} does not match the forest")
        t = est.tree_
        n = int(t.node_count)
        if t.n_features != n_features or t.n_outputs != 1 or list(t.n_classes) != [k] or not 1 <= n <= L.MAX_TREE_NODES:
            raise _bad(f"{where} does not match the forest")
        left, right, feat = np.asarray(t.children_left), np.asarray(t.children_right), np.asarray(t.feature)
        thr, value = np.asarray(t.threshold), np.asarray(t.value)
        idx = np.arange(n)
        leaf = left == -1
        inner = ~leaf
        if (leaf & (right != -1)).any() or (inner & ((left <= idx) | (right <= idx) | (left >= n) | (right >= n))).any():
            raise _bad(f"{where} is malformed (its nodes do not form a tree)")
        parents = np.bincount(np.concatenate([left[inner], right[inner]]), minlength=n)
        if parents[0] != 0 or (parents[1:] != 1).any():
            raise _bad(f"{where} is malformed (its nodes do not form a tree)")
        if inner.any() and ((feat[inner] < 0) | (feat[inner] >= n_features)).any():
            raise _bad(f"{where} splits on a feature that does not exist")
        if not np.isfinite(thr[inner]).all() or value.shape != (n, 1, k) or not np.isfinite(value).all() \
                or (value < 0).any():
            raise _bad(f"{where} holds non-finite or negative values")
        if _tree_depth(left, right, L.MAX_TREE_DEPTH) > L.MAX_TREE_DEPTH:
            raise _bad(f"{where} is deeper than {L.MAX_TREE_DEPTH}")
    clf.n_jobs = -1  # prediction uses this machine's cores; never the file's choice
    clf.verbose = 0


# -- the packed forest (classifier.npz) ------------------------------------------------------------
def load_npz(blob: bytes, n_features: int, class_ids: list[int], limits: L.Limits | None = None) -> dict:
    """The arrays of a packed forest, after checking what reading them would cost and their structure.

    The ``.npz`` is a zip too: its members are size-checked, and each ``.npy`` header (shape
    and dtype) must describe exactly the bytes its member holds - NumPy would otherwise
    allocate whatever a header claims before reading.  Then :func:`check_packed`.
    """
    import numpy.lib.format as npformat

    lim = limits or L.Limits()
    names = [f"{a}.npy" for a in _NPZ_ARRAYS]
    with check_zip(blob, "the classifier", max_members=2 * len(names), max_total=lim.max_model_bytes,
                   sizes={n: lim.max_model_bytes for n in names}) as z:
        missing = [n[:-4] for n in names if n not in z.namelist()]
        if missing:
            raise ModelFileError(f"the classifier in the model file lacks {missing[0]!r}")
        arrays = {}
        for name in names:
            info = z.getinfo(name)
            try:
                with z.open(info) as f:
                    version = npformat.read_magic(f)
                    read_header = npformat.read_array_header_1_0 if version == (1, 0) else \
                        npformat.read_array_header_2_0
                    shape, fortran, dtype = read_header(f, max_header_size=10_000)
                    header = f.tell()
            except Exception as e:  # a header numpy cannot parse
                raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
            if dtype.hasobject or dtype.kind not in "biuf" or len(shape) > 3:
                raise _bad(f"the classifier's array {name[:-4]!r} has type {str(dtype)[:20]}")
            if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size - header:
                raise ModelFileError("the classifier in the model file is damaged (an array's header does not "
                                     "match its data)")
            data = read_member(z, name, "the classifier")
            try:
                arrays[name[:-4]] = np.load(_io.BytesIO(data), allow_pickle=False)
            except Exception as e:
                raise ModelFileError(f"the classifier in the model file cannot be read ({type(e).__name__})") from None
    check_packed(arrays, n_features, class_ids)
    return arrays


def check_packed(a: dict, n_features: int, class_ids: list[int]) -> None:
    """What :meth:`segapp.forest.Forest.from_arrays` does not check: tree count, one parent per
    node (no shared subtrees) and depth <= MAX_TREE_DEPTH, so no tree makes prediction slow."""
    offsets = np.asarray(a.get("offsets"))
    left, right = np.asarray(a.get("left")), np.asarray(a.get("right"))
    if offsets.ndim != 1 or not 2 <= offsets.size <= L.MAX_TREES + 1 or offsets.dtype.kind not in "iu":
        raise _bad(f"the forest must hold 1..{L.MAX_TREES} trees")
    if left.ndim != 1 or left.shape != right.shape or left.dtype.kind not in "iu" or right.dtype.kind not in "iu" \
            or offsets[0] != 0 or offsets[-1] != left.size or (np.diff(offsets) <= 0).any() \
            or (np.diff(offsets) > L.MAX_TREE_NODES).any():
        raise ModelFileError("the classifier in the model file has inconsistent array shapes")
    start = np.repeat(offsets[:-1], np.diff(offsets))
    local = np.arange(left.size) - start
    size = np.repeat(np.diff(offsets), np.diff(offsets))
    inner = left >= 0
    if ((left[inner] <= local[inner]) | (left[inner] >= size[inner]) | (right[inner] <= local[inner])
            | (right[inner] >= size[inner])).any() or (right[~inner] >= 0).any():
        raise _bad("the forest's trees are malformed (their nodes do not form trees)")
    kids = np.concatenate([left[inner] + start[inner], right[inner] + start[inner]])
    parents = np.bincount(kids, minlength=left.size)
    roots = offsets[:-1]
    is_root = np.zeros(left.size, bool)
    is_root[roots] = True
    if (parents[is_root] != 0).any() or (parents[~is_root] != 1).any():
        raise _bad("the forest's trees are malformed (their nodes do not form trees)")
    gl, gr = np.where(inner, left + start, -1), np.where(inner, right + start, -1)
    frontier, level = roots.astype(np.int64), -1
    while frontier.size and level <= L.MAX_TREE_DEPTH:
        nxt = np.concatenate([gl[frontier], gr[frontier]])
        frontier = nxt[nxt >= 0]
        level += 1
    if level > L.MAX_TREE_DEPTH:
        raise _bad(f"a tree of the forest is deeper than {L.MAX_TREE_DEPTH}")
    classes, nf = np.asarray(a.get("classes")), np.asarray(a.get("n_features"))
    if classes.ndim != 1 or classes.dtype.kind not in "iu" or classes.tolist() != list(class_ids):
        raise ModelFileError("the model file is inconsistent: class list does not match the classifier")
    if nf.size != 1 or nf.dtype.kind not in "iu" or int(nf.reshape(())) != n_features:
        raise ModelFileError("the model file is inconsistent: its classifier does not match its feature extractor")
