"""A model file is data, checked whole: checksum over the manifest, schema with bounds, zip costs
checked before inflating, well-formed trees; nothing in a file runs code, picks a device or
asks for more work than the limits allow.  Files are crafted in the test (bench/fuzzcases.py
builders) and small."""

import io
import json
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from segapp.errors import ModelFileError, SegappError
from segapp.limits import Limits
from segapp.modelcheck import FORMAT_VERSION, validate_manifest
from segapp.modelfile import load_segmenter
from segapp.segmenter import Segmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fuzzcases as F  # noqa: E402


def refuse(data, match, **kw):
    with pytest.raises(ModelFileError, match=match) as e:
        load_segmenter(data, **kw)
    assert "\n" not in str(e.value) and len(str(e.value)) < 400
    return str(e.value)


def test_any_manifest_edit_is_refused_unless_the_checksum_is_recomputed():
    for edit in (F._set(("classes", 0, "name"), "renamed"), F._set(("created",), "2001-01-01"),
                 F._set(("normalization", "low"), 2.0), lambda m: m.pop("checksum")):
        refuse(F.with_manifest(edit, rehash=False), "modified after saving")
    assert load_segmenter(F.with_manifest(F._set(("classes", 0, "name"), "renamed"))).classes[0]["name"] == "renamed"


@pytest.mark.parametrize("edit, message", [
    (F._set(("n_channels",), 10**30), "n_channels = 1000000000000000000000000000000 is outside 1..16"),
    (F._set(("n_channels",), "3"), 'n_channels must be an integer, got "3"'),
    (F._set(("extractor", "params", "sigmas"), [1e300]), r"sigmas must be numbers in \(0, 64\]"),
    (F._set(("extractor", "params", "sigmas"), [1.0] * 17), "at most 16 numbers"),
    (F._set(("extractor",), {"name": "effnet-lite0", "params": {"scales": [100000]}}),
     "'scales' of 'effnet-lite0' must be a list of at most 4 integers in 1..8"),
    (F._set(("extractor",), {"name": "effnet-lite0", "params": {"out_indices": [99]}}), "out_indices"),
    (F._set(("extractor",), {"name": "x", "parts": [{"name": "classical"}] * 10}), "2..4 extractors"),
    (F._set(("extractor",), {"name": "timm", "params": {"model": "vit_giant_patch14_dinov2"}}), "weights"),
    (F._set(("classes", 0, "color"), "#zzzzzz"), 'colour of class 1 must be #rrggbb, got "#zzzzzz"'),
    (F._set(("classes", 0, "color"), "red;background:url(x)"), "must be #rrggbb"),
    (F._set(("classes", 1, "id"), 300), "class id = 300 is outside 1..255"),
    (F._set(("classes", 0, "name"), "x" * 500), "at most 100 printable characters"),
    (F._set(("normalization", "low"), "abc"), "normalization low must be a number"),
    (F._set(("classifier", "n_estimators"), "xxxxxxxxxx"), "n_estimators must be an integer"),
    (F._set(("classifier", "n_estimators"), 10**9), "n_estimators = 1000000000 is outside 1..1000"),
    (F._set(("format_version",), 99), "newer than this segapp supports"),
])
def test_manifest_fields_are_validated_with_bounds_before_anything_is_built(edit, message):
    refuse(F.with_manifest(edit), message)


@pytest.mark.parametrize("old, new, message", [
    (b'"n_channels": 1', b'"n_channels": Infinity', "Infinity is not a valid number"),
    (b'"low": 1.0', b'"low": NaN', "NaN is not a valid number"),
    (b'"n_channels": 1', b'"n_channels": ' + b"9" * 400, "too long"),
    (b'"low": 1.0', b'"low": 1e400', "out of range"),
    (b'"n_channels": 1', b'"n_channels": ' + b"[" * 100_000 + b"]" * 100_000, "nested more than 64 levels"),
])
def test_manifest_json_is_bounded(old, new, message):
    raw = F.members(F.good_model())["manifest.json"]
    assert old in raw
    refuse(F.with_manifest(None, raw=raw.replace(old, new)), message)


def test_device_is_never_taken_from_a_file():
    m = json.loads(F.members(F.good_model())["manifest.json"])
    for device in ("cuda", "evil:0", "cpu"):
        m["extractor"] = {"name": "effnet-lite0", "params": {"out_indices": [0], "device": device}}
        assert validate_manifest(m)["extractor"]["params"]["device"] == "auto"
        m["extractor"] = {"name": "classical+effnet-lite0", "parts": [
            {"name": "classical", "params": {}}, {"name": "effnet-lite0", "params": {"device": device}}]}
        assert validate_manifest(m)["extractor"]["parts"][1]["params"]["device"] == "auto"


def test_zip_costs_are_checked_before_anything_inflates():
    parts = F.members(F.good_model())
    clf = "classifier.npz"
    bomb = F.deflate_bomb(256 << 20, raw=True)  # 256 MB of zeros, 250 KB compressed
    cases = {
        "manifest declares 256 MB": (F.raw_zip([("manifest.json", bomb, 8, 256 << 20),
                                                (clf, parts[clf], 0, None)]),
                                     "would inflate to 256.0 MB, more than the 1.0 MB allowed"),
        "classifier over the model limit": (F.raw_zip([("manifest.json", parts["manifest.json"], 0, None),
                                                       (clf, bomb, 8, 256 << 20)]),
                                            "more than the 8.0 MB allowed"),
        "compressed 1000:1": (F.raw_zip([("manifest.json", parts["manifest.json"], 0, None),
                                         (clf, bomb[:8000], 8, 8 << 20)]), "a zip bomb"),
        "lying size": (F.raw_zip([("manifest.json", bomb, 8, 1000),
                                  (clf, parts[clf], 0, None)]), "damaged"),
        "too many members": (F.raw_zip([(f"m{i}.npy", b"", 0, None) for i in range(5000)]), "5,000 members"),
        "extra member": (F.rezip({**parts, "evil.py": b"import os"}), "unexpected member 'evil.py'"),
        "skops zip bomb": (F.with_classifier(F.raw_zip([("schema.json", bomb, 8, 256 << 20)])),
                           "refusing the classifier"),
    }
    for name, (data, message) in cases.items():
        tracemalloc.start()
        text = refuse(data, message, limits=Limits(max_model_bytes=8 << 20))
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert peak < 40, (name, peak, text)  # never inflated


@pytest.mark.parametrize("loader, module, cls", [
    ("ObjectNode", "subprocess", "Popen"), ("ConstructorFromReduceNode", "builtins", "eval"),
    ("MethodNode", "builtins", "exec"), ("FunctionNode", "os", "system"), ("TypeNode", "builtins", "eval"),
])
def test_skops_code_nodes_are_refused(loader, module, cls, tmp_path):
    schema = F._node(loader, module, cls, content=F._node("DictNode", "builtins", "dict", content={},
                                                         key_types=F._node("ListNode", "builtins", "list", content=[])))
    refuse(F.with_classifier(F.skops_blob({**schema, "protocol": 2})), "untrusted types|cannot be read")


@pytest.mark.parametrize("edit, message", [
    (F.tree_edit("left_child", 0), "do not form a tree"),
    (F._cycle_edit(), "do not form a tree"),
    (F.tree_edit("right_child", 10**6), "do not form a tree"),
    (F.tree_edit("feature", 10**6), "splits on a feature that does not exist"),
    (F.tree_edit("threshold", float("nan")), "non-finite"),
    (F._values_edit(float("nan")), "non-finite"),
    (lambda clf: setattr(clf, "estimators_", []), "1..1000 trees"),
    (lambda clf: setattr(clf, "classes_", clf.classes_.astype(float)), "class list does not match"),
])
def test_crafted_trees_cannot_crash_or_hang_prediction(edit, message):
    refuse(F.crafted_forest(edit), message)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["left"].__setitem__(0, 0), "malformed"),
    (F._shared_subtree, "do not form trees"),
    (F._deep_chain(300), "deeper than 256"),
    (F._many_trees(1001), "1..1000 trees"),
    (lambda a: a.__setitem__("classes", np.array([1, 300])), "class list does not match"),
    (lambda a: a.__setitem__("n_features", np.arange(3)), "does not match its feature extractor"),
    (lambda a: a.pop("offsets"), "lacks 'offsets'"),
    (lambda a: a.__setitem__("evil", np.zeros(3)), "unexpected member 'evil.npy'"),
])
def test_packed_forests_are_checked_node_by_node(edit, message):
    refuse(F.with_arrays(edit), message)


def test_npz_headers_must_match_their_data():
    arrays = F.members(F.members(F.good_model())["classifier.npz"])
    lying = F.rezip({**arrays, "left.npy": F._npy_lying_header(10**9)}, zipfile.ZIP_STORED)
    tracemalloc.start()
    refuse(F.with_classifier(lying, member="classifier.npz"), "header does not match its data")
    assert tracemalloc.get_traced_memory()[1] < 20 << 20
    tracemalloc.stop()
    objects = F.rezip({**arrays, "classes.npy": F._npy_object()}, zipfile.ZIP_STORED)
    refuse(F.with_classifier(objects, member="classifier.npz"), "has type object")
    assert load_segmenter(F.with_arrays(F._deep_chain(200))).predict(F.sample_image()).shape == (48, 64)


def test_the_forest_runs_on_local_settings():
    seg = load_segmenter(F.crafted_forest(lambda clf: (setattr(clf, "n_jobs", 10**6), setattr(clf, "verbose", 99))))
    assert seg.classifier_.n_jobs == -1 and seg.classifier_.verbose == 0
    assert seg.predict(F.sample_image()).shape == (48, 64)


def test_damaged_files_give_one_line_and_pickles_never_load(tmp_path):
    good = F.good_model()
    outcomes = set()
    for data in F.flips(good, 60, seed=2, count=1) + [good[:n] for n in range(0, len(good), len(good) // 20)]:
        try:
            load_segmenter(data)
            outcomes.add("loaded")
        except ModelFileError as e:
            assert "\n" not in str(e)
            outcomes.add("refused")
    assert "refused" in outcomes  # never any other exception type
    refuse(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.", "pickle")
    assert not (tmp_path / "pwned").exists()


def test_what_segapp_writes_it_accepts_and_a_bad_colour_is_never_written():
    seg = load_segmenter(F.good_model())
    again = load_segmenter(seg.save())
    assert again.classes == seg.classes and again.manifest["format_version"] == FORMAT_VERSION
    seg.class_meta = {1: {"id": 1, "name": "x", "color": "red;background:url(x)"}}
    with pytest.raises(SegappError, match="cannot save the model: the colour of class 1 must be #rrggbb"):
        seg.save()


def test_format_1_files_still_load():
    def to_v1(m):
        m["format_version"] = 1
        m.pop("checksum", None)
    parts = F.members(F.good_model())
    m = json.loads(parts["manifest.json"])
    to_v1(m)
    parts["manifest.json"] = json.dumps(m).encode()
    seg = load_segmenter(F.rezip(parts))
    assert seg.predict(F.sample_image()).shape == (48, 64)


def test_model_file_size_limit():
    refuse(F.good_model(), "larger than 1.0 KB", limits=Limits(max_model_bytes=1024))


def test_training_refuses_more_than_255_classes():
    img, lab = F.sample_image(), F.sample_labels().astype(np.int32)
    lab[lab == 2] = 300
    with pytest.raises(SegappError, match="class id 300 in the labels: class ids must be 1..255"):
        Segmenter(feature_params={"sigmas": [1.0]}, n_estimators=2).fit(img, lab)


def test_reading_a_model_never_writes_a_member_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    load_segmenter(F.rezip({**F.members(F.good_model())}))
    for data in (F.rezip({**F.members(F.good_model()), "../../evil": b"x"}),):
        refuse(data, "unexpected member")
    assert list(tmp_path.iterdir()) == []
    with zipfile.ZipFile(io.BytesIO(F.good_model())) as z:
        assert sorted(z.namelist()) == ["classifier.npz", "manifest.json"]


def test_both_classifier_kinds_load_from_npz_and_skops():
    import skops.io as sio

    seg = Segmenter(features="classical", feature_params={"sigmas": [1.0]}, classifier="extra-trees",
                    n_estimators=3).fit(F.sample_image(), F.sample_labels())
    again = load_segmenter(seg.save())
    assert again.classifier == "extra-trees" and (again.predict(F.sample_image()) == seg.predict(F.sample_image())).all()
    import hashlib

    from segapp.modelcheck import manifest_checksum

    parts = F.members(seg.save())
    blob = sio.dumps(seg.classifier_)
    m = json.loads(parts.pop("manifest.json"))
    m.update(format_version=1, sha256={"classifier.skops": hashlib.sha256(blob).hexdigest()})
    m["checksum"] = manifest_checksum(m)
    skops_file = F.rezip({"manifest.json": json.dumps(m).encode(), "classifier.skops": blob})
    assert load_segmenter(skops_file).classifier == "extra-trees"
    refuse(F.with_classifier(blob), "kind does not match")  # an extra-trees forest under a random-forest manifest
    refuse(F.with_manifest(F._set(("classifier", "kind"), "os.system")), "classifier kind must be one of")
    refuse(F.with_manifest(F._set(("classifier", "params"), {"n_jobs": 10**6})), "unknown parameter")
