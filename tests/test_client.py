"""The ONTAP client against real loopback servers: pagination, errors, retries, limits, TLS."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme
from aiohttp import web

from akv_exporter.config import SecretSource, TlsConfig
from akv_exporter.ontap import akv
from akv_exporter.ontap.akv import AKV_PATH
from akv_exporter.ontap.client import OntapClient, OntapError
from tests.helpers.configs import cluster_config
from tests.helpers.ontap import akv_record


def deadline(seconds: float = 10.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def akv_records(fake_ontap, **kwargs) -> list:
    client = OntapClient(cluster_config(fake_ontap.url), **kwargs)
    try:
        return await client.key_manager_records(akv.ENDPOINT, deadline())
    finally:
        await client.close()


async def failure(fake_ontap, seconds: float = 10.0, **config) -> OntapError:
    client = OntapClient(cluster_config(fake_ontap.url, **config))
    try:
        with pytest.raises(OntapError) as caught:
            await client.key_manager_records(akv.ENDPOINT, deadline(seconds))
        return caught.value
    finally:
        await client.close()


async def test_asks_for_the_advanced_fields_and_identifies_itself(fake_ontap):
    await akv_records(fake_ontap)
    request = fake_ontap.requests[-1]
    fields = request.query["fields"].split(",")
    assert {"state", "azure_reachability", "ekmip_reachability", "uuid", "svm"} <= set(fields)
    assert request.query["max_records"] and request.query["return_timeout"]
    assert request.headers["User-Agent"].startswith("akv-exporter/")
    assert request.headers["X-Dot-Client-App"].startswith("akv-exporter/")
    assert request.headers["Authorization"].startswith("Basic ")


async def test_follows_next_links_through_an_empty_page_that_carries_one(fake_ontap):
    pages = {
        None: ([akv_record("u1")], "/api/security/azure-key-vaults?start=2&fields=x"),
        "2": ([], "/api/security/azure-key-vaults?start=3&fields=x"),  # empty page, next link
        "3": ([akv_record("u3")], None),
    }

    async def paged(request):
        records, nxt = pages[request.query.get("start")]
        body = {"records": records, "num_records": len(records), "_links": {}}
        if nxt:
            body["_links"]["next"] = {"href": nxt}
        return web.json_response(body)

    fake_ontap.handler = paged
    records = await akv_records(fake_ontap)
    assert [r["uuid"] for r in records] == ["u1", "u3"]
    assert [r.query.get("start") for r in fake_ontap.requests] == [None, "2", "3"]


async def test_stops_on_a_repeated_next_link(fake_ontap):
    async def loop(request):
        return web.json_response(
            {"records": [akv_record()], "_links": {"next": {"href": f"{AKV_PATH}?start=1"}}}
        )

    fake_ontap.handler = loop
    records = await akv_records(fake_ontap)
    assert len(records) == 2 and len(fake_ontap.requests) == 2


async def test_caps_the_page_count(fake_ontap):
    counter = iter(range(10_000))

    async def endless(request):
        href = f"{AKV_PATH}?start={next(counter)}"
        return web.json_response({"records": [], "_links": {"next": {"href": href}}})

    fake_ontap.handler = endless
    client = OntapClient(cluster_config(fake_ontap.url), max_pages=5)
    with pytest.raises(OntapError, match="more than 5 pages") as caught:
        await client.key_manager_records(akv.ENDPOINT, deadline())
    await client.close()
    assert caught.value.reason == "invalid_response"


async def test_refuses_a_next_link_to_another_host(fake_ontap):
    async def elsewhere(request):
        return web.json_response(
            {"records": [], "_links": {"next": {"href": "https://evil.example/api/x"}}}
        )

    fake_ontap.handler = elsewhere
    error = await failure(fake_ontap)
    assert error.reason == "invalid_response" and "another host" in str(error)
    assert len(fake_ontap.requests) == 1


async def test_honours_retry_after_on_429_within_the_deadline(fake_ontap):
    answers = [429, 200]

    async def busy(request):
        if answers.pop(0) == 429:
            return web.json_response(
                {"error": {"code": "262160", "message": "Too many requests"}},
                status=429,
                headers={"Retry-After": "1"},
            )
        return web.json_response({"records": [akv_record()]})

    fake_ontap.handler = busy
    records = await akv_records(fake_ontap)
    assert len(records) == 1 and len(fake_ontap.requests) == 2


async def test_gives_up_on_retry_after_longer_than_the_deadline(fake_ontap):
    async def busy(request):
        return web.Response(status=503, headers={"Retry-After": "30"})

    fake_ontap.handler = busy
    error = await failure(fake_ontap, seconds=5)
    assert error.reason == "rate_limited" and error.status == 503
    assert len(fake_ontap.requests) == 1


async def test_ontap_error_body_is_parsed(fake_ontap):
    async def bad(request):
        body = {"error": {"code": "262179", "message": 'Unexpected argument "x".', "target": "x"}}
        return web.json_response(body, status=400)

    fake_ontap.handler = bad
    error = await failure(fake_ontap)
    assert error.reason == "ontap_error"
    assert 'HTTP 400, ONTAP error 262179: Unexpected argument "x". (target x)' in str(error)


async def test_falls_back_to_98_fields_when_a_field_is_unknown(fake_ontap):
    async def old_release(request):
        if "enabled" in request.query["fields"]:
            body = {"error": {"code": "262197", "message": "Invalid field", "target": "fields"}}
            return web.json_response(body, status=400)
        return web.json_response({"records": [akv_record()]})

    fake_ontap.handler = old_release
    assert len(await akv_records(fake_ontap)) == 1
    assert "enabled" not in fake_ontap.requests[-1].query["fields"]


@pytest.mark.parametrize(
    ("status", "reason"), [(401, "auth"), (403, "forbidden"), (500, "http"), (404, "http")]
)
async def test_http_statuses_are_classified(fake_ontap, status, reason):
    async def answer(request):
        return web.Response(status=status, text="<html>no</html>")

    fake_ontap.handler = answer
    error = await failure(fake_ontap)
    assert error.reason == reason and error.status == status


async def test_credentials_command_is_rerun_once_on_401(fake_ontap, tmp_path):
    counter = tmp_path / "count"
    script = tmp_path / "creds.sh"
    script.write_text(
        f'#!/bin/sh\necho x >> "{counter}"\n'
        f'if [ "$(wc -l < "{counter}")" -ge 2 ]; then echo new-pass; else echo old-pass; fi\n'
    )
    script.chmod(0o755)

    async def only_new(request):
        import base64

        _user, _, password = (
            base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
        )
        if password != "new-pass":
            return web.Response(status=401)
        return web.json_response({"records": [akv_record()]})

    fake_ontap.handler = only_new
    records = await akv_records_with(
        fake_ontap, secret=SecretSource("credentials_command", str(script))
    )
    assert len(records) == 1
    assert counter.read_text().count("x") == 2


async def akv_records_with(fake_ontap, **config) -> list:
    client = OntapClient(cluster_config(fake_ontap.url, **config))
    try:
        return await client.key_manager_records(akv.ENDPOINT, deadline())
    finally:
        await client.close()


async def test_a_401_after_rereading_credentials_is_an_auth_failure(fake_ontap, tmp_path):
    async def never(request):
        return web.Response(status=401)

    fake_ontap.handler = never
    error = await failure(fake_ontap, secret=SecretSource("credentials_command", "echo wrong"))
    assert error.reason == "auth" and len(fake_ontap.requests) == 2


async def test_failing_credentials_command_is_an_auth_failure_without_its_output(fake_ontap):
    error = await failure(
        fake_ontap, secret=SecretSource("credentials_command", "echo canary-secret; exit 3")
    )
    assert error.reason == "auth" and "status 3" in str(error)
    assert "canary-secret" not in str(error)


async def test_malformed_json_is_an_invalid_response(fake_ontap):
    async def garbage(request):
        return web.Response(text='{"records": [', content_type="application/hal+json")

    fake_ontap.handler = garbage
    error = await failure(fake_ontap)
    assert error.reason == "invalid_response" and "not JSON" in str(error)


async def test_oversized_bodies_are_cut_off(fake_ontap):
    async def huge(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()  # no Content-Length: the limit must hold while reading
        await response.prepare(request)
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(256):
                await response.write(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    fake_ontap.handler = huge
    client = OntapClient(cluster_config(fake_ontap.url), max_response_bytes=1 << 20)
    with pytest.raises(OntapError, match="exceeds the 1048576-byte limit") as caught:
        await client.key_manager_records(akv.ENDPOINT, deadline())
    await client.close()
    assert caught.value.reason == "invalid_response"


async def test_declared_oversized_bodies_are_refused_before_reading(fake_ontap):
    async def declared(request):
        return web.Response(body=b"x" * (2 << 20), content_type="application/json")

    fake_ontap.handler = declared
    client = OntapClient(cluster_config(fake_ontap.url), max_response_bytes=1 << 20)
    with pytest.raises(OntapError, match="2097152 bytes exceeds"):
        await client.key_manager_records(akv.ENDPOINT, deadline())
    await client.close()


async def test_timeout_is_classified(fake_ontap):
    async def slow(request):
        await asyncio.sleep(30)
        return web.json_response({"records": []})

    fake_ontap.handler = slow
    client = OntapClient(cluster_config(fake_ontap.url))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await client.key_manager_records(akv.ENDPOINT, deadline(0.5))
    assert client.in_flight == AKV_PATH
    await client.close()


async def test_connection_refused_is_a_connect_failure(unused_tcp_port):
    client = OntapClient(cluster_config(f"http://127.0.0.1:{unused_tcp_port}"))
    with pytest.raises(OntapError) as caught:
        await client.key_manager_records(akv.ENDPOINT, deadline())
    await client.close()
    assert caught.value.reason == "connect" and "cannot connect" in str(caught.value)


async def test_dropped_connection_is_a_connect_failure(fake_ontap):
    async def drop(request):
        request.transport.close()
        await asyncio.sleep(1)

    fake_ontap.handler = drop
    error = await failure(fake_ontap)
    assert error.reason == "connect"


async def test_cluster_identity(fake_ontap):
    client = OntapClient(cluster_config(fake_ontap.url))
    identity = await client.cluster_identity(deadline())
    await client.close()
    assert (identity.name, identity.version) == ("c1", "9.14.1")


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def ca():
    return trustme.CA()


async def tls_server(ca, *, require_client_cert=False):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    if require_client_cert:
        server_context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(server_context)

    async def cluster(request):
        peer = request.transport.get_extra_info("peercert")
        name = "tls-cluster"
        if peer:
            name = dict(x[0] for x in peer["subject"]).get("commonName", name)
        return web.json_response({"name": name, "uuid": "u", "version": {}})

    app = web.Application()
    app.router.add_get("/api/cluster", cluster)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}"


async def test_tls_verifies_against_the_configured_ca(ca, tmp_path):
    runner, url = await tls_server(ca)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    trusted = OntapClient(cluster_config(url, tls=TlsConfig(ca_file=ca_file)))
    assert (await trusted.cluster_identity(deadline())).name == "tls-cluster"
    await trusted.close()
    untrusted = OntapClient(cluster_config(url))
    with pytest.raises(OntapError) as caught:
        await untrusted.cluster_identity(deadline())
    await untrusted.close()
    assert caught.value.reason == "tls"
    unverified = OntapClient(cluster_config(url, tls=TlsConfig(verify=False)))
    assert (await unverified.cluster_identity(deadline())).name == "tls-cluster"
    await unverified.close()
    await runner.cleanup()


async def test_client_certificate_authentication(ca, tmp_path):
    runner, url = await tls_server(ca, require_client_cert=True)
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert = ca.issue_cert("akv-monitor", common_name="akv-monitor")
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    client = OntapClient(
        cluster_config(
            url,
            username=None,
            secret=None,
            client_cert_file=cert_file,
            client_key_file=None,
            tls=TlsConfig(ca_file=ca_file),
        )
    )
    identity = await client.cluster_identity(deadline())
    await client.close()
    await runner.cleanup()
    assert identity.name == "akv-monitor"  # the server saw our certificate's CN
