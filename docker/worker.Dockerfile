# syntax=docker/dockerfile:1
# The CPU worker image: `dramatiq worker:setup` (libx264), production mode.
# Build from the repository root (the compose file does):
#   docker build -f docker/worker.Dockerfile -t reelforge-worker .
# Nothing here needs the ffmpeg command line: the engine decodes and encodes through the FFmpeg
# inside the PyAV wheel, so the runtime stage installs no apt package (ffmpeg/ffprobe are test
# tools only).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler for the dependencies published without a Linux wheel (pdqhash builds from source);
# it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/reelforge
ENV PATH=/opt/reelforge/bin:$PATH
WORKDIR /src
# The dependencies alone first, listed from pyproject.toml: this layer is rebuilt only when they
# change, not on every code edit. Runtime dependencies only (the `dev` extra stays out).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install -r requirements.txt
# Then the code: the packages and modules pyproject.toml installs.
COPY worker.py ./
COPY cli/ cli/
COPY engine/ engine/
COPY ladders/ ladders/
COPY packager/ packager/
COPY classifiers/ classifiers/
COPY api/ api/
COPY cdn/ cdn/
COPY recsys/ recsys/
RUN pip install --no-deps .

FROM python:3.11-slim-bookworm
# The user, and the feed-model volume's mount point (a new named volume takes its owner).
RUN useradd --system --user-group --uid 10001 --create-home --home-dir /var/lib/reelforge \
      --shell /usr/sbin/nologin reelforge \
    && install -d -o reelforge -g reelforge /var/lib/reelforge/feed-model
COPY --from=build /opt/reelforge /opt/reelforge
ENV PATH=/opt/reelforge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REELFORGE_MODE=production \
    REELFORGE_DATA_DIR=/var/lib/reelforge \
    REELFORGE_ENCODER=libx264
# Every installed module imports here, in the runtime stage: the native wheels (PyAV's FFmpeg,
# onnxruntime, the compiled pdqhash) find their system libraries without the build tools.
RUN python -c "import importlib, pkgutil; tops = ('api', 'cdn', 'classifiers', 'engine', 'ladders', 'packager', 'recsys'); [importlib.import_module(m.name) for t in tops for m in pkgutil.walk_packages(importlib.import_module(t).__path__, t + '.')]; import cli, worker"
USER reelforge
WORKDIR /var/lib/reelforge
# One job per process (--threads 1): a transcode keeps every core busy on its own.
CMD ["dramatiq", "worker:setup", "--processes", "2", "--threads", "1"]
