"""A fixed sample of the hostile-input corpus (bench/fuzzcases.py), in-process, in CI.

The full corpus runs with ``python bench/fuzz.py`` (CLI subprocesses and a real server);
this takes every 4th case of each category plus the cases the issue names, at 1/64 of the
bomb sizes, through ``segapp.cli.main`` and through the real Dash endpoint (Flask test
client): no traceback, no HTTP 500, one stderr line per CLI refusal, bystander sessions
unchanged and no data under a client-chosen session id.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np
import pytest

from segapp import cli
from segapp.config import Settings
from segapp.ui import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fuzz  # noqa: E402
import fuzzcases as F  # noqa: E402

NAMED = {  # the cases issue 11 reports, always in the sample
    "images": {"tif-deflate-strip-bomb", "tif-200-channels-3000", "png-header-100000x100000", "flip-tif-3"},
    "models": {"manifest-n_channels-1e30", "manifest-sigmas-1e300", "manifest-effnet-scales-100000",
               "manifest-effnet-device-evil", "bomb-manifest-1g", "bomb-classifier-1g", "manifest-infinity",
               "manifest-norm-low-str", "manifest-trees-str", "manifest-nested-100k", "flip-5",
               "manifest-class-color-zzzzzz", "manifest-class-color-css-injection", "pickle-reduce-os-system",
               "skops-ObjectNode-subprocess.Popen", "skops-ConstructorFromReduceNode-builtins.eval",
               "skops-MethodNode-builtins.exec", "forest-child-self-loop"},
    "labels": {"class-300"},
    "strokes": {"huge-coords-width-1e300", "coord-1e309", "coord-1e308", "coord-400-digits", "points-100k",
                "ten-invalid"},
    "relayout": {"shapes-abc", "shapes-dict", "shapes-ints", "shapes-null", "relayout-list", "shapes0-evil",
                 "shapes0-name-x", "http-nested-5000"},
    "uploads": {"bad-padding", "non-ascii-after-comma", "int", "dict", "batch-valid-broken-valid"},
    "sessions": {"sid-a20", "current-dotdot"},
}


@pytest.fixture(scope="module")
def sample():
    cases = [c for c in F.corpus(1 / 64) if c.kind != "raw-upload"]
    seen = collections.Counter()
    picked = []
    for c in cases:
        seen[c.category] += 1
        if seen[c.category] % 4 == 1 or c.name in NAMED.get(c.category, ()):
            picked.append(c)
    missing = {n for cat, names in NAMED.items() for n in names} - {c.name for c in picked}
    assert not missing, missing
    return picked


def test_cli_sample_gives_one_line_or_succeeds(sample, tmp_path, capsys):
    files = {"image": str(tmp_path / "good.png"), "labels": str(tmp_path / "good_labels.png"),
             "model": str(tmp_path / "good.segapp")}
    Path(files["image"]).write_bytes(F.png(F.sample_image()))
    Path(files["labels"]).write_bytes(F.png(np.where(F.sample_labels() == 2, 2, 1).astype(np.uint8)))
    Path(files["model"]).write_bytes(F.good_model())
    outcomes = collections.Counter()
    for case in sample:
        for channel, argv in fuzz.cli_commands(case, files, tmp_path):
            try:
                rc = cli.main(argv)
            except SystemExit as e:  # argparse
                rc = e.code
            err = capsys.readouterr().err
            outcome = fuzz.classify_cli(rc, err)
            outcomes[outcome] += 1
            assert outcome in ("message", "accepted"), (channel, case.category, case.name, err[-500:])
    assert outcomes["message"] > 50 and outcomes["accepted"] > 0


def test_web_sample_answers_every_case_calmly(sample, tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))
    web = fuzz.WebTarget(app=app)
    ctx = fuzz.prepare(web)
    results = [r for case in sample for r in fuzz.run_http_case(web, case, ctx, None)]
    bad = [(r["channel"], r["category"], r["case"], r["outcome"], r["detail"]) for r in results
           if r["outcome"] in fuzz.FAILURES]
    assert not bad
    counts = collections.Counter(r["outcome"] for r in results)
    assert counts["message"] > 60 and counts["replaced"] > 0 and counts["accepted"] > 0
    payloads = fuzz.run_payloads(web, ctx, None, every=7)  # every 7th odd value of every callback input
    assert len(payloads) > 150 and not [(r["case"], r["detail"]) for r in payloads if r["outcome"] in fuzz.FAILURES]
    check = fuzz.check_sessions(web, ctx, sample)
    assert check["lost_or_changed"] == 0 and check["chosen_ids_with_data"] == []
    assert check["targeted_sessions_broken"] == []
