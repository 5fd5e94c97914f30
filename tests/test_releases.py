"""Every ONTAP release the simulator offers reads the same: healthy is healthy, an outage critical.

`enabled` exists from ONTAP 9.14 only; before it a scope's one AKV configuration is always the
active one. A healthy pre-9.14 cluster must not read "unknown" anywhere (page, JSON, check).
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from ontap_simulator import SimulatorOptions, start_simulator
from ontap_simulator.fleet import RELEASES

from akv_exporter.assessment_json import to_json
from akv_exporter.config import load_config
from akv_exporter.exporter import Exporter
from akv_exporter.web.status_page import render_page
from tests.helpers.exporter import check, started
from tests.helpers.exposition import find

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

VERSIONS = [".".join(map(str, version)).removesuffix(".0") for version, _ in RELEASES]


def _name(version: str) -> str:
    return "rel-" + version.replace(".", "-")


HEALTHY = {"azure_reachability": {"reachable": True}, "state": {"available": True}}
# ONTAP 9.14+ allows a second, inactive configuration per SVM (key migration; `enabled` false).
INACTIVE = {"svm": "svm_data", "enabled": False, "configuration": "migration"}


def _has_enabled(version: str) -> bool:
    return tuple(int(part) for part in version.split(".")[:2]) >= (9, 14)


@pytest.fixture
async def release_fleet(tmp_path: Path):
    """One healthy cluster per release (an SVM-scoped and a cluster-scoped configuration), for
    a test that changes it (an outage, an event, an error code)."""
    async for fleet in _fleet(tmp_path, lambda version: []):
        yield fleet


# The tests that only read a healthy fleet share one, and its surfaces after one round.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def healthy_fleet(tmp_path_factory):
    """As release_fleet, built once for the module's tests that only read it."""
    async for fleet in _fleet(tmp_path_factory.mktemp("healthy"), lambda version: []):
        yield fleet


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def healthy_surfaces(healthy_fleet):
    """(/api/v1/status, the status page, /metrics) of the healthy fleet after one round."""
    return await _surfaces(healthy_fleet[1])


@pytest.fixture
async def migrating_fleet(tmp_path: Path):
    """As release_fleet, plus on 9.14 and later an inactive second configuration for svm_data."""
    async for fleet in _fleet(tmp_path, lambda v: [INACTIVE] if _has_enabled(v) else []):
        yield fleet


async def _fleet(tmp_path: Path, extra):
    scenario = {
        "defaults": {"username": "admin", "password": "netapp1!"},
        "clusters": [
            {
                "name": _name(version),
                "version": version,
                "nodes": 2,
                "akvs": [
                    {"svm": "svm_data", **HEALTHY},
                    {"scope": "cluster", **HEALTHY},
                    *extra(version),
                ],
            }
            for version in VERSIONS
        ],
    }
    (tmp_path / "scenario.yml").write_text(yaml.safe_dump(scenario))
    simulator = await start_simulator(
        SimulatorOptions(
            clusters=0, scenario=tmp_path / "scenario.yml", control_port=0, out=io.StringIO()
        )
    )
    config_file = tmp_path / "akv.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "web": {"listen": "127.0.0.1:0"},
                "poll": {"interval": "60s", "timeout": "10s"},
                "state_file": str(tmp_path / "state.json"),
                "defaults": {
                    "username": "admin",
                    "password": "netapp1!",
                    "tls": {"ca_file": str(simulator.ca_file)},
                },
                "clusters": [
                    {"name": cluster.name, "address": cluster.url} for cluster in simulator.clusters
                ],
            }
        )
    )
    yield simulator, load_config(config_file)
    await simulator.stop()


async def _surfaces(config) -> tuple[dict, str, str]:
    """Return (/api/v1/status, the status page, /metrics) after one poll round."""
    exporter, runner, base = await started(config, process_metrics=False)
    try:
        await asyncio.wait_for(exporter.wait_ready(), 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/v1/status") as response:
                status = await response.json()
            async with http.get(f"{base}/") as response:
                page = await response.text()
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
        return status, page, metrics
    finally:
        await runner.cleanup()
        await exporter.stop()


def _states(status: dict) -> dict[str, list[str]]:
    return {
        cluster["name"]: [akv["state"] for akv in cluster["akvs"]] for cluster in status["clusters"]
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_healthy_configuration_is_healthy_on_every_release(healthy_fleet, healthy_surfaces):
    _, config = healthy_fleet
    status, page, _ = healthy_surfaces
    assert _states(status) == {_name(version): ["healthy", "healthy"] for version in VERSIONS}
    for cluster in status["clusters"]:
        assert all(akv["enabled"] is True for akv in cluster["akvs"]), cluster
    assert status["summary"]["status"] == "ok"
    assert "state unknown" not in page
    code, out, _ = await check(config)
    assert code == 0, out
    assert out.startswith(f"AKV OK - {2 * len(VERSIONS)} configurations healthy on ")


async def test_an_inactive_second_configuration_needs_no_attention_on_any_release(
    migrating_fleet,
):
    # Activity: `enabled` from 9.14 (false here for the second one); before 9.14 inferred
    # active (one configuration per scope). Every cluster is healthy on every surface.
    _, config = migrating_fleet
    status, page, metrics = await _surfaces(config)
    for cluster in status["clusters"]:
        version = cluster["ontap"]["version"]
        enabled = sorted((akv["enabled"] for akv in cluster["akvs"]), reverse=True)
        assert enabled == ([True, True, False] if _has_enabled(version) else [True, True])
        assert cluster["state"] == "healthy" and cluster["problems"] == [], cluster["name"]
        assert len(cluster["notes"]) == enabled.count(False), cluster["name"]
    inactive = [v for v in VERSIONS if _has_enabled(v)]
    assert inactive and len(inactive) < len(VERSIONS)  # both sides of 9.14 are tested
    assert status["summary"]["status"] == "ok"
    assert status["summary"]["configurations_inactive"] == len(inactive)
    assert "Needs attention (0)" in page
    assert page.count("(1 inactive)") == len(inactive)
    disabled = [line for line in metrics.splitlines() if line.startswith("ontap_akv_enabled{")]
    assert sum(line.endswith(" 0") for line in disabled) == len(inactive)
    code, out, _ = await check(config)
    assert code == 0, out
    assert out.startswith(f"AKV OK - {2 * len(VERSIONS)} configurations healthy on ")
    assert f", {len(inactive)} inactive | " in out.splitlines()[0]
    assert "Problems:" not in out and out.count("inactive configuration 'migration'") == len(
        inactive
    )


async def test_key_expired_is_a_warning_on_every_release_that_logs_it(release_fleet):
    """NetApp's EMS reference lists ekmip.akv.keyExpired from 9.10.1; the simulator, as ONTAP,
    refuses it before. Where it is logged the cluster reads key_expired, never healthy."""
    simulator, config = release_fleet
    logged = []
    async with aiohttp.ClientSession() as http:
        for version in VERSIONS:
            url = f"{simulator.control_url}/simulator/clusters/{_name(version)}/events"
            body = json.dumps({"name": "ekmip.akv.keyExpired"})
            async with http.post(url, data=body) as response:
                assert response.status in (200, 201, 400), await response.text()
                if response.status != 400:
                    logged.append(_name(version))
    assert logged and len(logged) < len(VERSIONS)  # both sides of 9.10.1
    # The events are a slow poll, after the AKV poll that makes the exporter ready: poll both.
    exporter = Exporter(config, process_metrics=False)
    try:
        await asyncio.wait_for(exporter.poll_all(), 60)
        fleet = exporter.status()
    finally:
        await exporter.stop()
    status, page = to_json(fleet), render_page(fleet)
    states = {cluster["name"]: cluster["state"] for cluster in status["clusters"]}
    assert states == {
        _name(v): "key_expired" if _name(v) in logged else "healthy" for v in VERSIONS
    }
    assert status["summary"]["clusters_key_expired"] == len(logged)
    assert status["summary"]["status"] == "warning"
    assert page.count("KEY VERSION EXPIRED</span>") == len(logged)
    code, out, _ = await check(config)
    assert code == 1, out
    assert f"{len(logged)} clusters logged ekmip.akv.keyExpired" in out.splitlines()[0]


async def test_outage_is_critical_on_every_release(release_fleet):
    simulator, config = release_fleet
    async with aiohttp.ClientSession() as http:
        for version in VERSIONS:
            url = f"{simulator.control_url}/simulator/clusters/{_name(version)}"
            body = {"akvs": {"*": {"azure_reachability": {"reachable": False}}}}
            async with http.patch(url, data=json.dumps(body)) as response:
                assert response.status == 200, await response.text()
    status, _, _ = await _surfaces(config)
    expected = {_name(version): ["azure_unreachable"] * 2 for version in VERSIONS}
    assert _states(status) == expected
    code, out, _ = await check(config)
    assert code == 2, out
    assert out.startswith("AKV CRITICAL - ")


@pytest.mark.asyncio(loop_scope="module")
async def test_each_release_is_asked_for_the_fields_it_has(healthy_surfaces):
    """authentication_method exists from 9.10, enabled and configuration from 9.14 (NetApp's
    x-ntap-introduced); the simulator, as ONTAP, refuses a field its release lacks (262197)."""
    status, _, metrics = healthy_surfaces
    for cluster in status["clusters"]:
        release = tuple(int(part) for part in cluster["ontap"]["version"].split(".")[:2])
        for akv in cluster["akvs"]:
            assert (akv["authentication_method"] != "") == (release >= (9, 10)), cluster["name"]
            assert (akv["configuration"] != "") == (release >= (9, 14)), cluster["name"]
    # Not one request was refused: no 262197 and no second try with the 9.8 fields.
    requests = [line for line in metrics.splitlines() if "ontap_requests_total{" in line]
    assert requests and all('status="200"' in line for line in requests), requests


async def _patch_all(simulator, body: dict) -> None:
    async with aiohttp.ClientSession() as http:
        for version in VERSIONS:
            url = f"{simulator.control_url}/simulator/clusters/{_name(version)}"
            async with http.patch(url, data=json.dumps(body)) as response:
                assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("code", "state", "exit_code"),
    [
        ("65537549", "azure_unreachable", 2),
        ("65537552", "ekmip_unreachable", 2),
        ("65537551", "kek_unavailable", 1),
    ],
)
async def test_documented_get_error_is_an_akv_problem_not_a_cluster_down(
    release_fleet, code, state, exit_code
):
    """NetApp documents 65537549/51/52 as errors of the AKV GET itself: the cluster answered."""
    simulator, config = release_fleet
    await _patch_all(simulator, {"faults": {"akv_error_code": code}})
    status, page, metrics = await _surfaces(config)
    for cluster in status["clusters"]:
        assert cluster["up"] and cluster["state"] == state, cluster
        assert cluster["akv_error"]["code"] == code
        assert "one or more nodes" in cluster["akv_error"]["message"] or code == "65537552"
    assert status["summary"]["clusters_akv_error"] == len(VERSIONS)
    assert f"ONTAP answered the AKV query with an error (code {code})" in page
    errors = [line for line in metrics.splitlines() if line.startswith("ontap_akv_get_error_info{")]
    assert len(errors) == len(VERSIONS) and all(f'code="{code}"' in line for line in errors)
    assert 'akv_exporter_cluster_up{cluster="rel-9-8"} 1' in metrics
    assert 'reason="ontap_error"} 0' in metrics and 'reason="ontap_error"} 1' not in metrics
    code_seen, out, _ = await check(config)
    assert code_seen == exit_code, out
    assert f"{len(VERSIONS)} clusters answered an AKV error" in out.splitlines()[0]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_blast_radius_reads_right_on_every_release(healthy_fleet):
    """key-manager-configs from 9.10.1 (the interval), its health_monitor_policy from 9.15.1;
    encrypted volumes and EMS events on every release; no release costs an endpoint error."""
    _, config = healthy_fleet
    exporter = Exporter(config, process_metrics=False)
    try:
        await asyncio.wait_for(exporter.poll_all(), 60)  # the AKV poll, then the slow polls
        status, body = to_json(exporter.status()), exporter.scrape()
    finally:
        await exporter.stop()
    assert find(body, "akv_exporter_endpoint_poll_errors_total") == []
    for cluster in status["clusters"]:
        name, version = cluster["name"], cluster["ontap"]["version"]
        release = tuple(int(part) for part in version.split("."))
        policy = find(body, "ontap_key_manager_manage_volume_offline", cluster=name)
        interval = find(body, "ontap_key_manager_health_monitor_interval_seconds", cluster=name)
        assert bool(policy) == (release >= (9, 15, 1)), name
        assert bool(interval) == (release >= (9, 10, 1)), name
        volumes = find(body, "ontap_encrypted_volumes", cluster=name, svm="svm_data")
        assert volumes, name
        verdict = cluster["key_manager"]
        if release < (9, 10, 1):
            assert verdict["policy_note"] == f"unknown on ONTAP {version}", name
        elif release < (9, 15, 1):
            assert verdict["policy_note"] == f"unknown: ONTAP {version} does not report the policy"
        else:
            assert verdict["volume_offline_policy"] == "takes_volumes_offline", name
