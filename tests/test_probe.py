"""GET /probe?target=NAME over real sockets: one cluster's series, polled now, within the budget."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from itertools import pairwise

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from akv_exporter.web.probe import probe_timeout
from tests.helpers.configs import config_for
from tests.helpers.exporter import started
from tests.helpers.exposition import find, samples
from tests.helpers.ontap import akv_record


def test_probe_timeout_is_the_scrape_timeout_less_a_margin_capped_by_poll_timeout():
    assert probe_timeout("10", 30.0) == 9.5
    assert probe_timeout("100", 30.0) == 30.0
    assert probe_timeout("0.3", 30.0) == 0.1
    assert probe_timeout(None, 30.0) == 30.0
    assert probe_timeout("soon", 30.0) == 30.0
    assert probe_timeout("nan", 30.0) == 30.0


async def test_probe_returns_only_the_target_cluster_freshly_polled(make_ontap, tmp_path):
    target, other = await make_ontap(), await make_ontap()
    # min_interval 0: this probe must poll although the background poll has just ended.
    config = config_for(tmp_path, target.url, other.url, poll="  min_interval: 0s\n")
    exporter, runner, base = await started(config)
    await asyncio.wait_for(exporter.wait_ready(), 10)
    target.records = [akv_record(reachable=False)]  # changed after the background poll
    asked_before = len(target.requests)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/probe", params={"target": "c0"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = await response.read()
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with http.get(f"{base}/probe?target=c0", headers=headers) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            openmetrics = (await response.read()).decode()
    await runner.cleanup()
    await exporter.stop()
    assert len(target.requests) > asked_before
    assert find(body, "akv_exporter_probe_success") == [1.0]
    assert find(body, "akv_exporter_probe_cached") == [0.0]
    assert len(find(body, "akv_exporter_probe_duration_seconds")) == 1
    assert find(body, "ontap_akv_azure_reachable", cluster="c0", code="65537549") == [0.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    clusters = {dict(labels).get("cluster") for (_, labels) in samples(body)}
    assert clusters == {"c0", None}  # None: the three probe_* samples
    assert openmetrics.endswith("# EOF\n")
    names = {family.name for family in text_string_to_metric_families(openmetrics)}
    assert {"akv_exporter_probe_success", "ontap_akv", "ontap_akv_azure_reachable"} <= names


async def test_probe_of_an_unknown_or_missing_target_is_a_one_line_400(fake_ontap, tmp_path):
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/probe", params={"target": "x"}) as response:
            assert response.status == 400
            unknown = await response.text()
        async with http.get(f"{base}/probe", params={"target": 'a"\nb'}) as response:
            assert response.status == 400
            quoted = await response.text()
        async with http.get(f"{base}/probe") as response:
            assert response.status == 400
            missing = await response.text()
    await runner.cleanup()
    await exporter.stop()
    assert unknown == 'unknown target "x": not a configured cluster name or address\n'
    assert quoted == 'unknown target "a\\"\\nb": not a configured cluster name or address\n'
    assert missing.count("\n") == 1 and missing.startswith("missing target")


async def test_probe_of_a_hung_cluster_answers_within_the_scrape_timeout(make_ontap, tmp_path):
    hung = await make_ontap()
    released = asyncio.Event()

    async def hang(request):
        await released.wait()
        return web.json_response({"records": []})

    hung.handler = hang
    exporter, runner, base = await started(config_for(tmp_path, hung.url))
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}
    try:
        async with aiohttp.ClientSession() as http:
            request = http.get(f"{base}/probe?target=c0", headers=headers)
            async with await asyncio.wait_for(request, 10) as response:
                assert response.status == 200
                body = await response.read()
    finally:
        released.set()
        await runner.cleanup()
        await exporter.stop()
    assert find(body, "akv_exporter_probe_success") == [0.0]
    # Either the probe's own poll timed out (cluster_up 0) or it gave up waiting for the
    # background poll already hanging on the same cluster (no cluster series at all).
    assert find(body, "akv_exporter_cluster_up", cluster="c0") in ([0.0], [])
    assert len(find(body, "akv_exporter_probe_duration_seconds")) == 1


def akv_requests(ontap) -> int:
    return len(ontap.asked("/api/security/azure-key-vaults"))


@pytest.mark.slow
async def test_a_probe_flood_reaches_ontap_once_per_min_interval(fake_ontap, tmp_path):
    async def slow(request):  # slow enough that the 40 probes overlap one in-flight poll
        await asyncio.sleep(0.3)
        return web.json_response({"records": [akv_record()], "num_records": 1})

    fake_ontap.handler = slow
    config = config_for(tmp_path, fake_ontap.url, poll="  min_interval: 1s\n")
    exporter, runner, base = await started(config)
    try:
        await asyncio.wait_for(exporter.wait_ready(), 10)
        await asyncio.sleep(1.1)  # the background poll is now older than min_interval
        before = akv_requests(fake_ontap)
        async with aiohttp.ClientSession() as http:

            async def probe() -> bytes:
                async with http.get(f"{base}/probe?target=c0") as response:
                    assert response.status == 200
                    return await response.read()

            flood = await asyncio.gather(*(probe() for _ in range(40)))
            assert akv_requests(fake_ontap) == before + 1  # forty probes, one poll
            again = await probe()  # within min_interval of that poll: its result, said so
            assert akv_requests(fake_ontap) == before + 1
            await asyncio.sleep(1.1)
            later = await probe()  # min_interval has passed: a poll of its own
            assert akv_requests(fake_ontap) == before + 2
    finally:
        await runner.cleanup()
        await exporter.stop()
    for body in flood:
        assert find(body, "akv_exporter_probe_success") == [1.0]
        assert find(body, "akv_exporter_probe_cached") == [0.0]
        assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    assert find(again, "akv_exporter_probe_cached") == [1.0]
    assert find(again, "akv_exporter_probe_success") == [1.0]
    assert find(again, "ontap_akv_azure_reachable", cluster="c0", code="0") == [1.0]
    assert find(later, "akv_exporter_probe_cached") == [0.0]


@pytest.mark.slow
async def test_the_schedule_and_probes_together_poll_at_most_once_per_min_interval(
    fake_ontap, tmp_path
):
    asked: list[float] = []

    async def timed(request):
        asked.append(asyncio.get_running_loop().time())
        return web.json_response({"records": [akv_record()], "num_records": 1})

    fake_ontap.handler = timed
    config = config_for(tmp_path, fake_ontap.url, poll="  min_interval: 1s\n")
    config = replace(config, poll=replace(config.poll, interval=1.0))
    exporter, runner, base = await started(config)
    stop = asyncio.Event()
    try:

        async def prober(http: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                async with http.get(f"{base}/probe?target=c0") as response:
                    assert response.status == 200
                    await response.read()
                await asyncio.sleep(0.05)

        async with aiohttp.ClientSession() as http:
            probers = [asyncio.create_task(prober(http)) for _ in range(5)]
            await asyncio.sleep(4.5)
            stop.set()
            await asyncio.gather(*probers)
    finally:
        await runner.cleanup()
        await exporter.stop()
    gaps = [later - earlier for earlier, later in pairwise(asked)]
    assert len(asked) >= 3, asked  # the schedule and the probes kept polling
    # Each poll begins at least min_interval after the previous one ended, which is a little
    # after it began: a gap below min_interval less the poll's own duration is a flood.
    assert min(gaps) > 0.9, gaps
