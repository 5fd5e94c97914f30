"""Fixtures: small real HTTP servers on loopback standing in for ONTAP answers (FakeOntap).

Plain helpers (records, configurations, processes, FakeOntap itself) live in the topic modules
of tests/helpers/ (its __init__.py lists them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from hypothesis import settings

from tests.helpers.fake_ontap import FakeOntap

# Property tests check behaviour, not speed (that is `make bench`'s): no per-example deadline,
# which a loaded 2-core CI machine would turn into flakes.
settings.register_profile("akv", deadline=None)
settings.load_profile("akv")


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


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session for talking to loopback servers, closed after the test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the tests that share a module-scoped fixture (a fleet, a Prometheus) on one worker.

    Under `-n` (`--dist loadgroup`, pyproject.toml) tests are otherwise spread one by one, and
    each worker that receives one of a module's tests would build that module's fixture again.
    A test that already names its own xdist_group keeps it.
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        shared = any(
            definition.scope in ("module", "package", "class")
            for definitions in info.name2fixturedefs.values()
            for definition in definitions
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
