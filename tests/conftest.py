"""Fixtures: small real HTTP servers on loopback standing in for ONTAP answers.

Plain helpers (records, configurations, processes) live in tests/helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

from tests.helpers import akv_record


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
