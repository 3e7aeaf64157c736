# syntax=docker/dockerfile:1
#
# One image for every snowmelt role: the entrypoint is the `snowmelt` command, so
#   docker run IMAGE collector --config /etc/snowmelt/config.yml
#   docker run IMAGE enrich    --config /etc/snowmelt/config.yml
#   docker run IMAGE load clickhouse --config ...   /   docker run IMAGE load s3 --config ...
#   docker run -p 9090:9090 IMAGE up
# No HEALTHCHECK: Kubernetes probes (deploy/helm/snowmelt) check the roles' HTTP endpoints.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: compile ext/*.pyx (Cython) into the snowmelt wheel, collect every dependency's wheel
FROM ${PYTHON_IMAGE} AS build

# The compiler toolchain only lives in this stage; the runtime stage never sees it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY snowmelt ./snowmelt
COPY collector ./collector
COPY processor ./processor
COPY ext ./ext
COPY loaders ./loaders
COPY schemas ./schemas

# `pip wheel .` runs setup.py, which cythonizes and compiles ext/ (a missing compiler or a
# Cython error fails here); the dependencies' wheels land beside it so the runtime installs offline.
# The wheel is then checked to load the compiled ext/ (python -P keeps /src, without the .so files, off sys.path).
RUN pip wheel --wheel-dir /wheels ".[fast]" \
    && python -m venv /tmp/check \
    && /tmp/check/bin/pip install --no-index --find-links /wheels "snowmelt[fast]" \
    && SNOWMELT_REQUIRE_EXTENSIONS=1 /tmp/check/bin/python -P -c \
       "import ext, sys; sys.exit(0 if ext.IMPLEMENTATION == 'compiled' else 'ext is not compiled')" \
    && rm -rf /tmp/check

# ---- runtime: the wheels installed into a slim Python, no compiler, a non-root user
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="snowmelt" \
      org.opencontainers.image.description="Snowplow-compatible behavioural-data pipeline: collector, enrich, loaders" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SNOWMELT_REQUIRE_EXTENSIONS=1

# The wheels are bind-mounted from the build stage, so none of them stays in a layer; the
# install is offline (--no-index) from exactly the wheels built above, which pins every version.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "snowmelt[fast]" \
    && SNOWMELT_REQUIRE_EXTENSIONS=1 python -c "import ext; assert ext.IMPLEMENTATION == 'compiled'" \
    && snowmelt --version

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 snowmelt \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/snowmelt --create-home \
       --shell /usr/sbin/nologin snowmelt \
    && mkdir -p /etc/snowmelt \
    && chown 10001:10001 /var/lib/snowmelt

WORKDIR /var/lib/snowmelt
USER 10001:10001

# collector (collector.port), snowmelt up (up.port) and its SQL endpoint (up.sql_port),
# and the Prometheus /metrics port the Helm chart gives enrich and the loaders.
EXPOSE 8080 9090 8123 9100

ENTRYPOINT ["snowmelt"]
CMD ["--help"]
