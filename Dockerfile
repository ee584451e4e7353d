# LeukoLens server: onnxruntime only (no torch), the bundled models inside, a non-root user.
#   docker build -t leukolens .
#   docker run -p 8000:8000 leukolens
# BASE: another image with Python 3.11 and pip (scripts/buildah-image builds a stand-in
# where Docker Hub cannot be reached).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md constraints.txt /tmp/build/
COPY app /tmp/build/app
COPY training /tmp/build/training
COPY model_store /tmp/build/model_store
COPY static /tmp/build/static
COPY templates /tmp/build/templates
# Serving dependencies only: the training extra (torch, timm) is not installed; versions are
# those the test suite passed with (constraints.txt).
RUN python -m pip install --constraint /tmp/build/constraints.txt /tmp/build && rm -rf /tmp/build

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin leukolens \
    && mkdir -p /srv/data && chown leukolens /srv/data
USER leukolens
WORKDIR /srv
# The SQLite audit log of predictions (hashes and results, never images) lives here.
VOLUME /srv/data

ENV LEUKOLENS_HOST=0.0.0.0 \
    LEUKOLENS_PORT=8000 \
    LEUKOLENS_DATA_DIR=/srv/data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('LEUKOLENS_PORT', '8000'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
CMD ["python", "-m", "app"]
