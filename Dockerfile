# syntax=docker/dockerfile:1
# DeepSynth training service (role gpu, port 5001): training, evaluation, inference and model
# upload on an NVIDIA GPU.
#   docker build -t deepsynth-gpu:0.1.0 .
#   docker compose -f docker-compose.gpu.yml up -d        (see docs/deployment.md)
# The host needs the NVIDIA driver (>= 580 for CUDA 13.0) and the NVIDIA Container Toolkit.
# TORCH_CUDA must be a CUDA build published for TORCH_VERSION (torch 2.13: cu126, cu130,
# cu132; tests/test_deployment.py keeps the table) and match the CUDA of the base image; the
# torch wheel brings its own CUDA libraries. For drivers older than 580 use the CUDA 12.6
# build: FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 and --build-arg TORCH_CUDA=cu126.
# The base is pinned by its CUDA version; pin its digest too where a registry is reachable
# (docs/deployment.md, "Base images").
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu130
ARG BITSANDBYTES_VERSION=0.50.2

# apt-get never asks (a build argument: not left in the image's environment).
ARG DEBIAN_FRONTEND=noninteractive

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    DEEPSYNTH_DATA_ROOT=/data \
    HF_HOME=/data/cache/huggingface

# Python 3.12, Ubuntu 24.04's own (DeepSynth needs 3.11 or newer), and the fonts the renderer
# falls back to (summarize renders text into pages here too).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
        fontconfig fonts-dejavu-core fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# A non-root user, deepsynth, uid 1000 (USER below names it by number): the same uid as in
# Dockerfile.cpu, so both services write the shared volume; the data root belongs to it.
# Ubuntu 24.04 images have a user ubuntu with uid 1000: it goes first.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin deepsynth \
    && mkdir -p /data /app \
    && chown deepsynth:deepsynth /data

WORKDIR /app

# torch built for CUDA, and bitsandbytes for QLoRA (4-bit NF4 base models).
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
    && pip install "bitsandbytes==${BITSANDBYTES_VERSION}"

# The dependencies: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
COPY scripts/pyproject_deps.py ./scripts/
RUN python scripts/pyproject_deps.py > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source, last, installed in place (-e): the image holds one copy of it, in /app, and
# site-packages only points there.
COPY README.md ./
COPY scripts/docker-entrypoint.sh ./scripts/
COPY src ./src
COPY web_ui ./web_ui
RUN pip install --no-deps -e . \
    && rm -rf build

USER 1000:1000
VOLUME ["/data"]
EXPOSE 5001

# Exec form with no space inside an argument: podman's Docker-compatible API splits a
# healthcheck argument at its spaces, so a spaced `python -c "import ..."` fails there.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:5001/api/health',timeout=8)"]

ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["deepsynth", "serve", "--role", "gpu", "--host", "0.0.0.0", "--port", "5001", "--auto-resume"]
