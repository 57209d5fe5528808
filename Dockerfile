# One image for every InfoU process; the command picks the service:
#   python -m infou_gateway | infou_catalog | infou_session | infou_generation | infou_feedback | infou_realtime
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY protos protos
COPY gateway gateway
COPY catalog-service catalog-service
COPY session-service session-service
COPY generation-service generation-service
COPY feedback-service feedback-service
COPY realtime-service realtime-service
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 infou
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 INFOU_LOG_JSON=true
USER infou
EXPOSE 8000 50051 50052 50053 50054 50055 9100
CMD ["python", "-m", "infou_gateway"]
