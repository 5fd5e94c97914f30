"""End to end for the key managers other than AKV, with real processes on loopback: a Google
Cloud KMS outage injected into the simulator reaches the pager through the exporter, a real
Prometheus on the generated rules and a real Alertmanager, quoting its own configuration and
carrying a runbook link that opens; healing it resolves the page. The rules' metric names are
the exporter's own, so this proves both sides agree.
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.helpers.loopback import wait_until
from tests.helpers.prometheus import alerting_stack

pytestmark = pytest.mark.prometheus
# The generated fleet of 2 clusters for seed 72 has a Google Cloud KMS configuration on one
# (9.12.1) and an AWS KMS one on the other: asserted below, so a change of the generator says so.
CLUSTERS, SEED = 2, 72


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with alerting_stack(tmp_path_factory.mktemp("key-managers"), CLUSTERS, SEED) as running:
        yield running


def test_google_cloud_kms_outage_pages_with_its_own_configuration_then_resolves(stack):
    fleet, webhook, prometheus = stack
    cluster, gcp = next((c, g) for c in fleet.clusters() for g in c["gcp_kms"])
    name = cluster["name"]
    fleet.patch(name, {"gcp_kms": {gcp["uuid"]: {"google_reachability": {"reachable": False}}}})
    try:

        def paged():
            return [
                (receiver, alert)
                for _, receiver, alert in webhook.alerts("OntapGcpKmsUnreachable", "firing")
                if alert["labels"]["cluster"] == name
            ]

        ((receiver, alert), *_) = wait_until(paged, "the GCP page", 120, prometheus.log)
        assert receiver == "pager" and alert["labels"]["severity"] == "critical"
        assert alert["labels"]["uuid"] == gcp["uuid"]
        assert "code" not in alert["labels"]
        description = alert["annotations"]["description"]
        where = f"SVM {gcp['svm']}" if gcp["svm"] else "cluster-scoped configuration"
        assert description.startswith(f"Cluster {name}, {where} (Google Cloud KMS configuration")
        assert "ONTAP reports Google Cloud KMS not reachable from all nodes" in description
        assert ", code 65537730" in description
        runbook_url = alert["annotations"]["runbook_url"]
        assert runbook_url == f"{fleet.exporter_url}/docs/runbooks#ontapgcpkmsunreachable"
        with urllib.request.urlopen(runbook_url.partition("#")[0], timeout=30) as response:
            assert 'id="ontapgcpkmsunreachable"' in response.read().decode()
    finally:
        fleet.reset(name)

    def resolved():
        return [
            alert
            for _, _, alert in webhook.alerts("OntapGcpKmsUnreachable", "resolved")
            if alert["labels"]["uuid"] == gcp["uuid"]
        ]

    wait_until(resolved, "the resolved notification", 120, prometheus.log)
    # The other cluster's AWS configuration stayed healthy: nothing about it.
    assert any(c["aws_kms"] for c in fleet.clusters())
    assert [a for _, _, a in webhook.alerts("OntapAwsKmsUnreachable", "firing")] == []
