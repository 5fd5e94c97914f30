"""What lets one exporter poll thousands of clusters: shared TLS contexts, a first poll that
asks its two questions at once, and an open-file limit lifted at start. (Speed and memory
themselves are measured by `make bench`, never asserted here.)"""

from __future__ import annotations

import asyncio
import gzip
import resource
import shutil

import pytest
from aiohttp import web
from ontap_simulator.tls import write_certificates

from akv_exporter.config import TlsConfig
from akv_exporter.exporter import Exporter
from akv_exporter.limits import raise_open_file_limit
from akv_exporter.metrics.exposition import Exposition
from akv_exporter.ontap import key_manager_reader, key_stores
from akv_exporter.ontap.akv import AKV_PATH
from akv_exporter.ontap.cluster import CLUSTER_PATH
from akv_exporter.ontap.key_manager_endpoint import parse_records
from akv_exporter.ontap.key_manager_registry import ENDPOINTS
from akv_exporter.ontap.tls import tls_context
from tests.helpers.configs import config_for
from tests.helpers.fake_ontap import FakeOntap
from tests.helpers.ontap import akv_record

GUARD = 10.0  # a hang guard, never a speed limit


def test_clusters_with_the_same_tls_settings_share_one_context(tmp_path):
    files = write_certificates(tmp_path)
    first = tls_context(TlsConfig(ca_file=files.ca_file))
    assert tls_context(TlsConfig(ca_file=files.ca_file)) is first
    assert tls_context(TlsConfig(ca_file=files.ca_file, verify=False)) is not first
    assert tls_context(TlsConfig()) is not first  # the system's CA bundle


def test_a_replaced_ca_file_is_read_afresh(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    files = write_certificates(tmp_path / "old")
    before = tls_context(TlsConfig(ca_file=files.ca_file))
    shutil.copy(write_certificates(tmp_path / "new").ca_file, files.ca_file)
    after = tls_context(TlsConfig(ca_file=files.ca_file))
    assert after is not before
    assert after.get_ca_certs() != before.get_ca_certs()


async def test_a_fleet_holds_one_context_per_tls_setting(tmp_path):
    files = write_certificates(tmp_path)
    urls = [f"https://127.0.0.1:{port}" for port in range(20001, 20201)]
    extra = f"  tls:\n    ca_file: {files.ca_file}\n"
    exporter = Exporter(config_for(tmp_path, *urls, extra=extra), process_metrics=False)
    clients = [exporter.poller._clusters[f"c{i}"].client for i in range(len(urls))]
    contexts = {id(client._ssl()) for client in clients}
    assert len(contexts) == 1
    await exporter.stop()


async def ontap_answering_only_together(arrived: dict[str, asyncio.Event], hang_identity=False):
    """An ONTAP whose two endpoints answer only once both have been asked: a poller asking one
    after the other gets HTTP 500 after the hang guard instead of an answer."""

    async def wait_for_both(path: str) -> bool:
        arrived[path].set()
        try:
            async with asyncio.timeout(GUARD):
                await asyncio.gather(*(event.wait() for event in arrived.values()))
        except TimeoutError:
            return False
        return True

    async def cluster(_request: web.Request) -> web.Response:
        if not await wait_for_both(CLUSTER_PATH):
            return web.Response(status=500)
        if hang_identity:
            await asyncio.Event().wait()
        return web.json_response({"name": "c1", "uuid": "u", "version": {"full": "9.15.1"}})

    async def akvs(_request: web.Request) -> web.Response:
        if not await wait_for_both(AKV_PATH):
            return web.Response(status=500)
        return web.json_response({"records": [akv_record()], "num_records": 1})

    app = web.Application()
    app.router.add_get(CLUSTER_PATH, cluster)
    app.router.add_get(AKV_PATH, akvs)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_the_first_poll_asks_the_identity_and_the_akvs_at_once(tmp_path):
    arrived = {CLUSTER_PATH: asyncio.Event(), AKV_PATH: asyncio.Event()}
    runner = await ontap_answering_only_together(arrived)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    exporter = Exporter(config_for(tmp_path, url), process_metrics=False)
    snapshot = await exporter.poller.poll("c0", timeout=GUARD * 2)
    assert snapshot.up, snapshot.last.error
    assert snapshot.identity is not None and snapshot.identity.name == "c1"
    assert len(snapshot.key_managers) == 1
    await exporter.stop()
    await runner.cleanup()


async def test_a_timeout_names_the_request_that_never_answered(tmp_path):
    arrived = {CLUSTER_PATH: asyncio.Event(), AKV_PATH: asyncio.Event()}
    runner = await ontap_answering_only_together(arrived, hang_identity=True)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    exporter = Exporter(config_for(tmp_path, url), process_metrics=False)
    snapshot = await exporter.poller.poll("c0", timeout=1.0)
    assert not snapshot.up
    assert snapshot.last.reason == "timeout"
    assert snapshot.last.error == f"{CLUSTER_PATH}: no answer within 1s"
    await exporter.stop()
    await runner.cleanup()


def test_the_open_file_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.fail("this test needs a finite hard open-file limit to compare with")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        assert raise_open_file_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, hard), hard))


async def test_the_exporter_raises_the_open_file_limit_when_it_starts(fake_ontap, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    try:
        await exporter.start()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        await exporter.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, hard), hard))


async def test_after_the_first_poll_a_cluster_holds_one_connection_of_ours(tmp_path):
    runner = web.AppRunner(FakeOntap().app(), shutdown_timeout=0.2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    exporter = Exporter(config_for(tmp_path, url), process_metrics=False)
    assert (await exporter.poller.poll("c0")).up
    server = runner.server
    async with asyncio.timeout(GUARD):
        while len(server.connections) != 1:  # the identity's connection closes after its answer
            await asyncio.sleep(0.01)
    assert (await exporter.poller.poll("c0")).up
    assert len(server.connections) == 1
    await exporter.stop()
    await runner.cleanup()


async def test_an_unchanged_answer_is_not_parsed_again(fake_ontap, tmp_path, monkeypatch):
    parsed = []

    def counting(endpoint, records, *args):
        parsed.append(records)
        return parse_records(endpoint, records, *args)

    monkeypatch.setattr(key_manager_reader, "parse_records", counting)
    exporter = Exporter(config_for(tmp_path, fake_ontap.url), process_metrics=False)
    first = await exporter.poller.poll("c0")
    second = await exporter.poller.poll("c0")
    assert len(parsed) == 1
    assert all(a is b for a, b in zip(second.key_managers, first.key_managers, strict=True))
    fake_ontap.records = [akv_record(ekmip_down=("n2",))]
    third = await exporter.poller.poll("c0")
    assert len(parsed) == 2
    assert [node.ok for node in third.key_managers[0].ekmip] == [True, False]
    await exporter.stop()


async def test_the_incremental_exposition_is_what_a_fresh_one_renders(make_ontap, tmp_path):
    ontaps = [await make_ontap() for _ in range(3)]
    exporter = Exporter(config_for(tmp_path, *(o.url for o in ontaps)), process_metrics=False)
    await exporter.poll_all()
    exposition = exporter.exposition
    before = {fmt: exposition.body(openmetrics=fmt) for fmt in (False, True)}
    ontaps[1].records = [akv_record(ekmip_down=("n2",))]  # one cluster's AKV answer changes
    await exporter.poll("c1")
    await exporter.poll("c2")  # another's only poll time, duration and requests change

    fresh = Exposition(process_metrics=False)
    fresh.set_reload(successful=True, timestamp=exporter.started)
    for key, snapshot in exporter.snapshots().items():
        fresh.update(key, snapshot)
    for fmt in (False, True):
        body = exposition.body(openmetrics=fmt)
        assert body != before[fmt]
        assert body == fresh.body(openmetrics=fmt)
        assert gzip.decompress(exposition.body(openmetrics=fmt, gzipped=True)) == body
    await exporter.stop()


async def test_slow_polls_wait_behind_every_clusters_first_poll(tmp_path):
    """With one poll at a time, both clusters' AKV polls come before either's slow polls."""
    asked: list[tuple[int, str]] = []
    runners = []
    for index in range(2):

        async def answer(request: web.Request, index=index) -> web.Response:
            asked.append((index, request.path))
            if request.path == CLUSTER_PATH:
                version = {"full": "NetApp Release 9.15.1", "generation": 9, "major": 15}
                return web.json_response({"name": f"n{index}", "uuid": "u", "version": version})
            if request.path == AKV_PATH:
                return web.json_response({"records": [akv_record()], "num_records": 1})
            return web.json_response({"error": {"code": "4", "message": "not here"}}, status=404)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", answer)
        runner = web.AppRunner(app, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
    urls = [f"http://127.0.0.1:{runner.addresses[0][1]}" for runner in runners]
    exporter = Exporter(
        config_for(tmp_path, *urls, poll="  concurrency: 1\n"), process_metrics=False
    )
    await exporter.poll_all()
    # A first poll: /api/cluster and the key managers (AKV, key stores, and, as these answer no
    # key stores, every key-manager endpoint of the release); the slow polls are the others.
    first = {CLUSTER_PATH, *(e.path for e in ENDPOINTS), key_stores.PATH}
    slow = [i for i, (_, path) in enumerate(asked) if path not in first]
    polls = [i for i, (_, path) in enumerate(asked) if path in first]
    assert slow and sum(path == AKV_PATH for _, path in asked) == 2, asked
    assert max(polls) < min(slow), asked
    await exporter.stop()
    for runner in runners:
        await runner.cleanup()
