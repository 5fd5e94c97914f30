"""Generated fleets, scenario files, incidents and a thousand clusters in one process."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import ssl
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from ontap_simulator import ScenarioError, SimulatorOptions, ems, start_simulator
from ontap_simulator.fleet import generate_fleet
from ontap_simulator.incidents import IncidentScheduler, IncidentTiming
from ontap_simulator.model import HEALTHY
from ontap_simulator.scenario import load_scenario
from ontap_simulator.server import Fleet

from tests.helpers.ontap import AKV_PATH
from tests.helpers.simulator import EXAMPLE_SCENARIO, basic_auth, get

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_same_seed_same_fleet_other_seed_other_fleet() -> None:
    first = json.dumps([dataclasses.asdict(c) for c in generate_fleet(60, seed=7)])
    again = json.dumps([dataclasses.asdict(c) for c in generate_fleet(60, seed=7)])
    other = json.dumps([dataclasses.asdict(c) for c in generate_fleet(60, seed=8)])
    assert first == again
    assert first != other
    # A bigger fleet starts with the smaller one: adding clusters does not reshuffle.
    assert generate_fleet(60, seed=7)[:12] == generate_fleet(12, seed=7)


def test_generated_fleet_is_realistic() -> None:
    fleet = generate_fleet(300, seed=0)
    names = [c.name for c in fleet]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z]{3}-[a-z]+-\d{2}", name) for name in names)
    releases = Counter(c.version for c in fleet)
    assert (9, 8, 0) in releases
    assert set(releases) <= {(9, 8, 0)} | {(9, minor, 1) for minor in range(10, 18)}
    for cluster in fleet:
        assert 2 <= len(cluster.nodes) <= 12 and len(cluster.nodes) % 2 == 0
        assert [n.name for n in cluster.nodes] == [
            f"{cluster.name}-{i:02d}" for i in range(1, len(cluster.nodes) + 1)
        ]
        assert all(cluster.nodes[i].partner == cluster.nodes[i ^ 1].name for i in range(2))
        svms = {a.svm_name for a in cluster.akvs if a.svm_name}
        assert 1 <= len(svms) <= 3
        assert sum(a.scope == "cluster" for a in cluster.akvs) <= 1
        for akv in cluster.akvs:
            assert re.fullmatch(r"https://[a-z0-9-]{3,24}\.vault\.azure\.net/", akv.vault)
            assert re.fullmatch(re.escape(akv.vault) + r"keys/[a-z0-9-]+/[0-9a-f]{32}", akv.key_id)
            assert UUID.match(akv.uuid) and UUID.match(akv.tenant_id) and UUID.match(akv.client_id)
            assert akv.azure == akv.kek == HEALTHY and not akv.ekmip
            assert akv.enabled or cluster.version >= (9, 14, 0)
    assert any(a.scope == "cluster" for c in fleet for a in c.akvs)
    assert any(not a.enabled for c in fleet for a in c.akvs)


async def test_same_seed_gives_byte_identical_answers() -> None:
    bodies = []
    for _ in range(2):
        running = await start_simulator(
            SimulatorOptions(clusters=5, seed=11, plain_http=True, out=io.StringIO())
        )
        try:
            async with aiohttp.ClientSession() as session:
                answer = []
                for info in running.clusters:
                    for path in (f"{AKV_PATH}?fields=**", "/api/cluster", "/api/cluster/nodes"):
                        async with session.get(info.url + path, headers=basic_auth()) as response:
                            answer.append(await response.read())
                bodies.append(answer)
        finally:
            await running.stop()
    assert bodies[0] == bodies[1]


def test_example_scenario_loads() -> None:
    clusters = load_scenario(EXAMPLE_SCENARIO)
    by_name = {c.name: c for c in clusters}
    assert list(by_name)[:4] == ["ams-prod-01", "fra-prod-01", "lon-dr-01", "sin-prod-01"]
    assert len(clusters) == 8  # four described, four generated
    assert by_name["lon-dr-01"].version == (9, 8, 0) and by_name["lon-dr-01"].username == "monitor"
    [fra] = by_name["fra-prod-01"].akvs
    assert fra.azure.code == "65537549" and fra.ekmip_of("fra-prod-01-02").code == "65537552"
    assert fra.proxy_host == "proxy.fra.corp.example"
    assert by_name["sin-prod-01"].faults.empty_pages
    sin = by_name["sin-prod-01"]
    assert sin.key_manager_config.policy("akv").manage_volume_offline is False
    assert [(v.svm, v.count, v.encrypted) for v in sin.volumes] == [
        ("svm_k8s", 1800, 1750),
        ("svm_sap", 6, 6),
    ]
    assert load_scenario(EXAMPLE_SCENARIO) == clusters  # generated values are deterministic


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("clusters: [{name: a, version: '8.3'}]", "clusters[0].version"),
        ("clusters: [{version: '9.14.1'}]", "clusters[0].name"),
        ("clusters: [{name: a}, {name: a}]", "clusters[1].name"),
        ("clusters: [{name: a, colour: red}]", "clusters[0].colour: unknown key"),
        ("clusters: [{name: a, nodes: 0}]", "clusters[0].nodes"),
        ("clusters: [{name: a, akvs: [{svm: vs1, scope: cluster}]}]", "clusters[0].akvs[0].svm"),
        (
            "clusters: [{name: a, akvs: [{svm: vs1, azure_reachability: {reachable: maybe}}]}]",
            "clusters[0].akvs[0].azure_reachability.reachable",
        ),
        (
            "clusters: [{name: a, nodes: [x, y], akvs: [{svm: v, ekmip_reachability: {z: {}}}]}]",
            "clusters[0].akvs[0].ekmip_reachability.z: no such node",
        ),
        ("clusters: [{name: a, faults: {hang: 3}}]", "clusters[0].faults.hang"),
        (
            "clusters: [{name: a, version: '9.13.1', akvs: [{svm: v, enabled: false}]}]",
            "clusters[0].akvs[0].enabled",
        ),
        ("clusters: []", "clusters: the scenario describes no cluster"),
        ("clusters: [{name: a}]\nextra: 1", "extra: unknown key"),
        ("clusters: [{name: a\n", "line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_scenario_errors_are_one_line_naming_file_and_key(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "fleet.yml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yml")


def test_incidents_are_deterministic_for_a_seed() -> None:
    def sequence() -> list[tuple[str, str, str]]:
        fleet = Fleet(generate_fleet(20, seed=4))
        scheduler = IncidentScheduler(fleet, seed=4, out=io.StringIO())
        return [
            (i.kind, i.cluster, i.node)
            for i in (scheduler.start_one() for _ in range(15))
            if i is not None
        ]

    first = sequence()
    assert first == sequence()
    assert len({kind for kind, _, _ in first}) >= 3


async def test_incidents_start_print_and_heal() -> None:
    out = io.StringIO()
    timing = IncidentTiming(first_after_s=0.05, gap_s=(0.05, 0.1), duration_s=(0.3, 0.5))
    running = await start_simulator(
        SimulatorOptions(
            clusters=4, seed=2, plain_http=True, incidents=True, out=out, incident_timing=timing
        )
    )
    try:
        deadline = time.monotonic() + 5
        while "incident ended" not in out.getvalue() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        lines = [line for line in out.getvalue().splitlines() if " incident " in line]
        started = [line for line in lines if "incident started" in line]
        assert started and any("incident ended" in line for line in lines)
        assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line) for line in lines)
        # While incidents run, some cluster differs from its scenario state.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(c.state != c.baseline for c in running.fleet):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("no incident changed any cluster")
    finally:
        await running.stop()
    assert all(c.state == c.baseline for c in running.fleet), "stop() heals every incident"


async def test_an_incident_shows_in_the_rest_answer() -> None:
    fleet_states = generate_fleet(1, seed=0)
    running = await start_simulator(
        SimulatorOptions(clusters=1, seed=0, plain_http=True, out=io.StringIO())
    )
    try:
        scheduler = IncidentScheduler(running.fleet, seed=0, out=io.StringIO())
        url = running.clusters[0].url
        seen, expected = set(), fleet_states[0]
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                incident = scheduler.start_one()
                assert incident is not None
                seen.add(incident.kind)
                if incident.kind == "slow":  # no need to wait seconds to see it
                    assert running.fleet.clusters[incident.cluster].state.faults.latency_s >= 3
                    scheduler.heal(incident)
                    continue
                status, body, _ = await get(session, f"{url}{AKV_PATH}?fields=**")
                records = body.get("records", []) if isinstance(body, dict) else []
                if incident.kind == "vault_outage":
                    assert any(not r["azure_reachability"]["reachable"] for r in records)
                elif incident.kind == "ekmip_down":
                    assert any(not e["reachable"] for r in records for e in r["ekmip_reachability"])
                elif incident.kind == "kek_unavailable":
                    assert any(r["state"]["code"] == "65537551" for r in records)
                elif incident.kind == "http_503":
                    assert status == 503
                scheduler.heal(incident)
                if incident.kind == "key_expired":  # renewed: the key has a new version now
                    svm = expected.akv(incident.akv_uuid).svm_name
                    expected = ems.renew_key(expected, svm)[0]
                assert running.fleet.clusters[incident.cluster].state == expected
        assert len(seen) >= 3
    finally:
        await running.stop()


async def test_a_thousand_clusters_start_within_seconds() -> None:
    started = time.monotonic()
    running = await start_simulator(
        SimulatorOptions(clusters=1000, seed=0, control_port=0, out=io.StringIO())
    )
    try:
        assert time.monotonic() - started < 10
        assert len({c.url for c in running.clusters}) == 1000
        context = ssl.create_default_context(cafile=str(running.ca_file))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            for info in running.clusters[::97]:
                status, body, _ = await get(session, f"{info.url}/api/cluster?fields=name")
                assert status == 200 and body["name"] == info.name
            async with session.get(f"{running.control_url}/simulator/clusters") as response:
                assert len(await response.json()) == 1000
    finally:
        await running.stop()
