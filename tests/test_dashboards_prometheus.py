"""Every dashboard query against a real Prometheus scraping exporter-shaped series.

Two HTTP servers stand in for an HA pair of exporters (same clusters, two `instance`s), serving
a fixed exposition that follows the metric names and labels of docs/spec. Prometheus scrapes
both every second; then every panel's query must run without error and the overview's numbers
must be the ones the fixture implies.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards.generate import render_all
from dashboards.queries import DEFAULT_VARIABLES, iter_queries, substitute_variables
from tests.helpers.loopback import wait_until
from tests.helpers.prometheus import Prometheus, start_prometheus

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
    c1 = 'cluster="c1",datacenter="dc1"'
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
        # The blast radius of c1: svm1 (its own configuration u2, unreachable) holds 32
        # encrypted volumes, 2 offline; svm2 (served by the cluster-scoped u1) holds 10.
        "# TYPE ontap_encrypted_volumes gauge",
        'ontap_encrypted_volumes{cluster="c1",datacenter="dc1",svm="svm1",state="online"} 30',
        'ontap_encrypted_volumes{cluster="c1",datacenter="dc1",svm="svm1",state="offline"} 2',
        'ontap_encrypted_volumes{cluster="c1",datacenter="dc1",svm="svm2",state="online"} 10',
        'ontap_encrypted_volumes{cluster="c1",datacenter="dc1",svm="svm2",state="offline"} 0',
        "# TYPE ontap_key_manager_health_monitor_enabled gauge",
        f'ontap_key_manager_health_monitor_enabled{{{c1},key_manager="akv"}} 1',
        "# TYPE ontap_key_manager_manage_volume_offline gauge",
        f'ontap_key_manager_manage_volume_offline{{{c1},key_manager="akv"}} 1',
        "# TYPE ontap_key_manager_health_monitor_interval_seconds gauge",
        'ontap_key_manager_health_monitor_interval_seconds{cluster="c1",datacenter="dc1"} 900',
        "# TYPE ontap_ems_events_total counter",
        'ontap_ems_events_total{cluster="c1",datacenter="dc1",node="n1",'
        'event="ekmip.akv.volOffline"} 1',
        "# TYPE ontap_ems_event_last_timestamp_seconds gauge",
        'ontap_ems_event_last_timestamp_seconds{cluster="c1",datacenter="dc1",node="n1",'
        f'event="ekmip.akv.volOffline"}} {unreachable_since + 60}',
        # The other key managers (c2): a Google Cloud KMS configuration u4 of svm2 that cannot
        # reach Google, its KEK unavailable and node n1's EKMIP down; a Barbican configuration u5
        # (no EKMIP); an external KMIP configuration u6 whose server ks1 n2 cannot reach, whose
        # status asks for action; key stores of c2, one blocked.
        "# TYPE ontap_gcp_kms_info gauge",
        'ontap_gcp_kms_info{cluster="c2",svm="svm2",uuid="u4",scope="svm",project_id="p",'
        'key_ring_location="global",key_ring_name="r",key_name="k"} 1',
        "# TYPE ontap_gcp_kms_google_reachable gauge",
        'ontap_gcp_kms_google_reachable{cluster="c2",svm="svm2",uuid="u4",code="65537730"} 0',
        "# TYPE ontap_gcp_kms_kek_available gauge",
        'ontap_gcp_kms_kek_available{cluster="c2",svm="svm2",uuid="u4",code="65537551"} 0',
        "# TYPE ontap_gcp_kms_ekmip_reachable gauge",
        'ontap_gcp_kms_ekmip_reachable{cluster="c2",svm="svm2",uuid="u4",node="n1",code="1"} 0',
        'ontap_gcp_kms_ekmip_reachable{cluster="c2",svm="svm2",uuid="u4",node="n2",code="0"} 1',
        "# TYPE ontap_gcp_kms_unreachable_since_timestamp_seconds gauge",
        'ontap_gcp_kms_unreachable_since_timestamp_seconds{cluster="c2",svm="svm2",uuid="u4"} '
        f"{unreachable_since}",
        "# TYPE ontap_barbican_kms_info gauge",
        'ontap_barbican_kms_info{cluster="c2",svm="svm3",uuid="u5",scope="svm",'
        'configuration="b",key_id="k",keystone_url="https://keystone"} 1',
        "# TYPE ontap_barbican_kms_barbican_reachable gauge",
        'ontap_barbican_kms_barbican_reachable{cluster="c2",svm="svm3",uuid="u5",code="0"} 1',
        "# TYPE ontap_barbican_kms_kek_available gauge",
        'ontap_barbican_kms_kek_available{cluster="c2",svm="svm3",uuid="u5",code="0"} 1',
        "# TYPE ontap_key_manager_info gauge",
        'ontap_key_manager_info{cluster="c2",svm="svm4",uuid="u6",scope="svm",type="kmip",'
        'configuration="kmip1"} 1',
        "# TYPE ontap_key_manager_setup_ok gauge",
        'ontap_key_manager_setup_ok{cluster="c2",svm="svm4",uuid="u6",code="65537300"} 0',
        "# TYPE ontap_kmip_server_reachable gauge",
        'ontap_kmip_server_reachable{cluster="c2",svm="svm4",uuid="u6",server="ks1",node="n1"} 1',
        'ontap_kmip_server_reachable{cluster="c2",svm="svm4",uuid="u6",server="ks1",node="n2"} 0',
        "# TYPE ontap_key_store_info gauge",
        'ontap_key_store_info{cluster="c2",svm="svm2",uuid="s1",type="gcp",location="external",'
        'configuration="g"} 1',
        "# TYPE ontap_key_store_state gauge",
        'ontap_key_store_state{cluster="c2",svm="svm2",uuid="s1",type="gcp",state="blocked"} 1',
        'ontap_key_store_state{cluster="c2",svm="svm4",uuid="s2",type="kmip",state="active"} 1',
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


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    directory = tmp_path_factory.mktemp("prometheus")
    body = exposition(int(time.time()) - UNREACHABLE_FOR_SECONDS).encode()
    exporters = [serve(body), serve(body)]
    targets = [f"127.0.0.1:{server.server_address[1]}" for server in exporters]
    server = None
    try:
        server = start_prometheus(
            directory,
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "akv-exporter", "static_configs": [{"targets": targets}]}
                ],
            },
        )

        def scraped_both() -> bool:
            # rate() and increase() need two samples of each exporter; wait for three.
            samples = 'count_over_time(akv_exporter_build_info{job="akv-exporter"}[1m])'
            return server.values(f"count({samples} >= 3)") == [({}, 2.0)]

        wait_until(scraped_both, "both exporters scraped", STARTUP_SECONDS, server.log)
        yield server
    finally:
        if server is not None:
            server.stop()
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
        "Encrypted volumes offline": 2,
        "Encrypted volumes at stake": 42,
    }
    # Two exporter instances scrape the same clusters: each cluster still counts once.
    assert {title: prometheus.scalar(panels[title][0]) for title in expected} == expected


def test_key_manager_counts_cover_every_provider(prometheus: Prometheus) -> None:
    panels = queries_by_title("key-managers.json")
    expected = {
        # AKV u1 u2 u3, GCP u4, Barbican u5, KMIP u6
        "Key-manager configurations": 6,
        # AKV u2 (Azure), GCP u4 (Google)
        "Key services unreachable": 2,
        "KEKs unavailable": 2,
        # c1 n2 (AKV), c2 n1 (GCP)
        "Nodes with EKMIP unreachable": 2,
        "KMIP servers a node cannot reach": 1,
        "Key stores blocked": 1,
        "Key managers needing action": 1,
    }
    assert {title: prometheus.scalar(panels[title][0]) for title in expected} == expected
    ((_, seconds),) = prometheus.values(panels["Shortest time left before volumes go offline"][0])
    assert 3600 - UNREACHABLE_FOR_SECONDS - 120 < seconds <= 3600 - UNREACHABLE_FOR_SECONDS


def test_key_manager_table_names_the_provider_of_each_configuration(
    prometheus: Prometheus,
) -> None:
    exprs = queries_by_title("key-managers.json")["Cloud key-manager configurations"]
    info, service, kek, ekmip = (
        {(m["uuid"], m["key_manager"]): v for m, v in prometheus.values(expr)} for expr in exprs
    )
    assert set(info) == {
        ("u1", "akv"),
        ("u2", "akv"),
        ("u3", "akv"),
        ("u4", "gcp"),
        ("u5", "barbican"),
    }
    assert service == {("u1", "akv"): 1, ("u2", "akv"): 0, ("u4", "gcp"): 0, ("u5", "barbican"): 1}
    assert kek[("u4", "gcp")] == 0 and kek[("u5", "barbican")] == 1
    # Barbican has no EKMIP in ONTAP: no cell rather than a healthy one.
    assert ("u5", "barbican") not in ekmip and ekmip[("u4", "gcp")] == 0


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
