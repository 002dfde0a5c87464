#!/usr/bin/env bash
# Runs the test suite; pytest's exit code 5 ("no tests collected") counts as a failure.
set -u
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
