# syntax=docker/dockerfile:1
#
# One image for every role of a deployment; the command picks the role:
#   processgpt api                               the HTTP API (on 0.0.0.0:8000 here)
#   processgpt worker --no-migrate --agent llm   a worker (--agent repeats: several agents)
#   processgpt migrate                           apply database migrations, then exit
# Every role needs DATABASE_URL and PROCESSGPT_SECRET_KEYS (the same on every process); see
# deploy/README.md. Your own executors: build FROM this image and COPY or pip install them.
#
#   docker build -t processgpt:0.1.0 .
#   docker run --rm processgpt:0.1.0 processgpt --version

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the package and its dependencies in a virtualenv ------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/processgpt
WORKDIR /src
# Every dependency ships manylinux wheels for x86-64 (glibc 2.34 at most; bookworm has 2.36),
# so this stage needs no compiler there.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/processgpt/bin/pip install . \
    && /opt/processgpt/bin/pip uninstall --yes pip \
    && /opt/processgpt/bin/python -m compileall -q /opt/processgpt

# -- runtime: the virtualenv, tini, and a user without privileges ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to processgpt (which drains on it) and reaps the MCP
# server processes a worker starts.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 processgpt \
    && useradd --system --uid 10001 --gid processgpt --home-dir /home/processgpt \
        --create-home --shell /usr/sbin/nologin processgpt \
    && install -d -o processgpt -g processgpt -m 0700 /var/lib/processgpt
COPY --from=build /opt/processgpt /opt/processgpt
ENV PATH=/opt/processgpt/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROCESSGPT_DATA_DIR=/var/lib/processgpt \
    PROCESSGPT_API_HOST=0.0.0.0 \
    PROCESSGPT_API_PORT=8000 \
    PROCESSGPT_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/processgpt
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["processgpt", "api"]
