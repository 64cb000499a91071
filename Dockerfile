# The operator image. Two stages: the first builds the package's wheel (with the build backend of
# requirements-build.lock) and a virtualenv holding exactly requirements.lock (hash-checked) plus
# that wheel, with no pip or setuptools in it; the
# second is the same slim Python with that venv, the ssh client (for ssh:// and git@host:path
# remotes) and a non-root user. Runs read-only (see manifests/deployment.yaml): git workspaces go
# to an emptyDir at IMAGEPROMOTER_WORKDIR. tests/test_dockerfile.py runs the build stage's RUN
# lines in a clean venv, since no container engine runs where the tests do.
#
# The base is pinned by digest: python:3.11-slim-bookworm (Python 3.11.16, Debian bookworm), the
# multi-platform index as docker-library/repo-info records it (repos/python/remote/
# 3.11-slim-bookworm.md). To move it: `docker buildx imagetools inspect python:3.11-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 VENV=/opt/imagepromoter
WORKDIR /src
COPY requirements-build.lock requirements.lock pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv --without-pip "$VENV" \
 && pip --python "$VENV/bin/python" install --require-hashes --no-deps -r requirements.lock \
 && pip install --require-hashes --no-deps -r requirements-build.lock \
 && pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
 && pip --python "$VENV/bin/python" install --no-deps /tmp/wheels/imagepromoter-*.whl \
 && "$VENV/bin/imagepromoter" --version

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 imagepromoter \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin imagepromoter \
 && install -d -o 10001 -g 10001 /var/cache/imagepromoter
COPY --from=build /opt/imagepromoter /opt/imagepromoter
# MALLOC_ARENA_MAX: glibc gives each thread that allocates its own arena, and the git writer's
# and CPU pool's threads each kept tens of MB of freed memory; two arenas cut the operator's
# resident memory at 1,000 CRs by about 10 MB (bench/scale.py runs the operator with this too).
ENV PATH=/opt/imagepromoter/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    IMAGEPROMOTER_WORKDIR=/var/cache/imagepromoter
USER 10001:10001
# 8080: Prometheus metrics; 8081: Kopf's liveness endpoint (/healthz)
EXPOSE 8080 8081 9443
ENTRYPOINT ["imagepromoter", "run"]
