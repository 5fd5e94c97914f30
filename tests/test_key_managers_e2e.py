"""Every key manager, end to end: the simulated fleet -> /metrics, the page, the JSON and `check`.

One simulated cluster per kind, each in trouble as issue 22's trial found it: Google Cloud KMS
unreachable with one node's EKMIP server down, an AWS KEK unavailable, Barbican unreachable with
its key store blocked, one external KMIP server not responding from a node, and a healthy
Onboard Key Manager. Each must read as NetApp's fields say, in its own words, and page or warn
as the assignment asks; the simulator's request log proves what ONTAP was asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from akv_exporter.assessment_json import to_json
from akv_exporter.exporter import Exporter
from akv_exporter.web.status_page import render_page
from tests.helpers.exporter import check
from tests.helpers.exposition import find, validate
from tests.helpers.fleet import simulated_fleet

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

SCENARIO = {
    "defaults": {"username": "admin", "password": "netapp1!"},
    "clusters": [
        {
            "name": "gcp-01",
            "version": "9.13.1",
            "nodes": 2,
            "akvs": [],
            "gcp_kms": [
                {
                    "svm": "svm_db",
                    "google_reachability": {"reachable": False},
                    "ekmip_reachability": {"gcp-01-02": {"reachable": False}},
                }
            ],
        },
        {
            "name": "aws-01",
            "version": "9.15.1",
            "nodes": 2,
            "akvs": [],
            "aws_kms": [{"svm": "svm_db", "state": {"cluster_state": False}}],
        },
        {
            "name": "barbican-01",
            "version": "9.17.1",
            "nodes": 2,
            "akvs": [],
            "barbican_kms": [{"svm": "svm_os", "barbican_reachability": {"reachable": False}}],
        },
        {
            "name": "kmip-01",
            "version": "9.14.1",
            "nodes": 2,
            "akvs": [],
            "key_managers": [
                {"type": "kmip", "svm": "svm_db", "servers": ["10.0.0.5:5696", "10.0.0.6:5696"]}
            ],
        },
        {
            "name": "okm-01",
            "version": "9.12.1",
            "nodes": 2,
            "akvs": [],
            "key_managers": [{"type": "okm"}],
        },
    ],
}


@pytest.fixture
async def fleet(tmp_path: Path):
    async with simulated_fleet(tmp_path, SCENARIO) as running:
        yield running


async def _control(simulator, method: str, path: str, body=None):
    url = f"{simulator.control_url}{path}"
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body) as answer:
        assert answer.status < 300, await answer.text()
        return await answer.json() if answer.content_type == "application/json" else None


async def _trouble(simulator) -> None:
    """Break what the scenario cannot: one KMIP server from one node; Barbican's key store."""
    server = {"10.0.0.5:5696": {"node_states": {"kmip-01-02": "not_responding"}}}
    await _control(
        simulator,
        "PATCH",
        "/simulator/clusters/kmip-01",
        {"key_managers": {"*": {"servers": server}}},
    )
    await _control(
        simulator,
        "PATCH",
        "/simulator/clusters/barbican-01",
        {"key_stores": {"*": {"state": "blocked"}}},
    )


async def _poll(config):
    exporter = Exporter(config, process_metrics=False)
    try:
        await exporter.poll_all()
        await exporter.poll_all()
        fleet = exporter.status()
        return fleet, exporter.scrape()
    finally:
        await exporter.stop()


async def test_each_key_manager_reads_in_its_own_words_on_every_surface(fleet):
    simulator, config = fleet
    await _trouble(simulator)
    status, metrics = await _poll(config)

    # /metrics, by spec section 8's names
    assert find(metrics, "ontap_gcp_kms_google_reachable", cluster="gcp-01", code="65537730") == [0]
    assert find(metrics, "ontap_gcp_kms_ekmip_reachable", cluster="gcp-01", node="gcp-01-02") == [0]
    assert find(metrics, "ontap_gcp_kms_ekmip_reachable", cluster="gcp-01", node="gcp-01-01") == [1]
    assert find(metrics, "ontap_gcp_kms_unreachable_since_timestamp_seconds", cluster="gcp-01")
    assert find(metrics, "ontap_aws_kms_kek_available", cluster="aws-01") == [0]
    assert find(metrics, "ontap_aws_kms_amazon_reachable", cluster="aws-01") == [1]
    assert find(metrics, "ontap_barbican_kms_barbican_reachable", cluster="barbican-01") == [0]
    assert find(metrics, "ontap_barbican_kms_enabled", cluster="barbican-01") == [1]
    assert find(metrics, "ontap_key_store_state", cluster="barbican-01", state="blocked") == [1]
    assert find(
        metrics,
        "ontap_kmip_server_reachable",
        cluster="kmip-01",
        server="10.0.0.5:5696",
        node="kmip-01-02",
    ) == [0]
    assert find(
        metrics,
        "ontap_kmip_server_reachable",
        cluster="kmip-01",
        server="10.0.0.6:5696",
        node="kmip-01-02",
    ) == [1]
    assert find(metrics, "ontap_key_manager_setup_ok", cluster="okm-01", code="65537200") == [1]
    assert find(metrics, "ontap_key_manager_info", cluster="okm-01", type="okm") == [1]
    assert find(metrics, "ontap_key_manager_info", cluster="kmip-01", type="kmip") == [1]
    # no family a kind does not have
    text = metrics.decode()
    assert "ontap_gcp_kms_enabled" not in text and "ontap_barbican_kms_ekmip" not in text
    assert "ontap_akv_info" not in text

    # the JSON (and its schema) and the states
    document = to_json(status)
    validate(document)
    by_name = {c["name"]: c for c in document["clusters"]}
    assert by_name["gcp-01"]["state"] == "google_unreachable"
    assert by_name["gcp-01"]["gcp_kms"][0]["google"]["reachable"] is False
    assert by_name["aws-01"]["state"] == "kek_unavailable"
    assert by_name["barbican-01"]["barbican_kms"][0]["state"] == "barbican_unreachable"
    assert "ekmip" not in by_name["barbican-01"]["barbican_kms"][0]
    assert by_name["kmip-01"]["state"] == "key_server_unreachable"
    assert by_name["okm-01"]["state"] == "healthy"
    problems = " ".join(p for c in document["clusters"] for p in c["problems"])
    assert "Google Cloud KMS unreachable (code 65537730)" in problems
    assert "key server 10.0.0.5:5696 not responding from node kmip-01-02" in problems
    assert "OpenStack Barbican key store is blocked" in problems

    # the page
    page = render_page(status)
    for words in (
        "GOOGLE UNREACHABLE",
        "KEY SERVER DOWN",
        "BARBICAN UNREACHABLE",
        "ONTAP key-manager health",
    ):
        assert words in page, words


@pytest.mark.parametrize(
    ("cluster", "exit_code", "state"),
    [
        ("gcp-01", 2, "GOOGLE_UNREACHABLE"),  # an unreachable service pages
        ("aws-01", 1, "KEK_UNAVAILABLE"),  # an unavailable KEK warns
        ("barbican-01", 2, "BARBICAN_UNREACHABLE"),  # and a blocked key store pages
        ("kmip-01", 1, "KEY_SERVER_UNREACHABLE"),  # one KMIP server down warns
        ("okm-01", 0, "HEALTHY"),
    ],
)
async def test_check_pages_and_warns_per_key_manager(fleet, cluster, exit_code, state):
    simulator, config = fleet
    await _trouble(simulator)
    code, out, _ = await check(config, "--cluster", cluster)
    assert code == exit_code, out
    assert f" {state} " in out.splitlines()[2] or f" {state}" in out, out


async def test_a_node_that_reaches_none_of_its_kmip_servers_pages(fleet):
    simulator, config = fleet
    await _control(
        simulator,
        "PATCH",
        "/simulator/clusters/kmip-01",
        {
            "key_managers": {
                "*": {"servers": {"*": {"node_states": {"kmip-01-01": "not_responding"}}}}
            }
        },
    )
    code, out, _ = await check(config, "--cluster", "kmip-01")
    assert code == 2, out
    assert "1 node reaching none of their KMIP key servers" in out.splitlines()[0]
    assert "node kmip-01-01 reaches none of its KMIP key servers" in out


async def test_the_simulator_saw_no_wildcard_or_onboard_on_key_managers(fleet):
    simulator, config = fleet
    await _poll(config)
    log = await _control(simulator, "GET", "/simulator/requests")
    shapes = [
        shape
        for endpoints in log.values()
        for endpoint, queries in endpoints.items()
        if endpoint.startswith("/api/security/key-managers")
        for shape in queries
    ]
    assert shapes, log  # it was asked
    for shape in shapes:
        assert "onboard" not in shape and "*" not in shape, shape
    # only the key managers each cluster's key stores list
    assert "/api/security/gcp-kms" not in log["aws-01"], log["aws-01"]
    assert "/api/security/aws-kms" not in log["gcp-01"], log["gcp-01"]
    assert "/api/security/barbican-kms" not in log["kmip-01"], log["kmip-01"]
    assert json.dumps(log).count("/api/security/key-stores") >= 5


@pytest.mark.parametrize(
    ("cluster", "fault", "code", "kind", "state", "exit_code"),
    [
        ("gcp-01", "gcp_kms_error_code", "65537730", "gcp", "google_unreachable", 2),
        ("aws-01", "aws_kms_error_code", "65537551", "aws", "kek_unavailable", 1),
        (
            "barbican-01",
            "barbican_kms_error_code",
            "65539801",
            "barbican",
            "barbican_unreachable",
            2,
        ),
    ],
)
async def test_a_documented_get_error_is_an_answer_about_that_key_manager(
    fleet, cluster, fault, code, kind, state, exit_code
):
    # NetApp does not say when the GET answers with its documented error instead of a 200 with
    # reachable false: this is the other reading, and the cluster stays up.
    simulator, config = fleet
    await _control(simulator, "PATCH", f"/simulator/clusters/{cluster}", {"faults": {fault: code}})
    status, metrics = await _poll(config)
    document = to_json(status)
    validate(document)
    (answer,) = [c for c in document["clusters"] if c["name"] == cluster]
    assert answer["up"] and answer["state"] == state
    assert answer[f"{kind}_error"]["code"] == code
    assert find(metrics, "akv_exporter_cluster_up", cluster=cluster) == [1]
    prefix = {"gcp": "ontap_gcp_kms", "aws": "ontap_aws_kms", "barbican": "ontap_barbican_kms"}
    assert find(metrics, f"{prefix[kind]}_get_error_info", cluster=cluster, code=code) == [1]
    result, out, _ = await check(config, "--cluster", cluster)
    assert result == exit_code, out


async def test_check_claims_no_volume_offline_deadline_netapp_does_not_document(fleet):
    # NetApp's EMS reference documents the 60-minute rule for AKV, Google and AWS, none for
    # Barbican: its unreachable streak gives no deadline and no "policy" claim either way.
    _, config = fleet
    code, out, _ = await check(config, "--cluster", "barbican-01")
    assert code == 2, out
    assert "NetApp documents no volume-offline deadline for OpenStack Barbican" in out
    assert "offline (policy)" not in out and "offline at about" not in out
