# The scaffolder service: `scaffolder serve` (the API, with embedded workers unless
# scaffolder.concurrentTasksLimit is 0) by default; `scaffolder worker --metrics-port 7007`
# for a worker-only container. git is inside for publish:* and fetch:*, and the template
# quality gate's tools (cfn-lint, hadolint, yamllint, zizmor) for `scaffolder lint`.
# See README, "Running in production".

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/scaffolder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships manylinux wheels (psycopg[binary], cryptography, PyNaCl): no compiler.
RUN /opt/scaffolder/bin/pip install --no-cache-dir ".[lint]"

FROM python:3.11-slim-bookworm
# Versions come with the pinned Debian release; pinning each package would break on every
# security update of bookworm.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 scaffolder \
    && useradd --system --uid 10001 --gid scaffolder --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin scaffolder
COPY --from=build /opt/scaffolder /opt/scaffolder
WORKDIR /app
COPY cookiecutters ./cookiecutters
COPY deploy/app-config.production.yaml ./app-config.yaml
RUN mkdir -p /app/var/work && chown -R scaffolder:scaffolder /app/var
ENV PATH=/opt/scaffolder/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/app/var \
    GIT_TERMINAL_PROMPT=0
USER 10001:10001
EXPOSE 7007
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7007/.backstage/health/v1/readiness', timeout=4)"]
ENTRYPOINT ["scaffolder"]
CMD ["serve", "--config", "/app/app-config.yaml"]
