"""Shared fixtures: small real HTTP servers on loopback standing in for ONTAP answers."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]


def require_binary(name: str, package: str) -> str:
    """Return the path of ``name``; fail (never skip) when missing, naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (make test does this)")
    return path


def akv_record(
    uuid: str = "11111111-1111-1111-1111-111111111111",
    svm: str | None = "vs1",
    nodes: tuple[str, ...] = ("n1", "n2"),
    *,
    reachable: bool = True,
    kek: bool = True,
    ekmip_down: tuple[str, ...] = (),
    enabled: bool = True,
) -> dict:
    """Return an azure-key-vaults record as ONTAP 9.14+ sends it with the advanced fields."""
    record: dict = {
        "uuid": uuid,
        "scope": "svm" if svm else "cluster",
        "enabled": enabled,
        "configuration": {"name": "default", "uuid": uuid},
        "name": "https://vault1.vault.azure.net/",
        "key_id": "https://vault1.vault.azure.net/keys/key1/0123456789abcdef0123456789abcdef",
        "client_id": "aaaaaaaa-bbbb-aaaa-bbbb-aaaaaaaaaaaa",
        "tenant_id": "zzzzzzzz-yyyy-zzzz-yyyy-zzzzzzzzzzzz",
        "authentication_method": "client_secret",
    }
    if svm:
        record["svm"] = {"name": svm, "uuid": "22222222-2222-2222-2222-222222222222"}
    if not enabled:
        return record
    record["azure_reachability"] = (
        {"reachable": True, "code": "0", "message": ""}
        if reachable
        else {
            "reachable": False,
            "code": "65537549",
            "message": "AKV service is not reachable from all nodes - reason: timed out.",
        }
    )
    record["state"] = (
        {"available": True, "code": "0", "message": ""}
        if kek
        else {
            "available": False,
            "code": "65537551",
            "message": "Top-level internal key protection key (KEK) is unavailable on the "
            "following nodes with the associated reasons: Node: n1. Reason: unavailable.",
        }
    )
    record["ekmip_reachability"] = [
        {
            "node": {"name": node, "uuid": f"{index:08d}-0000-0000-0000-000000000000"},
            "reachable": node not in ekmip_down,
            "code": "65537552" if node in ekmip_down else "0",
            "message": "embedded KMIP server status unavailable on node."
            if node in ekmip_down
            else "",
        }
        for index, node in enumerate(nodes)
    ]
    return record


class FakeOntap:
    """An ONTAP stand-in on loopback whose answers each test sets; it records what it was asked."""

    def __init__(self) -> None:
        self.records: list = [akv_record()]
        self.cluster = {
            "name": "c1",
            "uuid": "cccc",
            "version": {"full": "NetApp Release 9.14.1", "generation": 9, "major": 14, "minor": 1},
        }
        self.requests: list[web.Request] = []
        self.handler: Callable | None = None  # overrides the AKV answer when set
        self.url = ""

    async def _cluster(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        return web.json_response(self.cluster, content_type="application/hal+json")

    async def _akv(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.handler is not None:
            return await self.handler(request)
        return web.json_response(
            {"records": self.records, "num_records": len(self.records)},
            content_type="application/hal+json",
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/cluster", self._cluster)
        app.router.add_get("/api/security/azure-key-vaults", self._akv)
        return app


@pytest.fixture
async def make_ontap():
    """Return a factory of FakeOntaps, each served over plain HTTP on 127.0.0.1, a free port."""
    runners = []

    async def make() -> FakeOntap:
        ontap = FakeOntap()
        runner = web.AppRunner(ontap.app(), shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        ontap.url = f"http://{host}:{port}"
        return ontap

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def fake_ontap(make_ontap):
    """One FakeOntap on loopback."""
    return await make_ontap()


def write_config(tmp_path: Path, body: str, name: str = "akv.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def cluster_config(url: str, **overrides):
    """Return a ClusterConfig for ``url`` with basic auth admin/netapp1! unless overridden."""
    from akv_exporter.config import ClusterConfig, SecretSource, TlsConfig

    fields = {
        "name": None,
        "address": url,
        "url": url,
        "username": "admin",
        "secret": SecretSource("password", "netapp1!"),
        "client_cert_file": None,
        "client_key_file": None,
        "tls": TlsConfig(),
        "labels": (),
    }
    fields.update(overrides)
    return ClusterConfig(**fields)
