"""Every dashboard query against a real Prometheus scraping exporter-shaped series.

Two HTTP servers stand in for an HA pair of exporters (same clusters, two `instance`s), serving
a fixed exposition that follows the metric names and labels of docs/spec. Prometheus scrapes
both every second; then every panel's query must run without error and the overview's numbers
must be the ones the fixture implies.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards.generate import render_all
from dashboards.queries import DEFAULT_VARIABLES, iter_queries, substitute_variables

pytestmark = pytest.mark.prometheus

STARTUP_SECONDS = 30.0
UNREACHABLE_FOR_SECONDS = 600

DASHBOARDS = {name: json.loads(text) for name, text in render_all().items()}

# Cluster c1 (datacenter dc1): a cluster-scoped configuration u1, healthy, and an SVM-scoped
# u2 that cannot reach Azure, with its KEK unavailable and node n2's EKMIP unreachable.
# Cluster c2 (no datacenter label): one inactive configuration u3, which reports no state.
# Cluster c3: the exporter cannot reach it, so it has no AKV series at all.
INFO_LABELS = (
    'scope="{scope}",configuration="{cfg}",vault="https://{cfg}.vault.azure.net",'
    'key_id="key",authentication_method="client_secret",client_id="cid",tenant_id="tid"'
)


def exposition(unreachable_since: int) -> str:
    c1u1 = 'cluster="c1",datacenter="dc1",svm="",uuid="u1"'
    c1u2 = 'cluster="c1",datacenter="dc1",svm="svm1",uuid="u2"'
    c2u3 = 'cluster="c2",svm="",uuid="u3"'
    azure_message = "AKV unreachable from one or more nodes"
    lines = [
        "# TYPE ontap_akv_info gauge",
        f"ontap_akv_info{{{c1u1},{INFO_LABELS.format(scope='cluster', cfg='c1')}}} 1",
        f"ontap_akv_info{{{c1u2},{INFO_LABELS.format(scope='svm', cfg='svm1')}}} 1",
        f"ontap_akv_info{{{c2u3},{INFO_LABELS.format(scope='cluster', cfg='c2')}}} 1",
        "# TYPE ontap_akv_enabled gauge",
        f"ontap_akv_enabled{{{c1u1}}} 1",
        f"ontap_akv_enabled{{{c1u2}}} 1",
        f"ontap_akv_enabled{{{c2u3}}} 0",
        "# TYPE ontap_akv_azure_reachable gauge",
        f'ontap_akv_azure_reachable{{{c1u1},code="0"}} 1',
        f'ontap_akv_azure_reachable{{{c1u2},code="65537549"}} 0',
        "# TYPE ontap_akv_kek_available gauge",
        f'ontap_akv_kek_available{{{c1u1},code="0"}} 1',
        f'ontap_akv_kek_available{{{c1u2},code="65537551"}} 0',
        "# TYPE ontap_akv_ekmip_reachable gauge",
        f'ontap_akv_ekmip_reachable{{{c1u1},node="n1",code="0"}} 1',
        f'ontap_akv_ekmip_reachable{{{c1u1},node="n2",code="0"}} 1',
        f'ontap_akv_ekmip_reachable{{{c1u2},node="n1",code="0"}} 1',
        f'ontap_akv_ekmip_reachable{{{c1u2},node="n2",code="65537549"}} 0',
        "# TYPE ontap_akv_status_message_info gauge",
        f'ontap_akv_status_message_info{{{c1u2},check="azure",node="",code="65537549",'
        f'message="{azure_message}"}} 1',
        f'ontap_akv_status_message_info{{{c1u2},check="kek",node="",code="65537551",'
        'message="KEK unavailable on one or more nodes"} 1',
        f'ontap_akv_status_message_info{{{c1u2},check="ekmip",node="n2",code="65537549",'
        'message="embedded KMIP server cannot reach the vault"} 1',
        "# TYPE ontap_akv_azure_unreachable_since_timestamp_seconds gauge",
        f"ontap_akv_azure_unreachable_since_timestamp_seconds{{{c1u2}}} {unreachable_since}",
        "# TYPE akv_exporter_cluster_up gauge",
        'akv_exporter_cluster_up{cluster="c1"} 1',
        'akv_exporter_cluster_up{cluster="c2"} 1',
        'akv_exporter_cluster_up{cluster="c3"} 0',
        "# TYPE akv_exporter_cluster_last_success_timestamp_seconds gauge",
        f'akv_exporter_cluster_last_success_timestamp_seconds{{cluster="c1"}} {unreachable_since}',
        f'akv_exporter_cluster_last_success_timestamp_seconds{{cluster="c2"}} {unreachable_since}',
        "# TYPE akv_exporter_cluster_poll_duration_seconds gauge",
        'akv_exporter_cluster_poll_duration_seconds{cluster="c1"} 0.8',
        'akv_exporter_cluster_poll_duration_seconds{cluster="c2"} 0.3',
        'akv_exporter_cluster_poll_duration_seconds{cluster="c3"} 30',
        "# TYPE akv_exporter_cluster_poll_errors_total counter",
        'akv_exporter_cluster_poll_errors_total{cluster="c3",reason="timeout"} 4',
        "# TYPE akv_exporter_ontap_requests_total counter",
        'akv_exporter_ontap_requests_total{cluster="c1",status="200"} 30',
        'akv_exporter_ontap_requests_total{cluster="c3",status="503"} 2',
        "# TYPE akv_exporter_config_last_reload_successful gauge",
        "akv_exporter_config_last_reload_successful 1",
        "# TYPE akv_exporter_config_last_reload_success_timestamp_seconds gauge",
        f"akv_exporter_config_last_reload_success_timestamp_seconds {unreachable_since}",
        "# TYPE akv_exporter_build_info gauge",
        'akv_exporter_build_info{version="0.1.0",python_version="3.11.2"} 1',
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 1.5",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 4.2e+07",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {unreachable_since}",
    ]
    return "\n".join(lines) + "\n"


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    # Prometheus cannot listen on port 0 and report the port; ask the kernel for a free one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Prometheus:
    url: str
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        """The parsed answer of an instant query; HTTP errors come back as the error body."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def values(self, expr: str) -> list[tuple[dict[str, str], float]]:
        answer = self.query(expr)
        assert answer["status"] == "success", (expr, answer)
        return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]

    def scalar(self, expr: str) -> float:
        (only,) = self.values(expr)
        return only[1]


def wait_for(condition: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"prometheus: {what} within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is missing: install Debian's prometheus "
            "(`make system-deps`, or `apt-get install prometheus`)"
        )
    directory = tmp_path_factory.mktemp("prometheus")
    body = exposition(int(time.time()) - UNREACHABLE_FOR_SECONDS).encode()
    exporters = [serve(body), serve(body)]
    targets = [f"127.0.0.1:{server.server_address[1]}" for server in exporters]
    config = directory / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "akv-exporter", "static_configs": [{"targets": targets}]}
                ],
            }
        )
    )
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", log)
    try:

        def ready() -> bool:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                return response.status == 200

        def scraped_both() -> bool:
            # rate() and increase() need two samples of each exporter; wait for three.
            samples = 'count_over_time(akv_exporter_build_info{job="akv-exporter"}[1m])'
            return server.values(f"count({samples} >= 3)") == [({}, 2.0)]

        wait_for(ready, "ready", process, log)
        wait_for(scraped_both, "both exporters scraped", process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for exporter in exporters:
            exporter.shutdown()
            exporter.server_close()


def queries_by_title(name: str, **values: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for title, expr in iter_queries(DASHBOARDS[name]):
        found.setdefault(title, []).append(substitute_variables(expr, DEFAULT_VARIABLES | values))
    return found


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_of_the_dashboard_runs(prometheus: Prometheus, name: str) -> None:
    failures = []
    for title, exprs in queries_by_title(name).items():
        for expr in exprs:
            answer = prometheus.query(expr)
            if answer["status"] != "success":
                failures.append(f"{title}: {answer.get('error')}\n  {expr}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_returns_data_from_the_exporter_fixture(
    prometheus: Prometheus, name: str
) -> None:
    # The fixture has a problem of every kind, so every panel has something to show; a query
    # that returns nothing names a metric or label the exporter does not produce.
    empty = [
        title
        for title, exprs in queries_by_title(name).items()
        for expr in exprs
        if not prometheus.values(expr)
    ]
    assert not empty, f"queries without data: {empty}"


def test_overview_counts_match_the_fleet(prometheus: Prometheus) -> None:
    panels = queries_by_title("akv-fleet.json")
    expected = {
        "Clusters monitored": 3,
        "Clusters the exporter cannot reach": 1,
        "AKV configurations unreachable": 1,
        "Nodes with EKMIP unreachable": 1,
        "KEKs unavailable": 1,
    }
    # Two exporter instances scrape the same clusters: each cluster still counts once.
    assert {title: prometheus.scalar(panels[title][0]) for title in expected} == expected


def test_problem_counts_are_zero_not_empty_for_a_healthy_selection(
    prometheus: Prometheus,
) -> None:
    panels = queries_by_title("akv-fleet.json", cluster="c2")
    for title in ("AKV configurations unreachable", "Nodes with EKMIP unreachable"):
        assert prometheus.values(panels[title][0]) == [({}, 0.0)], title
    assert prometheus.values(panels["KEKs unavailable"][0]) == [({}, 0.0)]
    nobody = queries_by_title("akv-fleet.json", cluster="no-such-cluster")
    assert prometheus.values(nobody["Clusters monitored"][0]) == [({}, 0.0)]


def test_datacenter_variable_keeps_clusters_without_the_label_under_all(
    prometheus: Prometheus,
) -> None:
    info = queries_by_title("akv-cluster.json")["AKV configuration details"][0]
    assert {m["uuid"] for m, _ in prometheus.values(info)} == {"u1", "u2", "u3"}
    dc1 = queries_by_title("akv-cluster.json", datacenter="dc1")["AKV configuration details"][0]
    assert {m["uuid"] for m, _ in prometheus.values(dc1)} == {"u1", "u2"}


def test_time_left_counts_down_from_sixty_minutes(prometheus: Prometheus) -> None:
    title = "Time left before ONTAP takes encrypted volumes offline"
    ((labels, seconds),) = prometheus.values(queries_by_title("akv-fleet.json")[title][0])
    assert (labels["cluster"], labels["svm"], labels["uuid"]) == ("c1", "svm1", "u2")
    assert 3600 - UNREACHABLE_FOR_SECONDS - 120 < seconds <= 3600 - UNREACHABLE_FOR_SECONDS


def test_configuration_table_rows_share_the_merge_key(prometheus: Prometheus) -> None:
    exprs = queries_by_title("akv-fleet.json")["AKV configurations"]
    keys = []
    for expr in exprs:
        rows = prometheus.values(expr)
        keys.append({(m["cluster"], m.get("svm", ""), m["uuid"]) for m, _ in rows})
        assert len(rows) == len(keys[-1]), f"two rows for one configuration: {expr}"
    assert keys[0] == {("c1", "", "u1"), ("c1", "svm1", "u2"), ("c2", "", "u3")}
    assert all(key <= keys[0] for key in keys)


def test_configuration_table_message_prefers_azure_then_falls_back_to_the_code(
    prometheus: Prometheus,
) -> None:
    exprs = queries_by_title("akv-fleet.json")["AKV configurations"]
    (message_expr,) = [e for e in exprs if "ontap_akv_status_message_info" in e]
    rows = {m["uuid"]: m for m, _ in prometheus.values(message_expr)}
    assert set(rows) == {"u1", "u2"}  # u3 is inactive: no code, no message
    assert (rows["u2"]["check"], rows["u2"]["code"]) == ("azure", "65537549")
    assert rows["u2"]["message"] == "AKV unreachable from one or more nodes"
    assert rows["u1"]["code"] == "0" and "message" not in rows["u1"]


def test_ekmip_matrix_names_each_configuration(prometheus: Prometheus) -> None:
    (expr,) = queries_by_title("akv-cluster.json")["EKMIP reachability: node by configuration"]
    cells = {(m["akv_configuration"], m["node"]): v for m, v in prometheus.values(expr)}
    assert cells == {
        ("c1 / cluster scope", "n1"): 1,
        ("c1 / cluster scope", "n2"): 1,
        ("c1 / svm1", "n1"): 1,
        ("c1 / svm1", "n2"): 0,
    }
