# The stream worker. Build: docker build -t im-rewards-stream .   Run: see docker-compose.yml or deploy/k8s/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml ./
COPY stream ./stream
# All dependencies ship as wheels for CPython 3.11 (manylinux), so no compiler is needed.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin stream \
    && mkdir -p /data \
    && chown stream /data

# In a container the HTTP server (query API, /health, /metrics) must listen on all interfaces.
ENV STREAM_DATA_DIR=/data \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066

USER stream
# RocksDB tables: keep them on a volume so a restarted worker does not rebuild them from the changelogs.
VOLUME ["/data"]
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('STREAM_WEB_PORT', '6066'), timeout=4)"]

# `docker run IMAGE` runs `stream worker`; `docker run IMAGE feed --events 1000` runs another command.
ENTRYPOINT ["stream"]
CMD ["worker"]
