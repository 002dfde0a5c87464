"""Model file: round trip, and refusal of pickles, edited, foreign and newer files."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from segapp.errors import ModelFileError
from segapp.modelcheck import manifest_checksum
from segapp.modelfile import FORMAT_VERSION
from segapp.segmenter import Segmenter


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(1)
    img = rng.random((48, 64)).astype(np.float32)
    img[:, 32:] += 1.5
    lab = np.zeros(img.shape, np.uint8)
    lab[5:8, 2:20] = 1
    lab[30:33, 40:60] = 2
    seg = Segmenter(features="classical", feature_params={"sigmas": [1.0, 2.0]}, n_estimators=5,
                    classes=[{"id": 2, "name": "cells", "color": "#ff0000"}]).fit(img, lab)
    return seg, img


def rewrite(data: bytes, edit) -> bytes:
    """Copy a model zip, letting ``edit(name, bytes)`` change each member."""
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            z.writestr(name, edit(name, src.read(name)))
    return out.getvalue()


def test_round_trip_identical_predictions(trained, tmp_path):
    seg, img = trained
    path = tmp_path / "m.segapp"
    seg.save(path)
    again = Segmenter.load(path)
    np.testing.assert_array_equal(again.predict(img), seg.predict(img))
    np.testing.assert_array_equal(again.predict_proba(img), seg.predict_proba(img))
    assert again.classes == seg.classes and again.classes[1]["name"] == "cells"
    assert again.extractor.config() == seg.extractor.config()
    assert again.normalization == seg.normalization
    assert "scikit-learn" in again.manifest["versions"]


def test_pickle_is_refused_without_being_loaded(trained, tmp_path):
    seg, _ = trained

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    for payload in (pickle.dumps(seg.classifier_), pickle.dumps(Boom())):
        with pytest.raises(ModelFileError, match="pickle"):
            Segmenter.load(payload)
    assert not (tmp_path / "pwned").exists()


def test_edited_classifier_is_refused(trained):
    data = trained[0].save()
    edited = rewrite(data, lambda n, b: b[:-10] + b"0123456789" if n == "classifier.npz" else b)
    with pytest.raises(ModelFileError, match="modified"):
        Segmenter.load(edited)


def test_edited_manifest_is_refused(trained):
    data = trained[0].save()

    def edit(name, b):
        if name != "manifest.json":
            return b
        m = json.loads(b)
        m["n_features"] = 3
        return json.dumps(m).encode()

    with pytest.raises(ModelFileError, match="modified"):  # the checksum covers the manifest too
        Segmenter.load(rewrite(data, edit))


def format1(data: bytes, blob: bytes) -> bytes:
    """A format-1 file (classifier.skops) with ``blob`` as its classifier and a matching checksum."""
    import hashlib

    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    m = json.loads(src.read("manifest.json"))
    m["format_version"] = 1
    m["sha256"] = {"classifier.skops": hashlib.sha256(blob).hexdigest()}
    m.pop("checksum")  # format 1 had no manifest checksum
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", json.dumps(m))
        z.writestr("classifier.skops", blob)
    return out.getvalue()


def test_format1_skops_files_still_load(trained):
    import skops.io as sio

    seg, img = trained
    again = Segmenter.load(format1(seg.save(), sio.dumps(seg.classifier_)))
    np.testing.assert_array_equal(again.predict(img), seg.predict(img))


def test_untrusted_type_inside_skops_is_refused(trained):
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    blob = sio.dumps(Pipeline([("rf", trained[0].classifier_)]))
    with pytest.raises(ModelFileError, match="untrusted"):
        Segmenter.load(format1(trained[0].save(), blob))


def replace_arrays(data: bytes, change) -> bytes:
    """A format-2 file whose forest arrays went through ``change(dict)``, checksum recomputed."""
    import hashlib

    src = zipfile.ZipFile(io.BytesIO(data))
    with np.load(io.BytesIO(src.read("classifier.npz")), allow_pickle=True) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    m = json.loads(src.read("manifest.json"))
    m["sha256"] = {"classifier.npz": hashlib.sha256(blob).hexdigest()}
    m["checksum"] = manifest_checksum(m)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", json.dumps(m))
        z.writestr("classifier.npz", blob)
    return out.getvalue()


def _cycle(a):
    a["left"] = a["left"].copy()
    a["left"][1 if a["left"][1] >= 0 else 0] = 0  # a child pointing back at the root: a loop


@pytest.mark.parametrize("change, message", [
    (_cycle, "malformed"),
    (lambda a: a.__setitem__("feature", np.where(a["feature"] >= 0, 10_000, -1)), "malformed"),
    (lambda a: a.__setitem__("threshold", np.full_like(a["threshold"], np.nan)), "malformed"),
    (lambda a: a.__setitem__("value", a["value"][:-1]), "shapes"),
    (lambda a: a.__setitem__("classes", np.array([object(), object()], dtype=object)), "has type object"),
    (lambda a: a.pop("offsets"), "lacks"),
])
def test_crafted_forest_arrays_are_refused(trained, change, message):
    with pytest.raises(ModelFileError, match=message):
        Segmenter.load(replace_arrays(trained[0].save(), change))


def test_loading_and_predicting_needs_no_sklearn_skops_or_torch(trained, tmp_path):
    import subprocess
    import sys

    seg, img = trained
    seg.save(tmp_path / "m.segapp")
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "want.npy", seg.predict(img))
    code = ("import sys, numpy as np; from segapp.segmenter import Segmenter; "
            f"s = Segmenter.load({str(tmp_path / 'm.segapp')!r}); "
            f"assert (s.predict(np.load({str(tmp_path / 'img.npy')!r})) == np.load({str(tmp_path / 'want.npy')!r})).all(); "
            "heavy = sorted(m for m in ('sklearn', 'skops', 'torch', 'scipy') if m in sys.modules); "
            "assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello world", "not a zip"),
    (None, "without manifest"),
])
def test_foreign_files_are_refused(data, message):
    if data is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("readme.txt", "hi")
        data = buf.getvalue()
    with pytest.raises(ModelFileError, match=message):
        Segmenter.load(data)


def test_newer_format_is_refused(trained):
    def edit(name, b):
        if name != "manifest.json":
            return b
        m = json.loads(b)
        m["format_version"] = FORMAT_VERSION + 1
        return json.dumps(m).encode()

    with pytest.raises(ModelFileError, match="newer"):
        Segmenter.load(rewrite(trained[0].save(), edit))


def test_missing_file_message(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read"):
        Segmenter.load(tmp_path / "nope.segapp")
