"""The simulated clusters speak ONTAP's REST dialect: fields, filters, pages, errors, releases."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from ontap_simulator import RunningSimulator, SimulatorOptions, start_simulator

from akv_exporter.ontap import akv
from akv_exporter.ontap.akv import fields_query
from akv_exporter.ontap.key_manager_endpoint import parse_records
from tests.helpers.ontap import AKV_PATH
from tests.helpers.simulator import EXAMPLE_SCENARIO, all_pages, cluster_url, get

ADVANCED = {"state", "azure_reachability", "ekmip_reachability"}


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    options = SimulatorOptions(scenario=EXAMPLE_SCENARIO, plain_http=True, out=io.StringIO())
    running = await start_simulator(options)
    yield running
    await running.stop()


def credentials(sim: RunningSimulator, name: str) -> tuple[str, str]:
    return next((c.username, c.password) for c in sim.clusters if c.name == name)


async def akvs(
    session: aiohttp.ClientSession, sim: RunningSimulator, name: str, query: str = ""
) -> dict[str, Any]:
    status, body, _ = await get(
        session, f"{cluster_url(sim, name)}{AKV_PATH}{query}", auth=credentials(sim, name)
    )
    assert status == 200, body
    return body


async def test_collection_default_fields_are_uuid_svm_name(sim, session) -> None:
    body = await akvs(session, sim, "ams-prod-01")
    assert body["num_records"] == len(body["records"]) == 3
    for record in body["records"]:
        assert set(record) <= {"uuid", "svm", "name", "_links"}
        assert record["_links"]["self"]["href"] == f"{AKV_PATH}/{record['uuid']}"
    assert sum("svm" in r for r in body["records"]) == 2  # the cluster-scoped one has no svm


async def test_advanced_fields_only_when_named_or_double_star(sim, session) -> None:
    star = await akvs(session, sim, "ams-prod-01", "?fields=*")
    assert not any(ADVANCED & set(r) for r in star["records"])
    assert all("key_id" in r and "enabled" in r for r in star["records"])
    everything = await akvs(session, sim, "ams-prod-01", "?fields=**")
    active = [r for r in everything["records"] if r["enabled"]]
    assert active and all(set(r) >= ADVANCED for r in active)
    subfield = await akvs(session, sim, "ams-prod-01", "?fields=state.code,svm.name")
    for record in subfield["records"]:
        assert set(record) - {"uuid", "_links"} <= {"state", "svm"}
        if "state" in record:
            assert record["state"] == {"code": "0"}
        if "svm" in record:
            assert record["svm"] == {"name": "svm_nfs"}


async def test_inactive_configuration_has_no_advanced_fields(sim, session) -> None:
    body = await akvs(session, sim, "ams-prod-01", "?fields=**&enabled=false")
    [inactive] = body["records"]
    assert inactive["configuration"]["name"] == "migration"
    assert not ADVANCED & set(inactive)


async def test_instance_get_and_unknown_uuid(sim, session) -> None:
    uuid = (await akvs(session, sim, "fra-prod-01"))["records"][0]["uuid"]
    base = f"{cluster_url(sim, 'fra-prod-01')}{AKV_PATH}/{uuid}"
    status, record, _ = await get(session, base)
    assert status == 200 and record["uuid"] == uuid
    assert "key_id" in record and not ADVANCED & set(record)
    status, record, _ = await get(session, base + "?fields=azure_reachability")
    assert record["azure_reachability"]["reachable"] is False
    assert record["azure_reachability"]["code"] == "65537549"
    status, body, _ = await get(
        session, f"{cluster_url(sim, 'fra-prod-01')}{AKV_PATH}/00000000-dead"
    )
    assert status == 404
    assert body == {"error": {"message": "entry doesn't exist", "code": "4", "target": "uuid"}}


@pytest.mark.parametrize(
    ("query", "svms"),
    [
        ("svm.name=svm_nfs", ["svm_nfs", "svm_nfs"]),
        ("svm.name=svm_n*", ["svm_nfs", "svm_nfs"]),
        ("scope=cluster", [""]),
        ("scope=svm&enabled=true", ["svm_nfs"]),
        ("enabled=!true", ["svm_nfs"]),
        ("scope=cluster|svm&enabled=true", ["", "svm_nfs"]),
        ("name=*admin*", [""]),
        ("azure_reachability.reachable=true", ["", "svm_nfs"]),
        ("svm.name=nothing", []),
    ],
)
async def test_filters_use_ontap_query_syntax(sim, session, query: str, svms: list[str]) -> None:
    body = await akvs(session, sim, "ams-prod-01", f"?fields=svm&{query}")
    assert sorted(r.get("svm", {}).get("name", "") for r in body["records"]) == svms


async def test_array_filter_matches_when_any_node_matches(sim, session) -> None:
    body = await akvs(session, sim, "fra-prod-01", "?ekmip_reachability.reachable=false")
    assert body["num_records"] == 1
    body = await akvs(
        session, sim, "fra-prod-01", "?ekmip_reachability.node.name=fra-prod-01-01&fields=name"
    )
    assert body["num_records"] == 1
    body = await akvs(session, sim, "ams-prod-01", "?ekmip_reachability.reachable=false")
    assert body["num_records"] == 0


async def test_paging_follows_next_links_with_the_whole_query(sim, session) -> None:
    base = cluster_url(sim, "ams-prod-01")
    everything = await akvs(session, sim, "ams-prod-01", "?fields=**")
    records, pages = await all_pages(session, base, f"{AKV_PATH}?fields=**&max_records=1")
    assert records == everything["records"]
    assert [p["num_records"] for p in pages] == [1, 1, 1]
    for page in pages[:-1]:
        href = page["_links"]["next"]["href"]
        assert "fields=**" in href and "max_records=1" in href and "start.uuid=" in href
    assert "next" not in pages[-1]["_links"]
    filtered, pages = await all_pages(session, base, f"{AKV_PATH}?scope=svm&max_records=1")
    assert len(filtered) == 2 and len(pages) == 2


async def test_empty_pages_fault_gives_an_empty_page_with_a_next_link(sim, session) -> None:
    records, pages = await all_pages(
        session, cluster_url(sim, "sin-prod-01"), f"{AKV_PATH}?fields=name"
    )
    assert pages[0]["records"] == [] and pages[0]["num_records"] == 0
    assert "next" in pages[0]["_links"]
    assert len(records) == 2


async def test_return_records_false_returns_only_the_count(sim, session) -> None:
    body = await akvs(session, sim, "ams-prod-01", "?return_records=false&scope=svm")
    assert body == {"num_records": 2, "_links": body["_links"]}


async def test_order_by_sorts_and_rejects_unknown_fields(sim, session) -> None:
    body = await akvs(session, sim, "ams-prod-01", "?fields=name&order_by=name%20desc")
    names = [r["name"] for r in body["records"]]
    assert names == sorted(names, reverse=True)
    status, body, _ = await get(
        session, f"{cluster_url(sim, 'ams-prod-01')}{AKV_PATH}?order_by=nope"
    )
    assert status == 400 and body["error"]["target"] == "order_by"


@pytest.mark.parametrize(
    ("query", "code", "target"),
    [
        ("fields=state,bogus", "262197", "fields"),
        ("fields=svm.nope", "262197", "fields"),
        ("bogus=1", "262179", "bogus"),
        ("svm=vs1", "262179", "svm"),
        ("return_timeout=121", "2", "return_timeout"),
        ("return_timeout=soon", "2", "return_timeout"),
        ("max_records=0", "2", "max_records"),
        ("return_records=maybe", "2", "return_records"),
    ],
)
async def test_bad_queries_get_ontap_error_bodies(
    sim, session, query: str, code: str, target: str
) -> None:
    status, body, headers = await get(
        session, f"{cluster_url(sim, 'ams-prod-01')}{AKV_PATH}?{query}"
    )
    assert status == 400
    assert body["error"]["code"] == code and body["error"]["target"] == target
    assert body["error"]["message"]
    assert headers["Content-Type"].startswith("application/hal+json")


async def test_accepted_parameters(sim, session) -> None:
    base = f"{cluster_url(sim, 'ams-prod-01')}{AKV_PATH}"
    for query in (
        "return_timeout=0",
        "return_timeout=120",
        "ignore_unknown_fields=true&fields=x,uuid",
    ):
        status, body, _ = await get(session, f"{base}?{query}")
        assert status == 200, (query, body)


async def test_headers_content_type_and_authentication(sim, session) -> None:
    base = f"{cluster_url(sim, 'ams-prod-01')}/api/cluster"
    status, body, headers = await get(session, base)
    assert status == 200 and body["name"] == "ams-prod-01"
    assert headers["Server"] == "libzapid-httpd"
    assert headers["Content-Type"].startswith("application/hal+json")
    _, _, headers = await get(session, base, headers={"Accept": "application/json"})
    assert headers["Content-Type"].startswith("application/json")
    status, _, headers = await get(session, base, auth=("admin", "wrong"))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
    # lon-dr-01 has its own credentials in the scenario.
    status, _, _ = await get(session, f"{cluster_url(sim, 'lon-dr-01')}/api/cluster")
    assert status == 401
    status, _, _ = await get(
        session, f"{cluster_url(sim, 'lon-dr-01')}/api/cluster", auth=("monitor", "s3cret-monitor")
    )
    assert status == 200
    status, body, _ = await get(session, f"{cluster_url(sim, 'ams-prod-01')}/api/storage/qtrees")
    assert status == 404 and body["error"]["code"] == "4"


async def test_cluster_and_nodes(sim, session) -> None:
    base = cluster_url(sim, "sin-prod-01")
    status, cluster, _ = await get(session, f"{base}/api/cluster?fields=name,uuid,version")
    assert cluster["version"]["generation"] == 9 and cluster["version"]["major"] == 17
    assert cluster["version"]["full"].startswith("NetApp Release 9.17.1")
    records, _ = await all_pages(session, base, "/api/cluster/nodes?fields=name,state,ha")
    assert [(n["name"], n["state"]) for n in records] == [
        ("sin-prod-01-01", "up"),
        ("sin-prod-01-02", "down"),
    ]
    assert records[0]["ha"]["partners"][0]["name"] == "sin-prod-01-02"
    status, node, _ = await get(session, f"{base}/api/cluster/nodes/{records[1]['uuid']}")
    assert status == 200 and node["name"] == "sin-prod-01-02"


async def test_release_quirks_follow_x_ntap_introduced(sim, session) -> None:
    [old] = (await akvs(session, sim, "lon-dr-01", "?fields=**"))["records"]  # 9.8
    assert not {"enabled", "configuration", "authentication_method"} & set(old)
    assert set(old["state"]) == {"cluster_state", "code", "message"}
    assert old["state"]["cluster_state"] is False and old["state"]["code"] == 65537551
    assert old["azure_reachability"]["code"] == 0
    assert all(isinstance(e["code"], int) for e in old["ekmip_reachability"])
    [middle] = (await akvs(session, sim, "fra-prod-01", "?fields=**"))["records"]  # 9.13
    assert "authentication_method" in middle and "enabled" not in middle
    assert middle["state"] == {"available": True, "code": "0", "message": ""}
    # sin-prod-01 (9.17) has the empty_pages fault: its first page is empty.
    [new, _], _ = await all_pages(session, cluster_url(sim, "sin-prod-01"), f"{AKV_PATH}?fields=**")
    assert new["enabled"] is True and new["configuration"]["name"] == "default"


async def test_exporter_parses_the_simulated_statuses(sim, session) -> None:
    parsed = {}
    for name, release in (
        ("ams-prod-01", (9, 15)),
        ("fra-prod-01", (9, 13)),
        ("lon-dr-01", (9, 8)),
    ):
        query = f"?fields={fields_query(release)}"
        records = (await akvs(session, sim, name, query))["records"]
        result = parse_records(akv.ENDPOINT, records, release)
        assert not result.skipped
        parsed[name] = result.key_managers
    healthy = [a for a in parsed["ams-prod-01"] if a.enabled]
    assert len(healthy) == 2 and all(a.service.ok and a.kek.ok for a in healthy)
    assert all(n.ok for a in healthy for n in a.ekmip) and all(len(a.ekmip) == 4 for a in healthy)
    [inactive] = [a for a in parsed["ams-prod-01"] if a.enabled is False]
    assert inactive.service is None and inactive.kek is None and not inactive.ekmip
    [fra] = parsed["fra-prod-01"]
    assert not fra.service.ok and fra.service.code == "65537549"
    assert "Unable to connect to https://" in fra.service.message
    assert [(n.node, n.ok, n.code) for n in fra.ekmip] == [
        ("fra-prod-01-01", True, "0"),
        ("fra-prod-01-02", False, "65537552"),
    ]
    [lon] = parsed["lon-dr-01"]
    assert lon.kek is not None and not lon.kek.ok and lon.kek.code == "65537551"
    assert lon.kek.message.startswith("Top-level internal key protection key (KEK) is unavailable")
    assert "Node: lon-dr-01-01. Reason:" in lon.kek.message
    assert lon.service.ok and lon.service.code == "0"
