# syntax=docker/dockerfile:1
# The GPU worker image: `dramatiq worker:setup` encoding with NVENC (h264_nvenc).
# Build from the repository root (the compose file's `gpu` profile does):
#   docker build -f docker/worker-gpu.Dockerfile -t reelforge-worker-gpu .
# Run with an NVIDIA GPU that has NVENC and the NVIDIA Container Toolkit on the host
# (`--gpus all`, or the compose profile's device reservation). The FFmpeg inside the PyAV wheel
# has h264_nvenc compiled in and loads the driver's libcuda / libnvidia-encode at run time: the
# toolkit mounts them when NVIDIA_DRIVER_CAPABILITIES includes `video` (NVENC/NVDEC) and
# `compute` (CUDA); `utility` brings nvidia-smi.
# Ubuntu 22.04 ships no stable Python 3.11, so uv installs a standalone CPython 3.11.

ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04

FROM ghcr.io/astral-sh/uv:0.11.7 AS uv

FROM ${CUDA_IMAGE} AS build
# A compiler for the dependencies without a Linux wheel (see api.Dockerfile); this stage only.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_NO_CACHE=1 UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
RUN uv python install 3.11 && uv venv --python 3.11 /opt/reelforge
ENV PATH=/opt/reelforge/bin:$PATH VIRTUAL_ENV=/opt/reelforge
WORKDIR /src
# The dependencies alone first (see api.Dockerfile): rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && uv pip install -r requirements.txt
COPY worker.py ./
COPY cli/ cli/
COPY engine/ engine/
COPY ladders/ ladders/
COPY packager/ packager/
COPY classifiers/ classifiers/
COPY api/ api/
COPY cdn/ cdn/
COPY recsys/ recsys/
RUN uv pip install --no-deps .

FROM ${CUDA_IMAGE}
# The user, and the feed-model volume's mount point (a new named volume takes its owner).
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/reelforge \
      --shell /usr/sbin/nologin reelforge \
    && install -d -o reelforge -g reelforge /var/lib/reelforge/feed-model
# The venv's interpreter links into /opt/python: both keep their build-stage paths.
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/reelforge /opt/reelforge
ENV PATH=/opt/reelforge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=video,compute,utility \
    REELFORGE_MODE=production \
    REELFORGE_DATA_DIR=/var/lib/reelforge \
    REELFORGE_ENCODER=h264_nvenc
# Every installed module imports here, in the runtime stage: the native wheels (PyAV's FFmpeg,
# onnxruntime, the compiled pdqhash) find their system libraries without the build tools.
RUN python -c "import importlib, pkgutil; tops = ('api', 'cdn', 'classifiers', 'engine', 'ladders', 'packager', 'recsys'); [importlib.import_module(m.name) for t in tops for m in pkgutil.walk_packages(importlib.import_module(t).__path__, t + '.')]; import cli, worker"
USER reelforge
WORKDIR /var/lib/reelforge
# One process per GPU by default: a job opens one NVENC session per rung, and consumer GPUs
# cap concurrent sessions.
CMD ["dramatiq", "worker:setup", "--processes", "1", "--threads", "1"]
