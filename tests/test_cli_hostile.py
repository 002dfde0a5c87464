"""The CLI answers every user error with exactly one stderr line (exit 2): options, paths, files,
and C libraries' own warnings (libtiff through Pillow) kept off stderr."""

import subprocess
import sys
from pathlib import Path

import pytest

from segapp import cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import fuzzcases as F  # noqa: E402


@pytest.fixture
def files(tmp_path):
    (tmp_path / "img.png").write_bytes(F.png(F.sample_image()))
    (tmp_path / "lab.png").write_bytes(F.png(F.sample_labels()))
    (tmp_path / "a-file").write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["train"], "the following arguments are required: --image, --labels, --out (see segapp train --help)"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train", "--image", "{d}/img.png", "--labels", "{d}/lab.png", "--out", "{d}/m", "--feature-params", "[1]"],
     "--feature-params must be a JSON object"),
    (["train", "--image", "{d}/img.png", "--labels", "{d}/lab.png", "--out", "{d}/m", "--feature-params", "{x"],
     "--feature-params is not valid JSON"),
    (["train", "--image", "{d}/img.png", "--labels", "{d}/lab.png", "--out", "{d}/m", "--trees", "0"],
     "--trees must be 1..1000, got 0"),
    (["train", "--image", "{d}/img.png", "--labels", "{d}/lab.png", "--out", "{d}/m",
      "--feature-params", '{"sigmas": [1e300]}'], "sigmas must be numbers in (0, 64]"),
    (["train", "--image", "{d}/img.png", "--labels", "{d}/lab.png", "--out", "{d}/no/such/dir/m.segapp",
      "--feature-params", '{"sigmas": [1.0]}', "--trees", "2"], "no/such/dir does not exist"),
    (["evaluate", "--pred", "{d}", "--gt", "{d}/lab.png"], "this is a folder, not an image file"),
    (["predict", "--model", "{d}", "--out-dir", "{d}/o", "{d}/img.png"], "it is a folder"),
    (["predict", "--model", "{d}/a-file", "--out-dir", "{d}/a-file", "{d}/img.png"], "is a file, not a folder"),
])
def test_user_errors_are_one_line(files, capsys, argv, message):
    argv = [a.replace("{d}", str(files)) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("segapp: error: ") and message in err, err


def test_native_library_warnings_never_reach_stderr(files):
    lzw = F.tiff_raw(F.strip_tags(8, 8, compression=5, nbytes=64), b"\0" * 64)  # libtiff prints about this one
    (files / "lzw.tif").write_bytes(lzw)
    r = subprocess.run([sys.executable, "-m", "segapp", "evaluate", "--pred", str(files / "lab.png"), "--gt",
                        str(files / "lzw.tif")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("segapp: error: cannot read"), \
        r.stderr
    r = subprocess.run([sys.executable, "-m", "segapp", "evaluate", "--pred", str(files / "lab.png"), "--gt",
                        str(files / "lzw.tif")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "SEGAPP_DEBUG": "1"})
    assert r.returncode == 2 and r.stderr.count("\n") > 1  # what the capture hides (so the test can fail)


def test_a_bug_still_shows_its_traceback(files, monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_evaluate", lambda args: 1 / 0)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.prog.endswith("evaluate"):
            action.set_defaults(func=cli.cmd_evaluate)
    with pytest.raises(ZeroDivisionError):
        cli.main(["evaluate", "--pred", str(files / "lab.png"), "--gt", str(files / "lab.png")])
