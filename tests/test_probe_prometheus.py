"""A real Prometheus scrapes through /probe with the shipped relabelling (prometheus-probe.yml):
one target per cluster name, each an `instance` of its own, against a simulated fleet."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.fleet import start_fleet
from tests.helpers.loopback import wait_until
from tests.helpers.prometheus import start_prometheus
from tests.helpers.repository import REPO

pytestmark = pytest.mark.prometheus


def probe_job(exporter_address: str, clusters: list[str]) -> dict:
    """Return the shipped /probe job, aimed at this exporter and these clusters."""
    shipped = yaml.safe_load((REPO / "config/prometheus/prometheus-probe.yml").read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j.get("metrics_path") == "/probe"]
    job["static_configs"] = [{"targets": clusters}]
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "1s"
    for rule in job["relabel_configs"]:
        if rule.get("target_label") == "__address__":
            rule["replacement"] = exporter_address
    return job


def test_prometheus_scrapes_each_cluster_through_probe(tmp_path):
    fleet = start_fleet(tmp_path, clusters=3, seed=4, interval=30.0)
    prometheus = None
    try:
        names = [c["name"] for c in fleet.clusters()]
        down = names[-1]
        fleet.patch(down, {"faults": {"hang": True}})
        prometheus = start_prometheus(
            tmp_path / "prometheus",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [probe_job(fleet.target, names)],
            },
        )
        expected = {**{name: 1.0 for name in names[:-1]}, down: 0.0}

        def success() -> dict[str, float]:
            return {m["instance"]: v for m, v in prometheus.values("akv_exporter_probe_success")}

        # Within poll.min_interval of the fleet's first round a probe returns that round's
        # (good) result; the hung cluster's probe fails once a probe of its own has polled.
        wait_until(lambda: success() == expected, "probe_success per cluster", 60, prometheus.log)
        # Every target answered within the 1s scrape timeout, the hung cluster included.
        assert {m["instance"]: v for m, v in prometheus.values("up")} == dict.fromkeys(names, 1.0)
        for name in names[:-1]:
            series = prometheus.values(f'ontap_akv_info{{instance="{name}"}}')
            assert series and {m["cluster"] for m, _ in series} == {name}
        # Once the hung cluster has a failed poll on record, its probe says so blackbox-style:
        # HTTP 200 with akv_exporter_cluster_up 0, which AkvExporterClusterDown relies on.
        wait_until(
            lambda: prometheus.values(f'akv_exporter_cluster_up{{instance="{down}"}} == 0'),
            "cluster_up 0 for the hung cluster",
            60,
            prometheus.log,
        )
    finally:
        if prometheus is not None:
            prometheus.stop()
        fleet.stop()
