# One image for every InfoU process; the command picks the service:
#   python -m infou_gateway | infou_catalog | infou_session | infou_generation | infou_feedback | infou_realtime
# Only the runtime is installed (`--no-dev --no-editable`): no devtools, no test tooling. The same
# install is made and migrated by tests/deploy/test_production_install.py in `make test`.
#
# The base image is pinned by digest so a rebuild gets the same bytes. To refresh it:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # copy the index "Digest:"
# then replace the digest in BOTH `FROM` lines below, rebuild and run `make test`.

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
# uv from PyPI, the version the Makefile bootstraps; pinned like every other dependency.
RUN pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1

# Layer 1, the third-party dependencies: rebuilt only when the lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY libs/pyproject.toml libs/
COPY protos/pyproject.toml protos/
COPY gateway/pyproject.toml gateway/
COPY catalog-service/pyproject.toml catalog-service/
COPY session-service/pyproject.toml session-service/
COPY generation-service/pyproject.toml generation-service/
COPY feedback-service/pyproject.toml feedback-service/
COPY realtime-service/pyproject.toml realtime-service/
COPY devtools/pyproject.toml devtools/
RUN uv sync --frozen --no-dev --no-install-workspace

# Layer 2, the project itself (built as wheels: the image never links the source tree).
COPY libs libs
COPY protos protos
COPY gateway gateway
COPY catalog-service catalog-service
COPY session-service session-service
COPY generation-service generation-service
COPY feedback-service feedback-service
COPY realtime-service realtime-service
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
# A numeric, non-root user (Kubernetes' runAsNonRoot can verify a number, not a name).
RUN groupadd --system --gid 10001 infou \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin infou
WORKDIR /app
# Only the environment: the packages in it are installed, not linked to /app sources.
COPY --from=build /app/.venv /app/.venv
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INFOU_LOG_JSON=true
USER 10001:10001
EXPOSE 8000 50051 50052 50053 50054 50055 9100
# Readiness of whichever process runs here (gRPC health, or the gateway's /ready). Kubernetes
# ignores HEALTHCHECK and uses the probes in deploy/k8s; compose and plain docker use this.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "infou_libs.probe"]
CMD ["python", "-m", "infou_gateway"]
