"""Chaos on loopback: what breaks around the exporter must not break the exporter.

Each case is bounded (seconds, a handful of clusters) so it runs in every `make test`: the
simulator killed and restarted, an unwritable or corrupt state file, a storm of reloads during
polls, a Retry-After longer than the interval, and the wall clock stepped an hour each way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from akv_exporter.config import load_config
from akv_exporter.exporter import Exporter
from akv_exporter.service import run_exporter
from tests.helpers.configs import config_for, write_config
from tests.helpers.exporter import Clock, exporter_with_clock
from tests.helpers.exposition import find
from tests.helpers.loopback import consecutive_free_ports, fetch, free_port, http_json, wait_until
from tests.helpers.ontap import akv_record
from tests.helpers.processes import stop_process

pytestmark = pytest.mark.slow  # processes, fleets, real time: not in make check

AKV_EXPORTER = str(Path(sys.executable).with_name("akv-exporter"))
HANG_GUARD = 60.0


# --- the simulator killed and restarted on the same ports ----------------------------------


def start_simulator_process(first_port: int, clusters: int, log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                *(AKV_EXPORTER, "simulate", "--clusters", str(clusters), "--plain-http"),
                *("--listen", f"127.0.0.1:{first_port}", "--seed", "5"),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )

    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"simulator exited:\n{log.read_text()[-2000:]}")
        for port in range(first_port, first_port + clusters):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    return False
        return True

    wait_until(listening, "the simulator to listen", HANG_GUARD, log)
    return process


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_killed_simulator_restarted_on_its_ports_finds_every_cluster_up_again(tmp_path):
    clusters, interval = 4, 2.0
    first = consecutive_free_ports(clusters)
    simulator_log = tmp_path / "simulator.log"
    simulator = start_simulator_process(first, clusters, simulator_log)
    addresses = "".join(
        f"  - address: http://127.0.0.1:{port}\n" for port in range(first, first + clusters)
    )
    config = write_config(
        tmp_path,
        f"state_file: {tmp_path / 'state.json'}\n"
        f"poll:\n  interval: {interval:g}s\n  timeout: 1s\n"
        "defaults:\n  username: admin\n  password: netapp1!\n"
        f"clusters:\n{addresses}",
    )
    port = free_port()
    exporter_log = tmp_path / "exporter.log"
    with exporter_log.open("wb") as output:
        exporter = subprocess.Popen(
            [AKV_EXPORTER, "run", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> list[float]:
        return find(fetch(f"{base}/metrics"), "akv_exporter_cluster_up")

    try:
        wait_until(lambda: up() == [1.0] * clusters, "every cluster up", HANG_GUARD, exporter_log)
        # Keep-alive connections settle: every cluster polled twice more.
        settled = time.time() + interval

        def polled_since_settled() -> bool:
            body = fetch(f"{base}/metrics")
            last = find(body, "akv_exporter_cluster_last_success_timestamp_seconds")
            return len(last) == clusters and min(last) >= settled

        wait_until(polled_since_settled, "two more polls of every cluster", HANG_GUARD)
        baseline = open_descriptors(exporter.pid)

        simulator.kill()
        simulator.wait()
        wait_until(lambda: up() == [0.0] * clusters, "every cluster down", HANG_GUARD)
        simulator = start_simulator_process(first, clusters, simulator_log)
        restarted = time.time()
        wait_until(lambda: up() == [1.0] * clusters, "every cluster up again", HANG_GUARD)

        # The first poll after the restart succeeds: no stale keep-alive connection costs a
        # cluster an extra failure (and a backed-off interval) once ONTAP is back.
        for cluster in http_json(f"{base}/api/v1/status")["clusters"]:
            after = [p for p in cluster["history"] if p["started"] > restarted]
            assert after and after[0]["ok"], (cluster["name"], after)
        wait_until(
            lambda: open_descriptors(exporter.pid) <= baseline,
            f"open descriptors back to their baseline of {baseline}",
            HANG_GUARD,
        )
    finally:
        stop_process(exporter)
        stop_process(simulator)
    assert "Traceback" not in exporter_log.read_text()


# --- the state file ------------------------------------------------------------------------


@contextlib.contextmanager
def unwritable(directory: Path):
    """Make ``directory`` refuse new files, for root too (which ignores permission bits)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if (
        chattr
        and subprocess.run([chattr, "+i", str(directory)], capture_output=True).returncode == 0
    ):
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(directory)], check=True)
        return
    # No immutable flag on this file system: a directory that cannot be written because it is
    # not a directory at all fails the same way (an OSError from the same call).
    shutil.rmtree(directory)
    directory.write_text("")
    try:
        yield
    finally:
        directory.unlink()
        directory.mkdir()


async def test_an_unwritable_state_directory_warns_once_counts_and_polling_goes_on(
    fake_ontap, tmp_path, caplog
):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    config = config_for(tmp_path, fake_ontap.url)
    config = replace(config, state_file=state_dir / "state.json")
    exporter = Exporter(config, process_metrics=False)
    with unwritable(state_dir), caplog.at_level(logging.WARNING):
        for reachable in (False, True, False, True, False):  # every change is a write
            fake_ontap.records = [akv_record(reachable=reachable)]
            await exporter.poll("c0")
        body = exporter.exposition.scrape()
    await exporter.stop()
    warnings = [r.getMessage() for r in caplog.records if "cannot write state file" in r.message]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert find(body, "akv_exporter_state_write_errors_total") == [5.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    # The streak is still known, in memory, while the file cannot hold it.
    assert len(find(body, "ontap_akv_azure_unreachable_since_timestamp_seconds")) == 1
    assert not [p for p in state_dir.parent.rglob(".state-*")]


async def _an_outage_polled(config, fake_ontap, caplog) -> tuple[list[str], bytes]:
    """Start an exporter on ``config``, poll c0 with its vault unreachable, stop; return the
    warnings about the state file and the scrape."""
    with caplog.at_level(logging.WARNING):
        exporter = Exporter(config, process_metrics=False)
        fake_ontap.records = [akv_record(reachable=False)]
        await exporter.poll("c0")
    body = exporter.exposition.scrape()
    await exporter.stop()
    return [r.getMessage() for r in caplog.records if "state file" in r.message], body


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "azure_unreachable_since": {"c0": {"u1": 17000',
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
        b'{"version": 1, "azure_unreachable_since": {"c0": 5}}',
        b'{"version": 1, "azure_unreachable_since": {"c0": {"u1": "soon"}}}',
    ],
    ids=["truncated", "empty", "binary", "deep", "wrong-shape", "wrong-type"],
)
async def test_a_corrupt_state_file_starts_clean_with_a_one_line_warning(
    fake_ontap, tmp_path, caplog, content
):
    config = config_for(tmp_path, fake_ontap.url)
    config.state_file.write_bytes(content)
    (warning,), body = await _an_outage_polled(config, fake_ontap, caplog)
    assert "starting afresh" in warning and "\n" not in warning
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    written = json.loads(config.state_file.read_text())  # rewritten whole by the new streak
    assert list(written["azure_unreachable_since"]) == ["c0"]


async def test_a_state_file_the_os_will_not_look_at_is_a_warning_not_a_traceback(
    fake_ontap, tmp_path, caplog
):
    # The OS refuses even to say whether the file exists: a directory the exporter's user cannot
    # enter (EACCES) does this; a name too long for the file system (ENAMETOOLONG) does it for
    # root as well, so the test runs as any user.
    config = config_for(tmp_path, fake_ontap.url)
    config = replace(config, state_file=tmp_path / ("x" * 300) / "state.json")
    (read, written), body = await _an_outage_polled(config, fake_ontap, caplog)
    assert "is unreadable" in read and "starting afresh" in read and "\n" not in read
    assert "cannot write state file" in written and "\n" not in written
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    assert len(find(body, "ontap_akv_azure_unreachable_since_timestamp_seconds")) == 1


# --- fifty reloads during polls ----------------------------------------------------------------


async def test_fifty_reloads_by_sighup_and_http_during_polls_lose_nothing(make_ontap, tmp_path):
    ontaps = [await make_ontap() for _ in range(4)]

    async def slow(request):  # polls are in flight while the reloads land
        await asyncio.sleep(0.05)
        return web.json_response({"records": [akv_record()], "num_records": 1})

    for ontap in ontaps:
        ontap.handler = slow
    variants = []
    for index in range(2):
        config = config_for(tmp_path, *(o.url for o in ontaps), poll="  min_interval: 0s\n")
        text = config.path.read_text().replace("interval: 60s", "interval: 1s")
        text = text.replace("timeout: 2s", "timeout: 1s")
        if index:
            text = text.replace("  - name: c1\n", "  - name: c1\n    labels: {variant: b}\n")
        variants.append(text)
    live = tmp_path / "live.yml"
    live.write_text(variants[0])
    config = load_config(live)
    keys = [c.key for c in config.clusters]
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    port = free_port()
    server = asyncio.create_task(
        run_exporter(config, "127.0.0.1", port, on_ready=lambda e, r: ready.set_result(e))
    )
    exporter = await asyncio.wait_for(ready, HANG_GUARD)
    try:
        await asyncio.wait_for(exporter.wait_ready(), HANG_GUARD)
        before = exporter.snapshots()
        async with aiohttp.ClientSession() as http:
            for reload in range(50):
                live.write_text(variants[reload % 2])
                if reload % 2 == 0:
                    os.kill(os.getpid(), signal.SIGHUP)
                else:  # the last one too: reloads queue in order, so all are done after it
                    async with http.post(f"http://127.0.0.1:{port}/-/reload") as response:
                        assert response.status == 200, await response.text()
                await asyncio.sleep(0.04)
        after = exporter.snapshots()
        schedules = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(server, HANG_GUARD)
    assert list(after) == keys
    for key in keys:
        assert schedules.count(f"poll {key}") == 1, (key, schedules)
        # Nothing lost: counters and history only ever grow across the reloads.
        assert sum(after[key].requests.values()) >= sum(before[key].requests.values())
        assert len(after[key].history) >= len(before[key].history)
        assert after[key].last is not None
    assert exporter.config.path == live and exporter.last_reload_error is None


# --- Retry-After longer than the interval ------------------------------------------------------


async def test_a_retry_after_longer_than_the_interval_is_honoured_without_a_tight_loop(
    fake_ontap, tmp_path
):
    asked: list[float] = []

    async def busy(request):
        asked.append(asyncio.get_running_loop().time())
        return web.json_response(
            {"error": {"code": "6", "message": "too many requests"}},
            status=429,
            headers={"Retry-After": "3"},
        )

    fake_ontap.handler = busy
    config = config_for(tmp_path, fake_ontap.url, poll="  min_interval: 0s\n")
    config = replace(config, poll=replace(config.poll, interval=1.0, timeout=1.0, max_backoff=10.0))
    exporter = Exporter(config, process_metrics=False)
    await exporter.start()
    try:
        while len(asked) < 3:
            async with asyncio.timeout(HANG_GUARD):
                await asyncio.sleep(0.1)
        # A probe inside the Retry-After window gets the last answer, not a new request.
        refreshed = await exporter.refresh("c0")
        requests = len(asked)
    finally:
        await exporter.stop()
    assert refreshed.cached and requests == 3
    gaps = [later - earlier for earlier, later in pairwise(asked)]
    assert min(gaps) >= 2.9, gaps  # Retry-After 3s honoured though the interval is 1s
    (snapshot,) = exporter.snapshots().values()
    assert snapshot.last.reason == "rate_limited" and "Retry-After 3s" in snapshot.last.error


# --- the wall clock stepped ------------------------------------------------------------------


async def test_a_wall_clock_step_of_an_hour_either_way_leaves_the_schedule_and_streaks_alone(
    fake_ontap, tmp_path
):
    asked: list[float] = []

    async def answer(request):
        asked.append(asyncio.get_running_loop().time())
        return web.json_response({"records": [akv_record(reachable=False)], "num_records": 1})

    fake_ontap.handler = answer
    clock = Clock()
    config = config_for(tmp_path, fake_ontap.url, poll="  min_interval: 0s\n")
    config = replace(config, poll=replace(config.poll, interval=1.0, timeout=1.0))
    exporter = exporter_with_clock(config, clock)
    await exporter.start()
    streak_start = None
    try:
        for step in (0, 3600, -3600, -3600, 3600):
            clock.now += step
            count = len(asked)
            async with asyncio.timeout(HANG_GUARD):
                while len(asked) < count + 2:  # the schedule goes on at its pace
                    await asyncio.sleep(0.05)
            (snapshot,) = exporter.snapshots().values()
            (since,) = snapshot.unreachable_since.values()
            streak_start = streak_start or since
            assert since == streak_start  # the streak neither restarts nor moves
            assert snapshot.up and snapshot.key_managers  # no step made live series stale
    finally:
        await exporter.stop()
    gaps = [later - earlier for earlier, later in pairwise(asked)]
    # Sleeps run on the monotonic clock: no step made the schedule rush (and the hang guards
    # above would have caught a schedule stalled for the hour).
    assert min(gaps) > 0.5, gaps
