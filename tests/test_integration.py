"""The exporter polling the real simulator over HTTPS: what users see from `run` and `demo`."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys

import pytest
from ontap_simulator import SimulatorOptions, start_simulator

from akv_exporter.demo import demo_config
from akv_exporter.exporter import Exporter
from tests.helpers.exposition import find
from tests.helpers.loopback import fetch, free_port, wait_until

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

# A simulator fault, and the reason the exporter must give for it.
FAULTS = {
    "auth_reject": ({"auth_reject": True}, "auth"),
    "rate_limited": ({"http_status": 429, "retry_after_s": 120}, "rate_limited"),
    "server_error": ({"http_status": 500}, "ontap_error"),
    "malformed": ({"malformed_body": True}, "invalid_response"),
    "hang": ({"hang": True}, "timeout"),
    "dropped": ({"drop_connection": True}, "connect"),
}


@pytest.fixture
async def simulated(tmp_path):
    simulator = await start_simulator(
        SimulatorOptions(clusters=len(FAULTS) + 2, seed=21, control_port=0, out=io.StringIO())
    )
    config = demo_config(simulator, "127.0.0.1:0", 30.0, tmp_path / "state.json")
    exporter = Exporter(config, process_metrics=False)
    yield simulator, exporter
    await exporter.stop()
    await simulator.stop()


async def control(simulator, method: str, path: str, body=None):
    import aiohttp

    async with aiohttp.ClientSession() as http:
        url = f"{simulator.control_url}/simulator/clusters{path}"
        async with http.request(method, url, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def test_every_node_of_every_active_configuration_is_exported_with_codes(simulated):
    simulator, exporter = simulated
    fleet = await control(simulator, "GET", "")
    target = fleet[0]
    node = target["nodes"][0]
    await control(
        simulator,
        "PATCH",
        f"/{target['name']}",
        {"akvs": {"*": {"ekmip_reachability": {node: {"reachable": False}}}}},
    )
    await exporter.poll_all()
    body = exporter.scrape()
    down = find(body, "ontap_akv_ekmip_reachable", cluster=target["name"], node=node)
    assert down and set(down) == {0.0}
    assert find(body, "ontap_akv_ekmip_reachable", cluster=target["name"], code="65537552")
    for cluster in fleet[1:]:
        reachable = find(body, "ontap_akv_ekmip_reachable", cluster=cluster["name"])
        active = [a for a in cluster["akvs"] if a.get("enabled", True)]
        assert len(reachable) == len(active) * len(cluster["nodes"]), cluster["name"]
    assert len(find(body, "akv_exporter_cluster_up")) == len(fleet)


async def test_broken_clusters_carry_their_reason_while_healthy_neighbours_stay_up(simulated):
    simulator, exporter = simulated
    fleet = await control(simulator, "GET", "")
    broken = dict(zip(FAULTS, fleet, strict=False))
    for fault, cluster in broken.items():
        await control(simulator, "PATCH", f"/{cluster['name']}", {"faults": FAULTS[fault][0]})
    snapshots = await asyncio.wait_for(exporter.poll_all(), 60)
    by_name = {s.name: s for s in snapshots.values()}
    for fault, cluster in broken.items():
        snapshot = by_name[cluster["name"]]
        assert not snapshot.up, fault
        assert snapshot.last.reason == FAULTS[fault][1], (fault, snapshot.last.error)
        assert snapshot.last.error.startswith("/api/"), snapshot.last.error
    healthy = [by_name[c["name"]] for c in fleet[len(FAULTS) :]]
    assert healthy and all(s.up for s in healthy)
    body = exporter.scrape()
    for fault, cluster in broken.items():
        reason = FAULTS[fault][1]
        errors = find(
            body, "akv_exporter_cluster_poll_errors_total", cluster=cluster["name"], reason=reason
        )
        assert errors == [1.0], fault


def test_demo_starts_serves_metrics_and_stops_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "akv_exporter.cli",
            "demo",
            "--clusters",
            "3",
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            "2s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        def scraped() -> bytes:
            body = fetch(f"http://127.0.0.1:{port}/metrics")
            return body if len(find(body, "akv_exporter_cluster_up")) == 3 else b""

        wait_until(scraped, "the demo's /metrics with its three clusters", 60)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.decode()
    assert process.returncode == 0, text
    assert f"status page:       http://127.0.0.1:{port}/" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--clusters", "0"], "--clusters: must be at least 1, got 0"),
        (["--clusters", "many"], "--clusters: 'many' is not a whole number"),
        (["--interval", "soon"], "--interval: 'soon' is not a duration"),
        (["--interval", "0s"], "--interval: must be more than 0"),
    ],
)
def test_demo_refuses_bad_flags_in_one_line_before_starting_anything(flags, words):
    result = subprocess.run(
        [sys.executable, "-m", "akv_exporter.cli", "demo", "--listen", "127.0.0.1:0", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert "ONTAP simulator" not in result.stdout  # refused before the fleet started


def test_demo_on_a_busy_port_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listen = f"127.0.0.1:{port}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "akv_exporter.cli",
                "demo",
                "--clusters",
                "1",
                "--listen",
                listen,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"demo: cannot listen on {listen}: Address already in use"
    assert result.stdout == ""  # refused before the simulated fleet started and printed its table
