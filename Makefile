# segapp — the two commands of the README.
#   make run   set up .venv and start the web app (embedded mode, no Redis)
#   make test  set up .venv (+ browser/redis test dependencies) and run the tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-dev system-deps bench bench-peers clean

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

bench: setup bench-peers
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/accuracy.py --data ../shared/data

# The peers of bench/accuracy.py (napari-convpaint 1.2.0) live in their own venv, never in .venv.
PEERS := .venv-peers
PEERS_PKGS := napari-convpaint==1.2.0 PySide6-Essentials torch==2.14.1 torchvision==0.29.1

$(PEERS)/.installed:
	test -x $(PEERS)/bin/python || $(PY) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q --upgrade pip
	$(PEERS)/bin/pip install -q $(PEERS_PKGS)
	QT_QPA_PLATFORM=offscreen $(PEERS)/bin/python -c "from napari_convpaint.convpaint_model import ConvpaintModel"
	touch $@

bench-peers: $(PEERS)/.installed

clean:
	rm -rf $(VENV) .segapp .pytest_cache
