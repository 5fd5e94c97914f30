"""GET /probe?target=NAME over real sockets: one cluster's series, polled now, within the budget."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from akv_exporter.web.probe import probe_timeout
from tests.helpers import akv_record, config_for, find, samples, started


def test_probe_timeout_is_the_scrape_timeout_less_a_margin_capped_by_poll_timeout():
    assert probe_timeout("10", 30.0) == 9.5
    assert probe_timeout("100", 30.0) == 30.0
    assert probe_timeout("0.3", 30.0) == 0.1
    assert probe_timeout(None, 30.0) == 30.0
    assert probe_timeout("soon", 30.0) == 30.0
    assert probe_timeout("nan", 30.0) == 30.0


async def test_probe_returns_only_the_target_cluster_freshly_polled(make_ontap, tmp_path):
    target, other = await make_ontap(), await make_ontap()
    exporter, runner, base = await started(config_for(tmp_path, target.url, other.url))
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
    assert len(find(body, "akv_exporter_probe_duration_seconds")) == 1
    assert find(body, "ontap_akv_azure_reachable", cluster="c0", code="65537549") == [0.0]
    assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
    clusters = {dict(labels).get("cluster") for (_, labels) in samples(body)}
    assert clusters == {"c0", None}  # None: the two probe_* samples
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
