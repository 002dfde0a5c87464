# segapp — the two commands of the README.
#   make run   set up .venv and start the web app (embedded mode, no Redis)
#   make test  set up .venv (+ browser/redis test dependencies) and run the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-dev system-deps bench clean

# segapp itself is installed editable (the `segapp` command on .venv/bin, importable from anywhere;
# the code stays this checkout's).
$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed

setup-dev: $(BIN)/.installed-dev system-deps

# Chromium + chromedriver for the browser tests, redis-server for the Celery tests.
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v redis-server >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver redis-server >/dev/null; \
	fi

run: setup
	$(BIN)/python app.py

test: setup-dev
	bash .ci/pytest.sh

bench: setup
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/accuracy.py --data ../shared/data

clean:
	rm -rf $(VENV) .segapp .pytest_cache
