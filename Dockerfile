# akv-exporter: a small image running as an unprivileged user (docs/docker.md).
FROM python:3.11-slim AS build
WORKDIR /src
# The dependencies and the build backend first, in layers of their own: they are fetched again
# only when pyproject.toml changes, not on every change to the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print(*p['project']['dependencies'], sep='\n', file=open('requirements.txt', 'w')); print(*p['build-system']['requires'], sep='\n', file=open('build-requirements.txt', 'w'))" \
    && pip wheel --no-cache-dir --wheel-dir /wheels/dependencies -r requirements.txt \
    && pip install --no-cache-dir -r build-requirements.txt
COPY README.md ./
COPY akv_exporter ./akv_exporter
# The image runs the exporter only: the simulator is its own distribution (simulator/), not copied.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels/exporter .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/akv-exporter --create-home akv-exporter
COPY --from=build /wheels/dependencies /wheels/dependencies
RUN pip install --no-cache-dir --no-index /wheels/dependencies/*.whl && rm -rf /wheels
COPY --from=build /wheels/exporter /wheels/exporter
RUN pip install --no-cache-dir --no-index --no-deps /wheels/exporter/*.whl && rm -rf /wheels
# The runbooks the alert rules' runbook_url points at (docs/runbooks.md#<alert>).
COPY docs/runbooks.md docs/alerting.md /usr/share/doc/akv-exporter/docs/
# The release this image is built from: tests/test_packaging.py checks it against akv_exporter.__version__.
# (Late in the file: a new version rebuilds no dependency layer.)
LABEL org.opencontainers.image.title="akv-exporter" org.opencontainers.image.version="0.2.0"
USER 10001
ENV AKV_EXPORTER_STATE_FILE=/var/lib/akv-exporter/state.json
VOLUME /var/lib/akv-exporter
EXPOSE 9877
# Asks /-/healthy where the exporter serves, HTTP or HTTPS, as its configuration and flags say.
HEALTHCHECK --interval=30s --timeout=5s CMD ["akv-exporter", "healthcheck"]
ENTRYPOINT ["akv-exporter"]
CMD ["run", "--config.file", "/etc/akv-exporter/akv-exporter.yml", "--log.format", "json"]
