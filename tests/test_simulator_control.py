"""The control API changes what the simulated clusters answer; every fault misbehaves for real."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from ontap_simulator import RunningSimulator, SimulatorOptions, start_simulator

from tests.helpers.ontap import AKV_PATH
from tests.helpers.simulator import cluster_url, control, get

CLUSTER = "yyz-prod-01"  # the first cluster of seed 0: 9.13.1, 4 nodes, 2 SVM-scoped AKVs


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    options = SimulatorOptions(clusters=3, seed=0, control_port=0, out=io.StringIO())
    running = await start_simulator(options)
    yield running
    await running.stop()


@pytest.fixture
async def session(sim: RunningSimulator) -> AsyncIterator[aiohttp.ClientSession]:
    context = ssl.create_default_context(cafile=str(sim.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        yield session


def url(sim: RunningSimulator, name: str = CLUSTER) -> str:
    return cluster_url(sim, name)


async def patch(session, sim, body: Any, name: str = CLUSTER) -> Any:
    status, answer = await control(session, sim, "PATCH", f"/simulator/clusters/{name}", body)
    assert status == 200, answer
    return answer


async def records(session, sim, query: str = "?fields=**") -> list[dict[str, Any]]:
    status, body, _ = await get(session, f"{url(sim)}{AKV_PATH}{query}")
    assert status == 200, body
    return body["records"]


async def test_list_clusters(sim, session) -> None:
    status, clusters = await control(session, sim, "GET", "/simulator/clusters")
    assert status == 200
    assert [c["name"] for c in clusters] == [c.name for c in sim.clusters]
    first = clusters[0]
    assert first["url"] == url(sim) and first["nodes"][0] == f"{CLUSTER}-01"
    assert {"uuid", "svm", "scope"} <= set(first["akvs"][0])


async def test_patch_shorthand_fills_in_ontap_codes_and_messages(sim, session) -> None:
    await patch(
        session,
        sim,
        {
            "akvs": {
                "*": {
                    "azure_reachability": {"reachable": False},
                    "state": {"available": False},
                    "ekmip_reachability": {f"{CLUSTER}-02": {"reachable": False}},
                }
            }
        },
    )
    for record in await records(session, sim):
        azure = record["azure_reachability"]
        assert azure["reachable"] is False and azure["code"] == "65537549"
        assert azure["message"].startswith("AKV service is not reachable from all nodes - reason:")
        assert record["name"] in azure["message"]
        assert record["state"]["code"] == "65537551"
        assert f"Node: {CLUSTER}-01. Reason:" in record["state"]["message"]
        down = [e for e in record["ekmip_reachability"] if not e["reachable"]]
        assert [e["node"]["name"] for e in down] == [f"{CLUSTER}-02"]
        assert down[0]["code"] == "65537552"
        assert down[0]["message"] == "embedded KMIP server status unavailable on node."
    # Coming back: {"reachable": true} alone means code "0" and no message.
    await patch(session, sim, {"akvs": {"*": {"azure_reachability": {"reachable": True}}}})
    for record in await records(session, sim):
        assert record["azure_reachability"] == {"reachable": True, "code": "0", "message": ""}


async def test_patch_one_akv_and_every_node_with_explicit_text(sim, session) -> None:
    uuid = sorted(a.uuid for a in sim.fleet.clusters[CLUSTER].state.akvs)[0]
    await patch(
        session,
        sim,
        {"akvs": {uuid: {"ekmip_reachability": {"*": {"reachable": False, "message": "gone"}}}}},
    )
    by_uuid = {r["uuid"]: r for r in await records(session, sim)}
    assert all(e["message"] == "gone" for e in by_uuid[uuid]["ekmip_reachability"])
    assert all(e["code"] == "65537552" for e in by_uuid[uuid]["ekmip_reachability"])
    others = [r for u, r in by_uuid.items() if u != uuid]
    assert all(e["reachable"] for r in others for e in r["ekmip_reachability"])


async def test_patch_enabled_false_hides_advanced_fields(sim, session) -> None:
    await patch(session, sim, {"akvs": {"*": {"enabled": False}}}, name="nrt-prod-01")  # 9.15
    status, body, _ = await get(session, f"{url(sim, 'nrt-prod-01')}{AKV_PATH}?fields=**")
    assert body["records"] and all(r["enabled"] is False for r in body["records"])
    assert not any("state" in r for r in body["records"])
    # Before 9.14 there are no inactive configurations to be had.
    status, answer = await control(
        session, sim, "PATCH", f"/simulator/clusters/{CLUSTER}", {"akvs": {"*": {"enabled": False}}}
    )
    assert status == 400 and "9.14" in answer["error"]


async def test_reset_returns_to_the_scenario_state(sim, session) -> None:
    before = await records(session, sim)
    await patch(
        session,
        sim,
        {"akvs": {"*": {"azure_reachability": {"reachable": False}}}, "faults": {"latency_s": 5}},
    )
    status, detail = await control(session, sim, "POST", f"/simulator/clusters/{CLUSTER}/reset")
    assert status == 200 and detail["faults"] == {}
    assert await records(session, sim) == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "invalid JSON"),
        ({"akvs": {"no-such-uuid": {"enabled": False}}}, "akvs.no-such-uuid"),
        ({"akvs": {"*": {"ekmip_reachability": {"nobody": {"reachable": False}}}}}, "nobody"),
        ({"akvs": {"*": {"state": {"available": "no"}}}}, "akvs.*.state.available"),
        ({"faults": {"http_status": 200}}, "faults.http_status"),
        ({"faults": {"code_type": "float"}}, "faults.code_type"),
        ({"faults": {"explode": True}}, "faults.explode"),
        ([1, 2], "expected a mapping"),
    ],
)
async def test_bad_patch_is_refused_with_one_line(sim, session, body: Any, fragment: str) -> None:
    status, answer = await control(session, sim, "PATCH", f"/simulator/clusters/{CLUSTER}", body)
    assert status == 400
    assert fragment in answer["error"] and "\n" not in answer["error"]


async def test_unknown_cluster_is_404(sim, session) -> None:
    for method, path in (
        ("PATCH", "/simulator/clusters/nope"),
        ("POST", "/simulator/clusters/nope/reset"),
        ("GET", "/simulator/clusters/nope"),
    ):
        status, answer = await control(session, sim, method, path, {})
        assert status == 404 and "nope" in answer["error"]


# --- faults ----------------------------------------------------------------------------------


async def test_fault_latency_and_its_removal(sim, session) -> None:
    await patch(session, sim, {"faults": {"latency_s": 0.3}})
    started = time.monotonic()
    await records(session, sim)
    assert time.monotonic() - started >= 0.3
    await patch(session, sim, {"faults": {"latency_s": None}})
    started = time.monotonic()
    await records(session, sim)
    assert time.monotonic() - started < 0.3


@pytest.mark.parametrize(
    ("status", "code"), [(429, "262160"), (503, "262160"), (500, "500"), (403, "6")]
)
async def test_fault_http_status_with_retry_after(sim, session, status: int, code: str) -> None:
    await patch(session, sim, {"faults": {"http_status": status, "retry_after_s": 7}})
    answer, body, headers = await get(session, f"{url(sim)}{AKV_PATH}")
    assert answer == status and body["error"]["code"] == code
    assert headers.get("Retry-After") == ("7" if status in (429, 503) else None)
    await patch(session, sim, {"faults": {"http_status": None}})
    assert (await get(session, f"{url(sim)}{AKV_PATH}"))[0] == 200


async def test_fault_hang_never_answers_and_stop_still_ends(sim, session) -> None:
    await patch(session, sim, {"faults": {"hang": True}})
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(
            f"{url(sim)}/api/cluster", timeout=aiohttp.ClientTimeout(total=0.3)
        ) as response:
            await response.read()
    started = time.monotonic()
    await sim.stop()
    assert time.monotonic() - started < 3


async def test_fault_drop_connection_closes_without_answer(sim, session) -> None:
    await patch(session, sim, {"faults": {"drop_connection": True}})
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(session, f"{url(sim)}/api/cluster")


async def test_fault_malformed_body_is_not_json(sim, session) -> None:
    await patch(session, sim, {"faults": {"malformed_body": True}})
    status, body, headers = await get(session, f"{url(sim)}{AKV_PATH}")
    assert status == 200 and isinstance(body, str)
    assert headers["Content-Type"].startswith("application/hal+json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_fault_auth_reject_refuses_the_right_credentials(sim, session) -> None:
    await patch(session, sim, {"faults": {"auth_reject": True}})
    status, _, headers = await get(session, f"{url(sim)}/api/cluster")
    assert status == 401 and "WWW-Authenticate" in headers


async def test_fault_state_field_and_code_type(sim, session) -> None:
    await patch(session, sim, {"faults": {"state_field": "cluster_state", "code_type": "int"}})
    for record in await records(session, sim):
        assert set(record["state"]) == {"cluster_state", "code", "message"}
        assert record["state"]["code"] == 0 and record["azure_reachability"]["code"] == 0
        assert all(e["code"] == 0 for e in record["ekmip_reachability"])
    await patch(session, sim, {"faults": {"state_field": None, "code_type": "string"}})
    for record in await records(session, sim):
        assert record["state"] == {"available": True, "code": "0", "message": ""}


async def test_fault_only_touches_its_cluster(sim, session) -> None:
    await patch(session, sim, {"faults": {"http_status": 503}})
    other = sim.clusters[1]
    assert (await get(session, f"{other.url}/api/cluster"))[0] == 200
