# akv-exporter: a small image running as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY akv_exporter ./akv_exporter
# The image runs the exporter only: the simulator is its own distribution (simulator/), not copied.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# The release this image is built from: tests/test_packaging.py checks it against akv_exporter.__version__.
LABEL org.opencontainers.image.title="akv-exporter" org.opencontainers.image.version="0.2.0"
RUN useradd --system --uid 10001 --home-dir /var/lib/akv-exporter --create-home akv-exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The runbooks the alert rules' runbook_url points at (docs/runbooks.md#<alert>).
COPY docs/runbooks.md docs/alerting.md /usr/share/doc/akv-exporter/docs/
USER 10001
ENV AKV_EXPORTER_STATE_FILE=/var/lib/akv-exporter/state.json
VOLUME /var/lib/akv-exporter
EXPOSE 9877
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9877/-/healthy', timeout=4)"
ENTRYPOINT ["akv-exporter"]
CMD ["run", "--config", "/etc/akv-exporter/akv-exporter.yml", "--log-format", "json"]
