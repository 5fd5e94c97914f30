"""End to end, with real processes on loopback: a vault outage injected into the simulator pages
through the exporter, a real Prometheus evaluating our rules and a real Alertmanager delivering
to a webhook this test runs; healing it sends the resolved notification.

The test copies of the rules and of the Alertmanager example differ from the shipped files only
in their waits (every `for:` divided by 60, group waits of a second) and in the receivers' URLs.
"""

from __future__ import annotations

import re
import time

import pytest
import yaml

from tests.helpers import (
    REPO,
    Webhook,
    start_alertmanager,
    start_fleet,
    start_prometheus,
    wait_until,
)

pytestmark = pytest.mark.prometheus
SCALE = 60  # a `for: 5m` in the shipped rules waits 5s here


def shortened_rules() -> str:
    """Return the shipped rules with every `for:` wait divided by SCALE."""
    text = (REPO / "config/prometheus/alerts.yml").read_text()

    def shorter(match: re.Match) -> str:
        seconds = int(match.group(2)) * {"s": 1, "m": 60, "h": 3600}[match.group(3)]
        return f"{match.group(1)}{max(1, seconds // SCALE)}s"

    shortened, count = re.subn(r"^(\s+for: )(\d+)([smh])\s*$", shorter, text, flags=re.M)
    assert count >= 5, "the rules file changed shape: no `for:` lines found"
    return shortened


def alertmanager_config(webhook_url: str) -> str:
    """Return the shipped Alertmanager example, delivering to the test's webhook, quickly."""
    config = yaml.safe_load((REPO / "config/alertmanager/alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="2s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{webhook_url}/{receiver['name']}"
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("alerting")
    fleet = start_fleet(directory, clusters=3, seed=5, interval=1.0)
    webhook = Webhook()
    fleet.loop.run(webhook.start())
    alertmanager = prometheus = None
    try:
        alertmanager = start_alertmanager(directory / "am", alertmanager_config(webhook.url))
        rules = directory / "alerts.yml"
        rules.write_text(shortened_rules())
        prometheus = start_prometheus(
            directory / "prometheus",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [
                        {
                            "static_configs": [
                                {"targets": [alertmanager.url.removeprefix("http://")]}
                            ]
                        }
                    ]
                },
                "scrape_configs": [
                    {"job_name": "akv-exporter", "static_configs": [{"targets": [fleet.target]}]}
                ],
            },
        )
        wait_until(
            lambda: prometheus.values("count(akv_exporter_cluster_up == 1) == 3"),
            "Prometheus to see three healthy clusters",
            60,
            prometheus.log,
        )
        yield fleet, webhook, prometheus
    finally:
        for process in (prometheus, alertmanager):
            if process is not None:
                process.stop()
        fleet.loop.run(webhook.stop())
        fleet.stop()


def test_vault_outage_pages_with_cluster_svm_and_code_then_resolves(stack, capsys):
    fleet, webhook, prometheus = stack
    cluster, akv = next(
        (c, a)
        for c in fleet.clusters()
        for a in c["akvs"]
        if a["scope"] == "svm" and a.get("enabled", True)
    )
    injected = time.monotonic()
    fleet.patch(
        cluster["name"], {"akvs": {akv["uuid"]: {"azure_reachability": {"reachable": False}}}}
    )

    def paged():
        return [
            (arrived, receiver, alert)
            for arrived, receiver, alert in webhook.alerts("OntapAkvAzureUnreachable", "firing")
            if alert["labels"]["cluster"] == cluster["name"]
        ]

    ((arrived, receiver, alert),) = wait_until(paged, "the page", 120, prometheus.log)[:1]
    latency = arrived - injected
    with capsys.disabled():  # shown in every run's output, CI's included
        print(f"\ndetection latency (fault injected -> notification received): {latency:.1f}s")
    assert receiver == "pager"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["svm"] == akv["svm"] and alert["labels"]["uuid"] == akv["uuid"]
    assert "code" not in alert["labels"]  # the for timer must survive a change of ONTAP's code
    description = alert["annotations"]["description"]
    assert cluster["name"] in description and akv["svm"] in description
    assert "65537549" in description
    assert alert["annotations"]["runbook_url"].endswith("#ontapakvazureunreachable")

    healed = time.monotonic()
    fleet.reset(cluster["name"])

    def resolved():
        return [
            arrived
            for arrived, _, alert in webhook.alerts("OntapAkvAzureUnreachable", "resolved")
            if alert["labels"]["uuid"] == akv["uuid"]
        ]

    (resolved_at, *_) = wait_until(resolved, "the resolved notification", 120, prometheus.log)
    with capsys.disabled():
        print(
            f"\nresolution latency (healed -> resolved notification): {resolved_at - healed:.1f}s"
        )


def test_an_unreachable_cluster_raises_cluster_down_not_akv_alerts(stack):
    fleet, webhook, prometheus = stack
    cluster = fleet.clusters()[-1]["name"]
    fleet.patch(cluster, {"faults": {"http_status": 503}})
    try:

        def down():
            return [
                alert
                for _, _, alert in webhook.alerts("AkvExporterClusterDown", "firing")
                if alert["labels"]["cluster"] == cluster
            ]

        (alert, *_) = wait_until(down, "AkvExporterClusterDown", 120, prometheus.log)
        assert alert["labels"]["severity"] == "warning"
        storms = [
            a
            for name in (
                "OntapAkvAzureUnreachable",
                "OntapAkvEkmipUnreachable",
                "OntapAkvKekUnavailable",
            )
            for _, _, a in webhook.alerts(name, "firing")
            if a["labels"]["cluster"] == cluster
        ]
        assert storms == []
    finally:
        fleet.reset(cluster)
