"""Every dashboard query against a real Prometheus fed by the real exporter polling the simulator.

The fleet carries one incident of every kind (a vault outage, a node's EKMIP down, a KEK
unavailable, a cluster answering 503), so every panel has something to show: a query that
returns nothing names a metric or label the exporter does not produce.
"""

from __future__ import annotations

import json

import pytest

from dashboards.generate import render_all
from dashboards.queries import DEFAULT_VARIABLES, iter_queries, substitute_variables
from tests.helpers.fleet import Fleet, release, start_fleet
from tests.helpers.loopback import wait_until
from tests.helpers.prometheus import Prometheus, start_prometheus

pytestmark = pytest.mark.prometheus
DASHBOARDS = {name: json.loads(text) for name, text in render_all().items()}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    directory = tmp_path_factory.mktemp("live-dashboards")
    fleet = start_fleet(directory, clusters=5, seed=11, interval=1.0)
    prometheus = None
    try:
        inject_incidents(fleet)
        prometheus = start_prometheus(
            directory / "prometheus",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "akv-exporter", "static_configs": [{"targets": [fleet.target]}]}
                ],
            },
        )
        # rate() and increase() need several samples; the incidents need a poll to show.
        wait_until(
            lambda: prometheus.values(
                "count_over_time(akv_exporter_build_info[1m]) >= 5"
                " and on() count(ontap_akv_azure_unreachable_since_timestamp_seconds) > 0"
                " and on() count(akv_exporter_cluster_up == 0) > 0"
                " and on() count(ontap_ems_event_last_timestamp_seconds) > 0"
                " and on() count(ontap_kmip_server_reachable == 0) > 0"
                " and on() count(ontap_gcp_kms_google_reachable == 0) > 0"
            ),
            "the incidents to reach Prometheus",
            90,
            prometheus.log,
        )
        yield fleet, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        fleet.stop()


def inject_incidents(fleet: Fleet) -> None:
    """Break four of the five clusters, each differently, through the simulator's control API."""
    clusters = [c for c in fleet.clusters() if any(a.get("enabled", True) for a in c["akvs"])]
    outage, ekmip, kek, down = clusters[:4]
    fleet.patch(outage["name"], {"akvs": {"*": {"azure_reachability": {"reachable": False}}}})
    node = ekmip["nodes"][0]
    node_down = {"ekmip_reachability": {node: {"reachable": False}}}
    fleet.patch(ekmip["name"], {"akvs": {"*": node_down}})
    fleet.patch(kek["name"], {"akvs": {"*": {"state": {"available": False}}}})
    fleet.patch(down["name"], {"faults": {"http_status": 503}})
    # ONTAP's health monitor logs on its own cadence (15 minutes and more); the events panel
    # needs one now: ONTAP's record of the outage, on a release whose EMS catalogue has it.
    logging = next(c for c in clusters if release(c) >= (9, 10, 1))
    fleet.log_event(logging["name"], {"name": "ekmip.akv.notAvailable"})
    inject_key_manager_incidents(fleet, exclude=down["name"])


def inject_key_manager_incidents(fleet: Fleet, exclude: str) -> None:
    """The other key managers in trouble on a cluster that answers: the Key managers view."""
    # 9.16.1 and later: key stores with a state; KMIP node states (9.13); Google Cloud KMS.
    target = next(c for c in fleet.clusters() if release(c) >= (9, 16, 1) and c["name"] != exclude)
    fleet.patch(
        target["name"],
        {
            "gcp_kms": [{"svm": "svm_gcp", "google_reachability": {"reachable": False}}],
            "key_managers": [{"type": "kmip", "svm": "svm_kmip", "servers": ["ks1:5696"]}],
        },
    )
    node = target["nodes"][0]
    fleet.patch(
        target["name"],
        {
            "key_managers": {"*": {"servers": {"*": {"node_states": {node: "not_responding"}}}}},
            "key_stores": {"*": {"state": "blocked"}},
        },
    )


def queries(name: str) -> list[tuple[str, str]]:
    return [
        (title, substitute_variables(expr, DEFAULT_VARIABLES))
        for title, expr in iter_queries(DASHBOARDS[name])
    ]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_query_runs_and_returns_live_data(live, name):
    _, prometheus = live
    failures, empty = [], []
    for title, expr in queries(name):
        answer = prometheus.query(expr)
        if answer["status"] != "success":
            failures.append(f"{title}: {answer.get('error')}\n  {expr}")
        elif not answer["data"]["result"]:
            empty.append(f"{title}\n  {expr}")
    assert not failures, "\n".join(failures)
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_overview_counts_each_kind_of_incident(live):
    prometheus = live[1]
    panels = dict(queries("akv-fleet.json"))
    wanted = {
        "Clusters monitored": 5,
        "Clusters the exporter cannot reach": 1,
    }
    for title, count in wanted.items():
        assert prometheus.scalar(panels[title]) == count, title
    problems = (
        "Encrypted volumes at stake",
        "AKV configurations unreachable",
        "Nodes with EKMIP unreachable",
        "KEKs unavailable",
    )
    for title in problems:
        assert prometheus.scalar(panels[title]) >= 1, title


def test_key_managers_view_counts_the_other_key_managers_incidents(live):
    prometheus = live[1]
    panels = dict(queries("key-managers.json"))
    for title in (
        "Key services unreachable",  # AKV's outage and Google's
        "KMIP servers a node cannot reach",
        "Key stores blocked",
    ):
        assert prometheus.scalar(panels[title]) >= 1, title
    assert prometheus.scalar(panels["Key services unreachable"]) >= 2


def test_time_left_is_under_an_hour_for_the_outage(live):
    prometheus: Prometheus = live[1]
    title = "Time left before ONTAP takes encrypted volumes offline"
    (expr,) = [e for t, e in queries("akv-fleet.json") if t == title]
    values = [value for _, value in prometheus.values(expr)]
    assert values and all(3000 < value <= 3600 for value in values)
