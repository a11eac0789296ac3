# syntax=docker/dockerfile:1
#
# docker build -t feedsvc .
# docker run -p 8000:8000 -v "$PWD/content:/content:ro" -e FEEDSVC_BASE_URL=https://feeds.example.org feedsvc
#
# Two stages: `build` makes feedsvc's wheel and installs it with its dependencies into a venv at
# /opt/venv (every dependency ships binary wheels, so no compiler is needed even there); the final
# stage is the same slim base with only that venv copied in. tests/test_container.py lints this
# file with hadolint and checks the final stage.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
    && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir /wheels/feedsvc-*.whl

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="feedsvc" \
      org.opencontainers.image.description="Watches a folder of posts and serves always-fresh RSS and Atom feeds per category."
# A fixed uid/gid, so files on the host (the cache volume, a content folder) can be matched to it.
RUN groupadd --system --gid 10001 feedsvc \
    && useradd --system --uid 10001 --gid feedsvc --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin feedsvc \
    && install -d -o root -g root -m 0755 /content \
    && install -d -o feedsvc -g feedsvc -m 0750 /var/cache/feedsvc
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FEEDSVC_CONTENT_DIR=/content \
    FEEDSVC_CACHE_DIR=/var/cache/feedsvc \
    FEEDSVC_HOST=0.0.0.0 \
    FEEDSVC_PORT=8000
WORKDIR /content
USER 10001:10001
# Posts are read from /content and never written: mount it read-only. The parse cache (makes a
# restart re-read only changed files) lives in its own volume, writable by the feedsvc user.
VOLUME ["/content", "/var/cache/feedsvc"]
EXPOSE 8000
# /healthz answers 503 only until the first build is done; slim has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FEEDSVC_PORT', '8000') + '/healthz', timeout=4)"]
# On SIGTERM feedsvc finishes its requests and writes its cache, within FEEDSVC_STOP_TIMEOUT (30 s);
# give `docker stop` more than that (`docker stop -t 40`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["feedsvc", "serve"]
