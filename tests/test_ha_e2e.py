"""High availability end to end: 2 shards x 2 uncoordinated replicas, each its own `akv-exporter
run` process, scraped by a real Prometheus evaluating the shipped rules and a real Alertmanager
delivering to a webhook this test runs (the stack of test_alerting_e2e, waits divided by 60).

An Azure Key Vault outage on one configuration per shard gives exactly one notification per
configuration; killing one replica mid-outage keeps the alert firing and sends no "resolved".
"""

from __future__ import annotations

import io

import pytest

from akv_exporter.shard import hashmod
from tests.helpers.fleet import BackgroundLoop
from tests.helpers.loopback import fetch, http_json, wait_until
from tests.helpers.processes import fleet_config_file, start_exporter
from tests.helpers.prometheus import (
    Webhook,
    alertmanager_config,
    shortened_rules,
    start_alertmanager,
    start_prometheus,
)

pytestmark = pytest.mark.prometheus
SHARDS = 2
REPLICAS = ("a", "b")
ALERT = "OntapAkvAzureUnreachable"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from ontap_simulator import SimulatorOptions, start_simulator

    directory = tmp_path_factory.mktemp("ha")
    loop = BackgroundLoop()
    simulator = loop.run(
        start_simulator(SimulatorOptions(clusters=8, seed=21, control_port=0, out=io.StringIO()))
    )
    webhook = Webhook()
    loop.run(webhook.start())
    exporters: dict[tuple[int, str], object] = {}
    alertmanager = prometheus = None
    try:
        names = [cluster.name for cluster in simulator.clusters]
        for replica in REPLICAS:
            # One configuration file per replica: the same clusters, its own state file.
            config = fleet_config_file(
                directory / f"{replica}.yml", simulator, names, interval="1s"
            )
            for ordinal in range(SHARDS):
                exporters[ordinal, replica] = start_exporter(
                    config,
                    directory / f"exporter-{ordinal}-{replica}.log",
                    *("--shard", str(ordinal), "--total-shards", str(SHARDS)),
                )
        alertmanager = start_alertmanager(directory / "am", alertmanager_config(webhook.url))
        rules = directory / "alerts.yml"
        rules.write_text(shortened_rules())
        am = alertmanager.url.removeprefix("http://")
        prometheus = start_prometheus(
            directory / "prometheus",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am]}]}]},
                "scrape_configs": [
                    {
                        "job_name": "akv-exporter",
                        "static_configs": [{"targets": [e.target for e in exporters.values()]}],
                    }
                ],
            },
        )
        wait_until(
            lambda: prometheus.values("count(up == 1) == 4"),
            "Prometheus to scrape the four replicas",
            60,
            prometheus.log,
        )
        yield simulator, exporters, webhook, prometheus
    finally:
        for process in (prometheus, alertmanager, *exporters.values()):
            if process is not None:
                process.stop()
        loop.run(webhook.stop())
        loop.run(simulator.stop())
        loop.close()


def test_each_replica_serves_its_shard_and_says_which(stack):
    simulator, exporters, _, _ = stack
    names = [cluster.name for cluster in simulator.clusters]
    for (ordinal, _replica), exporter in exporters.items():
        status = http_json(f"{exporter.url}/api/v1/status")
        assert status["exporter"]["shard"] == {"ordinal": ordinal, "total": SHARDS}
        mine = {name for name in names if hashmod(name, SHARDS) == ordinal}
        assert {c["name"] for c in status["clusters"]} == mine
        page = fetch(f"{exporter.url}/", timeout=10).decode()
        assert f"shard {ordinal} of {SHARDS}</b> ({len(mine)} of {len(names)}" in page


def test_an_outage_notifies_once_per_configuration_and_survives_a_killed_replica(stack, capsys):
    simulator, exporters, webhook, prometheus = stack
    clusters = http_json(f"{simulator.control_url}/simulator/clusters")
    healthy = {
        (labels["cluster"], labels["uuid"])
        for labels, value in prometheus.values(
            "min without (instance, code) (ontap_akv_azure_reachable)"
        )
        if value == 1
    }
    # One configuration per shard, in a cluster both replicas of the shard see as healthy, and a
    # healthy configuration in a third cluster: the later outage that times the quiet wait.
    chosen: dict[int, tuple[str, str]] = {}
    for cluster in clusters:
        shard = hashmod(cluster["name"], SHARDS)
        for akv in cluster["akvs"]:
            if shard not in chosen and (cluster["name"], akv["uuid"]) in healthy:
                chosen[shard] = (cluster["name"], akv["uuid"])
    assert sorted(chosen) == list(range(SHARDS)), (chosen, healthy)
    taken = {name for name, _ in chosen.values()}
    later = next(pair for pair in sorted(healthy) if pair[0] not in taken)

    def outage(name: str, uuid: str) -> None:
        patch = {"akvs": {uuid: {"azure_reachability": {"reachable": False}}}}
        http_json(f"{simulator.control_url}/simulator/clusters/{name}", "PATCH", patch)

    for name, uuid in chosen.values():
        outage(name, uuid)

    def notifications(status: str, pairs: tuple = ()) -> dict[tuple[str, str], list[dict]]:
        """Return, per configuration (the chosen ones), the notifications whose alerts name it."""
        out: dict[tuple[str, str], list[dict]] = {p: [] for p in pairs or chosen.values()}
        for _, _, notification in list(webhook.received):
            for pair in out:
                alerts = [
                    a
                    for a in notification["alerts"]
                    if a["labels"].get("alertname") == ALERT
                    and (a["labels"]["cluster"], a["labels"]["uuid"]) == pair
                    and a["status"] == status
                ]
                if alerts:
                    out[pair].append({"status": notification["status"], "alerts": alerts})
        return out

    def all_paged():
        sent = notifications("firing")
        return sent if all(sent.values()) else None

    wait_until(all_paged, "a page for each configuration", 120, prometheus.log)

    # Mid-outage, one replica of the first shard dies at once (SIGKILL, as a lost node).
    killed = exporters[0, "b"]
    killed.kill()
    wait_until(
        lambda: prometheus.values(f'up{{instance="{killed.target}"}} == 0'),
        "Prometheus to see the replica gone",
        30,
        prometheus.log,
    )
    # Wait for what the kill could change, by a later outage's page rather than a fixed time.
    # Staleness is immediate on a failed scrape (seen above); the next evaluation (every 1 s)
    # would resolve an alert and send that to Alertmanager, which passes it on within its
    # group_interval (2 s). An outage begun now fires only after a poll, a scrape and the `for`
    # (5 s), then waits group_wait (1 s): once its page is in, a resolved one would be too, and
    # a second alert raised by the kill would be firing in Prometheus (same `for`, started
    # earlier), however loaded the machine.
    outage(*later)
    wait_until(
        lambda: notifications("firing", (later,))[later],
        "the later outage's page",
        120,
        prometheus.log,
    )

    firing = prometheus.values(f'ALERTS{{alertname="{ALERT}", alertstate="firing"}}')
    firing_pairs = [(labels["cluster"], labels["uuid"]) for labels, _ in firing]
    for pair in chosen.values():
        assert firing_pairs.count(pair) == 1, (pair, firing)  # one alert, not one per replica
    sent = notifications("firing")
    for pair, received in sent.items():
        assert len(received) == 1, (pair, received)  # exactly one notification
        assert len(received[0]["alerts"]) == 1
        assert "instance" not in received[0]["alerts"][0]["labels"]
    assert notifications("resolved") == {pair: [] for pair in chosen.values()}
    with capsys.disabled():
        print(f"\nHA: {len(chosen)} outages, one notification each; replica {killed.target} killed")
