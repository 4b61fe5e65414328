# syntax=docker/dockerfile:1
# Build stage: wheels for the package and its dependencies (no compilers in the runtime image).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY service ./service
COPY yardstick ./yardstick
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: slim Python, the wheels, a non-root user.
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    YARDSTICK_DATA_DIR=/data
RUN useradd --system --uid 10001 --create-home yardstick \
    && mkdir -p /data && chown yardstick /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER yardstick
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Binding 0.0.0.0 requires YARDSTICK_API_KEYS (or --insecure behind a trusted proxy): without keys
# serve refuses to start (docs/deployment.md).
CMD ["yardstick", "serve", "--host", "0.0.0.0", "--port", "8000"]
