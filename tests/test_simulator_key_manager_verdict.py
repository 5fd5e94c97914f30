"""ONTAP's own verdict in the simulator: key-manager policy, encrypted volumes, EMS events.

Every answer is checked against NetApp's `netapp_ontap` schemas (``from_dict`` with
``strict=True`` plus a walk that refuses any nested field the schema does not have), across
every release the simulator offers; the health monitor is driven through the control API with
the simulated clock advanced, so nothing waits for wall-clock minutes.
"""

from __future__ import annotations

import asyncio
import datetime
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from netapp_ontap.resources import EmsEvent, KeyManagerConfig, Volume
from ontap_simulator import (
    RunningSimulator,
    ScenarioError,
    SimulatorOptions,
    ems,
    start_simulator,
)
from ontap_simulator.clock import SimClock
from ontap_simulator.fleet import generate_fleet
from ontap_simulator.incidents import IncidentScheduler
from ontap_simulator.model import apply_patch
from ontap_simulator.query import Kind, answer_collection
from ontap_simulator.scenario import load_scenario

from tests.helpers.ontap import netapp_validate
from tests.helpers.simulator import all_pages, cluster_url, control, get

AKV_PATH = "/api/security/azure-key-vaults"
KMC_PATH = "/api/security/key-manager-configs"
VOLUMES_PATH = "/api/storage/volumes"
EVENTS_PATH = "/api/support/ems/events"
RELEASES = (
    "9.8",
    "9.9.1",
    "9.10.1",
    "9.11.1",
    "9.12.1",
    "9.13.1",
    "9.14.1",
    "9.15.1",
    "9.16.1",
    "9.17.1",
)


def _scenario(tmp_path: Any) -> Any:
    lines = ["clusters:"]
    for release in RELEASES:
        name = name_of(release)
        lines += [
            f"  - name: {name}",
            f'    version: "{release}"',
            "    nodes: 2",
            "    akvs: [{svm: svm_nfs}, {svm: svm_db}, {scope: cluster}]",
            "    volumes: {svm_nfs: {count: 7, encrypted: 5}, svm_db: {count: 3, encrypted: 3},",
            "              svm_web: {count: 4, encrypted: 4}, svm_plain: {count: 2, encrypted: 0}}",
        ]
    path = tmp_path / "releases.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def sim(tmp_path: Any) -> AsyncIterator[RunningSimulator]:
    options = SimulatorOptions(
        scenario=_scenario(tmp_path), control_port=0, plain_http=True, out=io.StringIO()
    )
    running = await start_simulator(options)
    yield running
    await running.stop()


def name_of(release: str) -> str:
    return "c" + release.replace(".", "-")


def url(sim: RunningSimulator, release: str) -> str:
    return cluster_url(sim, name_of(release))


# --- GET /api/security/key-manager-configs ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
async def test_key_manager_configs_per_release(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    query = "?fields=health_monitor_policy,health_monitor_polling_interval"
    status, body, _ = await get(session, url(sim, release) + KMC_PATH + query)
    version = tuple(int(p) for p in (release + ".0").split(".")[:3])
    if version < (9, 10, 0):
        # As for any path the release does not have.
        assert status == 404
        assert body == {"error": {"message": "API not found", "code": "4"}}
        status, unknown, _ = await get(session, url(sim, release) + "/api/no/such/path")
        assert (status, unknown) == (404, body)
        return
    if version < (9, 15, 0):
        # A field the release does not have is refused, as for the AKV endpoint's newer fields.
        assert status == 400
        assert body["error"]["code"] == "262197" and body["error"]["target"] == "fields"
        query = "?fields=health_monitor_polling_interval"
        status, body, _ = await get(session, url(sim, release) + KMC_PATH + query)
    assert status == 200, body
    config = netapp_validate(KeyManagerConfig, body, release)
    assert config.health_monitor_polling_interval == 15
    assert "records" not in body  # one object, not a collection
    if version < (9, 15, 0):
        assert "health_monitor_policy" not in body
    else:
        policy = body["health_monitor_policy"]
        expected = {"akv", "aws", "gcp", "ikp", "kmip", "okm"} | (
            {"barbican"} if version >= (9, 17, 0) else set()
        )
        assert set(policy) == expected
        assert config.health_monitor_policy.akv.manage_volume_offline is True
    # Without `fields` every ordinary field comes.
    status, everything, _ = await get(session, url(sim, release) + KMC_PATH)
    netapp_validate(KeyManagerConfig, everything, release)
    assert {"cc_mode_enabled", "cloud_kms_retry_count"} <= set(everything)


async def test_policy_set_through_control_api_and_refused_where_release_lacks_it(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    patch = {
        "key_manager_config": {
            "health_monitor_polling_interval": 30,
            "health_monitor_policy": {"akv": {"manage_volume_offline": False}},
        }
    }
    status, detail = await control(session, sim, "PATCH", "/simulator/clusters/c9-16-1", patch)
    assert status == 200, detail
    assert detail["key_manager_config"]["health_monitor_policy"]["akv"] == {
        "enabled": True,
        "manage_volume_offline": False,
    }
    _, body, _ = await get(session, url(sim, "9.16.1") + KMC_PATH)
    assert body["health_monitor_polling_interval"] == 30
    assert body["health_monitor_policy"]["akv"]["manage_volume_offline"] is False
    assert body["health_monitor_policy"]["gcp"]["manage_volume_offline"] is True

    refusals = {
        "c9-14-1": "key_manager_config.health_monitor_policy: the policy exists from ONTAP 9.15.1",
        "c9-8": "key_manager_config: the endpoint exists from ONTAP 9.10.1",
    }
    for name, reason in refusals.items():
        status, error = await control(session, sim, "PATCH", f"/simulator/clusters/{name}", patch)
        assert status == 400 and error["error"].startswith(reason), error
    bad = {"key_manager_config": {"health_monitor_polling_interval": 5}}
    status, error = await control(session, sim, "PATCH", "/simulator/clusters/c9-16-1", bad)
    assert status == 400
    assert error["error"].startswith("key_manager_config.health_monitor_polling_interval: ")


# --- GET /api/storage/volumes ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
async def test_volumes_validate_and_filter_per_release(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    base = url(sim, release)
    records, _ = await all_pages(session, base, VOLUMES_PATH + "?fields=**&max_records=4")
    assert len(records) == 7 + 3 + 4 + 2
    for record in records:
        volume = netapp_validate(Volume, record, f"{release} {record['name']}")
        assert volume.state == "online"
    query = "?encryption.enabled=true&fields=svm.name,state,encryption.enabled&max_records=5"
    encrypted, _ = await all_pages(session, base, VOLUMES_PATH + query)
    per_svm: dict[str, int] = {}
    for record in encrypted:
        assert set(record) == {"uuid", "svm", "state", "encryption", "_links"}
        per_svm[record["svm"]["name"]] = per_svm.get(record["svm"]["name"], 0) + 1
    assert per_svm == {"svm_nfs": 5, "svm_db": 3, "svm_web": 4}
    status, count, _ = await get(
        session,
        base + VOLUMES_PATH + "?svm.name=svm_nfs&encryption.enabled=false&return_records=false",
    )
    assert (status, count["num_records"]) == (200, 2)


async def test_thousands_of_volumes_page_completely(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    patch = {"volumes": {"svm_big": {"count": 2600, "encrypted": 2500, "offline": 40}}}
    status, detail = await control(session, sim, "PATCH", "/simulator/clusters/c9-17-1", patch)
    assert status == 200 and detail["volumes"]["svm_big"] == {
        "count": 2600,
        "encrypted": 2500,
        "offline": 40,
    }
    query = "?encryption.enabled=true&svm.name=svm_big&fields=state&max_records=1000"
    records, pages = await all_pages(session, url(sim, "9.17.1"), VOLUMES_PATH + query)
    assert [len(p["records"]) for p in pages] == [1000, 1000, 500]
    assert len({r["uuid"] for r in records}) == 2500
    assert sum(r["state"] == "offline" for r in records) == 40
    bad = {"volumes": {"svm_big": {"encrypted": 3000}}}
    status, error = await control(session, sim, "PATCH", "/simulator/clusters/c9-17-1", bad)
    assert (status, error) == (
        400,
        {"error": "volumes.svm_big.encrypted: 3000 is more than count (2600)"},
    )


# --- GET /api/support/ems/events ---------------------------------------------------------------


async def test_events_appended_filtered_by_name_time_and_index(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name = "c9-13-1"
    base = url(sim, "9.13.1")
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=2)
    for event in ("ekmip.akv.keyExpired", "ekmip.akv.keyVersionChanged", "callhome.spares.low"):
        status, added = await control(
            session, sim, "POST", f"/simulator/clusters/{name}/events", {"name": event, "node": "*"}
        )
        assert status == 200 and len(added["records"]) == 2, added
    fields = "fields=index,time,node.name,message.name,message.severity,log_message,parameters"
    since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    query = f"?message.name=ekmip.akv.*&time=>{since}&{fields}&max_records=3"
    records, pages = await all_pages(session, base, EVENTS_PATH + query.replace(">", "%3E"))
    assert len(pages) == 2
    assert sorted(r["message"]["name"] for r in records) == [
        "ekmip.akv.keyExpired",
        "ekmip.akv.keyExpired",
        "ekmip.akv.keyVersionChanged",
        "ekmip.akv.keyVersionChanged",
    ]
    for record in records:
        event = netapp_validate(EmsEvent, record, record["message"]["name"])
        assert event.time >= before
        assert record["log_message"].startswith(record["message"]["name"] + ": ")
    # Newest first; per node the index only grows.
    times = [r["time"] for r in records]
    assert times == sorted(times, reverse=True)
    node = records[0]["node"]["name"]
    mine = sorted(r["index"] for r in records if r["node"]["name"] == node)
    newer, _ = await all_pages(
        session, base, EVENTS_PATH + f"?node.name={node}&index=%3E{mine[0]}&fields=index"
    )
    assert sorted(r["index"] for r in newer) == [i for i in mine[1:]] + [mine[-1] + 1]
    refused = {
        "c9-12-1": (
            "ekmip.akv.volOnline",
            "name: ekmip.akv.volOnline is not in ONTAP 9.12.1's EMS catalogue (from 9.13.1)",
        ),
        "c9-8": (
            "ekmip.akv.keyExpired",
            "name: ekmip.akv.keyExpired is not in ONTAP 9.8.0's EMS catalogue (from 9.10.1)",
        ),
    }
    for cluster, (event, reason) in refused.items():
        status, error = await control(
            session, sim, "POST", f"/simulator/clusters/{cluster}/events", {"name": event}
        )
        assert (status, error) == (400, {"error": reason})


# --- the health monitor: outage, deadline, healing ---------------------------------------------


async def _advance_and_check(session, sim, name: str, seconds: float) -> dict[str, Any]:
    status, _ = await control(session, sim, "PATCH", "/simulator/clock", {"advance_s": seconds})
    assert status == 200
    status, view = await control(session, sim, "POST", f"/simulator/clusters/{name}/health-check")
    assert status == 200
    return view


async def _akv_events(session, sim, release: str) -> list[str]:
    records, _ = await all_pages(
        session,
        url(sim, release),
        EVENTS_PATH + "?message.name=ekmip.akv.*&fields=message.name,node.name",
    )
    return sorted(f"{r['message']['name']}@{r['node']['name']}" for r in records)


async def _offline(session, sim, release: str) -> dict[str, int]:
    records, _ = await all_pages(
        session, url(sim, release), VOLUMES_PATH + "?state=offline&fields=svm.name"
    )
    counts: dict[str, int] = {}
    for record in records:
        counts[record["svm"]["name"]] = counts.get(record["svm"]["name"], 0) + 1
    return counts


@pytest.mark.parametrize("release", RELEASES)
async def test_outage_takes_encrypted_volumes_offline_at_the_deadline_and_healing_brings_them_back(
    sim: RunningSimulator, session: aiohttp.ClientSession, release: str
) -> None:
    name = name_of(release)
    version = tuple(int(p) for p in (release + ".0").split(".")[:3])
    nodes = [f"{name}-01", f"{name}-02"]
    outage = {"akvs": {"*": {"azure_reachability": {"reachable": False}}}}
    assert (await control(session, sim, "PATCH", f"/simulator/clusters/{name}", outage))[0] == 200
    await _advance_and_check(session, sim, name, 0)
    if version < (9, 10, 0):  # no health monitor: nothing happens, ever
        await _advance_and_check(session, sim, name, 7200)
        assert await _akv_events(session, sim, release) == []
        assert await _offline(session, sim, release) == {}
        return
    # Three configurations (svm_nfs, svm_db, cluster scope), each on every node.
    assert await _akv_events(session, sim, release) == sorted(
        f"ekmip.akv.notAvailable@{n}" for n in nodes for _ in range(3)
    )
    view = await _advance_and_check(session, sim, name, 3599)
    assert await _offline(session, sim, release) == {}
    assert all(w["offline_due_s"] is not None for w in view["failing"].values())
    await _advance_and_check(session, sim, name, 1)
    # The cluster-scoped configuration covers the SVMs without their own: svm_web only
    # (svm_plain holds no encrypted volume).
    assert await _offline(session, sim, release) == {"svm_nfs": 5, "svm_db": 3, "svm_web": 4}
    events = await _akv_events(session, sim, release)
    assert sum(e.startswith("ekmip.akv.volOffline@") for e in events) == 3
    assert (await control(session, sim, "POST", f"/simulator/clusters/{name}/reset"))[0] == 200
    await _advance_and_check(session, sim, name, 60)
    assert await _offline(session, sim, release) == {}
    healed = await _akv_events(session, sim, release)
    assert sum(e.startswith("ekmip.akv.available@") for e in healed) == 6
    assert sum(e.startswith("ekmip.akv.volOnline@") for e in healed) == (
        3 if version >= (9, 13, 0) else 0
    )


async def test_policy_without_volume_offlining_keeps_volumes_online(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name = "c9-15-1"
    policy = {
        "key_manager_config": {"health_monitor_policy": {"akv": {"manage_volume_offline": False}}}
    }
    outage = {"akvs": {"*": {"state": {"available": False}}}}
    for patch in (policy, outage):
        assert (await control(session, sim, "PATCH", f"/simulator/clusters/{name}", patch))[
            0
        ] == 200
    await _advance_and_check(session, sim, name, 0)
    await _advance_and_check(session, sim, name, 4 * 3600)
    assert await _offline(session, sim, "9.15.1") == {}
    events = await _akv_events(session, sim, "9.15.1")
    assert events and all(e.startswith("ekmip.akv.notAvailable@") for e in events)


async def test_monitor_runs_on_its_own_with_a_compressed_clock(tmp_path: Any) -> None:
    # 3600 simulated seconds per real second: the 15-minute checks and the 60-minute deadline
    # pass within about two seconds, without anyone calling health-check.
    options = SimulatorOptions(
        scenario=_scenario(tmp_path), plain_http=True, clock_factor=3600, out=io.StringIO()
    )
    running = await start_simulator(options)
    try:
        cluster = running.fleet.clusters["c9-17-1"]
        cluster.set_state(
            apply_patch(
                cluster.state, {"akvs": {"*": {"azure_reachability": {"reachable": False}}}}
            )
        )
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                if await _offline(session, running, "9.17.1"):
                    break
                await asyncio.sleep(0.1)
            assert await _offline(session, running, "9.17.1") == {
                "svm_nfs": 5,
                "svm_db": 3,
                "svm_web": 4,
            }
    finally:
        await running.stop()


# --- the query engine's range operators ----------------------------------------------------------


def test_range_operators_compare_numbers_and_times() -> None:
    tree = {"index": None, "time": None, "name": None, "_links": None}
    kind = Kind(tree, default_fields=("index",), always=(), cursor=("index",))
    records = [
        {"index": i, "time": f"2026-11-29T0{i}:00:00+00:00", "name": f"n{i}"} for i in range(1, 6)
    ]

    def indexes(*params: tuple[str, str]) -> list[int]:
        return [r["index"] for r in answer_collection(records, kind, "/x", list(params))["records"]]

    assert indexes(("index", ">3")) == [4, 5]
    assert indexes(("index", ">=3")) == [3, 4, 5]
    assert indexes(("index", "<2|>4")) == [1, 5]
    assert indexes(("time", ">2026-11-29T03:00:00Z")) == [4, 5]
    assert indexes(("time", "<=2026-11-29T04:00:00+01:00")) == [1, 2, 3]  # 03:00 UTC
    assert indexes(("index", "<=2"), ("name", "n*")) == [1, 2]


def test_clock_factor_and_advance() -> None:
    now = [100.0]
    clock = SimClock(60, monotonic=lambda: now[0])
    now[0] += 2
    assert clock.now() == 120
    clock.set_factor(1)
    now[0] += 5
    clock.advance(30)
    assert clock.now() == 155
    assert clock.real_seconds(60) == 60
    with pytest.raises(ValueError):
        SimClock(0)


def _one_of_each(records: list[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    return list({key(record): record for record in records}.values())


@pytest.mark.slow
async def test_generated_fleet_answers_validate_against_netapp_schemas() -> None:
    # 40 clusters of seed 3: every release the generator uses, policies with and without
    # volume offlining, an EMS history on each; every answer passes NetApp's schemas.
    running = await start_simulator(
        SimulatorOptions(clusters=40, seed=3, plain_http=True, out=io.StringIO())
    )
    seen = {"no_endpoint": 0, "no_policy": 0, "manage_false": 0, "akv_history": 0}
    try:
        async with aiohttp.ClientSession() as session:
            for info in running.clusters:
                version = running.fleet.clusters[info.name].state.version
                status, config, _ = await get(session, info.url + KMC_PATH)
                if version < (9, 10, 0):
                    assert status == 404
                    seen["no_endpoint"] += 1
                else:
                    netapp_validate(KeyManagerConfig, config, info.name)
                    policy = config.get("health_monitor_policy")
                    seen["no_policy"] += policy is None
                    seen["manage_false"] += (
                        bool(policy) and not policy["akv"]["manage_volume_offline"]
                    )
                # NetApp's library takes ~20 ms a record: one record of each kind per cluster.
                volumes, _ = await all_pages(
                    session, info.url, VOLUMES_PATH + "?fields=**&max_records=1000"
                )
                assert volumes
                for record in _one_of_each(
                    volumes, lambda r: (r["state"], r["encryption"]["enabled"])
                ):
                    netapp_validate(Volume, record, f"{info.name} {record['name']}")
                events, _ = await all_pages(session, info.url, EVENTS_PATH + "?fields=**")
                assert events
                for record in _one_of_each(events, lambda r: r["message"]["name"]):
                    netapp_validate(EmsEvent, record, f"{info.name} {record['message']['name']}")
                seen["akv_history"] += any(
                    r["message"]["name"].startswith("ekmip.akv.") for r in events
                )
    finally:
        await running.stop()
    assert all(seen.values()), seen


async def test_debug_events_only_with_a_severity_query_and_unknown_akv_names_refused(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name, base = "c9-17-1", url(sim, "9.17.1")
    body = {"name": "secd.debug.trace", "severity": "debug", "log_message": "secd.debug.trace: x"}
    status, _ = await control(session, sim, "POST", f"/simulator/clusters/{name}/events", body)
    assert status == 200
    plain, _ = await all_pages(session, base, EVENTS_PATH + "?fields=message")
    assert all(r["message"]["severity"] != "debug" for r in plain)
    asked, _ = await all_pages(session, base, EVENTS_PATH + "?message.severity=debug|notice")
    assert [r["message"]["name"] for r in asked if r["message"]["name"].startswith("secd.")] == [
        "secd.debug.trace"
    ]
    status, error = await control(
        session, sim, "POST", f"/simulator/clusters/{name}/events", {"name": "ekmip.akv.gone"}
    )
    assert status == 400
    assert error["error"].startswith(
        "name: ekmip.akv.gone is no ekmip.akv event of NetApp's EMS reference (known: "
    )


async def test_reset_keeps_the_event_log_and_its_indexes(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name, base = "c9-14-1", url(sim, "9.14.1")
    path = f"/simulator/clusters/{name}/events"
    _, first = await control(session, sim, "POST", path, {"name": "ekmip.akv.keyExpired"})
    assert (await control(session, sim, "POST", f"/simulator/clusters/{name}/reset"))[0] == 200
    _, second = await control(session, sim, "POST", path, {"name": "ekmip.akv.keyExpired"})
    assert second["records"][0]["index"] == first["records"][0]["index"] + 1
    records, _ = await all_pages(session, base, EVENTS_PATH + "?message.name=ekmip.akv.keyExpired")
    assert len(records) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "volumes: {svm_a: {count: -1}}",
            "clusters[0].volumes.svm_a.count: expected a whole number 0-50000, got -1",
        ),
        (
            "volumes: {svm_a: {count: 2, offline: 3}}",
            "clusters[0].volumes.svm_a.offline: 3 is more than the encrypted volumes (0)",
        ),
        (
            "key_manager_config: {health_monitor_policy: {akv: {enabled: yes please}}}",
            "clusters[0].key_manager_config.health_monitor_policy.akv.enabled: "
            "expected true or false, got str",
        ),
        (
            "key_manager_config: {health_monitor_policy: {azure: {enabled: true}}}",
            "clusters[0].key_manager_config.health_monitor_policy.azure: unknown key",
        ),
    ],
)
def test_scenario_errors_name_file_and_key(tmp_path: Any, entry: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(f'clusters:\n  - name: a\n    version: "9.16.1"\n    {entry}\n')
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value).startswith(f"{path}: {message}")


async def test_monitor_events_carry_netapp_severities_and_parameters(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name, base = "c9-13-1", url(sim, "9.13.1")
    outage = {"akvs": {"*": {"azure_reachability": {"reachable": False}}}}
    assert (await control(session, sim, "PATCH", f"/simulator/clusters/{name}", outage))[0] == 200
    await _advance_and_check(session, sim, name, 0)
    await _advance_and_check(session, sim, name, 3600)
    assert (await control(session, sim, "POST", f"/simulator/clusters/{name}/reset"))[0] == 200
    await _advance_and_check(session, sim, name, 900)
    records, _ = await all_pages(
        session, base, EVENTS_PATH + "?message.name=ekmip.akv.*&fields=message,parameters"
    )
    shapes = {
        (r["message"]["name"], r["message"]["severity"], tuple(p["name"] for p in r["parameters"]))
        for r in records
    }
    assert shapes == {
        ("ekmip.akv.notAvailable", "alert", ("svm", "configName", "name")),
        ("ekmip.akv.volOffline", "alert", ("svm", "keyId", "name", "configName")),
        ("ekmip.akv.available", "notice", ("svm", "configName", "name")),
        ("ekmip.akv.volOnline", "notice", ("svm", "keyId", "name", "configName")),
    }
    # The cluster-scoped configuration covers svm_web: its events name the vault of that one.
    state = sim.fleet.clusters[name].state
    admin_vault = next(a.vault for a in state.akvs if not a.svm_name)
    web = [
        r for r in records
        if r["message"]["name"] == "ekmip.akv.volOffline"
        and {"name": "svm", "value": "svm_web"} in r["parameters"]
    ]  # fmt: skip
    assert len(web) == 1 and {"name": "name", "value": admin_vault} in web[0]["parameters"]


async def test_key_expired_incident_logs_the_event_and_healing_logs_a_new_key_version() -> None:
    running = await start_simulator(
        SimulatorOptions(clusters=12, seed=0, plain_http=True, out=io.StringIO())
    )
    try:
        scheduler = IncidentScheduler(running.fleet, seed=0, out=io.StringIO())
        kinds = []
        for _ in range(200):
            incident = scheduler.start_one()
            assert incident is not None
            kinds.append(incident.kind)
            cluster = running.fleet.clusters[incident.cluster]
            if incident.kind != "key_expired":
                scheduler.heal(incident, quiet=True)
                continue
            assert cluster.state.version >= (9, 10, 0)
            before = cluster.state
            names = [e.name for e in cluster.events.events()]
            assert names[-1] == "ekmip.akv.keyExpired"
            expired = dict(cluster.events.events()[-1].parameters)
            scheduler.heal(incident)
            # An expired key version interrupts nothing; the renewal gives the key a new version.
            svm = before.akv(incident.akv_uuid).svm_name
            assert cluster.state == ems.renew_key(before, svm)[0]
            changed = cluster.events.events()[-1]
            assert changed.name == "ekmip.akv.keyVersionChanged"
            versions = dict(changed.parameters)
            assert versions["oldKeyVersion"] == expired["keyId"].rsplit("/", 1)[-1]
            current = cluster.state.akv(incident.akv_uuid).key_id.rsplit("/", 1)[-1]
            assert versions["newKeyVersion"] == current != versions["oldKeyVersion"]
            break
        assert "key_expired" in kinds
    finally:
        await running.stop()


async def test_a_failing_configuration_made_inactive_no_longer_holds_volumes_offline(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    name = "c9-14-1"
    outage = {"akvs": {"*": {"azure_reachability": {"reachable": False}}}}
    assert (await control(session, sim, "PATCH", f"/simulator/clusters/{name}", outage))[0] == 200
    await _advance_and_check(session, sim, name, 0)
    await _advance_and_check(session, sim, name, 3600)
    assert await _offline(session, sim, "9.14.1") == {"svm_nfs": 5, "svm_db": 3, "svm_web": 4}
    inactive = {"akvs": {"*": {"enabled": False}}}
    assert (await control(session, sim, "PATCH", f"/simulator/clusters/{name}", inactive))[0] == 200
    view = await _advance_and_check(session, sim, name, 900)
    assert view["failing"] == {}
    assert await _offline(session, sim, "9.14.1") == {}


def _parameters(record: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in record["parameters"]}


async def test_key_version_changed_names_a_new_version_and_the_record_takes_it(
    sim: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    # NetApp: newKeyVersion is the "Current key version", after a change of it. After a
    # keyExpired, the renewal must name a new version, never the one that expired.
    name, base = "c9-14-1", url(sim, "9.14.1")
    path = f"/simulator/clusters/{name}/events"
    _, expired = await control(
        session, sim, "POST", path, {"name": "ekmip.akv.keyExpired", "svm": "svm_db"}
    )
    expired_version = _parameters(expired["records"][0])["keyId"].rsplit("/", 1)[-1]
    _, changed = await control(
        session, sim, "POST", path, {"name": "ekmip.akv.keyVersionChanged", "svm": "svm_db"}
    )
    parameters = _parameters(changed["records"][0])
    assert parameters["oldKeyVersion"] == expired_version
    assert parameters["newKeyVersion"] != expired_version
    records, _ = await all_pages(session, base, AKV_PATH + "?svm.name=svm_db&fields=key_id")
    (record,) = records
    assert record["key_id"].rsplit("/", 1)[-1] == parameters["newKeyVersion"]


def test_a_generated_fleet_starts_without_an_unrenewed_key_expiry() -> None:
    # `make demo`'s fleet: 15 of 300 clusters used to start KEY VERSION EXPIRED, from a past
    # keyExpired with no renewal. A generated cluster's past is healed: every expiry in it is
    # followed by a keyVersionChanged of the same SVM, whose old version is the one that expired.
    for state in generate_fleet(300, seed=7):
        log = ems.EventLog(state, now=lambda: 1_800_000_000.0)
        events = sorted(log.events(), key=lambda e: e.time)
        for index, event in enumerate(events):
            if event.name != "ekmip.akv.keyExpired":
                continue
            facts = dict(event.parameters)
            renewals = [
                dict(later.parameters)
                for later in events[index + 1 :]
                if later.name == "ekmip.akv.keyVersionChanged"
                and dict(later.parameters)["svm"] == facts["svm"]
            ]
            assert renewals, f"{state.name}: keyExpired with no renewal after it"
            assert renewals[0]["oldKeyVersion"] == facts["keyId"].rsplit("/", 1)[-1]
            assert renewals[0]["newKeyVersion"] != renewals[0]["oldKeyVersion"]
