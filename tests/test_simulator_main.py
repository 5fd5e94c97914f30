"""The simulator's command line, `python -m ontap_simulator` and `akv-exporter simulate`:
prints where it listens, stops on SIGTERM, and refuses a bad scenario in one line."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.simulator import basic_auth

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

# The two ways in: one entry (ontap_simulator.cli) behind both.
ENTRIES = {
    "python -m ontap_simulator": ("-m", "ontap_simulator"),
    "akv-exporter simulate": ("-m", "akv_exporter.cli", "simulate"),
}


async def _start(*args: str, entry: str = "python -m ontap_simulator"):
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *ENTRIES[entry],
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_run_prints_urls_serves_and_stops_on_sigterm() -> None:
    process = await _start("--clusters", "2", "--control", "127.0.0.1:0")
    assert process.stdout is not None
    lines = []
    try:
        while len(lines) < 5:  # headline, CA, control, two clusters
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            assert line, "the simulator exited early"
            lines.append(line.decode().rstrip())
        ca_file = Path(lines[1].removeprefix("CA certificate: "))
        control = lines[2].removeprefix("control API: ")
        cluster_url = re.search(r"https://127\.0\.0\.1:\d+", lines[3])
        assert ca_file.is_file() and control.startswith("http://127.0.0.1:") and cluster_url
        trust = ssl.create_default_context(cafile=str(ca_file))
        async with aiohttp.ClientSession() as session:
            async with session.get(control) as response:
                assert len(await response.json()) == 2
            async with session.get(
                cluster_url.group() + "/api/cluster", headers=basic_auth(), ssl=trust
            ) as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    rest = (await process.stdout.read()).decode()
    assert code == 0 and "stopping" in rest
    assert not ca_file.exists(), "stop() removes the certificates"


@pytest.mark.parametrize("entry", ENTRIES)
async def test_bad_scenario_exits_2_with_one_line(tmp_path: Path, entry: str) -> None:
    scenario = tmp_path / "bad.yml"
    scenario.write_text("clusters: [{name: a, version: 7}]\n")
    process = await _start("--scenario", str(scenario), entry=entry)
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    [line] = stderr.decode().splitlines()
    assert str(scenario) in line and "clusters[0].version" in line


@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_taken_port_exits_2_with_one_line(entry: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await _start("--clusters", "1", "--listen", f"127.0.0.1:{port}", entry=entry)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    [line] = stderr.decode().splitlines()
    assert line.startswith("simulator: ") and str(port) in line


@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_clock_factor_not_above_zero_exits_2_with_one_line(entry: str) -> None:
    process = await _start("--clusters", "1", "--clock-factor", "0", entry=entry)
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert stderr.decode().splitlines() == ["simulator: clock factor must be > 0, got 0.0"]
