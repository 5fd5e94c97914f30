"""FakeOntap: an ONTAP stand-in on loopback whose answers each test sets (the conftest
fixtures `make_ontap` and `fake_ontap` serve it)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.helpers.ontap import akv_record


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
        # The slow-polled endpoints (issue 11): a body (a list becomes a collection), a
        # (status, body) pair, None for ONTAP's 404 of an unknown path, or a function of the
        # request returning one of those.
        self.key_manager_config: Any = None
        self.volumes: Any = None
        self.events: Any = None

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

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        answer = {
            "/api/security/key-manager-configs": self.key_manager_config,
            "/api/storage/volumes": self.volumes,
            "/api/support/ems/events": self.events,
        }[request.path]
        if callable(answer):
            answer = answer(request)
            if inspect.isawaitable(answer):
                answer = await answer
        if answer is None:
            return web.json_response(
                {"error": {"message": "API not found", "code": "4"}}, status=404
            )
        if isinstance(answer, tuple):
            return web.json_response(answer[1], status=answer[0])
        if isinstance(answer, list):
            answer = {"records": answer, "num_records": len(answer)}
        return web.json_response(answer, content_type="application/hal+json")

    def asked(self, path: str) -> list[web.Request]:
        """Return the requests made to ``path``."""
        return [r for r in self.requests if r.path == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/cluster", self._cluster)
        app.router.add_get("/api/security/azure-key-vaults", self._akv)
        for path in (
            "/api/security/key-manager-configs",
            "/api/storage/volumes",
            "/api/support/ems/events",
        ):
            app.router.add_get(path, self._slow)
        return app


class InFlight:
    """An ONTAP answer that takes ``delay`` seconds and counts the most requests served at once."""

    def __init__(self, delay: float = 0.2):
        self.delay = delay
        self.now = 0
        self.most = 0

    async def __call__(self, request: web.Request) -> web.Response:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return web.json_response({"records": [akv_record()]})
