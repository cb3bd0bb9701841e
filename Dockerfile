# perianctl: the PERIAN Flyte connector (`perianctl serve`) and CLI in one small image.
#
#   docker build -t ghcr.io/acme/perianctl:0.1.0 .
#   docker run --rm -p 8000:8000 -p 9090:9090 \
#     -e _FSEC_PERIAN_ORGANIZATION=my-org -e _FSEC_PERIAN_TOKEN=... ghcr.io/acme/perianctl:0.1.0
#
# Credentials are read like a flytekit connector server reads them: /etc/secrets/<key> (the
# Kubernetes Secret in deploy/k8s) or _FSEC_<KEY>. Health: grpc.health.v1 on 8000 (native
# Kubernetes gRPC probes, no grpc_health_probe binary needed). Metrics: :9090/metrics.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY perianctl ./perianctl
# Wheels for perianctl and every dependency, so the runtime stage needs no compiler or network.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels perianctl \
 && useradd --uid 65532 --user-group --no-create-home --home-dir /nonexistent perianctl
# Refuse to start with an import problem (the failure mode that breaks the official image).
RUN python -c "import flytekit; from flytekit.extend.backend.base_connector import ConnectorRegistry as R; \
assert type(R.get_connector('perian_task')).__module__ == 'perianctl.flyte.connector'"
USER 65532:65532
EXPOSE 8000 9090
# exec form: the server is PID 1 and receives SIGTERM itself (graceful drain, exit 0).
ENTRYPOINT ["perianctl"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--metrics-port", "9090", "--grace", "30", "--shutdown-delay", "5"]
