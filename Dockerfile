# syntax=docker/dockerfile:1
# DeepSynth training service (role gpu, port 5001): training, evaluation, inference and model
# upload on an NVIDIA GPU.
#   docker build -t deepsynth-gpu:0.1.0 .
#   docker compose -f docker-compose.gpu.yml up -d        (see docs/deployment.md)
# The host needs the NVIDIA driver and the NVIDIA Container Toolkit. TORCH_CUDA must be one of
# the CUDA builds published for TORCH_VERSION (https://download.pytorch.org/whl/), matching the
# CUDA of the base image; the torch wheel brings its own CUDA libraries.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ARG BITSANDBYTES_VERSION=0.50.2

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    DEEPSYNTH_DATA_ROOT=/data \
    HF_HOME=/data/cache/huggingface

# Python 3.11 (DeepSynth needs 3.11; Ubuntu 22.04 ships 3.10) from the deadsnakes archive,
# and the fonts the renderer falls back to (summarize renders text into pages here too).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        fontconfig fonts-dejavu-core fonts-noto-cjk \
    && apt-get purge -y --auto-remove software-properties-common gnupg \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv

# A non-root user, deepsynth, uid 1000 (USER below names it by number): the same uid as in
# Dockerfile.cpu, so both services write the shared volume; the data root belongs to it.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin deepsynth \
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

# The source, last.
COPY README.md ./
COPY scripts/docker-entrypoint.sh ./scripts/
COPY src ./src
COPY web_ui ./web_ui
RUN pip install --no-deps . \
    && rm -rf build

USER 1000:1000
VOLUME ["/data"]
EXPOSE 5001

HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/api/health', timeout=8)"]

ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["deepsynth", "serve", "--role", "gpu", "--host", "0.0.0.0", "--port", "5001", "--auto-resume"]
