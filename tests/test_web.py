"""The exporter's HTTP surfaces over real sockets, and `akv-exporter run` as a process."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import signal
import subprocess
import sys

import aiohttp
import bcrypt
import pytest

from akv_exporter.exporter import Exporter
from akv_exporter.web.app import serve
from tests.helpers.configs import CANARY, config_for
from tests.helpers.exporter import started
from tests.helpers.exposition import find
from tests.helpers.loopback import fetch, free_port, wait_until


async def test_metrics_health_and_reload_endpoints(fake_ontap, tmp_path):
    exporter, runner, base = await started(config_for(tmp_path, fake_ontap.url))
    await asyncio.wait_for(exporter.wait_ready(), 10)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as response:
            body = await response.read()
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert find(body, "akv_exporter_cluster_up", cluster="c0") == [1.0]
        assert b"process_cpu_seconds_total" in body
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with http.get(f"{base}/metrics", headers=headers) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.read()).endswith(b"# EOF\n")
        headers = {"Accept-Encoding": "gzip"}
        async with http.get(f"{base}/metrics", headers=headers, auto_decompress=False) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert b"akv_exporter_cluster_up" in gzip.decompress(await response.read())
        async with http.get(f"{base}/-/healthy") as response:
            assert response.status == 200
        async with http.get(f"{base}/-/ready") as response:
            assert response.status == 200
        async with http.post(f"{base}/-/reload") as response:
            assert response.status == 200
        exporter.config.path.write_text("clusters: 3\n")
        async with http.post(f"{base}/-/reload") as response:
            assert response.status == 500
            assert "clusters: must be a non-empty list" in await response.text()
    await runner.cleanup()
    await exporter.stop()


async def test_metrics_sent_in_parts_is_the_whole_body_byte_for_byte(make_ontap, tmp_path):
    """/metrics goes out as its parts (one per family); what arrives is the one body."""
    ontaps = [await make_ontap() for _ in range(3)]
    exporter = Exporter(config_for(tmp_path, *(o.url for o in ontaps)), process_metrics=False)
    await exporter.poll_all()  # and no schedule: the body stays what it is
    runner = await serve(exporter, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with aiohttp.ClientSession() as http:
        for accept in ("text/plain", "application/openmetrics-text; version=1.0.0"):
            openmetrics = accept != "text/plain"
            for gzipped in (False, True):
                headers = {"Accept": accept, "Accept-Encoding": "gzip" if gzipped else "identity"}
                url = f"{base}/metrics"
                async with http.get(url, headers=headers, auto_decompress=False) as response:
                    body = await response.read()
                    assert response.content_length == len(body)
                    async with http.head(url, headers=headers) as head:
                        assert head.status == 200
                if gzipped:
                    assert response.headers["Content-Encoding"] == "gzip"
                    body = gzip.decompress(body)  # every family a member: one valid stream
                assert body == exporter.scrape(openmetrics=openmetrics)
                assert len(find(body, "akv_exporter_cluster_up")) == 3
    await runner.cleanup()
    await exporter.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_basic_auth_protects_everything_but_health(fake_ontap, tmp_path):
    digest = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(4)).decode()
    config = config_for(tmp_path, fake_ontap.url)
    body = config.path.read_text() + f"web:\n  basic_auth_users:\n    prometheus: '{digest}'\n"
    config.path.write_text(body)
    from akv_exporter.config import load_config

    exporter, runner, base = await started(load_config(config.path))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        wrong = {"Authorization": basic("prometheus", "nope")}
        async with http.get(f"{base}/metrics", headers=wrong) as response:
            assert response.status == 401
        right = {"Authorization": basic("prometheus", "scrape-pass")}
        for _ in range(2):  # the second time comes from the verified cache
            async with http.get(f"{base}/metrics", headers=right) as response:
                assert response.status == 200
        async with http.get(f"{base}/-/healthy") as response:
            assert response.status == 200
    await runner.cleanup()
    await exporter.stop()


@pytest.mark.slow
async def test_run_serves_reloads_on_sighup_and_stops_on_sigterm(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    config = config_for(tmp_path, a.url)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akv_exporter.cli",
        "run",
        "--config",
        str(config.path),
        "--listen",
        f"127.0.0.1:{port}",
        "--log-format",
        "json",
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # In a thread: the fake clusters the exporter polls answer from this test's event loop.
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_until, lambda: fetch(f"{base}/-/ready"), "readiness", 30)
        config_for(tmp_path, a.url, b.url)
        process.send_signal(signal.SIGHUP)

        def new_cluster_up() -> bool:
            body = fetch(f"{base}/metrics")
            return find(body, "akv_exporter_cluster_up", cluster="c1") == [1.0]

        await asyncio.to_thread(wait_until, new_cluster_up, "SIGHUP to add the new cluster", 30)
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), 30)
        stderr = (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
    assert returncode == 0
    assert '"msg": "configuration reloaded: 2 cluster(s)"' in stderr
    assert CANARY not in stderr
    assert "Traceback" not in stderr


async def test_serves_https_with_the_configured_certificate(fake_ontap, tmp_path):
    import ssl

    import trustme

    from akv_exporter.config import load_config

    ca = trustme.CA()
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    config = config_for(tmp_path, fake_ontap.url)
    config.path.write_text(
        config.path.read_text() + f"web:\n  tls_cert_file: {cert}\n  tls_key_file: {key}\n"
    )
    exporter, runner, base = await started(load_config(config.path))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    url = base.replace("http://", "https://") + "/-/healthy"
    async with aiohttp.ClientSession() as http, http.get(url, ssl=client_context) as response:
        assert response.status == 200
    await runner.cleanup()
    await exporter.stop()


async def test_concurrent_reloads_apply_one_after_the_other(make_ontap, tmp_path):
    a, b = await make_ontap(), await make_ontap()
    exporter = Exporter(config_for(tmp_path, a.url), process_metrics=False)
    config_for(tmp_path, a.url, b.url)
    results = await asyncio.gather(*(exporter.reload() for _ in range(5)))
    assert results == [None] * 5
    assert sorted(exporter.snapshots()) == ["c0", "c1"]
    await exporter.stop()
