"""AKV / Exporter: the exporter's own health: polls, errors, ONTAP requests, reloads, process."""

from __future__ import annotations

from dashboards.common import (
    EXPORTER_UID,
    NONE_WHEN_ZERO,
    RED_FROM_ONE,
    cluster_variables,
    exporter,
    links,
    problem_count,
)
from dashboards.panels import (
    Cell,
    Dashboard,
    Query,
    Row,
    bar_gauge,
    datasource_variable,
    field_config,
    organize,
    stat,
    table,
    thresholds,
    timeseries,
    value_words,
)

_UP = exporter("akv_exporter_cluster_up")
_CLUSTER_UP = f"max by (cluster) ({_UP})"
_DURATION = f"max by (cluster) ({exporter('akv_exporter_cluster_poll_duration_seconds')})"

# process_* metrics come from every Python exporter; keep only the targets that are
# akv-exporter (they expose akv_exporter_build_info), whatever their job is called.
_OF_EXPORTER = "and on (job, instance) akv_exporter_build_info"


def _fleet() -> list[Cell]:
    up = stat(
        "Clusters up",
        "Clusters whose last poll got a valid answer from ONTAP.",
        [Query(f"count({_CLUSTER_UP} == 1) or vector(0)")],
        field_config(unit="none", steps=thresholds("blue")),
    )
    down = problem_count(
        "Clusters down",
        "Clusters whose last poll got no valid answer (akv_exporter_cluster_up = 0).",
        f"count({_CLUSTER_UP} == 0)",
    )
    ratio = stat(
        "Clusters up (share)",
        "The share of configured clusters whose last poll succeeded.",
        [Query(f"avg({_CLUSTER_UP})")],
        field_config(
            unit="percentunit",
            steps=thresholds("red", (0.9, "orange"), (1, "green")),
            minimum=0,
            maximum=1,
            no_value="No clusters",
        ),
    )
    reload_ok = stat(
        "Configuration reload",
        "Whether the last configuration reload (SIGHUP or POST /-/reload) succeeded, per exporter "
        "instance. A refused file leaves the previous configuration running.",
        [Query("min by (instance) (akv_exporter_config_last_reload_successful)", "{{instance}}")],
        field_config(
            mappings=[value_words((1, "OK", "green"), (0, "FAILED", "red"))],
            steps=thresholds("red", (1, "green")),
            no_value="No exporter",
        ),
    )
    reload_time = stat(
        "Last successful configuration load",
        "When each exporter instance last loaded its configuration successfully.",
        [
            Query(
                "max by (instance) "
                "(akv_exporter_config_last_reload_success_timestamp_seconds) * 1000",
                "{{instance}}",
            )
        ],
        field_config(unit="dateTimeAsIso", steps=thresholds("text"), no_value="Never"),
    )
    uptime = stat(
        "Exporter uptime",
        "Time since each exporter process started (process_start_time_seconds).",
        [Query(f"time() - (process_start_time_seconds {_OF_EXPORTER})", "{{instance}}")],
        field_config(
            unit="s",
            steps=thresholds("orange", (600, "green")),
            no_value="No exporter",
        ),
    )
    return [
        Cell(up, 4, 4),
        Cell(down, 4, 4),
        Cell(ratio, 4, 4),
        Cell(reload_ok, 4, 4),
        Cell(reload_time, 4, 4),
        Cell(uptime, 4, 4),
    ]


def _polls() -> list[Cell]:
    durations = timeseries(
        "Poll duration across clusters",
        "Median, 95th percentile and maximum, over the selected clusters, of the last poll's "
        "duration. A poll stops at poll.timeout (30 s by default).",
        [
            Query(f"quantile(0.5, {_DURATION})", "median"),
            Query(f"quantile(0.95, {_DURATION})", "95th percentile"),
            Query(f"max({_DURATION})", "max"),
        ],
        field_config(unit="s", minimum=0),
    )
    slowest = bar_gauge(
        "Slowest clusters (last poll)",
        "The ten clusters whose last poll took longest.",
        [Query(f"topk(10, {_DURATION})", "{{cluster}}")],
        field_config(
            unit="s",
            steps=thresholds("green", (10, "orange"), (25, "red")),
            minimum=0,
            no_value="No polls",
        ),
    )
    errors = timeseries(
        "Poll errors by reason",
        "Failed polls per minute over the selected clusters, by reason: timeout, connect, tls, "
        "auth, forbidden, rate_limited, http, ontap_error, invalid_response.",
        [
            Query(
                "sum by (reason) (rate("
                f"{exporter('akv_exporter_cluster_poll_errors_total')}[$__rate_interval])) * 60",
                "{{reason}}",
            )
        ],
        field_config(unit="cpm", minimum=0),
    )
    errors_total = stat(
        "Poll errors in the time range",
        "Failed polls over the dashboard's time range, over the selected clusters.",
        [
            Query(
                "sum(increase("
                f"{exporter('akv_exporter_cluster_poll_errors_total')}[$__range])) or vector(0)"
            )
        ],
        field_config(unit="none", decimals=0, mappings=[NONE_WHEN_ZERO], steps=RED_FROM_ONE),
    )
    requests = timeseries(
        "ONTAP requests by HTTP status",
        "HTTP requests the exporter sent to ONTAP per second, by response status. 429 and 503 "
        "mean ONTAP is shedding load; 401 and 403 mean the monitoring account was refused.",
        [
            Query(
                "sum by (status) (rate("
                f"{exporter('akv_exporter_ontap_requests_total')}[$__rate_interval]))",
                "{{status}}",
            )
        ],
        field_config(unit="reqps", minimum=0),
    )
    clusters = timeseries(
        "Clusters up and down",
        "How many clusters the exporter could and could not poll, over time.",
        [
            Query(f"count({_CLUSTER_UP} == 1) or vector(0)", "up"),
            Query(f"count({_CLUSTER_UP} == 0) or vector(0)", "down"),
        ],
        field_config(unit="none", decimals=0, minimum=0),
    )
    return [
        Cell(durations, 12, 8),
        Cell(slowest, 12, 8),
        Cell(errors, 9, 8),
        Cell(errors_total, 3, 8),
        Cell(requests, 12, 8),
        Cell(clusters, 24, 7),
    ]


def _process() -> list[Cell]:
    cpu = timeseries(
        "Exporter CPU",
        "CPU seconds per second used by each exporter process (1 = one full core).",
        [
            Query(
                f"rate(process_cpu_seconds_total[$__rate_interval]) {_OF_EXPORTER}",
                "{{instance}}",
            )
        ],
        field_config(unit="percentunit", minimum=0),
    )
    memory = timeseries(
        "Exporter resident memory",
        "Resident memory of each exporter process.",
        [Query(f"process_resident_memory_bytes {_OF_EXPORTER}", "{{instance}}")],
        field_config(unit="bytes", minimum=0),
    )
    build = table(
        "Build information",
        "The version of akv-exporter and of Python each exporter instance runs.",
        [Query("max by (job, instance, version, python_version) (akv_exporter_build_info)")],
        field_config(no_value="No exporter"),
        [
            organize(
                hidden=["Time", "Value"],
                columns={
                    "job": "Job",
                    "instance": "Instance",
                    "version": "Version",
                    "python_version": "Python",
                },
            )
        ],
        sort_by="Instance",
    )
    return [Cell(cpu, 8, 7), Cell(memory, 8, 7), Cell(build, 8, 7)]


def dashboard() -> Dashboard:
    """The exporter's own dashboard."""
    return Dashboard(
        uid=EXPORTER_UID,
        title="AKV / Exporter",
        description="akv-exporter itself: how its polls of ONTAP fare, why they fail, what it "
        "asks ONTAP, its configuration reloads, build and process.",
        rows=[
            Row("Clusters", _fleet()),
            Row("Polls", _polls()),
            Row("Process", _process()),
        ],
        variables=[datasource_variable(), *cluster_variables()],
        links=links(EXPORTER_UID),
    )
