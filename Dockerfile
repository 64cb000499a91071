# The operator image. Two stages: the first builds a virtualenv with the package and its runtime
# dependencies only (no test extras); the second is a slim Python with that venv, the ssh client
# (for ssh:// and git@host:path remotes) and a non-root user. Runs read-only (see
# manifests/deployment.yaml): git workspaces go to an emptyDir at IMAGEPROMOTER_WORKDIR.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m venv /opt/imagepromoter \
 && /opt/imagepromoter/bin/pip install . \
 && /opt/imagepromoter/bin/imagepromoter --help >/dev/null

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 imagepromoter \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin imagepromoter \
 && install -d -o 10001 -g 10001 /var/cache/imagepromoter
COPY --from=build /opt/imagepromoter /opt/imagepromoter
ENV PATH=/opt/imagepromoter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    IMAGEPROMOTER_WORKDIR=/var/cache/imagepromoter
USER 10001:10001
# 8080: Prometheus metrics; 8081: Kopf's liveness endpoint (/healthz)
EXPOSE 8080 8081 9443
ENTRYPOINT ["imagepromoter", "run"]
