"""segapp is an installable package: the ``segapp`` command works from any directory, and the installed
web app finds its assets (CSS, the browser-side callbacks).

The package is installed (no dependencies: they are this environment's) from a copy of the
sources into a private prefix, so neither the shared virtual environment nor the checkout changes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _browser import until
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(bin_dir, env)``: the installed ``segapp`` command and an environment that finds the installed package."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "segapp", src / "segapp", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    prefix = root / "prefix"
    # --ignore-installed: pip would otherwise uninstall the environment's own (editable) segapp first
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--ignore-installed", "--no-index", "--prefix", str(prefix), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    site = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    assert (site / "segapp" / "ui" / "assets" / "segapp.css").is_file()  # package data came along
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return prefix / "bin", {**env, "PYTHONPATH": str(site)}, site


def test_the_segapp_command_trains_and_predicts_from_any_directory(installed, tmp_path):
    bin_dir, env, site = installed
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    where = subprocess.run([sys.executable, "-c", "import segapp; print(segapp.__file__)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the installed package, not this checkout
    img = np.zeros((40, 50), np.uint8)
    img[10:30, 15:35] = 200
    lab = np.zeros_like(img)
    lab[2:5, 2:45] = 1
    lab[18:22, 20:30] = 2
    Image.fromarray(img).save(elsewhere / "a.png")
    Image.fromarray(lab).save(elsewhere / "a_labels.png")
    segapp = str(bin_dir / "segapp")
    r = subprocess.run([segapp, "train", "--image", "a.png", "--labels", "a_labels.png", "--out", "m.segapp",
                        "--trees", "5"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["classes"] == [1, 2]
    r = subprocess.run([segapp, "predict", "--model", "m.segapp", "--out-dir", "out", "a.png"], cwd=elsewhere,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    pred = np.asarray(Image.open(elsewhere / "out" / "a.png"))
    assert pred[20, 25] == 2 and pred[3, 3] == 1
    r = subprocess.run([segapp, "predict", "--model", "missing.segapp", "--out-dir", "out", "a.png"],
                       cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("segapp: error:")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_the_installed_web_app_serves_its_assets(installed, tmp_path, dash_duo):
    bin_dir, env, _ = installed
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([str(bin_dir / "segapp"), "serve", "--port", str(port)], cwd=tmp_path, stdout=log,
                              stderr=subprocess.STDOUT, env={**env, "SEGAPP_DATA_DIR": str(tmp_path / "data"),
                                                              "SEGAPP_CACHE_DIR": str(tmp_path / "cache")})
    try:
        def up():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
            except OSError:
                return server.poll() is not None and pytest.fail((tmp_path / "serve.log").read_text()[-2000:])
        until(up, timeout=90, what="segapp serve to answer")
        dash_duo.driver.get(f"http://127.0.0.1:{port}/")
        until(lambda: dash_duo.driver.find_elements("css selector", "#class-list .class-row"), what="the page")
        header = dash_duo.driver.execute_script(
            "return getComputedStyle(document.querySelector('.app-header')).backgroundColor")
        assert header == "rgb(29, 35, 48)"                       # segapp.css was served
        assert dash_duo.driver.execute_script("return !!(window.dash_clientside && window.dash_clientside.segapp)")
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        time.sleep(0.1)
