"""End to end, with real processes on loopback: a vault outage injected into the simulator pages
through the exporter, a real Prometheus evaluating our rules and a real Alertmanager delivering
to a webhook this test runs; healing it sends the resolved notification.

The test copies of the rules and of the Alertmanager example differ from the shipped files only
in their waits (every `for:` divided by 60, group waits of a second) and in the receivers' URLs.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.helpers.fleet import release
from tests.helpers.loopback import wait_until
from tests.helpers.prometheus import alerting_stack

pytestmark = pytest.mark.prometheus
CLUSTERS = 6
POLICY_RELEASE = (9, 15, 1)  # the simulator's first release with health_monitor_policy


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with alerting_stack(tmp_path_factory.mktemp("alerting"), CLUSTERS, seed=5) as running:
        yield running


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
    # The link works as it arrives: absolute, on the exporter Prometheus scrapes, and the page
    # there has the alert's section.
    runbook_url = alert["annotations"]["runbook_url"]
    assert runbook_url == f"{fleet.exporter_url}/docs/runbooks#ontapakvazureunreachable"
    with urllib.request.urlopen(runbook_url.partition("#")[0], timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert 'id="ontapakvazureunreachable"' in response.read().decode()

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


def _with_svm_akv(fleet, *, policy: bool) -> list[tuple[dict, dict]]:
    """Return (cluster, AKV) pairs: an enabled SVM configuration, on a policy release if asked."""
    pairs = []
    for cluster in fleet.clusters():
        if policy and release(cluster) < POLICY_RELEASE:
            continue
        akv = next((a for a in cluster["akvs"] if a["scope"] == "svm" and a["enabled"]), None)
        if akv is not None:
            pairs.append((cluster, akv))
    return pairs


def _set_policy(fleet, cluster: str, manage_volume_offline: bool) -> None:
    policy = {"akv": {"enabled": True, "manage_volume_offline": manage_volume_offline}}
    fleet.patch(cluster, {"key_manager_config": {"health_monitor_policy": policy}})


def _outage(fleet, cluster: str, uuid: str) -> None:
    fleet.patch(cluster, {"akvs": {uuid: {"azure_reachability": {"reachable": False}}}})


def test_no_imminent_page_where_ontaps_policy_keeps_volumes_online(stack):
    fleet, webhook, prometheus = stack
    with_policy = _with_svm_akv(fleet, policy=True)
    assert with_policy, "the test fleet needs a cluster of 9.15.1 or later"
    quiet, quiet_akv = with_policy[0]
    # The control: another cluster whose policy takes volumes offline, or is unknown (older
    # releases report none), so the escalation pages there.
    paging, paging_akv = next(
        (c, a) for c, a in _with_svm_akv(fleet, policy=False) if c["name"] != quiet["name"]
    )
    paging_has_policy = release(paging) >= POLICY_RELEASE
    _set_policy(fleet, quiet["name"], False)
    if paging_has_policy:
        _set_policy(fleet, paging["name"], True)
    try:

        def policy(cluster: str, value: int) -> list:
            selector = f'cluster="{cluster}",key_manager="akv"'
            return prometheus.values(
                f"ontap_key_manager_manage_volume_offline{{{selector}}} == {value}"
            )

        wait_until(
            lambda: (
                policy(quiet["name"], 0) and (policy(paging["name"], 1) or not paging_has_policy)
            ),
            "Prometheus to see both policies",
            60,
            prometheus.log,
        )
        _outage(fleet, quiet["name"], quiet_akv["uuid"])
        _outage(fleet, paging["name"], paging_akv["uuid"])

        def imminent(cluster: str) -> list:
            return [
                alert
                for _, _, alert in webhook.alerts("OntapAkvVolumesOfflineImminent", "firing")
                if alert["labels"]["cluster"] == cluster
            ]

        # The control: the same outage pages at 30 "minutes" where the policy does not forbid it.
        (page, *_) = wait_until(
            lambda: imminent(paging["name"]), "the imminent page", 120, prometheus.log
        )
        assert page["labels"]["uuid"] == paging_akv["uuid"]
        # The quiet cluster's outage is real: its first page arrived.
        wait_until(
            lambda: [
                a
                for _, _, a in webhook.alerts("OntapAkvAzureUnreachable", "firing")
                if a["labels"]["cluster"] == quiet["name"]
            ],
            "the quiet cluster's unreachable page",
            60,
            prometheus.log,
        )
        prometheus.wait_for_evaluations(5)  # several more evaluations past the escalation point
        assert imminent(quiet["name"]) == []
        assert (
            prometheus.values(
                f'ALERTS{{alertname="OntapAkvVolumesOfflineImminent",cluster="{quiet["name"]}"}}'
            )
            == []
        )
    finally:
        fleet.reset(quiet["name"])
        fleet.reset(paging["name"])


def test_compressed_clock_reaching_ontaps_deadline_pages_encrypted_volumes_offline(stack, capsys):
    fleet, webhook, prometheus = stack
    pairs = [
        (c, a)
        for c, a in _with_svm_akv(fleet, policy=False)
        if release(c) >= (9, 10, 1)  # the simulator's health monitor acts from 9.10.1
    ]
    assert pairs, "the test fleet needs a cluster of 9.10.1 or later with an SVM configuration"
    cluster, akv = pairs[-1]
    if release(cluster) >= POLICY_RELEASE:
        _set_policy(fleet, cluster["name"], True)
    # 60 simulated minutes in 6 s; ONTAP's health monitor checks every 1.5 s.
    fleet.clock(factor=600)
    try:
        injected = time.monotonic()
        _outage(fleet, cluster["name"], akv["uuid"])

        def offline():
            # The page: ONTAP's volOffline for the SVM, read from its EMS log, states the cause.
            return [
                (arrived, receiver, alert)
                for arrived, receiver, alert in webhook.alerts(
                    "OntapAkvEncryptedVolumesOffline", "firing"
                )
                if alert["labels"]["cluster"] == cluster["name"]
                and alert["labels"]["severity"] == "critical"
            ]

        ((arrived, receiver, alert), *_) = wait_until(
            offline, "OntapAkvEncryptedVolumesOffline", 120, prometheus.log
        )
        with capsys.disabled():
            print(
                f"\noutage injected -> volumes-offline page (clock x600): {arrived - injected:.1f}s"
            )
        assert receiver == "pager" and alert["labels"]["severity"] == "critical"
        assert alert["labels"]["svm"] == akv["svm"] and alert["labels"]["state"] == "offline"
        description = alert["annotations"]["description"]
        assert f"Cluster {cluster['name']}, SVM {akv['svm']}" in description
        assert "encrypted volumes are offline" in description
        assert "ONTAP logged ekmip.akv.volOffline for the SVM at" in description
        assert f"AKV configuration {akv['uuid']} cannot reach Azure Key Vault now" in description
        # ONTAP's own record of it reached Prometheus too.
        wait_until(
            lambda: prometheus.values(
                f'ontap_ems_events_total{{cluster="{cluster["name"]}",'
                'event="ekmip.akv.volOffline"} > 0'
            ),
            "ONTAP's ekmip.akv.volOffline in Prometheus",
            60,
            prometheus.log,
        )
    finally:
        fleet.clock(factor=1)
        fleet.reset(cluster["name"])


def test_an_offline_volume_without_ontaps_volOffline_is_a_ticket_that_blames_nobody(stack):
    # The operator's trial: an outage that healed earlier (ONTAP logged volOffline, then
    # volOnline), then one encrypted volume taken offline by hand while Azure is reachable. The
    # old rule paged "it took them offline for lack of Azure Key Vault", quoting the healed
    # outage. Now: a ticket, no cause, no Azure.
    fleet, webhook, prometheus = stack
    pairs = [(c, a) for c, a in _with_svm_akv(fleet, policy=False) if release(c) >= (9, 13, 1)]
    assert pairs, "the test fleet needs a cluster of 9.13.1 or later (volOnline) with an SVM AKV"
    cluster, akv = pairs[0]
    name, svm = cluster["name"], akv["svm"]
    for event in ("ekmip.akv.volOffline", "ekmip.akv.volOnline"):
        fleet.log_event(name, {"name": event, "svm": svm})
    wait_until(
        lambda: prometheus.values(
            f'ontap_ems_event_last_timestamp_seconds{{cluster="{name}",svm="{svm}",'
            'event="ekmip.akv.volOnline"}'
        ),
        "ONTAP's volOnline in Prometheus",
        60,
        prometheus.log,
    )
    fleet.patch(name, {"volumes": {svm: {"offline": 1}}})
    try:

        def tickets():
            return [
                (receiver, alert)
                for _, receiver, alert in webhook.alerts(
                    "OntapAkvEncryptedVolumesOffline", "firing"
                )
                if alert["labels"]["cluster"] == name
            ]

        ((receiver, alert), *_) = wait_until(
            tickets, "OntapAkvEncryptedVolumesOffline", 120, prometheus.log
        )
        assert (receiver, alert["labels"]["severity"]) == ("ticket", "warning")
        description = alert["annotations"]["description"]
        assert f"Cluster {name}, SVM {svm}:" in description
        assert "nothing ONTAP reported ties these volumes to Azure Key Vault" in description
        assert "for lack of" not in description and "cannot reach" not in description
        prometheus.wait_for_evaluations(3)  # several more evaluations: no page follows
        assert all(r == "ticket" for r, _ in tickets())
    finally:
        fleet.reset(name)
