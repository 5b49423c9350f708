# ria-calls-bot: one container, one process, SQLite on the /data volume.
#
#   docker build -t ria-calls-bot .
#   docker run -d --name ria-calls-bot -p 127.0.0.1:8080:8080 --env-file .env \
#              --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
#              -v ria-calls-data:/data ria-calls-bot
#   docker run --rm --env-file .env -v ria-calls-data:/data ria-calls-bot stats today
#
# The base is a build argument so that the image also builds on a local stand-in for the
# official image (Debian's python3 + venv); both stages must use the same base, because the
# venv's python is a link to the base image's interpreter.
ARG BASE_IMAGE=python:3.12-slim

# --- build stage: resolve and install everything into /opt/venv ---------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src

# Dependencies first, from pyproject alone, so that a code change reuses this layer.
# `[chart]` (matplotlib) is in: the daily summary draws a chart. `[test]` is not.
# phonenumbers comes as phonenumberslite: the same `phonenumbers` module without the
# geocoder/carrier/timezone data (45 MB) that the service never uses.
COPY pyproject.toml ./
RUN python3 -c 'import re, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
reqs = p["dependencies"] + p["optional-dependencies"]["chart"]; \
print("\n".join(re.sub(r"^phonenumbers\b", "phonenumberslite", r) for r in reqs))' \
    > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --quiet -r /tmp/requirements.txt

# Then the service itself, as a regular (non-editable) install. After it: no installers
# (pip, setuptools), no tests or stale bytecode shipped inside wheels, and everything compiled
# once, so that start-up never compiles; hash-based .pyc files stay valid whatever timestamps
# the copy into the next stage leaves.
COPY . .
RUN /opt/venv/bin/pip install --quiet --no-deps . \
 && { /opt/venv/bin/pip uninstall --quiet --yes pip setuptools wheel 2>/dev/null || true; } \
 && rm -rf /opt/venv/bin/pip* /opt/venv/bin/easy_install* \
 && find /opt/venv -depth -type d \( -name tests -o -name __pycache__ \) \
         -path '*/site-packages/*' -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

# --- run stage: the base image, the venv, a user ---------------------------------------------
FROM ${BASE_IMAGE}
ARG UID=10001
RUN groupadd --gid "${UID}" bot \
 && useradd --uid "${UID}" --gid bot --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin bot \
 && mkdir -p /data /tmp/matplotlib \
 && chown bot:bot /data /tmp/matplotlib

COPY --from=build /opt/venv /opt/venv

# Unbuffered: logs reach `docker logs` at once. No bytecode writes: everything is compiled
# at build time and /opt/venv is read-only for `bot` anyway.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATABASE_PATH=/data/calls.db \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

USER ${UID}:${UID}
# matplotlib needs a writable MPLCONFIGDIR (on a read-only root it would warn and make a
# random one per process). /tmp is that place: the tmpfs of `read_only` runs (compose.yaml).
# Its font list is built here once; podman copies it into the tmpfs, docker starts the tmpfs
# empty and the first chart builds it again (a second or so, once per container).
RUN python -c "import matplotlib.font_manager"

WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# No curl in the image: python asks /healthz (HTTP error or no answer: unhealthy).
# (podman keeps HEALTHCHECK only in the docker image format: `podman build --format docker`.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('HTTP_HOST', ''); h = '127.0.0.1' if h in ('', '0.0.0.0', '::') else h; u.urlopen(f\"http://{h}:{os.environ.get('HTTP_PORT', '8080')}/healthz\", timeout=4)"]

# exec form: the service is PID 1 and handles SIGTERM itself (flushes, exits 0)
STOPSIGNAL SIGTERM
ENTRYPOINT ["ria-calls-bot"]
CMD ["run"]
