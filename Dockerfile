# The project's image for deploy/compose.yaml: every service of the project runs it with its own command
# (`shadow-pipeline ...`, `dagster api grpc`, `dagster-webserver`, `dagster-daemon run`, `dagster-celery worker`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shadow_pipeline ./shadow_pipeline
COPY dagster.yaml workspace.yaml ./
# `scale`: dagster-postgres and dagster-celery (docs/scaling.md); `hbt`: hftbacktest, the dry-run's default reality
# for the queue fill model, without which every pipeline_job run would fail its dry-run step. The base instance file
# `shadow-pipeline instance` starts from is /app/dagster.yaml, the working directory's.
RUN pip install --no-cache-dir ".[scale,hbt]" && useradd --create-home shadow \
    && mkdir -p /opt/dagster/home /data /artifacts && chown shadow /opt/dagster/home /data /artifacts
USER shadow
ENV DAGSTER_HOME=/opt/dagster/home
EXPOSE 3000 4000
CMD ["shadow-pipeline", "--help"]
