# Assay API server image.
#
#   docker build -t assay:dev .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... assay:dev
#
# Two stages: the builder installs the project and its dependencies into a
# virtualenv at /opt/venv; the runtime stage copies only that virtualenv onto a
# fresh slim image (no compilers, no pip cache, no source tree) and runs as an
# unprivileged user.

FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
# .dockerignore keeps tests, docs, infra, caches and local data out of the context.
COPY . .
# The versions the tests ran against (constraints.txt is the lock for CPython 3.11 on Linux).
RUN pip install --no-cache-dir -c constraints.txt .


FROM python:3.11.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="assay" \
      org.opencontainers.image.description="GraphQL API server for machine-learning inference"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    ASSAY_HOST=0.0.0.0 \
    ASSAY_PORT=8000 \
    ASSAY_WORKERS=2 \
    ASSAY_DATA_DIR=/var/lib/assay \
    ASSAY_MODEL_DIR=/app/models

RUN groupadd --system --gid 10001 assay \
    && useradd --system --uid 10001 --gid assay --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin assay \
    && mkdir -p /app/models /var/lib/assay \
    && chown assay:assay /app/models /var/lib/assay

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz does not touch the database); readiness is /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ASSAY_PORT', '8000') + '/healthz', timeout=4)"]

# `assay serve` reads ASSAY_HOST / ASSAY_PORT / ASSAY_WORKERS from the environment.
CMD ["assay", "serve"]
