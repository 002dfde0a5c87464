"""CLI end to end (real subprocesses) and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "segapp", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def coins_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("coins")
    img = data.coins()
    Image.fromarray(img).save(d / "coins.png")
    Image.fromarray(img[:, ::-1].copy()).save(d / "flipped.png")
    lab = np.zeros(img.shape, np.uint8)
    lab[5:9, 10:300] = 1
    lab[290:294, 10:300] = 1
    lab[120:124, 60:80] = 2
    lab[225:229, 150:200] = 1    # background between the rows
    lab[185:189, 195:215] = 2    # and two more coins
    lab[45:49, 145:160] = 2
    Image.fromarray(lab).save(d / "labels.png")
    gt = (img > 110).astype(np.uint8) + 1
    Image.fromarray(gt).save(d / "gt.png")
    return d


def test_train_predict_evaluate(coins_files, tmp_path):
    d = coins_files
    model = tmp_path / "coins.segapp"
    r = run("train", "--image", d / "coins.png", "--labels", d / "labels.png", "--out", model,
            "--feature-params", '{"sigmas": [1, 2, 4]}', "--trees", 10)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["classes"] == [1, 2] and model.exists()

    out = tmp_path / "pred"
    r = run("predict", "--model", model, "--out-dir", out, "--proba", d / "coins.png", d / "flipped.png")
    assert r.returncode == 0, r.stderr
    pred = np.array(Image.open(out / "coins.png"))
    assert pred.shape == (303, 384) and set(np.unique(pred)) <= {1, 2}
    import tifffile

    proba = tifffile.imread(out / "coins_proba.tif")
    assert 2 in proba.shape and (out / "flipped.png").exists()

    r = run("evaluate", "--pred", out / "coins.png", "--gt", d / "gt.png")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert scores["miou"] > 0.6


@pytest.mark.parametrize("make_args, message", [
    (lambda d, t: ["predict", "--model", d / "coins.png", "--out-dir", t, d / "coins.png"], "zip"),
    (lambda d, t: ["train", "--image", d / "coins.png", "--labels", t / "empty.png", "--out", t / "m"],
     "no annotations"),
    (lambda d, t: ["train", "--image", t / "notes.txt", "--labels", d / "labels.png", "--out", t / "m"],
     "notes.txt"),
    (lambda d, t: ["train", "--image", d / "coins.png", "--labels", d / "labels.png", "--out", t / "m",
                   "--features", "nonsense"], "unknown feature extractor"),
    (lambda d, t: ["evaluate", "--pred", d / "coins.png", "--gt", t / "missing.png"], "missing.png"),
    (lambda d, t: ["train", "--image", d / "coins.png", "--labels", t / "small.png", "--out", t / "m"],
     "labels"),
])
def test_user_errors_are_one_line(coins_files, tmp_path, make_args, message):
    Image.fromarray(np.zeros((303, 384), np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(np.ones((10, 10), np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "notes.txt").write_text("not an image")
    r = run(*make_args(coins_files, tmp_path))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("segapp: error:") and message in lines[0]


def test_features_list_and_config():
    r = run("features", "--list")
    assert r.returncode == 0 and "classical" in r.stdout and "effnet-lite0" in r.stdout
    assert "vgg16" in r.stdout
    r = run("config")
    assert r.returncode == 0 and "embedded" in r.stdout and "secret_key" in r.stdout and "***" in r.stdout


def test_evaluate_reads_an_ordinary_0_255_mask_and_train_reads_annotations_json(coins_files, tmp_path):
    d = coins_files
    gt = np.array(Image.open(d / "gt.png"))
    Image.fromarray(np.where(gt == 2, 255, 0).astype(np.uint8)).save(tmp_path / "mask255.png")
    r = run("evaluate", "--pred", d / "gt.png", "--gt", tmp_path / "mask255.png")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert scores["miou"] == 1.0 and sorted(scores["per_class"]) == ["1", "2"]  # no "class 255", not 0 %
    assert scores["gt_read_as"].startswith("binary mask: 0 → class 1, 255 → class 2")

    from segapp.annotation_files import annotations_document, labels_to_shapes

    lab = np.array(Image.open(d / "labels.png"))
    doc = annotations_document(labels_to_shapes(lab), [{"id": 1, "name": "Table", "color": "#112233"},
                                                       {"id": 2, "name": "Coin", "color": "#ffcc00"}],
                               name="coins.png", shape_hw=lab.shape)
    (tmp_path / "coins_annotations.json").write_text(json.dumps(doc))
    r = run("train", "--image", d / "coins.png", "--labels", tmp_path / "coins_annotations.json",
            "--out", tmp_path / "m.segapp", "--trees", 10)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_pixels"] == int((lab > 0).sum())  # exactly the painted pixels
    from segapp.segmenter import Segmenter

    assert [c["name"] for c in Segmenter.load(tmp_path / "m.segapp").classes] == ["Table", "Coin"]
    small = annotations_document([], [], name="x.png", shape_hw=(10, 10))
    (tmp_path / "small.json").write_text(json.dumps(small))
    r = run("train", "--image", d / "coins.png", "--labels", tmp_path / "small.json", "--out", tmp_path / "n")
    assert r.returncode == 2 and r.stderr.strip() == ("segapp: error: small.json was made for a 10×10 image (x.png); "
                                                      "this image is 384×303")
