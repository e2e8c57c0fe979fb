# One image for the monitor, the panel and the simulators (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, pinned by the lock file, so a code change does not reinstall them.
COPY pyproject.toml requirements.lock README.md ./
COPY monitor ./monitor
COPY dashboard ./dashboard
COPY simulators ./simulators
RUN pip install -c requirements.lock . \
    && useradd --system --uid 10001 --home-dir /app vigil \
    && mkdir -p /shared && chown vigil /shared

USER vigil
EXPOSE 8000 8050
# The monitor's own check; the panel and the simulator override it in docker-compose.yml.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import sys, httpx; sys.exit(httpx.get('http://127.0.0.1:8000/health', timeout=2).status_code != 200)"]
CMD ["python", "-m", "monitor", "serve", "--host", "0.0.0.0", "--port", "8000"]
